//! The edge's I/O shell: SIP sockets, the HTTP endpoint, and the receive loop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use hasip::http::{Health, HealthFn};
use hasip::sip::builder::response_to;
use hasip::sip::{Limits, Message, Method};
use hasip::transport::{Inbound, ListenSpec, TransportOptions, Transports};
use tokio::sync::{mpsc, watch};

use crate::config::EdgeConfig;
use crate::Error;

/// A bound edge, ready to run; tests bind on port 0 and read the addresses back.
pub struct Edge {
    transports: Transports,
    inbound: mpsc::Receiver<Inbound>,
    limits: Limits,
    http_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
}

impl Edge {
    /// Binds the SIP sockets and starts the HTTP endpoint.
    pub async fn bind(config: EdgeConfig) -> Result<Self, Error> {
        let options = TransportOptions {
            limits: config.limits,
            ..TransportOptions::default()
        };
        let (transports, inbound) = Transports::bind(&config.sip.listen, options).await?;
        for spec in transports.local_addrs() {
            tracing::info!(listen = %spec, "sip socket bound");
        }
        let (stop, stop_rx) = watch::channel(false);
        let health: HealthFn = Arc::new(Health::ok);
        let http_addr = hasip::http::spawn(&config.http, health, stopped(stop_rx)).await?;
        Ok(Edge {
            transports,
            inbound,
            limits: config.limits,
            http_addr,
            stop,
        })
    }

    /// The SIP sockets actually bound (ports resolved).
    pub fn sip_addrs(&self) -> &[ListenSpec] {
        self.transports.local_addrs()
    }

    /// Where `/metrics` and `/health` are served, if anywhere.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Handles messages until `shutdown` completes.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                received = self.inbound.recv() => match received {
                    Some(inbound) => answer(&self.transports, &self.limits, inbound).await,
                    None => break,
                },
            }
        }
        tracing::info!("edge stopping");
        self.transports.shutdown();
        self.stop.send_replace(true);
        Ok(())
    }
}

/// Binds and runs an edge until `shutdown` completes.
pub async fn run(config: EdgeConfig, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    Edge::bind(config).await?.run(shutdown).await
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    // An error means the sender is gone, which also means stop.
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// Answers OPTIONS with 200 and other requests with 501 until the proxy logic lands.
async fn answer(transports: &Transports, limits: &Limits, inbound: Inbound) {
    let message = match Message::parse(inbound.data, limits) {
        Ok(message) => message,
        Err(e) => {
            tracing::debug!(source = %inbound.flow.remote, error = %e, "unparsable message dropped");
            metrics::counter!("hasip_edge_parse_errors_total").increment(1);
            return;
        }
    };
    let (code, reason) = match message.method() {
        None | Some(Method::Ack) => return,
        Some(Method::Options) => (200, "OK"),
        Some(_) => (501, "Not Implemented"),
    };
    let response = response_to(&message, code, reason, None).build();
    if let Err(e) = transports.send(&inbound.flow, response).await {
        tracing::debug!(peer = %inbound.flow.remote, error = %e, "response not sent");
    }
}
