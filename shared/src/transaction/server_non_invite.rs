//! The non-INVITE server transaction (RFC 3261 section 17.2.2, Figure 8).
//!
//! It re-sends the last response when the request is retransmitted and, once a final
//! response went out, absorbs request retransmissions for Timer J (64*T1 on unreliable
//! transports, zero on reliable ones).

use std::time::Instant;

use super::timers::{deadline, due, Reliability, TimerConfig, TimerKind};
use super::StatusClass;

/// States of the non-INVITE server transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerNonInviteState {
    /// The request arrived; the TU has not answered.
    Trying,
    /// The TU sent a provisional response.
    Proceeding,
    /// The TU sent a final response; request retransmissions get it again.
    Completed,
    /// Done; the shell drops the transaction.
    Terminated,
}

/// What the shell does after an event on a non-INVITE server transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerNonInviteAction {
    /// Send the response the TU just gave and keep it as the last response.
    SendResponse,
    /// Send the kept last response again, byte for byte.
    ResendResponse,
    /// The transport failed sending a response: tell the TU (RFC 3261 section 17.2.4).
    TransportError,
    /// Timer J fired: the transaction ended quietly.
    Terminated,
}

/// A non-INVITE server transaction (RFC 3261 section 17.2.2).
#[derive(Debug, Clone)]
pub struct ServerNonInvite {
    state: ServerNonInviteState,
    reliability: Reliability,
    config: TimerConfig,
    timer_j: Option<Instant>,
}

impl ServerNonInvite {
    /// Starts the transaction at `now`, when the request arrived; the shell passes the
    /// request to the TU.
    pub fn new(reliability: Reliability, config: &TimerConfig, _now: Instant) -> Self {
        ServerNonInvite {
            state: ServerNonInviteState::Trying,
            reliability,
            config: *config,
            timer_j: None,
        }
    }

    /// The current state.
    pub fn state(&self) -> ServerNonInviteState {
        self.state
    }

    /// Whether the shell should drop the transaction.
    pub fn is_terminated(&self) -> bool {
        self.state == ServerNonInviteState::Terminated
    }

    /// A retransmission of the request arrived.
    pub fn on_request(&mut self, _now: Instant) -> Option<ServerNonInviteAction> {
        match self.state {
            ServerNonInviteState::Proceeding | ServerNonInviteState::Completed => {
                Some(ServerNonInviteAction::ResendResponse)
            }
            // Nothing to re-send yet; the TU already has the request.
            ServerNonInviteState::Trying | ServerNonInviteState::Terminated => None,
        }
    }

    /// The TU hands over a response with `status`. `SendResponse` means send it; `None`
    /// means the state forbids it and the shell discards it.
    pub fn send_response(&mut self, status: u16, now: Instant) -> Option<ServerNonInviteAction> {
        let class = StatusClass::of(status)?;
        match (self.state, class) {
            (
                ServerNonInviteState::Trying | ServerNonInviteState::Proceeding,
                StatusClass::Provisional,
            ) => {
                self.state = ServerNonInviteState::Proceeding;
            }
            (
                ServerNonInviteState::Trying | ServerNonInviteState::Proceeding,
                StatusClass::Success | StatusClass::Failure,
            ) => {
                let wait = self.config.initial(TimerKind::J, self.reliability);
                if wait.is_zero() {
                    self.terminate();
                } else {
                    self.state = ServerNonInviteState::Completed;
                    self.timer_j = deadline(now, wait);
                }
            }
            _ => return None,
        }
        Some(ServerNonInviteAction::SendResponse)
    }

    /// The transport reported a failure sending a response (RFC 3261 section 17.2.4).
    pub fn on_transport_error(&mut self) -> Option<ServerNonInviteAction> {
        match self.state {
            ServerNonInviteState::Terminated => None,
            _ => {
                self.terminate();
                Some(ServerNonInviteAction::TransportError)
            }
        }
    }

    /// The earliest armed deadline, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timer_j
    }

    /// Fires the timer that is due at `now`, if any.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<ServerNonInviteAction> {
        if due(self.timer_j, now) {
            self.terminate();
            return Some(ServerNonInviteAction::Terminated);
        }
        None
    }

    fn terminate(&mut self) {
        self.state = ServerNonInviteState::Terminated;
        self.timer_j = None;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use ServerNonInviteAction as A;
    use ServerNonInviteState as S;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn udp(t0: Instant) -> ServerNonInvite {
        ServerNonInvite::new(Reliability::Unreliable, &TimerConfig::default(), t0)
    }

    fn tcp(t0: Instant) -> ServerNonInvite {
        ServerNonInvite::new(Reliability::Reliable, &TimerConfig::default(), t0)
    }

    #[test]
    fn retransmissions_in_trying_are_absorbed() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        assert_eq!(tx.poll_timeout(), None);
        assert_eq!(tx.on_request(t0 + ms(500)), None);
        assert_eq!(tx.state(), S::Trying);
    }

    #[test]
    fn provisional_is_resent_on_retransmission() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        assert_eq!(tx.send_response(100, t0), Some(A::SendResponse));
        assert_eq!(tx.state(), S::Proceeding);
        assert_eq!(tx.on_request(t0 + ms(500)), Some(A::ResendResponse));
        assert_eq!(tx.send_response(183, t0 + ms(600)), Some(A::SendResponse));
        assert_eq!(tx.state(), S::Proceeding);
    }

    #[test]
    fn final_response_completes_and_timer_j_ends_it() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        tx.send_response(100, t0);
        assert_eq!(tx.send_response(200, t0 + ms(100)), Some(A::SendResponse));
        assert_eq!(tx.state(), S::Completed);
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(32_100)));
        assert_eq!(tx.on_request(t0 + ms(600)), Some(A::ResendResponse));
        assert_eq!(tx.send_response(500, t0 + ms(700)), None);
        assert_eq!(tx.send_response(100, t0 + ms(700)), None);
        assert_eq!(tx.handle_timeout(t0 + ms(32_099)), None);
        assert_eq!(tx.handle_timeout(t0 + ms(32_100)), Some(A::Terminated));
        assert!(tx.is_terminated());
        assert_eq!(tx.on_request(t0 + ms(40_000)), None);
    }

    #[test]
    fn final_from_trying_completes() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        assert_eq!(tx.send_response(401, t0), Some(A::SendResponse));
        assert_eq!(tx.state(), S::Completed);
    }

    #[test]
    fn reliable_transport_has_no_timer_j() {
        let t0 = Instant::now();
        let mut tx = tcp(t0);
        assert_eq!(tx.send_response(200, t0), Some(A::SendResponse));
        assert!(tx.is_terminated());
        assert_eq!(tx.poll_timeout(), None);
    }

    #[test]
    fn transport_error_terminates() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        tx.send_response(200, t0);
        assert_eq!(tx.on_transport_error(), Some(A::TransportError));
        assert!(tx.is_terminated());
        assert_eq!(tx.poll_timeout(), None);
        assert_eq!(tx.on_transport_error(), None);
    }

    #[test]
    fn invalid_status_is_refused() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        assert_eq!(tx.send_response(0, t0), None);
        assert_eq!(tx.send_response(999, t0), None);
        assert_eq!(tx.state(), S::Trying);
    }
}
