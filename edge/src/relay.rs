//! The fast path for REGISTERs from phones over UDP, the bulk of an edge's traffic.
//!
//! The general path gives each transaction its own tokio tasks and channels (a server
//! transaction, the proxy's forwarding loop, a client transaction per attempt). Here the
//! same RFC 3261 machines ([`ServerNonInvite`], [`ClientNonInvite`]) sit in one table that
//! the screening task drives itself, with one timer heap for all of them: a REGISTER is
//! parsed once, forwarded and its answer relayed without a task switch or a channel.
//!
//! The behaviour is the general path's: the REGISTER gets the phone's `received`/`rport`
//! and this edge's Path, goes to the registrar of its To AoR, moves along the ring after
//! the failover timer or a 503 inside the one transaction the phone sees, and its 2xx
//! teaches the keepalive table the phone's flow. Anything that needs more than that (a
//! Route, a loop, Max-Forwards used up, a bad Via) is handed back untouched, and the
//! general path answers it as before.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hasip::endpoint::{client_key, new_branch, server_key, EndpointConfig, Target};
use hasip::sip::builder::response_to;
use hasip::sip::{Limits, Message, Method};
use hasip::transaction::{
    ClientKey, ClientKeyParts, ClientNonInvite, ClientNonInviteAction, Reliability, ServerKey,
    ServerNonInvite, ServerNonInviteAction, TimerConfig,
};
use hasip::transport::{Flow, Inbound, Transport, Transports};

use crate::flows;
use crate::proxy::{
    count_in, count_out_request, count_out_response, lock, new_tag, Proxy, LOOP_LIMIT_FROM_PHONE,
};
use crate::route::{self, RouteDecision};

/// What became of a message offered to the relay.
pub(crate) enum Offer {
    /// The relay handled it.
    Taken,
    /// Not the relay's, not parsed (or to be parsed again as it arrived).
    Raw(Inbound),
    /// Not the relay's, parsed with the transaction layer's limits and unchanged.
    Parsed(Message, Flow),
}

/// The REGISTER transactions in flight and finishing, and their timers.
pub(crate) struct Relay {
    proxy: Arc<Proxy>,
    transports: Transports,
    limits: Limits,
    timers: TimerConfig,
    /// Boxed: the table moves only pointers when it grows.
    entries: HashMap<u64, Box<Entry>>,
    servers: HashMap<ServerKey, u64>,
    clients: HashMap<ClientKey, u64>,
    /// Deadlines by entry; an entry whose deadline moved leaves its old one behind, which
    /// is skipped when it comes up (see [`Entry::scheduled`]).
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    next_id: u64,
    /// `SIP/2.0/UDP <internal>;branch=`: the start of every Via this relay adds.
    via_prefix: String,
}

/// One REGISTER: the phone's server transaction and the current attempt toward a registrar.
struct Entry {
    server: ServerNonInvite,
    server_key: ServerKey,
    /// The flow the REGISTER came in on; every response goes back over it.
    phone: Flow,
    attempt: Option<Attempt>,
    /// Keys of earlier attempts: their late answers are absorbed, not relayed as strays.
    retired: Vec<ClientKey>,
    /// Until the final response: what another attempt or a local answer needs.
    pending: Option<Pending>,
    /// The last response sent to the phone, sent again when it retransmits.
    last_response: Option<Bytes>,
    /// The deadline this entry is filed under in the heap.
    scheduled: Option<Instant>,
}

/// One forwarding of the REGISTER to one registrar.
struct Attempt {
    key: ClientKey,
    client: ClientNonInvite,
    registrar: usize,
    target: Flow,
    /// The bytes sent, for Timer E; emptied once a final response arrived.
    sent: Bytes,
    /// When to give up on this registrar and try the next (disarmed by a provisional).
    failover_at: Option<Instant>,
}

