//! The stateful proxy (RFC 3261 section 16) on top of the transaction layer: what the
//! edge does with each request, ACK and stray response, and the forwarding loop that
//! moves a transaction to the next registrar on the ring after a timeout or a 503.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use hasip::endpoint::{
    new_branch, ClientEvent, Endpoint, Incoming, SendError, ServerTransaction, Target,
};
use hasip::flow_token::FlowTokenKey;
use hasip::sip::builder::response_to;
use hasip::sip::uri::Uri;
use hasip::sip::{HeaderName, Message, Method};
use hasip::transport::{self, Flow, Transport};
use tokio::time::Instant;

use crate::flows::{self, FlowTable};
use crate::health::{Health, Transition};
use crate::nat::{self, Written};
use crate::ring::Ring;
use crate::route::{self, Addresses, PhoneOnward, RouteDecision};

/// A request that already carries this many of our Vias has looped (482); two is a
/// legitimate spiral (phone, edge, core, edge, phone).
const LOOP_LIMIT_FROM_CORE: usize = 2;
pub(crate) const LOOP_LIMIT_FROM_PHONE: usize = 1;

/// Locks a mutex; a panic elsewhere while holding it leaves usable data.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Everything the request handlers share.
pub(crate) struct Proxy {
    pub(crate) endpoint: Endpoint,
    pub(crate) addresses: Addresses,
    pub(crate) key: FlowTokenKey,
    pub(crate) ring: Mutex<Ring>,
    pub(crate) health: Mutex<Health>,
    pub(crate) flows: Mutex<FlowTable>,
    /// Where, besides the registrars and this edge, a phone's request may be routed on.
    pub(crate) core_networks: Vec<ipnet::IpNet>,
    pub(crate) user_agent_deny: Vec<String>,
    pub(crate) failover_timeout: Duration,
    pub(crate) keepalive: bool,
    /// What `Addresses::path` writes after the token, kept so a REGISTER's Path is not
    /// formatted from the internal address each time.
    pub(crate) path_end: String,
}

/// What `Addresses::path` writes before the token.
const PATH_START: &str = "<sip:";

/// Where a request is forwarded.
enum Plan {
    /// To the registrar owning this AoR, moving along the ring on failure.
    Ring(String),
    /// To one fixed target.
    Fixed(Target),
}

/// How one attempt ended when it did not end the transaction.
enum Failed {
    Timeout,
    Unavailable,
}

/// The metrics label of a method, from a fixed set so labels stay bounded.
fn method_label(message: &Message) -> &'static str {
    match message.method() {
        Some(Method::Other) | None => "other",
        Some(method) => method.as_str(),
    }
}

/// The metrics label of a status code.
pub(crate) fn status_label(code: u16) -> &'static str {
    match code {
        100 => "100",
        180 => "180",
        183 => "183",
        200 => "200",
        202 => "202",
        401 => "401",
        403 => "403",
        404 => "404",
        407 => "407",
        408 => "408",
        423 => "423",
        430 => "430",
        480 => "480",
        481 => "481",
        482 => "482",
        483 => "483",
        486 => "486",
        487 => "487",
        500 => "500",
        503 => "503",
        c if c < 200 => "1xx",
        c if c < 300 => "2xx",
        c if c < 400 => "3xx",
        c if c < 500 => "4xx",
        c if c < 600 => "5xx",
        _ => "6xx",
    }
}

pub(crate) fn count_in(side: &'static str, message: &Message) {
    match message.status_code() {
        Some(code) => metrics::counter!("hasip_edge_messages_in_total", "side" => side,
            "kind" => "response", "status" => status_label(code))
        .increment(1),
        None => metrics::counter!("hasip_edge_messages_in_total", "side" => side,
            "kind" => "request", "method" => method_label(message))
        .increment(1),
    }
}

