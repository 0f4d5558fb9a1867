//! The INVITE client transaction (RFC 3261 section 17.1.1, Figure 5, as updated by
//! RFC 6026 section 8.4 with the Accepted state and Timer M).
//!
//! Timer A retransmits the INVITE on unreliable transports (T1, doubling), Timer B ends
//! the Calling state after 64*T1, Timer D absorbs retransmitted non-2xx finals (each
//! one ACKed again), and Timer M keeps the transaction alive after a 2xx so that every
//! 2xx of a forked INVITE still reaches the TU.

use std::time::{Duration, Instant};

use super::timers::{deadline, due, earliest, Reliability, TimerConfig, TimerKind};
use super::StatusClass;

/// States of the INVITE client transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientInviteState {
    /// The INVITE was sent; no response yet.
    Calling,
    /// A provisional response arrived.
    Proceeding,
    /// A 300-699 arrived and was ACKed; its retransmissions are ACKed again.
    Completed,
    /// A 2xx arrived (RFC 6026); further 2xx still pass up, until Timer M.
    Accepted,
    /// Done; the shell drops the transaction.
    Terminated,
}

/// What the shell does after an event on an INVITE client transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientInviteAction {
    /// Send the INVITE again, byte for byte.
    Retransmit,
    /// Pass the response just received up to the TU.
    PassToTu,
    /// Build the ACK from the INVITE and this 300-699 response (RFC 3261 section
    /// 17.1.1.3), send it and keep it, then pass the response up to the TU.
    SendAckAndPassToTu,
    /// A retransmitted 300-699 arrived: send the ACK again; the TU hears nothing.
    SendAck,
    /// Timer B fired in Calling: the TU treats it as a 408.
    Timeout,
    /// The transport failed; the TU treats it as a 503 (RFC 3261 section 8.1.3.1).
    TransportError,
    /// Timer D or M fired: the transaction ended quietly.
    Terminated,
}

/// An INVITE client transaction (RFC 3261 section 17.1.1, RFC 6026).
#[derive(Debug, Clone)]
pub struct ClientInvite {
    state: ClientInviteState,
    reliability: Reliability,
    config: TimerConfig,
    timer_a: Option<Instant>,
    interval_a: Duration,
    timer_b: Option<Instant>,
    timer_d: Option<Instant>,
    timer_m: Option<Instant>,
}

impl ClientInvite {
    /// Starts the transaction at `now`, just after the shell sent the INVITE.
    pub fn new(reliability: Reliability, config: &TimerConfig, now: Instant) -> Self {
        let interval_a = config.initial(TimerKind::A, reliability);
        let timer_a = if reliability.is_reliable() {
            None
        } else {
            deadline(now, interval_a)
        };
        ClientInvite {
            state: ClientInviteState::Calling,
            reliability,
            config: *config,
            timer_a,
            interval_a,
            timer_b: deadline(now, config.initial(TimerKind::B, reliability)),
            timer_d: None,
            timer_m: None,
        }
    }

    /// The current state.
    pub fn state(&self) -> ClientInviteState {
        self.state
    }

    /// Whether the shell should drop the transaction.
    pub fn is_terminated(&self) -> bool {
        self.state == ClientInviteState::Terminated
    }

