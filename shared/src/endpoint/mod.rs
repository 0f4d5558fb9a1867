//! The transaction layer on tokio (RFC 3261 section 17): the I/O shell around the
//! sans-IO machines of [`crate::transaction`].
//!
//! [`Endpoint::start`] takes the [`Transports`] and their inbound receiver and hands the
//! application [`Incoming`] events ([`Endpoint::new`] and [`Endpoint::receive`] do the
//! same for a caller that reads the transports itself). Requests arrive once each with a
//! [`ServerTransaction`] to answer through; retransmissions are absorbed and answered
//! here. [`Endpoint::send_request`] starts a [`ClientTransaction`] that retransmits,
//! times out and ACKs non-2xx INVITE finals by itself.
//!
//! Every response goes back over the flow its request arrived on (same UDP socket to the
//! source address, same TCP connection), as RFC 3581 and RFC 5626 need for peers
//! behind NAT. Each transaction runs in its own tokio task that sleeps until the
//! machine's next deadline, so timers follow `tokio::time` (and its paused clock). A
//! completed non-INVITE transaction over UDP waits out Timer J in the table without a
//! task.

mod client;
mod malformed;
mod server;
mod server_table;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use crate::sip::builder::response_to;
use crate::sip::{HeaderName, Limits, Message, Method, ParseError};
use crate::transaction::key::has_magic_cookie;
use crate::transaction::{ClientKey, ClientKeyParts, ServerKey, ServerKeyParts, TimerConfig};
use crate::transport::{self, Flow, Inbound, Transport, Transports};
use server_table::{Found, ServerTable};

pub use client::{ClientEvent, ClientTransaction};
pub use server::ServerTransaction;

/// Tunables of the transaction layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointConfig {
    /// T1, T2 and T4.
    pub timers: TimerConfig,
    /// Limits applied when parsing inbound messages.
    pub limits: Limits,
    /// Capacity of the channel of [`Incoming`] events to the application.
    pub incoming_queue: usize,
    /// Capacity of each transaction's input queue; retransmissions beyond it are dropped.
    pub transaction_queue: usize,
    /// Capacity of each client transaction's event queue; events beyond it are dropped.
    pub client_event_queue: usize,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            timers: TimerConfig::default(),
            limits: Limits::default(),
            incoming_queue: 4096,
            transaction_queue: 16,
            client_event_queue: 16,
        }
    }
}

/// Where to send: exactly over a known flow, or to an address over a transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Over this flow (same UDP socket, same TCP connection).
    Flow(Flow),
    /// To this address; an open TCP connection is reused or a new one opened.
    Addr {
        /// UDP or TCP.
        transport: Transport,
        /// The peer.
        addr: SocketAddr,
    },
}

impl From<Flow> for Target {
    fn from(flow: Flow) -> Self {
        Target::Flow(flow)
    }
}

/// Why a message could not be sent or a transaction not started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The transports failed to send.
    #[error(transparent)]
    Transport(#[from] transport::SendError),
    /// The request lacks what a client transaction needs (top Via branch, CSeq).
    #[error("request unfit for a client transaction: {0}")]
    BadRequest(ParseError),
    /// ACK has no client transaction; send it with [`Endpoint::send_stateless`].
    #[error("ACK is sent statelessly")]
    AckNeedsNoTransaction,
    /// A client transaction with the same branch and method is still running.
    #[error("a client transaction with this branch and method is running")]
    DuplicateTransaction,
    /// The bytes given as a response do not start with a SIP status line.
    #[error("not a SIP response")]
    BadResponse,
    /// The transaction's state forbids this response (a second final response, say).
    #[error("the transaction state does not allow this response")]
    NotAllowed,
    /// The transaction has ended.
    #[error("the transaction has ended")]
    TransactionGone,
}

