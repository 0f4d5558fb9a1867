//! Client transactions (RFC 3261 section 17.1): one task per transaction sends the
//! request, retransmits it on UDP, ACKs non-2xx INVITE finals and reports to the
//! application; CANCEL follows RFC 3261 section 9.1.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::server::sleep_until;
use super::{Inner, SendError, Target};
use crate::sip::builder::{ack_for, cancel_for};
use crate::sip::{Message, Method};
use crate::transaction::{
    ClientInvite, ClientInviteAction, ClientInviteState, ClientKey, ClientNonInvite,
    ClientNonInviteAction, Reliability,
};
use crate::transport::Flow;

/// What a client transaction task is told.
///
/// Boxed payloads keep the slots small: a tokio channel allocates its slots 32 at a time
/// up front, and every transaction has its own channels for as long as it lives.
#[derive(Debug)]
pub(super) enum Input {
    /// A response matching the transaction.
    Response(Box<Message>),
    /// The application wants the INVITE cancelled.
    Cancel,
}

/// What a client transaction reports to the application.
#[derive(Debug)]
pub enum ClientEvent {
    /// A 1xx.
    Provisional(Message),
    /// A final response. Every 2xx of an INVITE is passed (forks, retransmissions);
    /// the application ACKs them. A non-2xx INVITE final has been ACKed already.
    Final(Message),
    /// Timer B or F fired without a final response (treat as 408).
    Timeout,
    /// The transport failed (treat as 503).
    TransportError,
}

/// The application's handle on a client transaction.
///
/// Dropping it does not stop the transaction, which still retransmits and absorbs
/// responses until its timers end it.
#[derive(Debug)]
pub struct ClientTransaction {
    events: mpsc::Receiver<Box<ClientEvent>>,
    input: mpsc::Sender<Input>,
    flow: Flow,
}

impl ClientTransaction {
    /// The next event; `None` once the transaction has ended and every event was read.
    pub async fn next(&mut self) -> Option<ClientEvent> {
        self.events.recv().await.map(|event| *event)
    }

    /// The flow the request went out on.
    pub fn flow(&self) -> Flow {
        self.flow
    }

    pub(super) fn set_flow(&mut self, flow: Flow) {
        self.flow = flow;
    }

    /// Cancels a pending INVITE (RFC 3261 section 9.1): the CANCEL goes out in its own
    /// transaction once a provisional response has arrived, at once if one has. Does
    /// nothing for other methods or once a final response arrived.
    pub async fn cancel(&self) {
        // An error means the transaction has ended, so there is nothing to cancel.
        let _ = self.input.send(Input::Cancel).await;
    }
}

/// The action of either machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Retransmit,
    PassToTu,
    SendAckAndPassToTu,
    SendAck,
    Timeout,
    TransportError,
    Terminated,
}

impl From<ClientInviteAction> for Action {
    fn from(a: ClientInviteAction) -> Self {
        match a {
            ClientInviteAction::Retransmit => Action::Retransmit,
            ClientInviteAction::PassToTu => Action::PassToTu,
            ClientInviteAction::SendAckAndPassToTu => Action::SendAckAndPassToTu,
            ClientInviteAction::SendAck => Action::SendAck,
            ClientInviteAction::Timeout => Action::Timeout,
            ClientInviteAction::TransportError => Action::TransportError,
            ClientInviteAction::Terminated => Action::Terminated,
        }
    }
}

impl From<ClientNonInviteAction> for Action {
    fn from(a: ClientNonInviteAction) -> Self {
        match a {
            ClientNonInviteAction::Retransmit => Action::Retransmit,
            ClientNonInviteAction::PassToTu => Action::PassToTu,
            ClientNonInviteAction::Timeout => Action::Timeout,
            ClientNonInviteAction::TransportError => Action::TransportError,
            ClientNonInviteAction::Terminated => Action::Terminated,
        }
    }
}

/// Either client machine, behind one interface.
enum Machine {
    Invite(ClientInvite),
    NonInvite(ClientNonInvite),
}