pub(crate) fn count_out_request(method: &'static str) {
    metrics::counter!("hasip_edge_messages_out_total", "kind" => "request", "method" => method)
        .increment(1);
}

pub(crate) fn count_out_response(code: u16) {
    metrics::counter!("hasip_edge_messages_out_total", "kind" => "response",
        "status" => status_label(code))
    .increment(1);
}

pub(crate) fn new_tag() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Answers a request locally.
async fn reply(txn: &ServerTransaction, request: &Message, code: u16, reason: &str) {
    let tag = new_tag();
    let response = response_to(request, code, reason, Some(&tag)).build();
    count_out_response(code);
    if let Err(error) = txn.respond(response).await {
        tracing::debug!(%error, code, "local response not sent");
    }
}

/// Whether a method starts a dialog the edge must stay in (Record-Route).
fn is_dialog_forming(method: Option<Method>) -> bool {
    matches!(
        method,
        Some(Method::Invite | Method::Subscribe | Method::Refer | Method::Notify)
    )
}

fn has_to_tag(request: &Message) -> bool {
    request
        .to_header()
        .ok()
        .and_then(|to| to.tag().map(|_| ()))
        .is_some()
}

/// The normalised AoR of the Request-URI.
fn request_uri_aor(request: &Message) -> Option<String> {
    Some(Uri::parse(request.request_uri()?).ok()?.aor())
}

impl Proxy {
    /// The end of every Path this edge writes, after `<sip:TOKEN`.
    pub(crate) fn path_end(addresses: &Addresses) -> String {
        let path = addresses.path("");
        path.strip_prefix(PATH_START).unwrap_or(&path).to_owned()
    }

    fn is_from_core(&self, flow: &Flow) -> bool {
        flow.transport == Transport::Udp && flow.local == self.addresses.internal
    }

    /// Handles one event from the transaction layer.
    pub(crate) async fn handle(self: Arc<Self>, incoming: Incoming) {
        match incoming {
            Incoming::Request { request, flow, txn } => self.on_request(request, flow, txn).await,
            Incoming::Ack { ack, flow } => self.on_ack(ack, flow).await,
            Incoming::StrayResponse { response, flow } => {
                self.on_stray_response(response, flow).await
            }
            // STUN is answered before the transaction layer; anything else is noise.
            Incoming::NonSip { .. } => {}
        }
    }