/// What the transaction layer hands the application.
#[derive(Debug)]
pub enum Incoming {
    /// A new request (never a retransmission), with the transaction to answer through.
    Request {
        /// The request as received.
        request: Message,
        /// How it arrived.
        flow: Flow,
        /// Where the responses go.
        txn: ServerTransaction,
    },
    /// An ACK for a 2xx: end to end, outside any transaction; a proxy forwards it.
    Ack {
        /// The ACK as received.
        ack: Message,
        /// How it arrived.
        flow: Flow,
    },
    /// A response that matched no client transaction (a proxy forwards 2xx
    /// retransmissions statelessly, RFC 3261 section 16.7 step 5 and RFC 6026).
    StrayResponse {
        /// The response as received.
        response: Message,
        /// How it arrived.
        flow: Flow,
    },
    /// A UDP datagram that is not SIP (STUN, first byte 0x00 or 0x01).
    NonSip {
        /// The datagram.
        data: Bytes,
        /// How it arrived.
        flow: Flow,
    },
}

/// A new RFC 3261 branch: the magic cookie and 96 random bits.
pub fn new_branch() -> String {
    let random: u128 = rand::random();
    format!("z9hG4bK{:024x}", random >> 32)
}

/// A fresh random tag for a To or From header.
pub(crate) fn new_tag() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// The transaction layer; cheap to clone.
#[derive(Debug, Clone)]
pub struct Endpoint {
    inner: Arc<Inner>,
}

/// One table entry: the task's input queue and an id telling generations apart.
#[derive(Debug)]
struct Entry<I> {
    id: u64,
    input: mpsc::Sender<I>,
}

#[derive(Debug)]
struct Inner {
    transports: Transports,
    config: EndpointConfig,
    incoming: mpsc::Sender<Incoming>,
    servers: Mutex<ServerTable>,
    clients: Mutex<HashMap<ClientKey, Entry<client::Input>>>,
    next_id: AtomicU64,
}

/// Locks a table; a panic elsewhere while holding it leaves a usable map.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Endpoint {
    /// Starts the layer over `transports`, reading their `inbound` receiver; the
    /// application reads the returned receiver. Must be called within a tokio runtime.
    pub fn start(
        transports: Transports,
        inbound: mpsc::Receiver<Inbound>,
        config: EndpointConfig,
    ) -> (Endpoint, mpsc::Receiver<Incoming>) {
        let (endpoint, incoming) = Endpoint::new(transports, config);
        // Weak, so dropping every Endpoint drops the transports and ends the loop.
        tokio::spawn(dispatch(Arc::downgrade(&endpoint.inner), inbound));
        (endpoint, incoming)
    }

    /// Builds the layer over `transports` without reading their inbound receiver: the
    /// caller hands each message to [`Endpoint::receive`] itself (after screening it, as
    /// the edge does), so no task or channel sits in between.
    pub fn new(
        transports: Transports,
        config: EndpointConfig,
    ) -> (Endpoint, mpsc::Receiver<Incoming>) {
        let (incoming_tx, incoming_rx) = mpsc::channel(config.incoming_queue.max(1));
        let inner = Arc::new(Inner {
            transports,
            config,
            incoming: incoming_tx,
            servers: Mutex::new(ServerTable::default()),
            clients: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        });
        (Endpoint { inner }, incoming_rx)
    }

    /// Handles one message from the transports, as the loop of [`Endpoint::start`]
    /// does: a retransmission is absorbed, a response goes to its client transaction,
    /// anything else becomes an [`Incoming`] event.
    pub async fn receive(&self, inbound: Inbound) {
        self.inner.on_inbound(inbound.flow, inbound.data).await;
    }

    /// Like [`Endpoint::receive`], for a message the caller has already parsed (with this
    /// layer's limits) and looked at: it is not parsed again.
    pub async fn receive_message(&self, message: Message, flow: Flow) {
        if message.is_request() {
            self.inner.on_request(message, flow).await;
        } else {
            self.inner.on_response(message, flow).await;
        }
    }

    /// The tunables this layer runs with.
    pub fn config(&self) -> &EndpointConfig {
        &self.inner.config
    }

    /// The transports underneath.
    pub fn transports(&self) -> &Transports {
        &self.inner.transports
    }

    /// Sends a request statefully. The caller has already pushed its own Via whose
    /// branch came from [`new_branch`]. Returns once the request is on the wire; a
    /// failure of that first send is an error here, later ones are
    /// [`ClientEvent::TransportError`].
    pub async fn send_request(
        &self,
        request: Message,
        target: impl Into<Target>,
    ) -> Result<ClientTransaction, SendError> {
        let (mut txn, started) = self.inner.start_client(request, target.into())?;
        match started.await {
            Ok(Ok(flow)) => {
                txn.set_flow(flow);
                Ok(txn)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(SendError::TransactionGone),
        }
    }

    /// Sends a message statelessly (ACK for 2xx, forwarded 2xx responses, keepalives)
    /// and returns the flow used.
    pub async fn send_stateless(
        &self,
        target: impl Into<Target>,
        bytes: Bytes,
    ) -> Result<Flow, SendError> {
        self.inner.send(target.into(), bytes).await
    }

    /// Number of live server and client transactions.
    pub fn transaction_count(&self) -> (usize, usize) {
        let servers = {
            let mut servers = lock(&self.inner.servers);
            Inner::sweep(&mut servers);
            servers.len()
        };
        (servers, lock(&self.inner.clients).len())
    }
}

