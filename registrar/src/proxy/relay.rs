//! The proxy's tokio shell: one task per request reads the bindings, authenticates the
//! caller, and drives a [`Fork`] with one client transaction per branch through the
//! transaction [`Endpoint`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hasip::endpoint::{
    ClientEvent, ClientTransaction, Endpoint, SendError, ServerTransaction, Target as SendTarget,
};
use hasip::nonce::NonceKey;
use hasip::sip::builder::response_to;
use hasip::sip::{HeaderName, Message, Method};
use hasip::transport::{Flow, Transport};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::auth::{self, AuthPolicy, Need, Verdict};
use super::fork::{Action, BranchId, Failure, Fork, Reply};
use super::route::{self, Decision, Destination, Hop, OwnAddrs, RoutePolicy, Target};
use super::{ConfigError, Locations, ProxyConfig};
use crate::binding::Aor;
use crate::error::StoreError;

/// The methods a served user's requests are routed for; the others get 405.
const ROUTED: &[Method] = &[
    Method::Invite,
    Method::Message,
    Method::Options,
    Method::Subscribe,
    Method::Notify,
    Method::Info,
    Method::Refer,
    Method::Update,
    Method::Prack,
    Method::Bye,
    Method::Publish,
];

/// How long branches are still listened to after the caller got its final response:
/// 64*T1, time for late 2xx to go up and for cancelled branches to end.
const LINGER: Duration = Duration::from_secs(32);

/// The longest a DNS lookup of a next hop may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

/// The home proxy; cheap to clone.
pub struct Proxy<L> {
    shared: Arc<Shared<L>>,
}

impl<L> Clone for Proxy<L> {
    fn clone(&self) -> Self {
        Proxy {
            shared: Arc::clone(&self.shared),
        }
    }
}

struct Shared<L> {
    endpoint: Endpoint,
    locations: L,
    route: RoutePolicy,
    auth: AuthPolicy,
    timer_c: Duration,
    via_address: Option<IpAddr>,
}

/// What a branch task reports.
enum BranchEvent {
    Event(Box<ClientEvent>),
    /// The client transaction ended; no more events.
    Ended,
}

impl<L: Locations> Proxy<L> {
    /// A proxy over `endpoint`, reading bindings from `locations`; `nonce_secret` is the
    /// secret all registrars share for nonces.
    pub fn new(
        config: &ProxyConfig,
        nonce_secret: &[u8],
        endpoint: Endpoint,
        locations: L,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut sockets: Vec<SocketAddr> = endpoint
            .transports()
            .local_addrs()
            .iter()
            .map(|spec| spec.addr)
            .collect();
        if let Some(ip) = config.via_address {
            let advertised: Vec<SocketAddr> = sockets
                .iter()
                .map(|s| SocketAddr::new(ip, s.port()))
                .collect();
            sockets.extend(advertised);
        }
        let own = OwnAddrs {
            sockets,
            names: config
                .aliases
                .iter()
                .map(|n| n.to_ascii_lowercase())
                .collect(),
        };
        let route = RoutePolicy {
            domains: config
                .domains
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            refuse_code: config.refuse_code,
            own,
        };
        let auth = AuthPolicy {
            enabled: config.authenticate,
            trusted: config.trusted_peers.clone(),
            edges: config.edge_networks.clone(),
            algorithms: config.digest_algorithms()?,
            nonce_max_age: Duration::from_secs(config.nonce_max_age_secs),
            nonces: NonceKey::new(nonce_secret),
        };
        Ok(Proxy {
            shared: Arc::new(Shared {
                endpoint,
                locations,
                route,
                auth,
                timer_c: config.timer_c(),
                via_address: config.via_address,
            }),
        })
    }