    async fn on_request(self: Arc<Self>, mut request: Message, flow: Flow, txn: ServerTransaction) {
        let from_core = self.is_from_core(&flow);
        count_in(if from_core { "core" } else { "phone" }, &request);
        if request.decrement_max_forwards().is_none() {
            reply(&txn, &request, 483, "Too Many Hops").await;
            return;
        }
        let limit = if from_core {
            LOOP_LIMIT_FROM_CORE
        } else {
            LOOP_LIMIT_FROM_PHONE
        };
        if route::is_loop(&request, &self.addresses, limit) {
            reply(&txn, &request, 482, "Loop Detected").await;
            return;
        }
        if request.method() == Some(Method::Options) && self.is_for_us(&request) {
            reply(&txn, &request, 200, "OK").await;
            return;
        }
        if !from_core && !self.stamp_received(&mut request, &flow) {
            reply(&txn, &request, 400, "Bad Via").await;
            return;
        }
        match route::decide(&request, &flow, &self.addresses, &self.key) {
            RouteDecision::BadRoute => reply(&txn, &request, 400, "Bad Route").await,
            RouteDecision::Forged(error) => {
                metrics::counter!("hasip_edge_forged_tokens_total").increment(1);
                tracing::warn!(source = %flow.remote, %error, "request with a forged flow token refused");
                reply(&txn, &request, 403, "Forbidden").await;
            }
            RouteDecision::ToFlow { pop, flow: phone } => {
                pop_routes(&mut request, pop);
                if from_core && !has_to_tag(&request) && is_dialog_forming(request.method()) {
                    // The phone sees the public half on top, the core the internal one.
                    let token = self.key.encode(&phone);
                    request.prepend_header(
                        HeaderName::RecordRoute,
                        &self.addresses.record_route_internal(&token),
                    );
                    request.prepend_header(
                        HeaderName::RecordRoute,
                        &self.addresses.record_route_public(&token, &phone),
                    );
                }
                self.forward(request, txn, Plan::Fixed(Target::Flow(phone)), None)
                    .await;
            }
            RouteDecision::Onward { pop } if !from_core => {
                pop_routes(&mut request, pop);
                match route::phone_onward(&request, |addr| self.is_core(addr)) {
                    PhoneOnward::AsPhone => self.from_phone(request, flow, txn).await,
                    PhoneOnward::Core(addr) => {
                        let plan = Plan::Fixed(self.to_core(addr));
                        self.forward(request, txn, plan, None).await;
                    }
                    PhoneOnward::Refused => {
                        metrics::counter!("hasip_edge_refused_routes_total").increment(1);
                        tracing::info!(source = %flow.remote, "request routed past the core refused");
                        reply(&txn, &request, 403, "Route Not Allowed").await;
                    }
                }
            }
            RouteDecision::Onward { pop } => {
                pop_routes(&mut request, pop);
                let plan = match route::next_hop(&request, 0) {
                    Some(addr) => Plan::Fixed(self.to_core(addr)),
                    None => match request_uri_aor(&request) {
                        Some(aor) => Plan::Ring(aor),
                        None => {
                            reply(&txn, &request, 416, "Unsupported URI Scheme").await;
                            return;
                        }
                    },
                };
                self.forward(request, txn, plan, None).await;
            }
            RouteDecision::NotOurs if from_core => {
                reply(&txn, &request, 404, "Not Found").await;
            }
            RouteDecision::NotOurs => self.from_phone(request, flow, txn).await,
        }
    }

    /// A request from a phone with no Route of ours: REGISTER goes to the registrar of its
    /// To AoR with a Path, anything else to the one of its Request-URI's AoR.
    async fn from_phone(self: Arc<Self>, mut request: Message, flow: Flow, txn: ServerTransaction) {
        if request.method() == Some(Method::Register) {
            let aor = match request.to_header() {
                Ok(to) => to.uri.aor(),
                Err(_) => {
                    reply(&txn, &request, 400, "Bad To").await;
                    return;
                }
            };
            self.set_path(&mut request, &flow);
            let learn = (self.keepalive && flow.transport == Transport::Udp).then_some(flow);
            self.forward(request, txn, Plan::Ring(aor), learn).await;
            return;
        }
        let token = self.key.encode(&flow);
        let Some(aor) = request_uri_aor(&request) else {
            reply(&txn, &request, 416, "Unsupported URI Scheme").await;
            return;
        };
        if !has_to_tag(&request) && is_dialog_forming(request.method()) {
            request.prepend_header(
                HeaderName::RecordRoute,
                &self.addresses.record_route_public(&token, &flow),
            );
            request.prepend_header(
                HeaderName::RecordRoute,
                &self.addresses.record_route_internal(&token),
            );
        }
        self.forward(request, txn, Plan::Ring(aor), None).await;
    }

    /// Gives a REGISTER from `flow` this edge's Path (`Addresses::path` with the flow's
    /// token), as its only one: a Path from the phone could point the core's requests
    /// anywhere.
    pub(crate) fn set_path(&self, request: &mut Message, flow: &Flow) {
        if request.remove_header(&HeaderName::Path) > 0 {
            tracing::info!(source = %flow.remote, "Path from a phone stripped");
        }
        let token = self.key.encode(flow);
        let mut path = String::with_capacity(PATH_START.len() + token.len() + self.path_end.len());
        path.push_str(PATH_START);
        path.push_str(&token);
        path.push_str(&self.path_end);
        request.prepend_header(HeaderName::Path, &path);
    }