/// Reads the transports until they stop or every [`Endpoint`] is gone.
async fn dispatch(inner: Weak<Inner>, mut inbound: mpsc::Receiver<Inbound>) {
    while let Some(Inbound { flow, data }) = inbound.recv().await {
        let Some(inner) = inner.upgrade() else {
            break;
        };
        inner.on_inbound(flow, data).await;
    }
}

/// How often, at most, the idle sweep of completed server transactions runs; lookups
/// sweep before they look, so this only bounds how long a due entry holds its memory.
const SWEEP_PERIOD: std::time::Duration = std::time::Duration::from_millis(250);

/// Drops completed server transactions as their Timer J fires, while any are parked and
/// the layer lives.
async fn sweep_servers(inner: Weak<Inner>) {
    loop {
        let next = {
            let Some(inner) = inner.upgrade() else {
                return;
            };
            let mut servers = lock(&inner.servers);
            Inner::sweep(&mut servers);
            match servers.next_deadline() {
                Some(at) => at.max(Inner::now() + SWEEP_PERIOD),
                None => {
                    servers.sweeping = false;
                    return;
                }
            }
        };
        tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
    }
}

/// Counts `n` server transactions off the live-transactions gauge.
fn servers_ended(n: usize) {
    if n > 0 {
        metrics::gauge!("hasip_endpoint_transactions", "side" => "server").decrement(n as f64);
    }
}

/// Counts a message that could not be parsed or matched.
fn count_bad(kind: &'static str) {
    metrics::counter!("hasip_endpoint_bad_messages_total", "kind" => kind).increment(1);
}

/// The key of a client transaction from a response, or from the request it sends.
pub fn client_key(message: &Message) -> Result<ClientKey, ParseError> {
    let via = message.top_via()?;
    let branch = via.branch().ok_or(ParseError::BadHeader("Via"))?;
    let cseq = message.cseq()?;
    let method = if message.is_request() {
        message.method_str().unwrap_or(cseq.method)
    } else {
        cseq.method
    };
    Ok(ClientKey::new(&ClientKeyParts { branch, method }))
}

