//! The INVITE server transaction (RFC 3261 section 17.2.1, Figure 7, as updated by
//! RFC 6026 section 8.5-8.7 with the Accepted state and Timer L).
//!
//! It sends 100 Trying if the TU has not answered within 200 ms, re-sends the last
//! response when the INVITE is retransmitted, retransmits a 300-699 with Timer G (T1
//! doubling up to T2) on unreliable transports until the ACK arrives or Timer H
//! (64*T1) gives up, then absorbs ACK retransmissions for Timer I.

use std::time::{Duration, Instant};

use super::timers::{deadline, due, earliest, Reliability, TimerConfig, TimerKind};
use super::StatusClass;

/// States of the INVITE server transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerInviteState {
    /// The INVITE arrived; no final response yet.
    Proceeding,
    /// A 300-699 was sent; waiting for the ACK.
    Completed,
    /// The ACK arrived; its retransmissions are absorbed.
    Confirmed,
    /// A 2xx was sent (RFC 6026); INVITE retransmissions are absorbed and ACKs pass up.
    Accepted,
    /// Done; the shell drops the transaction.
    Terminated,
}

/// What the shell does after an event on an INVITE server transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerInviteAction {
    /// Build a 100 Trying for the INVITE, send it and keep it as the last response.
    SendTrying,
    /// Send the response the TU just gave and keep it as the last response.
    SendResponse,
    /// Send the kept last response again, byte for byte.
    ResendResponse,
    /// An ACK for a 2xx arrived in Accepted: pass it up to the TU.
    PassAckToTu,
    /// Timer H fired without an ACK: tell the TU.
    Timeout,
    /// The transport failed sending a response: tell the TU (RFC 3261 section 17.2.4).
    TransportError,
    /// Timer I or L fired: the transaction ended quietly.
    Terminated,
}

/// An INVITE server transaction (RFC 3261 section 17.2.1, RFC 6026).
#[derive(Debug, Clone)]
pub struct ServerInvite {
    state: ServerInviteState,
    reliability: Reliability,
    config: TimerConfig,
    responded: bool,
    timer_trying: Option<Instant>,
    timer_g: Option<Instant>,
    interval_g: Duration,
    timer_h: Option<Instant>,
    timer_i: Option<Instant>,
    timer_l: Option<Instant>,
}

impl ServerInvite {
    /// Starts the transaction at `now`, when the INVITE arrived; the shell passes the
    /// INVITE to the TU.
    pub fn new(reliability: Reliability, config: &TimerConfig, now: Instant) -> Self {
        ServerInvite {
            state: ServerInviteState::Proceeding,
            reliability,
            config: *config,
            responded: false,
            timer_trying: deadline(now, config.initial(TimerKind::Trying, reliability)),
            timer_g: None,
            interval_g: config.initial(TimerKind::G, reliability),
            timer_h: None,
            timer_i: None,
            timer_l: None,
        }
    }

    /// The current state.
    pub fn state(&self) -> ServerInviteState {
        self.state
    }

    /// Whether the shell should drop the transaction.
    pub fn is_terminated(&self) -> bool {
        self.state == ServerInviteState::Terminated
    }

    /// A retransmission of the INVITE arrived.
    pub fn on_request(&mut self, _now: Instant) -> Option<ServerInviteAction> {
        match self.state {
            ServerInviteState::Proceeding if self.responded => {
                Some(ServerInviteAction::ResendResponse)
            }
            // The client is retransmitting, so a 100 stops it now rather than at 200 ms.
            ServerInviteState::Proceeding => Some(self.trying_sent()),
            ServerInviteState::Completed => Some(ServerInviteAction::ResendResponse),
            ServerInviteState::Confirmed
            | ServerInviteState::Accepted
            | ServerInviteState::Terminated => None,
        }
    }

    /// The TU hands over a response with `status`. `SendResponse` means send it; `None`
    /// means the state forbids it and the shell discards it.
    pub fn send_response(&mut self, status: u16, now: Instant) -> Option<ServerInviteAction> {
        let class = StatusClass::of(status)?;
        match (self.state, class) {
            (ServerInviteState::Proceeding, StatusClass::Provisional) => {
                self.responded = true;
                self.timer_trying = None;
            }
            (ServerInviteState::Proceeding, StatusClass::Success) => {
                self.responded = true;
                self.timer_trying = None;
                self.state = ServerInviteState::Accepted;
                self.timer_l = deadline(now, self.config.initial(TimerKind::L, self.reliability));
            }
            (ServerInviteState::Proceeding, StatusClass::Failure) => {
                self.responded = true;
                self.timer_trying = None;
                self.state = ServerInviteState::Completed;
                if !self.reliability.is_reliable() {
                    self.timer_g = deadline(now, self.interval_g);
                }
                self.timer_h = deadline(now, self.config.initial(TimerKind::H, self.reliability));
            }
            // More 2xx (for other forks or retransmitted by the TU) still go out.
            (ServerInviteState::Accepted, StatusClass::Success) => {}
            _ => return None,
        }
        Some(ServerInviteAction::SendResponse)
    }