impl Machine {
    fn on_response(&mut self, status: u16, now: Instant) -> Option<Action> {
        match self {
            Machine::Invite(m) => m.on_response(status, now).map(Action::from),
            Machine::NonInvite(m) => m.on_response(status, now).map(Action::from),
        }
    }

    fn on_transport_error(&mut self) -> Option<Action> {
        match self {
            Machine::Invite(m) => m.on_transport_error().map(Action::from),
            Machine::NonInvite(m) => m.on_transport_error().map(Action::from),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Machine::Invite(m) => m.poll_timeout(),
            Machine::NonInvite(m) => m.poll_timeout(),
        }
    }

    fn handle_timeout(&mut self, now: Instant) -> Option<Action> {
        match self {
            Machine::Invite(m) => m.handle_timeout(now).map(Action::from),
            Machine::NonInvite(m) => m.handle_timeout(now).map(Action::from),
        }
    }

    fn is_terminated(&self) -> bool {
        match self {
            Machine::Invite(m) => m.is_terminated(),
            Machine::NonInvite(m) => m.is_terminated(),
        }
    }

    /// Whether an INVITE is still waiting for its final response after a provisional.
    fn is_proceeding(&self) -> bool {
        matches!(self, Machine::Invite(m) if m.state() == ClientInviteState::Proceeding)
    }
}

/// Spawns the task of a registered client transaction; the receiver reports how the
/// first send went.
pub(super) fn start(
    inner: Arc<Inner>,
    id: u64,
    key: ClientKey,
    request: Message,
    target: Target,
    input_tx: mpsc::Sender<Input>,
    input_rx: mpsc::Receiver<Input>,
) -> (
    ClientTransaction,
    oneshot::Receiver<Result<Flow, SendError>>,
) {
    let (events_tx, events_rx) = mpsc::channel(inner.config.client_event_queue.max(1));
    let (started_tx, started_rx) = oneshot::channel();
    let flow = match target {
        Target::Flow(flow) => flow,
        // Replaced by the flow actually used once the first send reports it.
        Target::Addr { transport, addr } => Flow {
            transport,
            local: addr,
            remote: addr,
            conn: None,
        },
    };
    tokio::spawn(run(
        inner, id, key, request, target, input_rx, events_tx, started_tx,
    ));
    (
        ClientTransaction {
            events: events_rx,
            input: input_tx,
            flow,
        },
        started_rx,
    )
}

#[allow(clippy::too_many_arguments)] // One call site; a struct would only rename them.
async fn run(
    inner: Arc<Inner>,
    id: u64,
    key: ClientKey,
    request: Message,
    target: Target,
    input: mpsc::Receiver<Input>,
    events: mpsc::Sender<Box<ClientEvent>>,
    started: oneshot::Sender<Result<Flow, SendError>>,
) {
    let bytes = request.to_bytes();
    let flow = match inner.send(target, bytes.clone()).await {
        Ok(flow) => flow,
        Err(error) => {
            inner.remove_client(&key, id);
            metrics::gauge!("hasip_endpoint_transactions", "side" => "client").decrement(1.0);
            let _ = started.send(Err(error));
            return;
        }
    };
    let _ = started.send(Ok(flow));
    let reliability = if flow.transport.is_reliable() {
        Reliability::Reliable
    } else {
        Reliability::Unreliable
    };
    let now = Inner::now();
    let machine = if request.method() == Some(Method::Invite) {
        Machine::Invite(ClientInvite::new(reliability, &inner.config.timers, now))
    } else {
        Machine::NonInvite(ClientNonInvite::new(reliability, &inner.config.timers, now))
    };
    let mut task = Task {
        inner,
        request,
        bytes,
        flow,
        machine,
        events,
        ack: None,
        cancel_wanted: false,
        cancel_sent: false,
    };
    task.run(input).await;
    task.inner.remove_client(&key, id);
    metrics::gauge!("hasip_endpoint_transactions", "side" => "client").decrement(1.0);
}