/// The key of a server transaction from a request.
pub fn server_key(request: &Message) -> Result<ServerKey, ParseError> {
    let via = request.top_via()?;
    let sent_by = via.sent_by().to_string();
    let cseq = request.cseq()?;
    if let Some(branch) = via.branch().filter(|b| has_magic_cookie(b)) {
        // An RFC 3261 branch: the other parts are not part of the key.
        return Ok(ServerKey::new(&ServerKeyParts {
            branch: Some(branch),
            sent_by: &sent_by,
            method: request.method_str().unwrap_or_default(),
            request_uri: "",
            call_id: "",
            from_tag: None,
            to_tag: None,
            cseq: cseq.seq,
            top_via: "",
        }));
    }
    let top_via = request
        .first_value(&HeaderName::Via)
        .ok_or(ParseError::BadHeader("Via"))?;
    let from = request.from_header().ok();
    let to = request.to_header().ok();
    Ok(ServerKey::new(&ServerKeyParts {
        branch: via.branch(),
        sent_by: &sent_by,
        method: request.method_str().unwrap_or_default(),
        request_uri: request.request_uri().unwrap_or_default(),
        call_id: request.call_id().unwrap_or_default(),
        from_tag: from.as_ref().and_then(|f| f.tag()),
        to_tag: to.as_ref().and_then(|t| t.tag()),
        cseq: cseq.seq,
        top_via,
    }))
}

impl Inner {
    fn now() -> Instant {
        tokio::time::Instant::now().into_std()
    }