    /// Whether an OPTIONS is for the edge itself rather than to be relayed.
    fn is_for_us(&self, request: &Message) -> bool {
        if request.header(&HeaderName::Route).is_some() {
            return false;
        }
        let Some(uri) = request.request_uri().and_then(|u| Uri::parse(u).ok()) else {
            return false;
        };
        uri.user.is_none() || self.addresses.is_own_uri(&uri)
    }

    /// Writes `received` and `rport` into the top Via (RFC 3581) and records NAT.
    pub(crate) fn stamp_received(&self, request: &mut Message, flow: &Flow) -> bool {
        let (via_text, findings) = {
            let Ok(via) = request.top_via() else {
                return false;
            };
            let contact = match request.contacts() {
                Ok(hasip::sip::typed::Contacts::List(list)) => list.first().map(|c| {
                    let uri = c.uri();
                    (uri.host, uri.port)
                }),
                _ => None,
            };
            let findings = nat::detect(
                flow.remote,
                Written {
                    host: via.host,
                    port: via.port,
                },
                contact.map(|(host, port)| Written { host, port }),
            );
            let mut text = String::with_capacity(128);
            via.write_with_received(&mut text, flow.remote.ip(), flow.remote.port());
            (text, findings)
        };
        if findings.is_natted() {
            metrics::counter!("hasip_edge_natted_requests_total").increment(1);
            tracing::trace!(source = %flow.remote, ?findings, "phone behind NAT");
        }
        request.pop_via();
        request.push_via(&via_text);
        true
    }

    /// A target in the core, reached from the internal socket (never a public one).
    pub(crate) fn to_core(&self, addr: SocketAddr) -> Target {
        Target::Flow(Flow {
            transport: Transport::Udp,
            local: self.addresses.internal,
            remote: addr,
            conn: None,
        })
    }

    /// The Via this edge puts on a request sent to `target`.
    pub(crate) fn via_for(&self, target: &Target) -> String {
        let (transport, local) = match target {
            Target::Flow(flow) => (flow.transport, flow.local),
            Target::Addr { transport, .. } => (*transport, self.addresses.internal),
        };
        format!(
            "SIP/2.0/{} {local};branch={};rport",
            transport.via_token(),
            new_branch()
        )
    }

    /// The registrar of a request's Request-URI AoR, for a request sent without a
    /// transaction (an ACK).
    fn ring_target(&self, request: &Message) -> Option<Target> {
        let aor = request_uri_aor(request)?;
        let (_, addr) = self.registrar_target(&aor, &[])?;
        Some(self.to_core(addr))
    }

    /// Whether `addr` is in the core: a registrar, this edge's internal socket, or an
    /// address in `sip.core_networks` (the other edges).
    fn is_core(&self, addr: SocketAddr) -> bool {
        let ip = addr.ip();
        ip == self.addresses.internal.ip()
            || lock(&self.ring).addrs().iter().any(|r| r.ip() == ip)
            || self.core_networks.iter().any(|net| net.contains(&ip))
    }

    pub(crate) fn registrar_target(
        &self,
        aor: &str,
        tried: &[usize],
    ) -> Option<(usize, SocketAddr)> {
        let ring = lock(&self.ring);
        let index = ring.next_after(aor, tried)?;
        Some((index, *ring.addrs().get(index)?))
    }

    /// A registrar failed a transaction: count it, and take it out of the ring if that
    /// crossed the threshold.
    pub(crate) fn registrar_failed(&self, index: usize) {
        if lock(&self.health).failure(index) == Transition::Down {
            let addr = {
                let mut ring = lock(&self.ring);
                ring.set_up(index, false);
                ring.addrs().get(index).copied()
            };
            if let Some(addr) = addr {
                tracing::warn!(registrar = %addr, "registrar down");
                metrics::gauge!("hasip_edge_registrar_up", "registrar" => addr.to_string())
                    .set(0.0);
            }
        }
    }

