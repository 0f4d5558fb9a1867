//! The edge's I/O shell: binds the public and internal SIP sockets and the HTTP
//! endpoint, screens raw input (rate limits, STUN), runs the transaction layer, and
//! runs the registrar probes and the NAT keepalives.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hasip::endpoint::{ClientEvent, Endpoint, EndpointConfig, Incoming};
use hasip::flow_token::FlowTokenKey;
use hasip::http::{Health as HttpHealth, HealthFn, HealthStatus};
use hasip::sip::{Limits, Message};
use hasip::transport::{Inbound, ListenSpec, Transport, TransportOptions, Transports};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::config::EdgeConfig;
use crate::flows::FlowTable;
use crate::health::{Health, HealthConfig, Transition};
use crate::pike::{raw_user_agent, user_agent_denied, Pike, Verdict};
use crate::proxy::{lock, Proxy, KEEPALIVE};
use crate::relay::{Offer, Relay};
use crate::ring::Ring;
use crate::route::Addresses;
use crate::{stun, Error};

/// How often the rate limiter gives back the memory of quiet sources.
const PIKE_SWEEP: Duration = Duration::from_secs(10);

/// The shortest pause between two keepalive batches: flows due within it go together.
const KEEPALIVE_SPACING: Duration = Duration::from_millis(10);

/// Keepalives sent before the keepalive loop lets other tasks run.
const KEEPALIVE_BURST: usize = 64;

/// A bound edge, ready to run; tests bind on port 0 and read the addresses back.
pub struct Edge {
    proxy: Arc<Proxy>,
    transports: Transports,
    incoming: mpsc::Receiver<Incoming>,
    raw: mpsc::Receiver<Inbound>,
    pike: Pike,
    health_config: HealthConfig,
    keepalive_interval: Duration,
    http_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
}

impl Edge {
    /// Binds the SIP sockets and starts the HTTP endpoint.
    pub async fn bind(config: EdgeConfig) -> Result<Self, Error> {
        config.validate()?;
        let options = TransportOptions {
            limits: config.limits,
            ..TransportOptions::default()
        };
        let mut specs = config.sip.listen.clone();
        specs.push(config.sip.internal);
        let (transports, raw) = Transports::bind(&specs, options).await?;
        let bound = transports.local_addrs().to_vec();
        let (public, internal) = match bound.split_last() {
            Some((internal, public)) => (public.to_vec(), internal.addr),
            None => return Err(Error::Config("no socket bound".into())),
        };
        for spec in &public {
            tracing::info!(listen = %spec, "public sip socket bound");
        }
        tracing::info!(%internal, "internal sip socket bound");
        let endpoint_config = EndpointConfig {
            limits: config.limits,
            ..EndpointConfig::default()
        };
        // The screening task hands what it lets through to the transaction layer itself.
        let (endpoint, incoming) = Endpoint::new(transports.clone(), endpoint_config);
        let registrars = config.registrars.addrs.clone();
        for addr in &registrars {
            metrics::gauge!("hasip_edge_registrar_up", "registrar" => addr.to_string()).set(1.0);
        }
        let addresses = Addresses { public, internal };
        let proxy = Arc::new(Proxy {
            endpoint,
            path_end: Proxy::path_end(&addresses),
            addresses,
            key: FlowTokenKey::new(config.flow_token.secret.expose().as_bytes()),
            ring: Mutex::new(Ring::new(
                registrars.clone(),
                config.registrars.virtual_nodes,
            )),
            health: Mutex::new(Health::new(registrars.len(), config.health)),
            flows: Mutex::new(FlowTable::new(
                config.keepalive.interval(),
                config.keepalive.max_flows,
            )),
            core_networks: config.sip.core_networks.clone(),
            user_agent_deny: config.protection.user_agent_deny.clone(),
            failover_timeout: config.registrars.failover_timeout(),
            keepalive: config.keepalive.enabled,
        });
        let (stop, stop_rx) = watch::channel(false);
        let health: HealthFn = {
            let proxy = Arc::clone(&proxy);
            Arc::new(move || report_health(&proxy))
        };
        let http_addr = hasip::http::spawn(&config.http, health, stopped(stop_rx)).await?;
        Ok(Edge {
            proxy,
            transports,
            incoming,
            raw,
            pike: Pike::new(config.protection.pike()),
            health_config: config.health,
            keepalive_interval: config.keepalive.interval(),
            http_addr,
            stop,
        })
    }

    /// The public SIP sockets actually bound (ports resolved).
    pub fn sip_addrs(&self) -> &[ListenSpec] {
        &self.proxy.addresses.public
    }