    /// A response matching this transaction arrived.
    pub fn on_response(&mut self, status: u16, now: Instant) -> Option<ClientInviteAction> {
        use ClientInviteState as S;
        let class = StatusClass::of(status)?;
        match (self.state, class) {
            (S::Calling, StatusClass::Provisional) => {
                // Timer B guards only Calling; past it the TU (a proxy's Timer C) decides.
                self.timer_a = None;
                self.timer_b = None;
                self.state = S::Proceeding;
                Some(ClientInviteAction::PassToTu)
            }
            (S::Proceeding, StatusClass::Provisional) => Some(ClientInviteAction::PassToTu),
            (S::Calling | S::Proceeding, StatusClass::Success) => {
                self.timer_a = None;
                self.timer_b = None;
                self.state = S::Accepted;
                self.timer_m = deadline(now, self.config.initial(TimerKind::M, self.reliability));
                Some(ClientInviteAction::PassToTu)
            }
            // Retransmitted or forked 2xx: the TU (not the transaction) ACKs each one.
            (S::Accepted, StatusClass::Success) => Some(ClientInviteAction::PassToTu),
            (S::Calling | S::Proceeding, StatusClass::Failure) => {
                self.timer_a = None;
                self.timer_b = None;
                let wait = self.config.initial(TimerKind::D, self.reliability);
                if wait.is_zero() {
                    self.terminate();
                } else {
                    self.state = S::Completed;
                    self.timer_d = deadline(now, wait);
                }
                Some(ClientInviteAction::SendAckAndPassToTu)
            }
            (S::Completed, StatusClass::Failure) => Some(ClientInviteAction::SendAck),
            _ => None,
        }
    }

    /// The transport reported a failure sending the INVITE or the ACK
    /// (RFC 3261 section 17.1.4).
    pub fn on_transport_error(&mut self) -> Option<ClientInviteAction> {
        match self.state {
            ClientInviteState::Calling
            | ClientInviteState::Proceeding
            | ClientInviteState::Completed => {
                self.terminate();
                Some(ClientInviteAction::TransportError)
            }
            // Nothing is sent in Accepted: 2xx ACKs belong to the TU.
            ClientInviteState::Accepted | ClientInviteState::Terminated => None,
        }
    }