    /// Forwards `request` statefully and relays the responses through `txn`.
    ///
    /// With [`Plan::Ring`], a timeout (the failover timer, or the transaction's own)
    /// or a 503 moves the same transaction to the next live registrar on the ring, so
    /// the phone sees one transaction. `learn` is the phone's UDP flow whose
    /// registration a 2xx to this REGISTER sets.
    async fn forward(
        self: Arc<Self>,
        request: Message,
        txn: ServerTransaction,
        plan: Plan,
        learn: Option<Flow>,
    ) {
        let method = method_label(&request);
        let is_invite = request.method() == Some(Method::Invite);
        let mut tried: Vec<usize> = Vec::new();
        let mut saw_unavailable = false;
        loop {
            let (target, registrar) = match &plan {
                Plan::Fixed(target) => (*target, None),
                Plan::Ring(aor) => match self.registrar_target(aor, &tried) {
                    Some((index, addr)) => (self.to_core(addr), Some(index)),
                    None => {
                        let (code, reason) = if saw_unavailable || tried.is_empty() {
                            (503, "Service Unavailable")
                        } else {
                            (408, "Request Timeout")
                        };
                        reply(&txn, &request, code, reason).await;
                        return;
                    }
                },
            };
            if let Some(index) = registrar {
                if !tried.is_empty() {
                    metrics::counter!("hasip_edge_failovers_total").increment(1);
                    tracing::info!(
                        attempt = tried.len() + 1,
                        "failing over to the next registrar"
                    );
                }
                tried.push(index);
            }
            tracing::debug!(?target, method, "forwarding");
            let mut out = request.clone();
            out.push_via(&self.via_for(&target));
            let mut client = match self.endpoint.send_request(out, target).await {
                Ok(client) => client,
                Err(SendError::Transport(transport::SendError::FlowGone)) => {
                    reply(&txn, &request, 430, "Flow Failed").await;
                    return;
                }
                Err(error) => {
                    tracing::debug!(%error, "forwarding failed");
                    if let Some(index) = registrar {
                        self.registrar_failed(index);
                        continue;
                    }
                    reply(&txn, &request, 503, "Service Unavailable").await;
                    return;
                }
            };
            count_out_request(method);
            let failover_at = Instant::now() + self.failover_timeout;
            let mut provisional = false;
            let mut cancelled = false;
            let mut nowhere_else = false;
            let failed = loop {
                let failover_armed = registrar.is_some() && !provisional && !nowhere_else;
                tokio::select! {
                    event = client.next() => match event {
                        Some(ClientEvent::Provisional(mut response)) => {
                            let code = response.status_code().unwrap_or(100);
                            if code > 100 {
                                provisional = true;
                                response.pop_via();
                                count_out_response(code);
                                let _ = txn.respond(response.to_bytes()).await;
                            }
                        }
                        Some(ClientEvent::Final(mut response)) => {
                            let code = response.status_code().unwrap_or(500);
                            if let Some(index) = registrar {
                                if code == 503 {
                                    break Failed::Unavailable;
                                }
                                lock(&self.health).answered(index);
                            }
                            if let (Some(phone), 200..=299) = (learn, code) {
                                let registration = flows::registration(&request, &response);
                                let mut flows = lock(&self.flows);
                                flows.apply(phone, registration, Instant::now().into_std());
                                metrics::gauge!("hasip_edge_flows_tracked").set(flows.len() as f64);
                            }
                            response.pop_via();
                            count_out_response(code);
                            let _ = txn.respond(response.to_bytes()).await;
                            if is_invite && (200..300).contains(&code) {
                                // Later 2xx of a forked INVITE go up the same way.
                                tokio::spawn(relay_more_2xx(client, txn));
                            }
                            return;
                        }
                        Some(ClientEvent::Timeout) | None => break Failed::Timeout,
                        Some(ClientEvent::TransportError) => {
                            if registrar.is_none() && target_is_tcp_flow(&target) {
                                reply(&txn, &request, 430, "Flow Failed").await;
                                return;
                            }
                            break Failed::Timeout;
                        }
                    },
                    () = tokio::time::sleep_until(failover_at), if failover_armed => {
                        let elsewhere = matches!(
                            &plan,
                            Plan::Ring(aor) if self.registrar_target(aor, &tried).is_some()
                        );
                        if !elsewhere {
                            // No other registrar to move to: this one's answer is still
                            // the best hope, until the transaction's own timeout.
                            nowhere_else = true;
                            continue;
                        }
                        if is_invite {
                            // A late answer from this registrar must not set up a call.
                            client.cancel().await;
                        }
                        break Failed::Timeout;
                    }
                    () = txn.cancelled(), if is_invite && !cancelled => {
                        cancelled = true;
                        client.cancel().await;
                    }
                }
            };
            tracing::debug!(
                ?target,
                timeout = matches!(failed, Failed::Timeout),
                "attempt failed"
            );
            match (registrar, failed) {
                (Some(index), failed) => {
                    if matches!(failed, Failed::Unavailable) {
                        saw_unavailable = true;
                    }
                    if cancelled {
                        reply(&txn, &request, 487, "Request Terminated").await;
                        return;
                    }
                    self.registrar_failed(index);
                }
                (None, Failed::Unavailable) => {
                    reply(&txn, &request, 503, "Service Unavailable").await;
                    return;
                }
                (None, Failed::Timeout) => {
                    reply(&txn, &request, 408, "Request Timeout").await;
                    return;
                }
            }
        }
    }