struct Task {
    inner: Arc<Inner>,
    request: Message,
    /// The request as sent, for retransmissions.
    bytes: Bytes,
    flow: Flow,
    machine: Machine,
    events: mpsc::Sender<Box<ClientEvent>>,
    /// The ACK for a non-2xx final, resent when the final is retransmitted.
    ack: Option<Bytes>,
    cancel_wanted: bool,
    cancel_sent: bool,
}

impl Task {
    async fn run(&mut self, mut input: mpsc::Receiver<Input>) {
        while !self.machine.is_terminated() {
            let deadline = self.machine.poll_timeout();
            tokio::select! {
                received = input.recv() => match received {
                    Some(Input::Response(response)) => self.on_response(*response).await,
                    Some(Input::Cancel) => {
                        self.cancel_wanted = true;
                        self.maybe_cancel();
                    }
                    None => break,
                },
                () = sleep_until(deadline) => self.fire_timers().await,
            }
        }
    }

    fn emit(&self, event: ClientEvent) {
        // Full: the application is not reading; closed: it dropped the handle.
        if let Err(error) = self.events.try_send(Box::new(event)) {
            tracing::debug!(%error, "client transaction event dropped");
        }
    }

    async fn on_response(&mut self, response: Message) {
        let Some(status) = response.status_code() else {
            return;
        };
        let Some(action) = self.machine.on_response(status, Inner::now()) else {
            return;
        };
        match action {
            Action::PassToTu if status < 200 => {
                self.emit(ClientEvent::Provisional(response));
                self.maybe_cancel();
            }
            Action::PassToTu => self.emit(ClientEvent::Final(response)),
            Action::SendAckAndPassToTu => {
                let ack = ack_for(&self.request, &response);
                self.ack = Some(ack.clone());
                self.send(ack).await;
                self.emit(ClientEvent::Final(response));
            }
            Action::SendAck => {
                if let Some(ack) = self.ack.clone() {
                    self.send(ack).await;
                }
            }
            other => self.on_action(other).await,
        }
    }

    /// Sends the CANCEL once it is wanted and a provisional has arrived (RFC 3261
    /// section 9.1), in its own client transaction over the INVITE's flow.
    fn maybe_cancel(&mut self) {
        if !self.cancel_wanted || self.cancel_sent || !self.machine.is_proceeding() {
            return;
        }
        self.cancel_sent = true;
        let cancel = match Message::parse(cancel_for(&self.request), &self.inner.config.limits) {
            Ok(cancel) => cancel,
            Err(error) => {
                tracing::warn!(%error, "could not build a CANCEL");
                return;
            }
        };
        match self.inner.start_client(cancel, Target::Flow(self.flow)) {
            // Nobody reads the CANCEL's events; its transaction runs on by itself.
            Ok(_) => {}
            Err(error) => tracing::debug!(%error, "could not start the CANCEL"),
        }
    }

    async fn fire_timers(&mut self) {
        // Each firing moves the deadline on, so this ends.
        while let Some(at) = self.machine.poll_timeout() {
            let now = Inner::now();
            if at > now {
                break;
            }
            match self.machine.handle_timeout(now) {
                Some(action) => self.on_action(action).await,
                None => break,
            }
        }
    }

    async fn on_action(&mut self, action: Action) {
        match action {
            Action::Retransmit => self.send(self.bytes.clone()).await,
            Action::Timeout => self.emit(ClientEvent::Timeout),
            Action::TransportError => self.emit(ClientEvent::TransportError),
            Action::PassToTu
            | Action::SendAckAndPassToTu
            | Action::SendAck
            | Action::Terminated => {}
        }
    }

    /// Sends over the transaction's flow; a failure is the machine's transport error.
    async fn send(&mut self, bytes: Bytes) {
        if let Err(error) = self.inner.transports.send(&self.flow, bytes).await {
            tracing::debug!(%error, flow = ?self.flow, "client transaction send failed");
            if self.machine.on_transport_error() == Some(Action::TransportError) {
                self.emit(ClientEvent::TransportError);
            }
        }
    }
}
