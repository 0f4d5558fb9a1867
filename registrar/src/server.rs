//! The registrar's I/O shell: SIP sockets and the transaction layer, the trusted-source
//! gate, the REGISTER path (checks, digest, the store, the reply), the HTTP endpoint
//! with its health probe, and the cleanup task.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hasip::endpoint::{Endpoint, EndpointConfig, Incoming, ServerTransaction};
use hasip::http::{Health, HealthFn, HealthStatus};
use hasip::sip::{Message, Method};
use hasip::transport::{Flow, Inbound, ListenSpec, TransportOptions, Transports};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::auth::{DigestAuth, Precheck};
use crate::config::{RegistrarConfig, UntrustedAction};
use crate::error::{Error, StoreError};
use crate::proxy::Proxy;
use crate::register::{Outcome, Rejection};
use crate::reply;
use crate::request;
use crate::store::Store;
use crate::trusted::Trusted;

/// How often the health task reads the active master's clock.
const HEALTH_PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Health states kept in an atomic for the `/health` handler.
const PROBE_UNKNOWN: u8 = 0;
const PROBE_OK: u8 = 1;
const PROBE_DOWN: u8 = 2;

/// What every request handler reads.
struct Shared {
    store: Store,
    proxy: Proxy<Store>,
    auth: Option<DigestAuth>,
    trusted: Trusted,
    domains: Vec<String>,
}

/// A bound registrar, ready to run; tests bind on port 0 and read the addresses back.
pub struct Registrar {
    endpoint: Endpoint,
    incoming: mpsc::Receiver<Incoming>,
    shared: Arc<Shared>,
    sip_addrs: Vec<ListenSpec>,
    http_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Registrar {
    /// Binds the SIP sockets, starts the store, the HTTP endpoint, the health probe and
    /// the cleanup task. The database may be down: the store connects lazily.
    pub async fn bind(config: RegistrarConfig) -> Result<Self, Error> {
        config.validate()?;
        let options = TransportOptions {
            limits: config.limits,
            ..TransportOptions::default()
        };
        let (transports, inbound) = Transports::bind(&config.sip.listen, options).await?;
        let sip_addrs = transports.local_addrs().to_vec();
        for spec in &sip_addrs {
            tracing::info!(listen = %spec, "sip socket bound");
        }
        let trusted = Trusted::new(config.sip.trusted.clone());
        let mut tasks = Vec::new();
        // Dropping untrusted traffic before the transaction layer means it never costs a
        // transaction, and never gets the 500 an unanswered transaction ends with.
        let inbound = match config.sip.untrusted {
            UntrustedAction::Drop => {
                let (gate, task) = gate(inbound, trusted.clone());
                tasks.push(task);
                gate
            }
            UntrustedAction::Reject => inbound,
        };
        let endpoint_config = EndpointConfig {
            limits: config.limits,
            ..EndpointConfig::default()
        };
        let (endpoint, incoming) = Endpoint::start(transports, inbound, endpoint_config);
        let store = Store::start(&config.store, config.expires.clone())?;
        let nonce_secret = config
            .auth
            .nonce_secret
            .as_ref()
            .map(|secret| secret.expose().as_bytes())
            .unwrap_or_default();
        let proxy = Proxy::new(
            &config.proxy_config(),
            nonce_secret,
            endpoint.clone(),
            store.clone(),
        )
        .map_err(|e| Error::Config(e.to_string()))?;
        let shared = Arc::new(Shared {
            store: store.clone(),
            proxy,
            auth: DigestAuth::from_config(&config.auth)?,
            trusted,
            domains: config.served_domains(),
        });

        let (stop, stop_rx) = watch::channel(false);
        let probe = Arc::new(AtomicU8::new(PROBE_UNKNOWN));
        tasks.push(tokio::spawn(probe_masters(
            store.clone(),
            Arc::clone(&probe),
        )));
        let health: HealthFn = {
            let store = store.clone();
            Arc::new(move || health(probe.load(Ordering::Acquire), store.active_master()))
        };
        let http_addr = hasip::http::spawn(&config.http, health, stopped(stop_rx)).await?;
        tasks.push(crate::cleanup::spawn(store, config.cleanup.clone()));
        Ok(Registrar {
            endpoint,
            incoming,
            shared,
            sip_addrs,
            http_addr,
            stop,
            tasks,
        })
    }

    /// The SIP sockets actually bound (ports resolved).
    pub fn sip_addrs(&self) -> &[ListenSpec] {
        &self.sip_addrs
    }

    /// Where `/metrics` and `/health` are served, if anywhere.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Handles requests until `shutdown` completes.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                incoming = self.incoming.recv() => match incoming {
                    Some(Incoming::Request { request, flow, txn }) => {
                        tokio::spawn(handle(Arc::clone(&self.shared), request, flow, txn));
                    }
                    // End-to-end ACKs of 2xx and late 2xx retransmissions pass through
                    // the home proxy statelessly (RFC 3261 section 16.7 step 5).
                    Some(Incoming::Ack { ack, flow }) if self.shared.trusted.contains(flow.remote.ip()) => {
                        let shared = Arc::clone(&self.shared);
                        tokio::spawn(async move { shared.proxy.forward_ack(ack).await });
                    }
                    Some(Incoming::StrayResponse { response, flow }) if self.shared.trusted.contains(flow.remote.ip()) => {
                        let shared = Arc::clone(&self.shared);
                        tokio::spawn(async move { shared.proxy.forward_stray_response(response).await });
                    }
                    // Non-SIP datagrams (STUN) are the edge's business, and untrusted ACKs
                    // and responses are dropped.
                    Some(_) => {}
                    None => break,
                },
            }
        }
        tracing::info!("registrar stopping");
        self.endpoint.transports().shutdown();
        self.stop.send_replace(true);
        for task in &self.tasks {
            task.abort();
        }
        Ok(())
    }
}