    /// A 2xx ACK (end to end): routed like any request, without a transaction.
    async fn on_ack(self: Arc<Self>, mut ack: Message, flow: Flow) {
        let from_core = self.is_from_core(&flow);
        count_in(if from_core { "core" } else { "phone" }, &ack);
        if ack.decrement_max_forwards().is_none() {
            return;
        }
        let target = match route::decide(&ack, &flow, &self.addresses, &self.key) {
            RouteDecision::ToFlow { pop, flow: phone } => {
                pop_routes(&mut ack, pop);
                Target::Flow(phone)
            }
            RouteDecision::Onward { pop } if !from_core => {
                pop_routes(&mut ack, pop);
                match route::phone_onward(&ack, |addr| self.is_core(addr)) {
                    PhoneOnward::Core(addr) => self.to_core(addr),
                    PhoneOnward::AsPhone => match self.ring_target(&ack) {
                        Some(target) => target,
                        None => return,
                    },
                    PhoneOnward::Refused => {
                        metrics::counter!("hasip_edge_refused_routes_total").increment(1);
                        return;
                    }
                }
            }
            RouteDecision::Onward { pop } => {
                pop_routes(&mut ack, pop);
                match route::next_hop(&ack, 0) {
                    Some(addr) => self.to_core(addr),
                    None => return,
                }
            }
            RouteDecision::NotOurs if !from_core => match self.ring_target(&ack) {
                Some(target) => target,
                None => return,
            },
            RouteDecision::Forged(error) => {
                metrics::counter!("hasip_edge_forged_tokens_total").increment(1);
                tracing::warn!(source = %flow.remote, %error, "ACK with a forged flow token dropped");
                return;
            }
            RouteDecision::NotOurs | RouteDecision::BadRoute => return,
        };
        ack.push_via(&self.via_for(&target));
        count_out_request("ACK");
        if let Err(error) = self.endpoint.send_stateless(target, ack.to_bytes()).await {
            tracing::debug!(%error, "ACK not forwarded");
        }
    }