    /// Proxies one request other than REGISTER, ACK and CANCEL (the endpoint handles
    /// those two) until every branch has ended. Run it in its own task.
    pub async fn handle(&self, request: Message, flow: Flow, txn: ServerTransaction) {
        let s = &self.shared;
        let method = request.method().unwrap_or(Method::Other);
        if !ROUTED.contains(&method) {
            respond(&txn, &request, 405, "Method Not Allowed").await;
            return;
        }
        let decision = route::decide(&request, &s.route);
        match &decision {
            Decision::Reject { code, reason } => {
                respond(&txn, &request, *code, reason).await;
                return;
            }
            Decision::Local => {
                let code = if method == Method::Options { 200 } else { 404 };
                respond(&txn, &request, code, reason(code)).await;
                return;
            }
            Decision::LooseRoute { .. } | Decision::Lookup { .. } => {}
        }
        // A request to a served user needs its caller checked whenever the caller claims
        // a served domain, inside a dialog too, or a made-up To tag would let anyone call
        // as anyone. A Route to another hop is followed only for a trusted peer or an
        // authenticated subscriber: the registrar never Record-Routes, so no dialog of
        // anyone else's passes here, and it is no open relay.
        let relay = matches!(decision, Decision::LooseRoute { .. });
        if !self.authenticated(&request, &flow, &txn, relay).await {
            return;
        }
        let (pop, groups) = match decision {
            Decision::LooseRoute { pop, hop } => {
                let target = Target {
                    ruid: String::new(),
                    request_uri: request.request_uri().unwrap_or_default().to_owned(),
                    route: Vec::new(),
                    hop,
                };
                let dest = Destination {
                    q: 1000,
                    flows: vec![target],
                };
                (pop, vec![vec![dest]])
            }
            Decision::Lookup { pop, aor } => match self.targets(&aor).await {
                Ok(groups) => (pop, groups),
                Err((code, reason, retry)) => {
                    respond_retry(&txn, &request, code, reason, retry).await;
                    return;
                }
            },
            Decision::Reject { .. } | Decision::Local => return,
        };
        self.proxy(request, txn, pop, groups).await;
    }

    /// Challenges or refuses a caller who claims a served domain, and refuses to relay
    /// (`relay`: the request goes to another hop, not to a served user) for a caller
    /// who can be neither trusted nor authenticated; true to go on.
    async fn authenticated(
        &self,
        request: &Message,
        flow: &Flow,
        txn: &ServerTransaction,
        relay: bool,
    ) -> bool {
        let s = &self.shared;
        let caller = match auth::need(request, flow.remote.ip(), &s.auth, |d| s.route.serves(d)) {
            Need::Trusted => return true,
            Need::Foreign if !relay => return true,
            Need::Foreign => {
                tracing::info!(source = %flow.remote, "relay for a foreign caller refused");
                let code = s.route.refuse_code;
                respond(txn, request, code, reason(code)).await;
                return false;
            }
            Need::Caller(aor) => aor,
        };
        let now = unix_now();
        let subscriber = if auth::credentials_username(request, &caller.domain).is_some() {
            match s
                .locations
                .subscriber(&caller.username, &caller.domain)
                .await
            {
                Ok(sub) => sub,
                Err(e) => {
                    let (code, reason, retry) = store_failure(&e);
                    respond_retry(txn, request, code, reason, retry).await;
                    return false;
                }
            }
        } else {
            None
        };
        match auth::verify(request, &caller, subscriber.as_ref(), &s.auth, now) {
            Verdict::Authenticated => true,
            Verdict::Forbidden => {
                respond(txn, request, 403, "Forbidden").await;
                false
            }
            Verdict::Challenge { stale } => {
                let mut builder = response_to(
                    request,
                    407,
                    "Proxy Authentication Required",
                    Some(&new_tag()),
                );
                for challenge in auth::challenges(&caller.domain, stale, &s.auth, now) {
                    builder = builder.header(HeaderName::ProxyAuthenticate, &challenge);
                }
                send_reply(txn, builder.build()).await;
                false
            }
        }
    }

    /// The target set of `aor`, or the error reply: 404 unknown user, 480 no live
    /// binding, 503 database down.
    async fn targets(
        &self,
        aor: &Aor,
    ) -> Result<Vec<Vec<Destination>>, (u16, &'static str, Option<Duration>)> {
        let s = &self.shared;
        let bindings = s
            .locations
            .lookup(aor)
            .await
            .map_err(|e| store_failure(&e))?;
        if bindings.is_empty() {
            let known = s
                .locations
                .subscriber(&aor.username, &aor.domain)
                .await
                .map_err(|e| store_failure(&e))?;
            return Err(match known {
                Some(_) => (480, "Temporarily Unavailable", None),
                None => (404, "Not Found", None),
            });
        }
        let groups = route::q_groups(&bindings);
        if groups.is_empty() {
            return Err((480, "Temporarily Unavailable", None));
        }
        Ok(groups)
    }