/// Binds and runs a registrar until `shutdown` completes.
pub async fn run(config: RegistrarConfig, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    Registrar::bind(config).await?.run(shutdown).await
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    // An error means the sender is gone, which also means stop.
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// Forwards only trusted traffic from the transports to the transaction layer.
fn gate(
    mut inbound: mpsc::Receiver<Inbound>,
    trusted: Trusted,
) -> (mpsc::Receiver<Inbound>, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(TransportOptions::default().inbound_queue);
    let task = tokio::spawn(async move {
        while let Some(message) = inbound.recv().await {
            if !trusted.contains(message.flow.remote.ip()) {
                metrics::counter!("hasip_registrar_untrusted_total", "action" => "drop")
                    .increment(1);
                tracing::debug!(source = %message.flow.remote, "untrusted source dropped");
                continue;
            }
            if tx.send(message).await.is_err() {
                break;
            }
        }
    });
    (rx, task)
}

/// Reads the active master's clock every second (failing over like any request) and
/// publishes the result for `/health` and the active master gauge.
async fn probe_masters(store: Store, state: Arc<AtomicU8>) {
    let mut tick = tokio::time::interval(HEALTH_PROBE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let up = store.clock().await.is_ok();
        state.store(if up { PROBE_OK } else { PROBE_DOWN }, Ordering::Release);
        metrics::gauge!("hasip_registrar_master_reachable").set(if up { 1.0 } else { 0.0 });
        metrics::gauge!("hasip_registrar_active_master").set(store.active_master() as f64);
    }
}

/// The `/health` report: down while no master answers, degraded off the first master.
fn health(probe: u8, active_master: usize) -> Health {
    let (status, detail) = match probe {
        PROBE_OK if active_master == 0 => (HealthStatus::Ok, None),
        PROBE_OK => (
            HealthStatus::Degraded,
            Some(format!("writing to master {active_master}, not the first")),
        ),
        PROBE_DOWN => (
            HealthStatus::Down,
            Some("no database master is reachable".to_owned()),
        ),
        _ => (
            HealthStatus::Down,
            Some("the database has not been probed yet".to_owned()),
        ),
    };
    Health::ok().check("database", status, detail)
}

/// Answers one request through its server transaction.
async fn handle(shared: Arc<Shared>, request: Message, flow: Flow, txn: ServerTransaction) {
    let response = if !shared.trusted.contains(flow.remote.ip()) {
        // Only reached with `untrusted = "reject"`; drops never get this far.
        metrics::counter!("hasip_registrar_untrusted_total", "action" => "reject").increment(1);
        reply::simple(&request, 403, "Forbidden")
    } else {
        match request.method() {
            Some(Method::Register) => register(&shared, &request, &flow).await,
            // Edges probe registrars with OPTIONS to the registrar itself.
            Some(Method::Options) if is_for_us(&request) => reply::simple(&request, 200, "OK"),
            // Everything else is for a registered user, or loose-routed on. Boxed: the
            // proxy's future is several times a REGISTER's, and every request's task
            // would otherwise be allocated and copied at that size.
            _ => return Box::pin(shared.proxy.handle(request, flow, txn)).await,
        }
    };
    if let Err(e) = txn.respond(response).await {
        tracing::debug!(peer = %flow.remote, error = %e, "response not sent");
    }
}

/// Whether a request is addressed to the registrar itself (no user in the Request-URI).
fn is_for_us(request: &Message) -> bool {
    request
        .request_uri()
        .and_then(|uri| hasip::sip::uri::Uri::parse(uri).ok())
        .is_some_and(|uri| uri.user.is_none())
}

/// The whole REGISTER path; returns the response to send and counts its outcome.
async fn register(shared: &Shared, request: &Message, flow: &Flow) -> Bytes {
    let (code, response) = register_inner(shared, request, flow).await;
    metrics::counter!("hasip_registrar_registers_total", "code" => code_label(code)).increment(1);
    response
}

/// Seconds since 1970, for nonces.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn register_inner(shared: &Shared, request: &Message, flow: &Flow) -> (u16, Bytes) {
    let refuse =
        |rejection: Rejection| (rejection.code, reply::rejection(request, &rejection, &[]));
    // RFC 3261 section 10.3 step 1: only the domains we keep bindings for.
    match request::request_domain(request) {
        Some(domain) if shared.domains.contains(&domain) => {}
        _ => return refuse(Rejection::new(403, "Domain Not Served")),
    }
    // Step 2: every Require tag must be understood.
    let unsupported = request::unsupported_tags(request);
    if !unsupported.is_empty() {
        return (420, reply::bad_extension(request, &unsupported));
    }
    // Step 5 (before 3 and 4, which need the AoR): the To-URI within our domains.
    let aor = match request::to_aor(request) {
        Ok(aor) if shared.domains.contains(&aor.domain) => aor,
        Ok(_) => return refuse(Rejection::new(404, "Not Found")),
        Err(rejection) => return refuse(rejection),
    };
    let register = match request::register_request(request, aor, flow) {
        Ok(register) => register,
        Err(rejection) => return refuse(rejection),
    };
    // Steps 3 and 4: digest; the response itself is checked inside the store's batch.
    let check = match &shared.auth {
        None => None,
        Some(auth) => match auth.precheck(request, &register.aor, unix_now()) {
            Precheck::Verify(check) => Some(check),
            Precheck::Challenge => return challenge(auth, request, &register.aor.domain, false),
            Precheck::Forbidden(reason) => return refuse(Rejection::new(403, reason)),
            Precheck::Malformed(reason) => return refuse(Rejection::new(400, reason)),
        },
    };
    let domain = register.aor.domain.clone();
    let started = Instant::now();
    let outcome = shared.store.register(register, check).await;
    metrics::histogram!("hasip_registrar_store_seconds").record(started.elapsed().as_secs_f64());
    match outcome {
        Ok(Outcome::Accept(accepted)) => (200, reply::ok(request, &accepted, SystemTime::now())),
        Ok(Outcome::Reject(rejection)) if rejection.code == 401 => match &shared.auth {
            Some(auth) => challenge(auth, request, &domain, rejection.stale),
            None => refuse(rejection),
        },
        Ok(Outcome::Reject(rejection)) => refuse(rejection),
        Err(StoreError::Unavailable { retry_after }) => {
            (503, reply::unavailable(request, retry_after))
        }
        Err(e) => {
            tracing::error!(error = %e, "register failed in the store");
            (500, reply::simple(request, 500, "Server Internal Error"))
        }
    }
}