    /// The earliest armed deadline, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest(
            earliest(self.timer_a, self.timer_b),
            earliest(self.timer_d, self.timer_m),
        )
    }

    /// Fires the timer that is due at `now`, if any; call again while one is due.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<ClientInviteAction> {
        if due(self.timer_b, now) {
            self.terminate();
            return Some(ClientInviteAction::Timeout);
        }
        if due(self.timer_d, now) || due(self.timer_m, now) {
            self.terminate();
            return Some(ClientInviteAction::Terminated);
        }
        if due(self.timer_a, now) {
            self.interval_a = self.config.next_interval(TimerKind::A, self.interval_a);
            self.timer_a = deadline(now, self.interval_a);
            return Some(ClientInviteAction::Retransmit);
        }
        None
    }

    fn terminate(&mut self) {
        self.state = ClientInviteState::Terminated;
        self.timer_a = None;
        self.timer_b = None;
        self.timer_d = None;
        self.timer_m = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ClientInviteAction as A;
    use ClientInviteState as S;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn udp(t0: Instant) -> ClientInvite {
        ClientInvite::new(Reliability::Unreliable, &TimerConfig::default(), t0)
    }

    fn tcp(t0: Instant) -> ClientInvite {
        ClientInvite::new(Reliability::Reliable, &TimerConfig::default(), t0)
    }

    /// Fires every timer until none is left before `limit`, recording (ms, action).
    fn run(tx: &mut ClientInvite, t0: Instant, limit: Duration) -> Vec<(u128, A)> {
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
    fn timer_a_doubles_until_timer_b_times_out() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        let seen = run(&mut tx, t0, ms(40_000));
        // Intervals 0.5, 1, 2, 4, 8, 16 s; the next (at 63.5 s) is after B at 32 s.
        assert_eq!(
            seen,
            [
                (500, A::Retransmit),
                (1500, A::Retransmit),
                (3500, A::Retransmit),
                (7500, A::Retransmit),
                (15_500, A::Retransmit),
                (31_500, A::Retransmit),
                (32_000, A::Timeout),
            ]
        );
        assert!(tx.is_terminated());
        assert_eq!(tx.poll_timeout(), None);
    }

    #[test]
    fn provisional_stops_timers_a_and_b() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        assert_eq!(tx.handle_timeout(t0 + ms(500)), Some(A::Retransmit));
        assert_eq!(tx.on_response(100, t0 + ms(700)), Some(A::PassToTu));
        assert_eq!(tx.state(), S::Proceeding);
        assert_eq!(tx.poll_timeout(), None);
        assert_eq!(tx.handle_timeout(t0 + ms(40_000)), None);
        assert_eq!(tx.state(), S::Proceeding);
        assert_eq!(tx.on_response(180, t0 + ms(800)), Some(A::PassToTu));
    }

    #[test]
    fn failure_is_acked_and_retransmissions_are_acked_again() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        tx.on_response(180, t0 + ms(100));
        assert_eq!(
            tx.on_response(486, t0 + ms(200)),
            Some(A::SendAckAndPassToTu)
        );
        assert_eq!(tx.state(), S::Completed);
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(32_200)));
        assert_eq!(tx.on_response(486, t0 + ms(700)), Some(A::SendAck));
        assert_eq!(tx.on_response(486, t0 + ms(1700)), Some(A::SendAck));
        assert_eq!(tx.on_response(180, t0 + ms(1800)), None);
        assert_eq!(tx.on_response(200, t0 + ms(1900)), None);
        assert_eq!(tx.handle_timeout(t0 + ms(32_199)), None);
        assert_eq!(tx.handle_timeout(t0 + ms(32_200)), Some(A::Terminated));
        assert!(tx.is_terminated());
    }

    #[test]
    fn failure_in_calling_is_acked() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        assert_eq!(
            tx.on_response(404, t0 + ms(100)),
            Some(A::SendAckAndPassToTu)
        );
        assert_eq!(tx.state(), S::Completed);
        // Timer A no longer retransmits.
        let seen = run(&mut tx, t0, ms(40_000));
        assert_eq!(seen, [(32_100, A::Terminated)]);
    }

    #[test]
    fn success_moves_to_accepted_and_passes_every_2xx() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        assert_eq!(tx.on_response(200, t0 + ms(300)), Some(A::PassToTu));
        assert_eq!(tx.state(), S::Accepted);
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(32_300)));
        // A retransmission and a 2xx from another fork both reach the TU.
        assert_eq!(tx.on_response(200, t0 + ms(800)), Some(A::PassToTu));
        assert_eq!(tx.on_response(202, t0 + ms(900)), Some(A::PassToTu));
        assert_eq!(tx.on_response(486, t0 + ms(1000)), None);
        assert_eq!(tx.on_response(180, t0 + ms(1000)), None);
        assert_eq!(tx.on_transport_error(), None);
        assert_eq!(tx.handle_timeout(t0 + ms(32_300)), Some(A::Terminated));
        assert!(tx.is_terminated());
        assert_eq!(tx.on_response(200, t0 + ms(40_000)), None);
    }

    #[test]
    fn reliable_transport_never_retransmits_and_skips_timer_d() {
        let t0 = Instant::now();
        let mut tx = tcp(t0);
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(32_000)));
        assert_eq!(
            tx.on_response(603, t0 + ms(100)),
            Some(A::SendAckAndPassToTu)
        );
        assert!(tx.is_terminated());
        assert_eq!(tx.poll_timeout(), None);

        let mut tx = tcp(t0);
        assert_eq!(run(&mut tx, t0, ms(40_000)), [(32_000, A::Timeout)]);
    }

    #[test]
    fn reliable_transport_keeps_timer_m() {
        let t0 = Instant::now();
        let mut tx = tcp(t0);
        tx.on_response(200, t0);
        assert_eq!(tx.state(), S::Accepted);
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(32_000)));
    }

    #[test]
    fn transport_error_terminates() {
        let t0 = Instant::now();
        for prime in [None, Some(180), Some(500)] {
            let mut tx = udp(t0);
            if let Some(status) = prime {
                tx.on_response(status, t0);
            }
            assert_eq!(
                tx.on_transport_error(),
                Some(A::TransportError),
                "{prime:?}"
            );
            assert!(tx.is_terminated());
            assert_eq!(tx.poll_timeout(), None);
            assert_eq!(tx.on_transport_error(), None);
        }
    }

    #[test]
    fn invalid_status_is_ignored() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        assert_eq!(tx.on_response(42, t0), None);
        assert_eq!(tx.on_response(1000, t0), None);
        assert_eq!(tx.state(), S::Calling);
    }
}