    /// Forks the request over `groups` and relays responses until every branch ended.
    async fn proxy(
        &self,
        mut request: Message,
        txn: ServerTransaction,
        pop: usize,
        groups: Vec<Vec<Destination>>,
    ) {
        let s = &self.shared;
        // The server transaction sends 100 Trying to an INVITE by itself.
        let invite = request.method() == Some(Method::Invite);
        for _ in 0..pop {
            request.pop_first_value(&HeaderName::Route);
        }
        if request.decrement_max_forwards().is_none() {
            respond(&txn, &request, 483, "Too Many Hops").await;
            return;
        }
        // Our credentials are spent here; they mean nothing downstream.
        request.remove_header(&HeaderName::ProxyAuthorization);
        let loop_key = route::loop_key(&request, &s.route.own);
        let original = request;

        let mut fork: Fork<Message> = Fork::new(invite, groups, s.timer_c);
        let (events_tx, mut events) = mpsc::channel::<(BranchId, BranchEvent)>(64);
        let mut cancels: HashMap<BranchId, oneshot::Sender<()>> = HashMap::new();
        let mut active = 0usize;
        let mut caller_cancelled = false;
        let mut linger: Option<Instant> = None;
        let cancelled = txn.cancelled();
        tokio::pin!(cancelled);

        let mut pending = fork.start(now());
        loop {
            while !pending.is_empty() {
                let actions = std::mem::take(&mut pending);
                for action in actions {
                    match action {
                        Action::Send { branch, target } => {
                            match self.send_branch(&original, &target, &loop_key).await {
                                Ok(client) => {
                                    cancels.insert(
                                        branch,
                                        spawn_branch(branch, client, events_tx.clone()),
                                    );
                                    active += 1;
                                }
                                Err(e) => {
                                    tracing::info!(ruid = %target.ruid, error = %e, "branch not sent");
                                    pending.extend(fork.failed(branch, Failure::Transport, now()));
                                }
                            }
                        }
                        Action::Cancel(branch) => {
                            if let Some(cancel) = cancels.remove(&branch) {
                                let _ = cancel.send(());
                            }
                        }
                        Action::Respond(Reply::Forward(mut response)) => {
                            response.pop_via();
                            let code = response.status_code().unwrap_or(500);
                            self.forward_up(&txn, response, code).await;
                        }
                        Action::Respond(Reply::Generate(code)) => {
                            respond(&txn, &original, code, reason(code)).await;
                        }
                    }
                }
            }
            if active == 0 {
                break;
            }
            if fork.final_sent() && linger.is_none() {
                linger = Some(Instant::now() + LINGER);
            }
            let deadline = fork.deadline().map(Instant::from_std);
            tokio::select! {
                event = events.recv() => {
                    let Some((branch, event)) = event else { break };
                    match event {
                        BranchEvent::Ended => active = active.saturating_sub(1),
                        BranchEvent::Event(event) => pending = match *event {
                            ClientEvent::Provisional(m) | ClientEvent::Final(m) => {
                                let code = m.status_code().unwrap_or(0);
                                fork.response(branch, code, m, now())
                            }
                            ClientEvent::Timeout => fork.failed(branch, Failure::Timeout, now()),
                            ClientEvent::TransportError => {
                                fork.failed(branch, Failure::Transport, now())
                            }
                        },
                    }
                }
                () = &mut cancelled, if !caller_cancelled => {
                    caller_cancelled = true;
                    pending = fork.cancel();
                }
                () = sleep_until(deadline), if deadline.is_some() => {
                    pending = fork.expire(now());
                }
                () = sleep_until(linger), if linger.is_some() => {
                    // A branch that never answers its CANCEL must not keep this task.
                    break;
                }
            }
        }
        if !fork.final_sent() {
            // Every branch ended without the fork choosing: cannot happen, but the
            // caller must not hang.
            respond(&txn, &original, 500, "Server Internal Error").await;
        }
    }