/// A 401 with fresh challenges for `domain`'s realm.
fn challenge(auth: &DigestAuth, request: &Message, domain: &str, stale: bool) -> (u16, Bytes) {
    metrics::counter!(
        "hasip_registrar_auth_challenges_total",
        "stale" => if stale { "true" } else { "false" }
    )
    .increment(1);
    let challenges = auth.challenges(auth.realm(domain), stale, unix_now());
    let rejection = crate::auth::unauthorized(stale);
    (401, reply::rejection(request, &rejection, &challenges))
}

/// A `code` label value for the registers counter, from a fixed set.
fn code_label(code: u16) -> &'static str {
    match code {
        200 => "200",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        420 => "420",
        423 => "423",
        500 => "500",
        503 => "503",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_follows_the_probe() {
        assert_eq!(health(PROBE_OK, 0).status, HealthStatus::Ok);
        assert_eq!(health(PROBE_OK, 1).status, HealthStatus::Degraded);
        assert_eq!(health(PROBE_DOWN, 0).status, HealthStatus::Down);
        assert_eq!(health(PROBE_UNKNOWN, 0).status, HealthStatus::Down);
    }

    #[test]
    fn code_labels() {
        assert_eq!(code_label(200), "200");
        assert_eq!(code_label(423), "423");
        assert_eq!(code_label(488), "other");
    }
}