    /// Drops the completed server transactions whose Timer J is due.
    fn sweep(servers: &mut ServerTable) {
        servers_ended(servers.sweep(Inner::now()));
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends over a flow or to an address.
    async fn send(&self, target: Target, bytes: Bytes) -> Result<Flow, SendError> {
        match target {
            Target::Flow(flow) => {
                self.transports.send(&flow, bytes).await?;
                Ok(flow)
            }
            Target::Addr { transport, addr } => {
                Ok(self.transports.send_to(transport, addr, bytes).await?)
            }
        }
    }

    async fn deliver(&self, incoming: Incoming) {
        // An error means the application dropped its receiver; nothing is listening.
        let _ = self.incoming.send(incoming).await;
    }

    async fn on_inbound(self: &Arc<Self>, flow: Flow, data: Bytes) {
        if flow.transport == Transport::Udp && matches!(data.first(), Some(0x00 | 0x01)) {
            self.deliver(Incoming::NonSip { data, flow }).await;
            return;
        }
        // CRLF keepalives (RFC 5626 section 4.4.1) need no answer over UDP.
        if data.iter().all(|b| matches!(b, b'\r' | b'\n')) {
            return;
        }
        match Message::parse(data.clone(), &self.config.limits) {
            Ok(message) if message.is_request() => self.on_request(message, flow).await,
            Ok(message) => self.on_response(message, flow).await,
            Err(error) => {
                count_bad("unparsable");
                if let Some(response) = malformed::bad_request(&data, &error.to_string()) {
                    let _ = self.transports.send(&flow, response).await;
                }
            }
        }
    }

    async fn on_response(&self, response: Message, flow: Flow) {
        let Ok(key) = client_key(&response) else {
            count_bad("response");
            return;
        };
        let input = lock(&self.clients).get(&key).map(|e| e.input.clone());
        let response = match input {
            Some(input) => match input.try_send(client::Input::Response(Box::new(response))) {
                Ok(()) | Err(TrySendError::Full(_)) => return,
                Err(TrySendError::Closed(client::Input::Response(response))) => *response,
                Err(TrySendError::Closed(_)) => return,
            },
            None => response,
        };
        self.deliver(Incoming::StrayResponse { response, flow })
            .await;
    }

    async fn on_request(self: &Arc<Self>, request: Message, flow: Flow) {
        let key = match server_key(&request) {
            Ok(key) => key,
            Err(error) => {
                count_bad("request");
                // Without a Via the response could not be routed back.
                if request.header(&HeaderName::Via).is_some()
                    && request.method() != Some(Method::Ack)
                {
                    let tag = new_tag();
                    let response =
                        response_to(&request, 400, &error.to_string(), Some(&tag)).build();
                    let _ = self.transports.send(&flow, response).await;
                }
                return;
            }
        };
        let existing = {
            let mut servers = lock(&self.servers);
            Inner::sweep(&mut servers);
            servers.find(&key, Inner::now())
        };
        match request.method() {
            Some(Method::Ack) => {
                let ack = match existing {
                    Found::Running(input) => {
                        match input.try_send(server::Input::Ack(Box::new((request, flow)))) {
                            Ok(()) | Err(TrySendError::Full(_)) => return,
                            Err(TrySendError::Closed(server::Input::Ack(ack))) => ack.0,
                            Err(TrySendError::Closed(_)) => return,
                        }
                    }
                    Found::None | Found::Resend { .. } | Found::Absorbed => request,
                };
                self.deliver(Incoming::Ack { ack, flow }).await;
            }
            _ => {
                match existing {
                    Found::Running(input) => match input.try_send(server::Input::Retransmission) {
                        Ok(()) | Err(TrySendError::Full(_)) => return,
                        // Ended a moment ago: a new transaction takes its place.
                        Err(TrySendError::Closed(_)) => {}
                    },
                    Found::Resend { flow, response } => {
                        if let Err(error) = self.transports.send(&flow, response).await {
                            tracing::debug!(%error, ?flow, "re-sending a response failed");
                        }
                        return;
                    }
                    Found::Absorbed => return,
                    Found::None => {}
                }
                if request.method() == Some(Method::Cancel) {
                    self.on_cancel(key, request, flow).await;
                } else {
                    let txn = self.start_server(key, request.clone(), flow);
                    self.deliver(Incoming::Request { request, flow, txn }).await;
                }
            }
        }
    }

    /// A new CANCEL (RFC 3261 section 9.2): the INVITE transaction learns of it, and the
    /// CANCEL's own transaction answers 200, or 481 when it matches nothing.
    async fn on_cancel(self: &Arc<Self>, key: ServerKey, cancel: Message, flow: Flow) {
        let invite = key
            .cancelled_invite_key()
            .and_then(|k| lock(&self.servers).running(&k));
        let matched = invite.is_some_and(|input| match input.try_send(server::Input::Cancel) {
            Ok(()) | Err(TrySendError::Full(_)) => true,
            Err(TrySendError::Closed(_)) => false,
        });
        let (code, reason) = if matched {
            (200, "OK")
        } else {
            (481, "Call/Transaction Does Not Exist")
        };
        let tag = new_tag();
        let response = response_to(&cancel, code, reason, Some(&tag)).build();
        let txn = self.start_server(key, cancel, flow);
        let _ = txn.respond(response).await;
    }

    /// Registers and starts a server transaction for a new request.
    fn start_server(
        self: &Arc<Self>,
        key: ServerKey,
        request: Message,
        flow: Flow,
    ) -> ServerTransaction {
        let id = self.next_id();
        let (input_tx, input_rx) = mpsc::channel(self.config.transaction_queue.max(1));
        lock(&self.servers).insert_running(
            key.clone(),
            Entry {
                id,
                input: input_tx.clone(),
            },
        );
        metrics::gauge!("hasip_endpoint_transactions", "side" => "server").increment(1.0);
        server::start(Arc::clone(self), id, key, request, flow, input_tx, input_rx)
    }

    /// Routes a second key to a running server transaction (see
    /// [`ServerKey::ack_key`]); an entry already there stays.
    fn add_server_alias(&self, alias: ServerKey, id: u64, input: mpsc::Sender<server::Input>) {
        lock(&self.servers).add_alias(alias, Entry { id, input });
    }

    /// Removes a transaction's entry unless a newer one took its key.
    fn remove_server(&self, key: &ServerKey, id: u64) {
        lock(&self.servers).remove(key, id);
    }

    /// Keeps a completed non-INVITE transaction, whose task ends, in the table until its
    /// Timer J; false when it ended instead (its key moved on, or no Timer J runs).
    fn park_server(self: &Arc<Self>, key: ServerKey, completed: server_table::Completed) -> bool {
        let mut servers = lock(&self.servers);
        Inner::sweep(&mut servers);
        if !servers.park(key, completed) {
            return false;
        }
        if !servers.sweeping {
            servers.sweeping = true;
            tokio::spawn(sweep_servers(Arc::downgrade(self)));
        }
        true
    }

    fn remove_client(&self, key: &ClientKey, id: u64) {
        let mut clients = lock(&self.clients);
        if clients.get(key).is_some_and(|e| e.id == id) {
            clients.remove(key);
        }
    }

    /// Registers and starts a client transaction; the receiver reports the first send.
    fn start_client(
        self: &Arc<Self>,
        request: Message,
        target: Target,
    ) -> Result<
        (
            ClientTransaction,
            tokio::sync::oneshot::Receiver<Result<Flow, SendError>>,
        ),
        SendError,
    > {
        if request.method() == Some(Method::Ack) {
            return Err(SendError::AckNeedsNoTransaction);
        }
        let key = client_key(&request).map_err(SendError::BadRequest)?;
        let id = self.next_id();
        let (input_tx, input_rx) = mpsc::channel(self.config.transaction_queue.max(1));
        {
            let mut clients = lock(&self.clients);
            if clients.contains_key(&key) {
                return Err(SendError::DuplicateTransaction);
            }
            clients.insert(
                key.clone(),
                Entry {
                    id,
                    input: input_tx.clone(),
                },
            );
        }
        metrics::gauge!("hasip_endpoint_transactions", "side" => "client").increment(1.0);
        Ok(client::start(
            Arc::clone(self),
            id,
            key,
            request,
            target,
            input_tx,
            input_rx,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branches_carry_the_cookie_and_differ() {
        let a = new_branch();
        let b = new_branch();
        assert!(a.starts_with("z9hG4bK"));
        assert_eq!(a.len(), 7 + 24);
        assert_ne!(a, b);
    }

    fn parse(text: &str) -> Message {
        Message::parse(Bytes::copy_from_slice(text.as_bytes()), &Limits::default())
            .unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    #[test]
    fn keys_of_a_request_and_its_response_agree() {
        let request = parse(
            "OPTIONS sip:b SIP/2.0\r\nVia: SIP/2.0/UDP h:5060;branch=z9hG4bKx\r\n\
             From: <sip:a>;tag=1\r\nTo: <sip:b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n",
        );
        let response = parse(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h:5060;branch=z9hG4bKX\r\n\
             From: <sip:a>;tag=1\r\nTo: <sip:b>;tag=2\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n",
        );
        assert_eq!(client_key(&request).ok(), client_key(&response).ok());
        let cancel = parse(
            "CANCEL sip:b SIP/2.0\r\nVia: SIP/2.0/UDP h:5060;branch=z9hG4bKx\r\n\
             From: <sip:a>;tag=1\r\nTo: <sip:b>\r\nCall-ID: c\r\nCSeq: 1 CANCEL\r\n\r\n",
        );
        assert_ne!(client_key(&request).ok(), client_key(&cancel).ok());
        let invite = parse(
            "INVITE sip:b SIP/2.0\r\nVia: SIP/2.0/UDP h:5060;branch=z9hG4bKx\r\n\
             From: <sip:a>;tag=1\r\nTo: <sip:b>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n",
        );
        let cancel_key = server_key(&cancel).ok();
        assert_eq!(
            cancel_key.and_then(|k| k.cancelled_invite_key()),
            server_key(&invite).ok()
        );
    }

    #[test]
    fn a_request_without_branch_has_no_client_key() {
        let request = parse(
            "OPTIONS sip:b SIP/2.0\r\nVia: SIP/2.0/UDP h:5060\r\n\
             From: <sip:a>;tag=1\r\nTo: <sip:b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n",
        );
        assert_eq!(client_key(&request), Err(ParseError::BadHeader("Via")));
        assert!(server_key(&request).is_ok());
    }
}