    /// Builds and sends one branch's request (RFC 3261 section 16.6).
    async fn send_branch(
        &self,
        original: &Message,
        target: &Target,
        loop_key: &str,
    ) -> Result<ClientTransaction, BranchError> {
        let s = &self.shared;
        let mut request = original.clone();
        if request.request_uri() != Some(target.request_uri.as_str()) {
            request.set_request_uri(&target.request_uri);
        }
        for route in target.route.iter().rev() {
            request.prepend_header(HeaderName::Route, route);
        }
        let addr = resolve(&target.hop).await.ok_or(BranchError::Resolve)?;
        let transport = target.hop.transport;
        let local = s
            .endpoint
            .transports()
            .local_addr(transport)
            .ok_or(BranchError::NoTransport(transport))?;
        let branch = format!("{}.{loop_key}", hasip::endpoint::new_branch());
        request.push_via(&format!(
            "SIP/2.0/{} {};branch={branch};rport",
            transport.via_token(),
            sent_by(local, s.via_address)
        ));
        s.endpoint
            .send_request(request, SendTarget::Addr { transport, addr })
            .await
            .map_err(BranchError::Send)
    }

    /// Sends a response from downstream to the caller; a second 2xx to an INVITE goes
    /// statelessly when the transaction no longer takes it.
    async fn forward_up(&self, txn: &ServerTransaction, response: Message, code: u16) {
        let bytes = response.to_bytes();
        match txn.respond(bytes.clone()).await {
            Ok(()) => {}
            Err(SendError::NotAllowed | SendError::TransactionGone)
                if (200..300).contains(&code) =>
            {
                if let Err(e) = self
                    .shared
                    .endpoint
                    .send_stateless(SendTarget::Flow(txn.request_flow()), bytes)
                    .await
                {
                    tracing::info!(error = %e, "2xx not forwarded");
                }
            }
            Err(e) => tracing::debug!(code, error = %e, "response not forwarded"),
        }
    }

    /// Forwards an ACK to a 2xx (end to end, RFC 3261 section 16.7 step 5 and 17.1.1.1)
    /// when its Route names another hop; any other ACK is dropped.
    pub async fn forward_ack(&self, mut ack: Message) {
        let s = &self.shared;
        let Decision::LooseRoute { pop, hop } = route::decide(&ack, &s.route) else {
            return;
        };
        for _ in 0..pop {
            ack.pop_first_value(&HeaderName::Route);
        }
        if ack.decrement_max_forwards().is_none() {
            return;
        }
        let Some(addr) = resolve(&hop).await else {
            return;
        };
        let Some(local) = s.endpoint.transports().local_addr(hop.transport) else {
            return;
        };
        ack.push_via(&format!(
            "SIP/2.0/{} {};branch={};rport",
            hop.transport.via_token(),
            sent_by(local, s.via_address),
            hasip::endpoint::new_branch()
        ));
        let target = SendTarget::Addr {
            transport: hop.transport,
            addr,
        };
        if let Err(e) = s.endpoint.send_stateless(target, ack.to_bytes()).await {
            tracing::debug!(error = %e, "ACK not forwarded");
        }
    }

    /// Forwards a response that matched no client transaction (a 2xx retransmission)
    /// statelessly to the next Via (RFC 3261 section 16.7 step 5, RFC 6026), if the top
    /// Via is ours.
    pub async fn forward_stray_response(&self, mut response: Message) {
        let s = &self.shared;
        let own = match response.top_via() {
            Ok(via) => {
                let sb = via.sent_by();
                sb.host.ip().is_some_and(|ip| {
                    s.route
                        .own
                        .sockets
                        .iter()
                        .any(|a| a.ip() == ip && a.port() == sb.port.unwrap_or(5060))
                })
            }
            Err(_) => false,
        };
        if !own || !(200..300).contains(&response.status_code().unwrap_or(0)) {
            return;
        }
        response.pop_via();
        let Ok(next) = response.top_via() else {
            return;
        };
        let transport = if next.transport.eq_ignore_ascii_case("TCP") {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        let ip = next.received().or_else(|| next.sent_by().host.ip());
        let port = match next.rport() {
            Some(Some(p)) => p,
            _ => next.sent_by().port.unwrap_or(5060),
        };
        let Some(ip) = ip else {
            return;
        };
        let target = SendTarget::Addr {
            transport,
            addr: SocketAddr::new(ip, port),
        };
        if let Err(e) = s.endpoint.send_stateless(target, response.to_bytes()).await {
            tracing::debug!(error = %e, "stray 2xx not forwarded");
        }
    }
}

/// Runs a branch's client transaction in its own task: its events go to `events`
/// (then `Ended`), and the returned sender cancels it.
fn spawn_branch(
    branch: BranchId,
    mut client: ClientTransaction,
    events: mpsc::Sender<(BranchId, BranchEvent)>,
) -> oneshot::Sender<()> {
    let (cancel_tx, mut cancel_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut cancel_open = true;
        loop {
            let event = tokio::select! {
                e = client.next() => e,
                r = &mut cancel_rx, if cancel_open => {
                    cancel_open = false;
                    if r.is_ok() {
                        client.cancel().await;
                    }
                    continue;
                }
            };
            let Some(event) = event else { break };
            if events
                .send((branch, BranchEvent::Event(Box::new(event))))
                .await
                .is_err()
            {
                return;
            }
        }
        let _ = events.send((branch, BranchEvent::Ended)).await;
    });
    cancel_tx
}