/// What is kept until the REGISTER has its final response.
struct Pending {
    /// The REGISTER as forwarded, without this edge's Via.
    request: Message,
    aor: String,
    tried: Vec<usize>,
    saw_unavailable: bool,
    /// The phone's flow, when a 2xx is to set its keepalives.
    learn: Option<Flow>,
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl Relay {
    /// A relay over the transaction layer's transports, with its limits and timers.
    pub(crate) fn new(proxy: Arc<Proxy>) -> Self {
        let transports = proxy.endpoint.transports().clone();
        let EndpointConfig { limits, timers, .. } = *proxy.endpoint.config();
        let internal = proxy.addresses.internal;
        let via_prefix = format!("SIP/2.0/UDP {internal};branch=");
        Relay {
            via_prefix,
            proxy,
            transports,
            limits,
            timers,
            entries: HashMap::new(),
            servers: HashMap::new(),
            clients: HashMap::new(),
            heap: BinaryHeap::new(),
            next_id: 0,
        }
    }

    pub(crate) fn proxy(&self) -> &Arc<Proxy> {
        &self.proxy
    }

    /// The earliest deadline of any entry.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Takes `inbound` if it belongs here (a REGISTER from a phone over UDP, its
    /// retransmission, or a registrar's answer to one); gives it back otherwise, parsed
    /// when it was parsed here and left as it arrived.
    pub(crate) async fn offer(&mut self, inbound: Inbound) -> Offer {
        let flow = inbound.flow;
        let from_core = flow.local == self.proxy.addresses.internal;
        if flow.transport != Transport::Udp || !may_be_ours(&inbound.data, from_core) {
            return Offer::Raw(inbound);
        }
        let Ok(message) = Message::parse(inbound.data.clone(), &self.limits) else {
            // The general path answers it with its 400.
            return Offer::Raw(inbound);
        };
        if !message.is_request() {
            let Some((id, key)) = client_key(&message)
                .ok()
                .and_then(|key| Some((*self.clients.get(&key)?, key)))
            else {
                return Offer::Parsed(message, flow);
            };
            self.on_response(id, &key, message).await;
            return Offer::Taken;
        }
        if message.method() != Some(Method::Register) {
            return Offer::Parsed(message, flow);
        }
        let Ok(key) = server_key(&message) else {
            return Offer::Parsed(message, flow);
        };
        if let Some(&id) = self.servers.get(&key) {
            self.on_retransmission(id).await;
            return Offer::Taken;
        }
        // `admit` edits the request as it checks it: what it refuses goes back as received.
        let Some((request, aor)) = self.admit(message, &flow) else {
            return Offer::Raw(inbound);
        };
        self.start(key, request, aor, flow).await;
        Offer::Taken
    }

    /// Prepares a new REGISTER for forwarding, or `None` when the general path must answer
    /// it: Max-Forwards used up, a loop, a Route, a bad Via or To.
    fn admit(&self, mut request: Message, flow: &Flow) -> Option<(Message, String)> {
        let proxy = &self.proxy;
        request.decrement_max_forwards()?;
        if route::is_loop(&request, &proxy.addresses, LOOP_LIMIT_FROM_PHONE) {
            return None;
        }
        if !matches!(
            route::decide(&request, flow, &proxy.addresses, &proxy.key),
            RouteDecision::NotOurs
        ) {
            return None;
        }
        let aor = request.to_header().ok()?.uri.aor();
        if !proxy.stamp_received(&mut request, flow) {
            return None;
        }
        count_in("phone", &request);
        proxy.set_path(&mut request, flow);
        Some((request, aor))
    }

    async fn start(&mut self, key: ServerKey, request: Message, aor: String, phone: Flow) {
        let id = self.next_id;
        self.next_id += 1;
        let learn = self.proxy.keepalive.then_some(phone);
        self.servers.insert(key.clone(), id);
        self.entries.insert(
            id,
            Box::new(Entry {
                server: ServerNonInvite::new(Reliability::Unreliable, &self.timers, now()),
                server_key: key,
                phone,
                attempt: None,
                retired: Vec::new(),
                pending: Some(Pending {
                    request,
                    aor,
                    tried: Vec::new(),
                    saw_unavailable: false,
                    learn,
                }),
                last_response: None,
                scheduled: None,
            }),
        );
        self.next_attempt(id).await;
        self.reschedule(id);
    }

    /// Sends the REGISTER to the next live registrar on the ring, or answers the phone
    /// itself when none is left (503 if one was unavailable or none was tried, else 408).
    async fn next_attempt(&mut self, id: u64) {
        loop {
            let Some(entry) = self.entries.get_mut(&id) else {
                return;
            };
            let Some(pending) = entry.pending.as_mut() else {
                return;
            };
            let Some((index, addr)) = self.proxy.registrar_target(&pending.aor, &pending.tried)
            else {
                let (code, reason) = if pending.saw_unavailable || pending.tried.is_empty() {
                    (503, "Service Unavailable")
                } else {
                    (408, "Request Timeout")
                };
                let tag = new_tag();
                let response = response_to(&pending.request, code, reason, Some(&tag)).build();
                self.respond(id, code, response).await;
                return;
            };
            if !pending.tried.is_empty() {
                metrics::counter!("hasip_edge_failovers_total").increment(1);
                tracing::info!(
                    attempt = pending.tried.len() + 1,
                    "failing over to the next registrar"
                );
            }
            pending.tried.push(index);
            let Target::Flow(target) = self.proxy.to_core(addr) else {
                return;
            };
            let branch = new_branch();
            let mut via = String::with_capacity(self.via_prefix.len() + branch.len() + 6);
            via.push_str(&self.via_prefix);
            via.push_str(&branch);
            via.push_str(";rport");
            let mut out = pending.request.clone();
            out.push_via(&via);
            let key = ClientKey::new(&ClientKeyParts {
                branch: &branch,
                method: "REGISTER",
            });
            let sent = out.to_bytes();
            if let Some(old) = entry.attempt.take() {
                entry.retired.push(old.key);
            }
            if let Err(error) = self.transports.send(&target, sent.clone()).await {
                tracing::debug!(%error, "forwarding failed");
                self.proxy.registrar_failed(index);
                continue;
            }
            count_out_request("REGISTER");
            let at = now();
            self.clients.insert(key.clone(), id);
            if let Some(entry) = self.entries.get_mut(&id) {
                entry.attempt = Some(Attempt {
                    key,
                    client: ClientNonInvite::new(Reliability::Unreliable, &self.timers, at),
                    registrar: index,
                    target,
                    sent,
                    failover_at: Some(at + self.proxy.failover_timeout),
                });
            }
            return;
        }
    }

    /// Sends a response to the phone through its server transaction and keeps it for
    /// retransmissions; a final one ends the forwarding.
    async fn respond(&mut self, id: u64, code: u16, response: Bytes) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        if entry.server.send_response(code, now()) != Some(ServerNonInviteAction::SendResponse) {
            return;
        }
        if code >= 200 {
            entry.pending = None;
            if let Some(attempt) = entry.attempt.as_mut() {
                attempt.failover_at = None;
                attempt.sent = Bytes::new();
            }
        }
        entry.last_response = Some(response.clone());
        let phone = entry.phone;
        count_out_response(code);
        if let Err(error) = self.transports.send(&phone, response).await {
            tracing::debug!(%error, "response to the phone not sent");
            if let Some(entry) = self.entries.get_mut(&id) {
                entry.server.on_transport_error();
            }
        }
    }

