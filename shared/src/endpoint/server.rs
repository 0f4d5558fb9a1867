//! Server transactions (RFC 3261 section 17.2): one task per transaction drives a
//! [`ServerInvite`] or [`ServerNonInvite`] and answers retransmissions itself, until a
//! non-INVITE one completes over UDP: then the table answers them (see
//! [`super::server_table`]) and the task ends.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

use super::server_table::Completed;
use super::{Incoming, Inner, SendError};
use crate::sip::builder::response_to;
use crate::sip::{Message, Method};
use crate::transaction::{
    Reliability, ServerInvite, ServerInviteAction, ServerKey, ServerNonInvite,
    ServerNonInviteAction, ServerNonInviteState,
};
use crate::transport::Flow;

/// What a server transaction task is told.
///
/// Boxed payloads keep the slots small: a tokio channel allocates its slots 32 at a time
/// up front, and every transaction keeps its channel until Timer J or H ends it.
#[derive(Debug)]
pub(super) enum Input {
    /// The request came again.
    Retransmission,
    /// An ACK matching an INVITE transaction, and how it arrived.
    Ack(Box<(Message, Flow)>),
    /// A CANCEL matched this INVITE transaction.
    Cancel,
    /// The application answers.
    Respond(Box<Respond>),
}

/// A response from the application, and where to report how sending it went.
#[derive(Debug)]
pub(super) struct Respond {
    bytes: Bytes,
    status: u16,
    done: oneshot::Sender<Result<(), SendError>>,
}

/// The application's handle on a server transaction; cheap to clone.
#[derive(Debug, Clone)]
pub struct ServerTransaction {
    input: mpsc::Sender<Input>,
    flow: Flow,
    cancelled: watch::Receiver<bool>,
}

impl ServerTransaction {
    /// The flow the request arrived on, over which every response goes back.
    pub fn request_flow(&self) -> Flow {
        self.flow
    }

    /// Sends a response (the bytes of a whole message) through the transaction, which
    /// keeps it for retransmissions of the request (and Timer G on UDP).
    pub async fn respond(&self, response: Bytes) -> Result<(), SendError> {
        let status = status_of(&response).ok_or(SendError::BadResponse)?;
        let (done, result) = oneshot::channel();
        self.input
            .send(Input::Respond(Box::new(Respond {
                bytes: response,
                status,
                done,
            })))
            .await
            .map_err(|_| SendError::TransactionGone)?;
        result.await.map_err(|_| SendError::TransactionGone)?
    }

    /// Sends a response given as a message; see [`ServerTransaction::respond`].
    pub async fn respond_message(&self, response: &Message) -> Result<(), SendError> {
        self.respond(response.to_bytes()).await
    }