    /// The internal socket toward the core (port resolved).
    pub fn internal_addr(&self) -> SocketAddr {
        self.proxy.addresses.internal
    }

    /// Where `/metrics` and `/health` are served, if anywhere.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Handles messages until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let Edge {
            proxy,
            transports,
            mut incoming,
            raw,
            pike,
            health_config,
            keepalive_interval,
            http_addr: _,
            stop,
        } = self;
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(screen(raw, Relay::new(Arc::clone(&proxy)), pike));
        tasks.spawn(probe_loop(Arc::clone(&proxy), health_config));
        if proxy.keepalive {
            tasks.spawn(keepalive_loop(
                Arc::clone(&proxy),
                transports.clone(),
                keepalive_interval,
            ));
        }
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                event = incoming.recv() => match event {
                    Some(event) => {
                        tokio::spawn(Arc::clone(&proxy).handle(event));
                    }
                    None => break,
                },
            }
        }
        tracing::info!("edge stopping");
        tasks.abort_all();
        transports.shutdown();
        stop.send_replace(true);
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

/// `/health`: down when no registrar is up, degraded when some are down.
fn report_health(proxy: &Proxy) -> HttpHealth {
    let ring = lock(&proxy.ring);
    let total = ring.addrs().len();
    let up = (0..total).filter(|&i| ring.is_up(i)).count();
    let status = match up {
        0 => HealthStatus::Down,
        n if n < total => HealthStatus::Degraded,
        _ => HealthStatus::Ok,
    };
    HttpHealth::ok().check("registrars", status, Some(format!("{up} of {total} up")))
}

/// Screens raw input before the transaction layer: per-source rate limits on the
/// public sockets, and STUN Binding requests answered on the spot. What passes goes to
/// the REGISTER relay or the transaction layer in this task, without another queue and
/// wake-up; the relay's timers run here too.
async fn screen(mut raw: mpsc::Receiver<Inbound>, mut relay: Relay, mut pike: Pike) {
    let proxy = Arc::clone(relay.proxy());
    let endpoint = &proxy.endpoint;
    let transports = endpoint.transports();
    let internal = proxy.addresses.internal;
    let user_agent_deny = &proxy.user_agent_deny;
    let mut last_sweep = Instant::now();
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    let mut armed: Option<std::time::Instant> = None;
    loop {
        // Due timers first, even while input keeps coming: the select below prefers input.
        if relay
            .next_deadline()
            .is_some_and(|at| at <= Instant::now().into_std())
        {
            relay.fire().await;
        }
        let next = relay.next_deadline();
        if next != armed {
            if let Some(at) = next {
                timer.as_mut().reset(at.into());
            }
            armed = next;
        }
        let inbound = tokio::select! {
            biased;
            inbound = raw.recv() => match inbound {
                Some(inbound) => inbound,
                None => break,
            },
            () = &mut timer, if armed.is_some() => {
                relay.fire().await;
                armed = None;
                continue;
            }
        };
        let flow = inbound.flow;
        let from_core = flow.transport == Transport::Udp && flow.local == internal;
        if !from_core {
            let now = Instant::now();
            match pike.check(flow.remote.ip(), now.into_std()) {
                Verdict::Allow => {}
                Verdict::NewlyBlocked => {
                    metrics::counter!("hasip_edge_blocks_total").increment(1);
                    metrics::gauge!("hasip_edge_blocked_sources")
                        .set(pike.blocked(now.into_std()) as f64);
                    tracing::warn!(source = %flow.remote.ip(), "source over its rate, blocked");
                    continue;
                }
                Verdict::Blocked => {
                    metrics::counter!("hasip_edge_blocked_messages_total").increment(1);
                    continue;
                }
            }
            if now.duration_since(last_sweep) >= PIKE_SWEEP {
                pike.sweep(now.into_std());
                metrics::gauge!("hasip_edge_blocked_sources")
                    .set(pike.blocked(now.into_std()) as f64);
                last_sweep = now;
            }
        }
        if !from_core && !user_agent_deny.is_empty() {
            if let Some(agent) = raw_user_agent(&inbound.data) {
                if user_agent_denied(agent, user_agent_deny) {
                    // Silence: a scanner learns nothing, not even that SIP runs here.
                    metrics::counter!("hasip_edge_denied_user_agents_total").increment(1);
                    tracing::debug!(source = %flow.remote, agent, "user agent denied");
                    continue;
                }
            }
        }
        if flow.transport == Transport::Udp && stun::is_stun(&inbound.data) {
            if let Some(answer) = stun::binding_response(&inbound.data, flow.remote) {
                metrics::counter!("hasip_edge_stun_answers_total").increment(1);
                let _ = transports.send(&flow, Bytes::from(answer)).await;
            }
            continue;
        }
        match relay.offer(inbound).await {
            Offer::Taken => {}
            Offer::Raw(inbound) => endpoint.receive(inbound).await,
            Offer::Parsed(message, flow) => endpoint.receive_message(message, flow).await,
        }
    }
}