    /// The phone sent the REGISTER again: the last response goes out again, if any.
    async fn on_retransmission(&mut self, id: u64) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        if entry.server.on_request(now()) != Some(ServerNonInviteAction::ResendResponse) {
            return;
        }
        if let Some(response) = entry.last_response.clone() {
            let phone = entry.phone;
            let _ = self.transports.send(&phone, response).await;
        }
    }

    /// A registrar answered an attempt of entry `id`.
    async fn on_response(&mut self, id: u64, key: &ClientKey, mut response: Message) {
        let Some(code) = response.status_code() else {
            return;
        };
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        // An earlier attempt's late answer, or a retransmitted final: absorbed.
        let Some(attempt) = entry.attempt.as_mut().filter(|a| &a.key == key) else {
            return;
        };
        if attempt.client.on_response(code, now()) != Some(ClientNonInviteAction::PassToTu) {
            return;
        }
        count_in("core", &response);
        let index = attempt.registrar;
        if code < 200 {
            if code > 100 {
                attempt.failover_at = None;
                response.pop_via();
                self.respond(id, code, response.to_bytes()).await;
            }
            self.reschedule(id);
            return;
        }
        if code == 503 {
            if let Some(pending) = entry.pending.as_mut() {
                pending.saw_unavailable = true;
            }
            self.proxy.registrar_failed(index);
            self.next_attempt(id).await;
            self.reschedule(id);
            return;
        }
        lock(&self.proxy.health).answered(index);
        if let Some(pending) = entry.pending.as_ref() {
            if let (Some(phone), 200..=299) = (pending.learn, code) {
                let registration = flows::registration(&pending.request, &response);
                let mut flows = lock(&self.proxy.flows);
                flows.apply(phone, registration, now());
                metrics::gauge!("hasip_edge_flows_tracked").set(flows.len() as f64);
            }
        }
        response.pop_via();
        self.respond(id, code, response.to_bytes()).await;
        self.reschedule(id);
    }

    /// Runs every timer due at `now`.
    pub(crate) async fn fire(&mut self) {
        let at_now = now();
        while let Some(&Reverse((at, id))) = self.heap.peek() {
            if at > at_now {
                break;
            }
            self.heap.pop();
            let Some(entry) = self.entries.get_mut(&id) else {
                continue;
            };
            if entry.scheduled != Some(at) {
                continue;
            }
            entry.scheduled = None;
            self.on_timers(id, at_now).await;
            self.reschedule(id);
        }
    }

    async fn on_timers(&mut self, id: u64, at_now: Instant) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        let _ = entry.server.handle_timeout(at_now);
        let Some(attempt) = entry.attempt.as_mut() else {
            return;
        };
        let registrar = attempt.registrar;
        // Once the phone has its final answer, a timer of the last attempt says nothing more.
        let forwarding = entry.pending.is_some();
        let mut failover = attempt.failover_at.is_some_and(|t| t <= at_now) && forwarding;
        if failover {
            attempt.failover_at = None;
            // With no other registrar to move to, this one's answer is still the best
            // hope: the attempt runs on until its own timeout instead of ending in a 408
            // now (a slow survivor of a registrar that died, under load).
            failover = entry
                .pending
                .as_ref()
                .is_some_and(|p| self.proxy.registrar_target(&p.aor, &p.tried).is_some());
        }
        let mut timed_out = false;
        let mut retransmit = false;
        while attempt.client.poll_timeout().is_some_and(|t| t <= at_now) {
            match attempt.client.handle_timeout(at_now) {
                Some(ClientNonInviteAction::Retransmit) => retransmit = true,
                Some(ClientNonInviteAction::Timeout) => timed_out = true,
                Some(_) => {}
                None => break,
            }
        }
        if failover || (timed_out && forwarding) {
            tracing::debug!(registrar, "attempt failed: timeout");
            self.proxy.registrar_failed(registrar);
            self.next_attempt(id).await;
        } else if retransmit && !attempt.sent.is_empty() {
            let (target, sent) = (attempt.target, attempt.sent.clone());
            let _ = self.transports.send(&target, sent).await;
        }
    }

    /// Files entry `id` under its next deadline, or drops it once both of its transactions
    /// have ended.
    fn reschedule(&mut self, id: u64) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        let client_done = entry
            .attempt
            .as_ref()
            .is_none_or(|a| a.client.is_terminated());
        if entry.server.is_terminated() && client_done {
            self.drop_entry(id);
            return;
        }
        let attempt = entry.attempt.as_ref();
        let next = [
            entry.server.poll_timeout(),
            attempt.and_then(|a| a.client.poll_timeout()),
            attempt.and_then(|a| a.failover_at),
        ]
        .into_iter()
        .flatten()
        .min();
        if next != entry.scheduled {
            entry.scheduled = next;
            if let Some(at) = next {
                self.heap.push(Reverse((at, id)));
            }
        }
    }

    fn drop_entry(&mut self, id: u64) {
        let Some(entry) = self.entries.remove(&id) else {
            return;
        };
        self.servers.remove(&entry.server_key);
        for key in entry
            .retired
            .iter()
            .chain(entry.attempt.as_ref().map(|a| &a.key))
        {
            self.clients.remove(key);
        }
    }
}

/// A cheap first look before parsing: a REGISTER from a phone, or a response from the
/// core (a registrar's answer to a forwarded REGISTER; its CSeq says the rest).
fn may_be_ours(data: &[u8], from_core: bool) -> bool {
    if from_core {
        data.starts_with(b"SIP/2.0 ")
    } else {
        data.starts_with(b"REGISTER ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_registers_from_phones_and_responses_from_the_core_are_looked_at() {
        let register = b"REGISTER sip:example.com SIP/2.0\r\n";
        let ok = b"SIP/2.0 200 OK\r\n";
        assert!(may_be_ours(register, false));
        assert!(may_be_ours(ok, true));
        assert!(!may_be_ours(register, true), "a REGISTER from the core");
        assert!(!may_be_ours(ok, false), "a phone's response");
        assert!(!may_be_ours(
            b"INVITE sip:bob@example.com SIP/2.0\r\n",
            false
        ));
        // Methods are case-sensitive (RFC 3261 section 7.1): this is another method.
        assert!(!may_be_ours(b"register sip:example.com SIP/2.0\r\n", false));
        assert!(!may_be_ours(b"\r\n\r\n", false));
    }
}