    /// Resolves when a CANCEL for this INVITE arrives (the layer has answered it 200);
    /// never resolves for other methods or once the transaction ended uncancelled.
    pub fn cancelled(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut cancelled = self.cancelled.clone();
        async move {
            if cancelled.wait_for(|c| *c).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Whether a CANCEL for this INVITE has arrived.
    pub fn is_cancelled(&self) -> bool {
        *self.cancelled.borrow()
    }
}

/// The status code of a response's bytes (`SIP/2.0 200 OK`).
fn status_of(bytes: &[u8]) -> Option<u16> {
    let rest = bytes.strip_prefix(b"SIP/2.0 ")?;
    let digits = rest.get(..3)?;
    if rest.get(3).is_some_and(|&b| b != b' ') || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The action of either machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    SendTrying,
    SendResponse,
    ResendResponse,
    PassAckToTu,
    Timeout,
    TransportError,
    Terminated,
}

impl From<ServerInviteAction> for Action {
    fn from(a: ServerInviteAction) -> Self {
        match a {
            ServerInviteAction::SendTrying => Action::SendTrying,
            ServerInviteAction::SendResponse => Action::SendResponse,
            ServerInviteAction::ResendResponse => Action::ResendResponse,
            ServerInviteAction::PassAckToTu => Action::PassAckToTu,
            ServerInviteAction::Timeout => Action::Timeout,
            ServerInviteAction::TransportError => Action::TransportError,
            ServerInviteAction::Terminated => Action::Terminated,
        }
    }
}

impl From<ServerNonInviteAction> for Action {
    fn from(a: ServerNonInviteAction) -> Self {
        match a {
            ServerNonInviteAction::SendResponse => Action::SendResponse,
            ServerNonInviteAction::ResendResponse => Action::ResendResponse,
            ServerNonInviteAction::TransportError => Action::TransportError,
            ServerNonInviteAction::Terminated => Action::Terminated,
        }
    }
}

/// Either server machine, behind one interface.
enum Machine {
    Invite(ServerInvite),
    NonInvite(ServerNonInvite),
}

impl Machine {
    fn on_request(&mut self, now: Instant) -> Option<Action> {
        match self {
            Machine::Invite(m) => m.on_request(now).map(Action::from),
            Machine::NonInvite(m) => m.on_request(now).map(Action::from),
        }
    }

    fn send_response(&mut self, status: u16, now: Instant) -> Option<Action> {
        match self {
            Machine::Invite(m) => m.send_response(status, now).map(Action::from),
            Machine::NonInvite(m) => m.send_response(status, now).map(Action::from),
        }
    }

    fn on_ack(&mut self, now: Instant) -> Option<Action> {
        match self {
            Machine::Invite(m) => m.on_ack(now).map(Action::from),
            Machine::NonInvite(_) => None,
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
}

/// Sleeps until `deadline`, or forever without one.
pub(super) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

/// Spawns the task of a registered server transaction and returns its handle.
pub(super) fn start(
    inner: Arc<Inner>,
    id: u64,
    key: ServerKey,
    request: Message,
    flow: Flow,
    input_tx: mpsc::Sender<Input>,
    input_rx: mpsc::Receiver<Input>,
) -> ServerTransaction {
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let reliability = if flow.transport.is_reliable() {
        Reliability::Reliable
    } else {
        Reliability::Unreliable
    };
    let now = Inner::now();
    let timers = &inner.config.timers;
    let machine = if request.method() == Some(Method::Invite) {
        Machine::Invite(ServerInvite::new(reliability, timers, now))
    } else {
        Machine::NonInvite(ServerNonInvite::new(reliability, timers, now))
    };
    let task = Task {
        inner,
        id,
        key,
        alias: None,
        input: input_tx.clone(),
        request: Some(request),
        flow,
        machine,
        last: None,
        final_sent: false,
        abandoned: false,
        cancelled: cancel_tx,
    };
    tokio::spawn(task.run(input_rx));
    ServerTransaction {
        input: input_tx,
        flow,
        cancelled: cancel_rx,
    }
}

struct Task {
    inner: Arc<Inner>,
    id: u64,
    key: ServerKey,
    /// The RFC 2543 key the ACK will carry, registered once a final response went out.
    alias: Option<ServerKey>,
    /// Our own input queue, for registering the alias.
    input: mpsc::Sender<Input>,
    /// The request, for a 100 Trying or a 500; dropped once a final response went out,
    /// as the transaction may live on for Timer J (32 s on UDP).
    request: Option<Message>,
    flow: Flow,
    machine: Machine,
    /// The last response sent, resent on retransmissions and Timer G.
    last: Option<Bytes>,
    /// Whether a final response went out.
    final_sent: bool,
    /// Whether every application handle is gone.
    abandoned: bool,
    /// Also tells, by closing, that the application dropped every handle.
    cancelled: watch::Sender<bool>,
}

impl Task {
    async fn run(mut self, mut input: mpsc::Receiver<Input>) {
        while !self.machine.is_terminated() {
            let deadline = self.machine.poll_timeout();
            tokio::select! {
                received = input.recv() => match received {
                    Some(received) => self.on_input(received).await,
                    None => break,
                },
                () = sleep_until(deadline) => self.fire_timers().await,
                () = self.cancelled.closed(), if !self.abandoned => self.on_abandoned().await,
            }
            if self.completed_non_invite() {
                // What came in while the response went out is handled here; what comes
                // after the hand-over finds the table's entry.
                while let Ok(received) = input.try_recv() {
                    self.on_input(received).await;
                }
                if self.completed_non_invite() {
                    return self.park();
                }
            }
        }
        self.finish();
    }

    /// Whether this is a non-INVITE transaction waiting out Timer J.
    fn completed_non_invite(&self) -> bool {
        matches!(&self.machine, Machine::NonInvite(m) if m.state() == ServerNonInviteState::Completed)
    }

    /// Leaves a completed non-INVITE transaction to the table until Timer J.
    fn park(self) {
        let (Machine::NonInvite(machine), Some(response)) = (&self.machine, &self.last) else {
            return self.finish();
        };
        let completed = Completed {
            id: self.id,
            machine: machine.clone(),
            flow: self.flow,
            response: response.clone(),
        };
        if !self.inner.park_server(self.key, completed) {
            super::servers_ended(1);
        }
    }

    /// The transaction ended: its entries go.
    fn finish(self) {
        self.inner.remove_server(&self.key, self.id);
        if let Some(alias) = &self.alias {
            self.inner.remove_server(alias, self.id);
        }
        super::servers_ended(1);
    }

    /// RFC 2543 peers put the final response's To tag in their ACK, which so has
    /// another key than the INVITE (RFC 3261 section 17.2.3); route it here too.
    fn register_ack_alias(&mut self, response: &Bytes) {
        if self.alias.is_some() || !matches!(self.machine, Machine::Invite(_)) {
            return;
        }
        let Ok(response) = Message::parse(response.clone(), &self.inner.config.limits) else {
            return;
        };
        let Some(tag) = response.to_header().ok().and_then(|to| to.tag()) else {
            return;
        };
        let Some(alias) = self.key.ack_key(tag).filter(|alias| *alias != self.key) else {
            return;
        };
        self.inner
            .add_server_alias(alias.clone(), self.id, self.input.clone());
        self.alias = Some(alias);
    }

    async fn on_input(&mut self, input: Input) {
        let now = Inner::now();
        match input {
            Input::Retransmission => {
                if let Some(action) = self.machine.on_request(now) {
                    let _ = self.act(action, None).await;
                }
            }
            Input::Ack(ack) => {
                if self.machine.on_ack(now) == Some(Action::PassAckToTu) {
                    let (ack, flow) = *ack;
                    self.inner.deliver(Incoming::Ack { ack, flow }).await;
                }
            }
            Input::Cancel => {
                self.cancelled.send_replace(true);
            }
            Input::Respond(respond) => {
                let Respond {
                    bytes,
                    status,
                    done,
                } = *respond;
                let result = match self.machine.send_response(status, now) {
                    Some(action) => {
                        if status >= 200 {
                            self.final_sent = true;
                            self.request = None;
                            self.register_ack_alias(&bytes);
                        }
                        self.act(action, Some(bytes)).await
                    }
                    None => Err(SendError::NotAllowed),
                };
                let _ = done.send(result);
            }
        }
    }

    /// The application dropped every handle without a final response: a 500 ends the
    /// transaction rather than leaving it (and the client) waiting forever.
    async fn on_abandoned(&mut self) {
        self.abandoned = true;
        let Some(request) = self.request.as_ref().filter(|_| !self.final_sent) else {
            return;
        };
        let tag = super::new_tag();
        let response = response_to(request, 500, "Server Internal Error", Some(&tag)).build();
        if let Some(action) = self.machine.send_response(500, Inner::now()) {
            self.final_sent = true;
            self.request = None;
            let _ = self.act(action, Some(response)).await;
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
                Some(action) => {
                    let _ = self.act(action, None).await;
                }
                None => break,
            }
        }
    }

    /// Carries out an action; `response` is the application's response for SendResponse.
    async fn act(&mut self, action: Action, response: Option<Bytes>) -> Result<(), SendError> {
        let bytes = match action {
            Action::SendTrying => {
                let Some(request) = &self.request else {
                    return Ok(());
                };
                let trying = response_to(request, 100, "Trying", None).build();
                self.last = Some(trying.clone());
                trying
            }
            Action::SendResponse => {
                let Some(bytes) = response else {
                    return Ok(());
                };
                self.last = Some(bytes.clone());
                bytes
            }
            Action::ResendResponse => match &self.last {
                Some(bytes) => bytes.clone(),
                None => return Ok(()),
            },
            Action::PassAckToTu | Action::Timeout | Action::TransportError | Action::Terminated => {
                return Ok(())
            }
        };
        match self.inner.transports.send(&self.flow, bytes).await {
            Ok(()) => Ok(()),
            Err(error) => {
                tracing::debug!(%error, flow = ?self.flow, "sending a response failed");
                self.machine.on_transport_error();
                Err(error.into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_from_bytes() {
        assert_eq!(status_of(b"SIP/2.0 200 OK\r\n"), Some(200));
        assert_eq!(status_of(b"SIP/2.0 486 Busy Here\r\n"), Some(486));
        assert_eq!(status_of(b"SIP/2.0 2000 OK\r\n"), None);
        assert_eq!(status_of(b"SIP/2.0 20"), None);
        assert_eq!(status_of(b"INVITE sip:a SIP/2.0\r\n"), None);
        assert_eq!(status_of(b""), None);
    }
}