/// Sends an OPTIONS to every registrar each interval and feeds the answers to health.
async fn probe_loop(proxy: Arc<Proxy>, config: HealthConfig) {
    let interval = Duration::from_millis(config.probe_interval_ms.max(10));
    let timeout = Duration::from_millis(config.probe_timeout_ms.max(1));
    let addrs = lock(&proxy.ring).addrs().to_vec();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        for (index, addr) in addrs.iter().copied().enumerate() {
            let proxy = Arc::clone(&proxy);
            tokio::spawn(async move {
                let answered = probe(&proxy, addr, timeout).await;
                let transition = if answered {
                    lock(&proxy.health).probe_answered(index)
                } else {
                    lock(&proxy.health).failure(index)
                };
                let up = match transition {
                    Transition::None => return,
                    Transition::Up => true,
                    Transition::Down => false,
                };
                lock(&proxy.ring).set_up(index, up);
                tracing::warn!(registrar = %addr, up, "registrar health changed");
                metrics::gauge!("hasip_edge_registrar_up", "registrar" => addr.to_string())
                    .set(if up { 1.0 } else { 0.0 });
            });
        }
    }
}

/// One OPTIONS probe; true if the registrar answered with anything but 503.
async fn probe(proxy: &Proxy, addr: SocketAddr, timeout: Duration) -> bool {
    let internal = proxy.addresses.internal;
    let text = format!(
        "OPTIONS sip:{addr} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {internal};branch={};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:edge@{internal}>;tag={:016x}\r\n\
         To: <sip:{addr}>\r\n\
         Call-ID: {:032x}@{internal}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n",
        hasip::endpoint::new_branch(),
        rand::random::<u64>(),
        rand::random::<u128>(),
    );
    let Ok(request) = Message::parse(Bytes::from(text), &Limits::default()) else {
        return false;
    };
    let target = proxy.to_core(addr);
    let Ok(mut client) = proxy.endpoint.send_request(request, target).await else {
        return false;
    };
    let answer = tokio::time::timeout(timeout, async {
        loop {
            match client.next().await {
                Some(ClientEvent::Provisional(_)) => continue,
                Some(ClientEvent::Final(response)) => return response.status_code() != Some(503),
                _ => return false,
            }
        }
    });
    answer.await.unwrap_or(false)
}

/// Sends a keepalive over each registered UDP flow every interval, and forgets flows
/// whose registration expired.
///
/// The loop wakes when the next flow is due rather than on a coarse tick, so the flows
/// learned over a second are spread over that second instead of sent in one burst; a
/// burst of thousands would hold this single-threaded runtime for tens of milliseconds,
/// and every message arriving meanwhile would wait. Long batches still yield every
/// [`KEEPALIVE_BURST`] sends.
async fn keepalive_loop(proxy: Arc<Proxy>, transports: Transports, interval: Duration) {
    // A new flow is first due an interval after it was learned: looking at least this
    // often never finds one late.
    let longest_sleep = (interval / 5).clamp(KEEPALIVE_SPACING, Duration::from_secs(1));
    loop {
        let now = Instant::now();
        let (due, tracked, next) = {
            let mut flows = lock(&proxy.flows);
            let (due, _expired) = flows.due(now.into_std());
            (due, flows.len(), flows.next_deadline())
        };
        metrics::gauge!("hasip_edge_flows_tracked").set(tracked as f64);
        for (sent, flow) in due.iter().enumerate() {
            if sent > 0 && sent % KEEPALIVE_BURST == 0 {
                tokio::task::yield_now().await;
            }
            if transports.send(flow, KEEPALIVE).await.is_ok() {
                metrics::counter!("hasip_edge_keepalives_sent_total").increment(1);
            }
        }
        let wake = next
            .map(Instant::from_std)
            .map_or(now + longest_sleep, |at| at.min(now + longest_sleep))
            .max(now + KEEPALIVE_SPACING);
        tokio::time::sleep_until(wake).await;
    }
}