    /// An ACK matching this transaction arrived.
    pub fn on_ack(&mut self, now: Instant) -> Option<ServerInviteAction> {
        match self.state {
            ServerInviteState::Completed => {
                self.timer_g = None;
                self.timer_h = None;
                let wait = self.config.initial(TimerKind::I, self.reliability);
                if wait.is_zero() {
                    self.terminate();
                } else {
                    self.state = ServerInviteState::Confirmed;
                    self.timer_i = deadline(now, wait);
                }
                None
            }
            ServerInviteState::Accepted => Some(ServerInviteAction::PassAckToTu),
            ServerInviteState::Proceeding
            | ServerInviteState::Confirmed
            | ServerInviteState::Terminated => None,
        }
    }

    /// The transport reported a failure sending a response (RFC 3261 section 17.2.4).
    pub fn on_transport_error(&mut self) -> Option<ServerInviteAction> {
        match self.state {
            ServerInviteState::Proceeding | ServerInviteState::Completed => {
                self.terminate();
                Some(ServerInviteAction::TransportError)
            }
            // The TU retransmits its 2xx itself, so it hears of the failure, but the
            // transaction stays to absorb INVITE retransmissions and pass up ACKs.
            ServerInviteState::Accepted => Some(ServerInviteAction::TransportError),
            ServerInviteState::Confirmed | ServerInviteState::Terminated => None,
        }
    }