/// Why a branch could not start.
#[derive(Debug, thiserror::Error)]
enum BranchError {
    #[error("next hop does not resolve")]
    Resolve,
    #[error("no {0} listener to send from")]
    NoTransport(Transport),
    #[error(transparent)]
    Send(SendError),
}

/// The response for a failed store call: 503 with Retry-After when the database is
/// unreachable, else 500.
fn store_failure(e: &StoreError) -> (u16, &'static str, Option<Duration>) {
    tracing::warn!(error = %e, "location lookup failed");
    match e.retry_after() {
        Some(retry) => (503, "Service Unavailable", Some(retry)),
        None => (500, "Server Internal Error", None),
    }
}

/// The reason phrase of a status the proxy generates.
fn reason(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        200 => "OK",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        480 => "Temporarily Unavailable",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        487 => "Request Terminated",
        500 => "Server Internal Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Sends a generated response to the caller.
async fn respond(txn: &ServerTransaction, request: &Message, code: u16, reason: &str) {
    respond_retry(txn, request, code, reason, None).await;
}

async fn respond_retry(
    txn: &ServerTransaction,
    request: &Message,
    code: u16,
    reason: &str,
    retry: Option<Duration>,
) {
    let tag = new_tag();
    let mut builder = response_to(request, code, reason, (code > 100).then_some(tag.as_str()));
    if let Some(retry) = retry {
        builder = builder.header(HeaderName::RetryAfter, &retry.as_secs().max(1).to_string());
    }
    send_reply(txn, builder.build()).await;
}

async fn send_reply(txn: &ServerTransaction, bytes: bytes::Bytes) {
    if let Err(e) = txn.respond(bytes).await {
        tracing::debug!(error = %e, "response not sent");
    }
}

fn new_tag() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Now as a std instant on tokio's clock (paused in tests).
fn now() -> std::time::Instant {
    Instant::now().into_std()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// A Via sent-by for a local socket, with the advertised address instead of its IP
/// when one is configured.
fn sent_by(local: SocketAddr, advertised: Option<IpAddr>) -> String {
    let local = advertised.map_or(local, |ip| SocketAddr::new(ip, local.port()));
    match local {
        SocketAddr::V4(a) => a.to_string(),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    }
}

/// The socket address of a hop: an IP literal directly, a name through DNS (A/AAAA,
/// no SRV), bounded in time.
async fn resolve(hop: &Hop) -> Option<SocketAddr> {
    if let Some(addr) = hop.socket_addr() {
        return Some(addr);
    }
    let host = format!("{}:{}", hop.host, hop.port.unwrap_or(5060));
    let found = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host(host)).await;
    match found {
        Ok(Ok(mut addrs)) => addrs.next(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    //! The shell over loopback UDP with an in-memory [`Locations`]: raw sockets play
    //! the caller and the phone.

    use std::collections::HashMap;
    use std::future::Future;

    use bytes::Bytes;
    use hasip::endpoint::{EndpointConfig, Incoming};
    use hasip::sip::Limits;
    use hasip::transport::{ListenSpec, TransportOptions, Transports};
    use tokio::net::UdpSocket;

    use super::*;
    use crate::binding::{Binding, DbTime};
    use crate::store::Subscriber;

    const WAIT: Duration = Duration::from_secs(5);

    /// Bindings and subscribers in memory; `down` makes every call fail as an
    /// unreachable database does.
    #[derive(Default)]
    struct Memory {
        bindings: HashMap<Aor, Vec<Binding>>,
        subscribers: Vec<Aor>,
        down: bool,
    }

    impl Locations for Memory {
        fn lookup(
            &self,
            aor: &Aor,
        ) -> impl Future<Output = Result<Vec<Binding>, StoreError>> + Send {
            let result = if self.down {
                Err(StoreError::Unavailable {
                    retry_after: Duration::from_secs(7),
                })
            } else {
                Ok(self.bindings.get(aor).cloned().unwrap_or_default())
            };
            std::future::ready(result)
        }

        fn subscriber(
            &self,
            username: &str,
            domain: &str,
        ) -> impl Future<Output = Result<Option<Subscriber>, StoreError>> + Send {
            let found = self
                .subscribers
                .iter()
                .any(|a| a.username == username && a.domain == domain);
            std::future::ready(Ok(found.then(|| Subscriber {
                username: username.to_owned(),
                domain: domain.to_owned(),
                ha1: String::new(),
                ha1b: String::new(),
                ha1_sha256: String::new(),
            })))
        }
    }

    fn binding(user: &str, contact: &str, path: Option<String>) -> Binding {
        Binding {
            ruid: format!("ruid-{contact}"),
            aor: Aor::new(user, "example.com"),
            contact: contact.to_owned(),
            received: None,
            path,
            expires: DbTime::from_micros(i64::MAX),
            q: 1000,
            call_id: "reg".into(),
            cseq: 1,
            last_modified: DbTime::from_micros(1),
            user_agent: String::new(),
            socket: None,
            instance: None,
            reg_id: 0,
        }
    }

    /// Starts a proxy over `memory` and returns its address.
    async fn start(memory: Memory) -> SocketAddr {
        let specs: Vec<ListenSpec> = ["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]
            .iter()
            .map(|s| s.parse().unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let (transports, inbound) =
            match Transports::bind(&specs, TransportOptions::default()).await {
                Ok(t) => t,
                Err(e) => panic!("{e}"),
            };
        let addr = transports.local_addrs().first().map(|s| s.addr);
        let (endpoint, mut incoming) =
            Endpoint::start(transports, inbound, EndpointConfig::default());
        let config = ProxyConfig {
            domains: vec!["example.com".into()],
            ..ProxyConfig::default()
        };
        let proxy = match Proxy::new(&config, b"secret", endpoint, memory) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        tokio::spawn(async move {
            while let Some(event) = incoming.recv().await {
                if let Incoming::Request { request, flow, txn } = event {
                    let proxy = proxy.clone();
                    tokio::spawn(async move { proxy.handle(request, flow, txn).await });
                }
            }
        });
        addr.unwrap_or_else(|| panic!("no address"))
    }

    async fn socket() -> UdpSocket {
        match UdpSocket::bind("127.0.0.1:0").await {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    fn port(s: &UdpSocket) -> u16 {
        s.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The next message on `socket`, and where it came from.
    async fn recv(socket: &UdpSocket) -> (Message, SocketAddr) {
        let mut buf = vec![0u8; 65_535];
        let (n, from) = match tokio::time::timeout(WAIT, socket.recv_from(&mut buf)).await {
            Ok(Ok(got)) => got,
            other => panic!("nothing received: {other:?}"),
        };
        buf.truncate(n);
        match Message::parse(Bytes::from(buf), &Limits::default()) {
            Ok(m) => (m, from),
            Err(e) => panic!("{e}"),
        }
    }

    async fn send(socket: &UdpSocket, to: SocketAddr, text: &str) {
        if let Err(e) = socket.send_to(text.as_bytes(), to).await {
            panic!("{e}");
        }
    }

    fn message(user: &str, caller: &UdpSocket) -> String {
        format!(
            "MESSAGE sip:{user}@example.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bKcaller{user}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:carol@carrier.example>;tag=c1\r\n\
             To: <sip:{user}@example.com>\r\n\
             Call-ID: relay-test-{user}\r\n\
             CSeq: 1 MESSAGE\r\n\
             Content-Length: 2\r\n\r\nhi",
            port(caller)
        )
    }

    #[tokio::test]
    async fn message_follows_the_path_and_the_answer_comes_back() {
        let hop = socket().await;
        let path = format!("<sip:tok@127.0.0.1:{};lr;ob>", port(&hop));
        let mut memory = Memory::default();
        memory.bindings.insert(
            Aor::new("bob", "example.com"),
            vec![binding("bob", "sip:bob@192.0.2.9:5062", Some(path.clone()))],
        );
        let proxy = start(memory).await;
        let caller = socket().await;
        send(&caller, proxy, &message("bob", &caller)).await;

        let (request, from) = recv(&hop).await;
        assert_eq!(request.request_uri(), Some("sip:bob@192.0.2.9:5062"));
        let routes: Vec<&str> = request.header_values(&HeaderName::Route).collect();
        assert_eq!(routes, vec![path.as_str()]);
        assert_eq!(request.max_forwards().ok().flatten(), Some(69));
        assert_eq!(request.header(&HeaderName::RecordRoute), None);
        assert_eq!(request.vias().count(), 2);

        let ok = response_to(&request, 200, "OK", Some("phone")).build();
        if let Err(e) = hop.send_to(&ok, from).await {
            panic!("{e}");
        }
        let (response, _) = recv(&caller).await;
        assert_eq!(response.status_code(), Some(200));
        assert_eq!(response.vias().count(), 1);
    }

    #[tokio::test]
    async fn path_hop_over_tcp_gets_the_request_on_a_connection() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("{e}"),
        };
        let hop_port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let path = format!("<sip:tok@127.0.0.1:{hop_port};lr;ob;transport=tcp>");
        let mut memory = Memory::default();
        memory.bindings.insert(
            Aor::new("bob", "example.com"),
            vec![binding("bob", "sip:bob@192.0.2.9:5062", Some(path))],
        );
        let proxy = start(memory).await;
        let caller = socket().await;
        send(&caller, proxy, &message("bob", &caller)).await;

        let (mut stream, _) = match tokio::time::timeout(WAIT, listener.accept()).await {
            Ok(Ok(accepted)) => accepted,
            other => panic!("no connection: {other:?}"),
        };
        let mut buf = Vec::new();
        let request = loop {
            let mut chunk = [0u8; 4096];
            let n = match tokio::time::timeout(WAIT, stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => n,
                other => panic!("connection ended: {other:?}"),
            };
            buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
            if let Ok(m) = Message::parse(Bytes::from(buf.clone()), &Limits::default()) {
                break m;
            }
        };
        let top = request.top_via().map(|v| v.transport.to_owned()).ok();
        assert_eq!(top.as_deref(), Some("TCP"));
        let ok = response_to(&request, 200, "OK", Some("phone")).build();
        if let Err(e) = stream.write_all(&ok).await {
            panic!("{e}");
        }
        let (response, _) = recv(&caller).await;
        assert_eq!(response.status_code(), Some(200));
    }

    #[tokio::test]
    async fn unknown_unavailable_and_database_down() {
        let mut memory = Memory::default();
        memory.subscribers.push(Aor::new("frank", "example.com"));
        let proxy = start(memory).await;
        let caller = socket().await;
        send(&caller, proxy, &message("nobody", &caller)).await;
        assert_eq!(recv(&caller).await.0.status_code(), Some(404));
        send(&caller, proxy, &message("frank", &caller)).await;
        assert_eq!(recv(&caller).await.0.status_code(), Some(480));

        let proxy = start(Memory {
            down: true,
            ..Memory::default()
        })
        .await;
        send(&caller, proxy, &message("bob", &caller)).await;
        let (response, _) = recv(&caller).await;
        assert_eq!(response.status_code(), Some(503));
        assert_eq!(response.header(&HeaderName::RetryAfter), Some("7"));
    }

    #[tokio::test]
    async fn caller_claiming_a_served_domain_is_challenged() {
        let proxy = start(Memory::default()).await;
        let caller = socket().await;
        let text =
            message("bob", &caller).replace("sip:carol@carrier.example", "sip:alice@example.com");
        send(&caller, proxy, &text).await;
        let (response, _) = recv(&caller).await;
        assert_eq!(response.status_code(), Some(407));
        let realms: Vec<String> = response
            .proxy_authenticates()
            .filter_map(Result::ok)
            .map(|c| format!("{} {}", c.realm, c.algorithm_or_default().as_str()))
            .collect();
        assert_eq!(realms, vec!["example.com SHA-256", "example.com MD5"]);
    }
}