    /// A response no transaction wanted (a 2xx retransmission of an INVITE): sent on
    /// by the next Via, statelessly (RFC 3261 section 16.7 step 5).
    async fn on_stray_response(self: Arc<Self>, mut response: Message, flow: Flow) {
        count_in(
            if self.is_from_core(&flow) {
                "core"
            } else {
                "phone"
            },
            &response,
        );
        let ours = response
            .top_via()
            .is_ok_and(|via| self.addresses.is_own(&via.host, via.port));
        if !ours {
            return;
        }
        response.pop_via();
        let target = {
            let Ok(via) = response.top_via() else {
                return;
            };
            let ip = via.received().or(via.host.ip());
            let port = via.rport().flatten().or(via.port).unwrap_or(5060);
            let transport = if via.transport.eq_ignore_ascii_case("TCP") {
                Transport::Tcp
            } else {
                Transport::Udp
            };
            let Some(ip) = ip else {
                return;
            };
            let addr = SocketAddr::new(ip, port);
            if self.is_from_core(&flow) {
                Target::Addr { transport, addr }
            } else {
                // A phone's answer goes on into the core.
                self.to_core(addr)
            }
        };
        if let Some(code) = response.status_code() {
            count_out_response(code);
        }
        let _ = self
            .endpoint
            .send_stateless(target, response.to_bytes())
            .await;
    }
}

fn target_is_tcp_flow(target: &Target) -> bool {
    matches!(target, Target::Flow(flow) if flow.transport == Transport::Tcp)
}

fn pop_routes(request: &mut Message, pop: usize) {
    for _ in 0..pop {
        request.pop_first_value(&HeaderName::Route);
    }
}

/// Relays further 2xx responses of a forked INVITE until the client transaction ends.
async fn relay_more_2xx(mut client: hasip::endpoint::ClientTransaction, txn: ServerTransaction) {
    while let Some(event) = client.next().await {
        if let ClientEvent::Final(mut response) = event {
            if response
                .status_code()
                .is_some_and(|c| (200..300).contains(&c))
            {
                response.pop_via();
                let _ = txn.respond(response.to_bytes()).await;
            }
        }
    }
}

/// The bytes of a UDP keepalive toward a phone: a double CRLF, which SIP stacks skip.
pub(crate) const KEEPALIVE: Bytes = Bytes::from_static(b"\r\n\r\n");

#[cfg(test)]
mod tests {
    use super::*;
    use hasip::sip::Limits;

    fn parse(text: &str) -> Message {
        Message::parse(Bytes::copy_from_slice(text.as_bytes()), &Limits::default())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn request(method: &str, to: &str) -> Message {
        parse(&format!(
            "{method} sip:bob@Example.COM:5060;transport=udp SIP/2.0\r\n\
             Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\n\
             To: {to}\r\nCall-ID: c\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
        ))
    }

    #[test]
    fn labels_stay_in_a_fixed_set() {
        assert_eq!(method_label(&request("REGISTER", "<sip:b@x>")), "REGISTER");
        assert_eq!(method_label(&request("FOOBAR", "<sip:b@x>")), "other");
        assert_eq!(status_label(200), "200");
        assert_eq!(status_label(299), "2xx");
        assert_eq!(status_label(430), "430");
        assert_eq!(status_label(499), "4xx");
        assert_eq!(status_label(699), "6xx");
    }

    #[test]
    fn dialog_forming_and_in_dialog() {
        assert!(is_dialog_forming(Some(Method::Invite)));
        assert!(is_dialog_forming(Some(Method::Subscribe)));
        assert!(!is_dialog_forming(Some(Method::Register)));
        assert!(!is_dialog_forming(Some(Method::Message)));
        assert!(!has_to_tag(&request("INVITE", "<sip:b@x>")));
        assert!(has_to_tag(&request("BYE", "<sip:b@x>;tag=9")));
    }

    #[test]
    fn the_request_uri_aor_is_normalised() {
        assert_eq!(
            request_uri_aor(&request("INVITE", "<sip:b@x>")).as_deref(),
            Some("sip:bob@example.com")
        );
    }
}