    /// The earliest armed deadline, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let retransmit = earliest(self.timer_trying, self.timer_g);
        let end = earliest(earliest(self.timer_h, self.timer_i), self.timer_l);
        earliest(retransmit, end)
    }

    /// Fires the timer that is due at `now`, if any; call again while one is due.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<ServerInviteAction> {
        if due(self.timer_h, now) {
            self.terminate();
            return Some(ServerInviteAction::Timeout);
        }
        if due(self.timer_i, now) || due(self.timer_l, now) {
            self.terminate();
            return Some(ServerInviteAction::Terminated);
        }
        if due(self.timer_g, now) {
            self.interval_g = self.config.next_interval(TimerKind::G, self.interval_g);
            self.timer_g = deadline(now, self.interval_g);
            return Some(ServerInviteAction::ResendResponse);
        }
        if due(self.timer_trying, now) {
            return Some(self.trying_sent());
        }
        None
    }

    /// Records the 100 Trying the shell is told to send.
    fn trying_sent(&mut self) -> ServerInviteAction {
        self.responded = true;
        self.timer_trying = None;
        ServerInviteAction::SendTrying
    }

    fn terminate(&mut self) {
        self.state = ServerInviteState::Terminated;
        self.timer_trying = None;
        self.timer_g = None;
        self.timer_h = None;
        self.timer_i = None;
        self.timer_l = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ServerInviteAction as A;
    use ServerInviteState as S;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn udp(t0: Instant) -> ServerInvite {
        ServerInvite::new(Reliability::Unreliable, &TimerConfig::default(), t0)
    }

    fn tcp(t0: Instant) -> ServerInvite {
        ServerInvite::new(Reliability::Reliable, &TimerConfig::default(), t0)
    }

    fn run(tx: &mut ServerInvite, t0: Instant, limit: Duration) -> Vec<(u128, A)> {
        let mut seen = vec![];
        while let Some(at) = tx.poll_timeout() {
            if at > t0 + limit {
                break;
            }
            if let Some(action) = tx.handle_timeout(at) {
                seen.push(((at - t0).as_millis(), action));
            }
        }
        seen
    }

    #[test]
    fn trying_is_sent_after_200_ms_without_an_answer() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(200)));
        assert_eq!(tx.handle_timeout(t0 + ms(199)), None);
        assert_eq!(tx.handle_timeout(t0 + ms(200)), Some(A::SendTrying));
        assert_eq!(tx.poll_timeout(), None);
        assert_eq!(tx.on_request(t0 + ms(500)), Some(A::ResendResponse));
    }

    #[test]
    fn tu_answer_within_200_ms_cancels_trying() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        assert_eq!(tx.send_response(180, t0 + ms(50)), Some(A::SendResponse));
        assert_eq!(tx.poll_timeout(), None);
        assert_eq!(tx.handle_timeout(t0 + ms(200)), None);
        assert_eq!(tx.on_request(t0 + ms(500)), Some(A::ResendResponse));
        assert_eq!(tx.send_response(183, t0 + ms(600)), Some(A::SendResponse));
        assert_eq!(tx.state(), S::Proceeding);
    }

    #[test]
    fn retransmitted_invite_before_any_answer_gets_a_trying() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        assert_eq!(tx.on_request(t0 + ms(100)), Some(A::SendTrying));
        assert_eq!(tx.poll_timeout(), None);
        assert_eq!(tx.on_request(t0 + ms(150)), Some(A::ResendResponse));
    }

    #[test]
    fn failure_is_retransmitted_by_timer_g_until_timer_h() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        assert_eq!(tx.send_response(486, t0), Some(A::SendResponse));
        assert_eq!(tx.state(), S::Completed);
        let seen = run(&mut tx, t0, ms(40_000));
        let resends: Vec<u128> = seen
            .iter()
            .filter(|(_, a)| *a == A::ResendResponse)
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(
            resends,
            [500, 1500, 3500, 7500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500]
        );
        assert_eq!(seen.last(), Some(&(32_000, A::Timeout)));
        assert!(tx.is_terminated());
    }

    #[test]
    fn ack_confirms_and_timer_i_absorbs_acks() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        tx.send_response(404, t0);
        assert_eq!(tx.handle_timeout(t0 + ms(500)), Some(A::ResendResponse));
        assert_eq!(tx.on_request(t0 + ms(600)), Some(A::ResendResponse));
        assert_eq!(tx.on_ack(t0 + ms(700)), None);
        assert_eq!(tx.state(), S::Confirmed);
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(5700)));
        assert_eq!(tx.on_ack(t0 + ms(800)), None);
        assert_eq!(tx.on_request(t0 + ms(900)), None);
        assert_eq!(tx.send_response(500, t0 + ms(900)), None);
        assert_eq!(tx.handle_timeout(t0 + ms(5700)), Some(A::Terminated));
        assert!(tx.is_terminated());
    }

    #[test]
    fn success_moves_to_accepted_until_timer_l() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        assert_eq!(tx.send_response(100, t0), Some(A::SendResponse));
        assert_eq!(tx.send_response(200, t0 + ms(100)), Some(A::SendResponse));
        assert_eq!(tx.state(), S::Accepted);
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(32_100)));
        // The TU, not the transaction, retransmits the 2xx.
        assert_eq!(tx.on_request(t0 + ms(600)), None);
        assert_eq!(tx.send_response(200, t0 + ms(600)), Some(A::SendResponse));
        assert_eq!(tx.send_response(486, t0 + ms(600)), None);
        assert_eq!(tx.send_response(180, t0 + ms(600)), None);
        assert_eq!(tx.on_ack(t0 + ms(700)), Some(A::PassAckToTu));
        assert_eq!(tx.on_ack(t0 + ms(800)), Some(A::PassAckToTu));
        assert_eq!(tx.on_transport_error(), Some(A::TransportError));
        assert_eq!(tx.state(), S::Accepted);
        assert_eq!(tx.handle_timeout(t0 + ms(32_100)), Some(A::Terminated));
        assert!(tx.is_terminated());
    }

    #[test]
    fn reliable_transport_never_retransmits_and_skips_timer_i() {
        let t0 = Instant::now();
        let mut tx = tcp(t0);
        tx.send_response(480, t0);
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(32_000)));
        assert_eq!(run(&mut tx.clone(), t0, ms(40_000)), [(32_000, A::Timeout)]);
        assert_eq!(tx.on_ack(t0 + ms(10)), None);
        assert!(tx.is_terminated());
        assert_eq!(tx.poll_timeout(), None);
    }

    #[test]
    fn a_late_call_times_out_before_retransmitting() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        tx.send_response(500, t0);
        // The shell woke up long after both G and H were due: H wins.
        assert_eq!(tx.handle_timeout(t0 + ms(40_000)), Some(A::Timeout));
        assert!(tx.is_terminated());
        assert_eq!(tx.handle_timeout(t0 + ms(40_000)), None);
    }

    #[test]
    fn ack_before_final_is_ignored() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        assert_eq!(tx.on_ack(t0), None);
        assert_eq!(tx.state(), S::Proceeding);
    }

    #[test]
    fn transport_error_terminates_proceeding_and_completed() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        assert_eq!(tx.on_transport_error(), Some(A::TransportError));
        assert!(tx.is_terminated());

        let mut tx = udp(t0);
        tx.send_response(500, t0);
        assert_eq!(tx.on_transport_error(), Some(A::TransportError));
        assert!(tx.is_terminated());
        assert_eq!(tx.poll_timeout(), None);
        assert_eq!(tx.on_transport_error(), None);

        let mut tx = udp(t0);
        tx.send_response(500, t0);
        tx.on_ack(t0);
        assert_eq!(tx.on_transport_error(), None);
        assert_eq!(tx.state(), S::Confirmed);
    }

    #[test]
    fn invalid_status_is_refused() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        assert_eq!(tx.send_response(99, t0), None);
        assert_eq!(tx.send_response(700, t0), None);
        assert_eq!(tx.state(), S::Proceeding);
    }
}
