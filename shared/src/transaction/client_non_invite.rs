//! The non-INVITE client transaction (RFC 3261 section 17.1.2, Figure 6).
//!
//! Timer E retransmits the request on unreliable transports (T1 doubling up to T2, and
//! T2 flat once a provisional arrived), Timer F ends the wait after 64*T1, and Timer K
//! absorbs retransmitted final responses for T4 (zero on reliable transports).

use std::time::{Duration, Instant};

use super::timers::{deadline, due, earliest, Reliability, TimerConfig, TimerKind};
use super::StatusClass;

/// States of the non-INVITE client transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientNonInviteState {
    /// The request was sent; no response yet.
    Trying,
    /// A provisional response arrived.
    Proceeding,
    /// A final response arrived; retransmissions of it are absorbed.
    Completed,
    /// Done; the shell drops the transaction.
    Terminated,
}

/// What the shell does after an event on a non-INVITE client transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientNonInviteAction {
    /// Send the request again, byte for byte.
    Retransmit,
    /// Pass the response just received up to the TU.
    PassToTu,
    /// Timer F fired without a final response: the TU treats it as a 408.
    Timeout,
    /// The transport failed; the TU treats it as a 503 (RFC 3261 section 8.1.3.1).
    TransportError,
    /// Timer K fired: the transaction ended quietly.
    Terminated,
}

/// A non-INVITE client transaction (RFC 3261 section 17.1.2).
#[derive(Debug, Clone)]
pub struct ClientNonInvite {
    state: ClientNonInviteState,
    reliability: Reliability,
    config: TimerConfig,
    timer_e: Option<Instant>,
    interval_e: Duration,
    timer_f: Option<Instant>,
    timer_k: Option<Instant>,
}

impl ClientNonInvite {
    /// Starts the transaction at `now`, just after the shell sent the request.
    pub fn new(reliability: Reliability, config: &TimerConfig, now: Instant) -> Self {
        let interval_e = config.initial(TimerKind::E, reliability);
        let timer_e = if reliability.is_reliable() {
            None
        } else {
            deadline(now, interval_e)
        };
        ClientNonInvite {
            state: ClientNonInviteState::Trying,
            reliability,
            config: *config,
            timer_e,
            interval_e,
            timer_f: deadline(now, config.initial(TimerKind::F, reliability)),
            timer_k: None,
        }
    }

    /// The current state.
    pub fn state(&self) -> ClientNonInviteState {
        self.state
    }

    /// Whether the shell should drop the transaction.
    pub fn is_terminated(&self) -> bool {
        self.state == ClientNonInviteState::Terminated
    }

    /// A response matching this transaction arrived.
    pub fn on_response(&mut self, status: u16, now: Instant) -> Option<ClientNonInviteAction> {
        let class = StatusClass::of(status)?;
        match (self.state, class) {
            (ClientNonInviteState::Trying, StatusClass::Provisional) => {
                // Timer E keeps its deadline; it re-arms with T2 when it next fires.
                self.state = ClientNonInviteState::Proceeding;
                Some(ClientNonInviteAction::PassToTu)
            }
            (ClientNonInviteState::Proceeding, StatusClass::Provisional) => {
                Some(ClientNonInviteAction::PassToTu)
            }
            (
                ClientNonInviteState::Trying | ClientNonInviteState::Proceeding,
                StatusClass::Success | StatusClass::Failure,
            ) => {
                self.timer_e = None;
                self.timer_f = None;
                let wait = self.config.initial(TimerKind::K, self.reliability);
                if wait.is_zero() {
                    self.terminate();
                } else {
                    self.state = ClientNonInviteState::Completed;
                    self.timer_k = deadline(now, wait);
                }
                Some(ClientNonInviteAction::PassToTu)
            }
            // Completed absorbs retransmitted finals; Terminated takes nothing.
            _ => None,
        }
    }

    /// The transport reported a failure sending the request (RFC 3261 section 17.1.4).
    pub fn on_transport_error(&mut self) -> Option<ClientNonInviteAction> {
        match self.state {
            ClientNonInviteState::Trying | ClientNonInviteState::Proceeding => {
                self.terminate();
                Some(ClientNonInviteAction::TransportError)
            }
            ClientNonInviteState::Completed | ClientNonInviteState::Terminated => None,
        }
    }

    /// The earliest armed deadline, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest(earliest(self.timer_e, self.timer_f), self.timer_k)
    }

    /// Fires the timer that is due at `now`, if any; call again while one is due.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<ClientNonInviteAction> {
        if due(self.timer_f, now) {
            self.terminate();
            return Some(ClientNonInviteAction::Timeout);
        }
        if due(self.timer_k, now) {
            self.terminate();
            return Some(ClientNonInviteAction::Terminated);
        }
        if due(self.timer_e, now) {
            self.interval_e = match self.state {
                ClientNonInviteState::Proceeding => self.config.t2,
                _ => self.config.next_interval(TimerKind::E, self.interval_e),
            };
            self.timer_e = deadline(now, self.interval_e);
            return Some(ClientNonInviteAction::Retransmit);
        }
        None
    }

    fn terminate(&mut self) {
        self.state = ClientNonInviteState::Terminated;
        self.timer_e = None;
        self.timer_f = None;
        self.timer_k = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ClientNonInviteAction as A;
    use ClientNonInviteState as S;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn udp(t0: Instant) -> ClientNonInvite {
        ClientNonInvite::new(Reliability::Unreliable, &TimerConfig::default(), t0)
    }

    fn tcp(t0: Instant) -> ClientNonInvite {
        ClientNonInvite::new(Reliability::Reliable, &TimerConfig::default(), t0)
    }

    /// Fires every timer until Terminated or `limit`, recording (offset ms, action).
    fn run(tx: &mut ClientNonInvite, t0: Instant, limit: Duration) -> Vec<(u128, A)> {
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
    fn timer_e_doubles_to_t2_then_timer_f_times_out() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(500)));
        let seen = run(&mut tx, t0, ms(40_000));
        let retransmits: Vec<u128> = seen
            .iter()
            .filter(|(_, a)| *a == A::Retransmit)
            .map(|(t, _)| *t)
            .collect();
        // 500, 1500, 3500, 7500, then every 4 s up to 64*T1 = 32 s.
        assert_eq!(
            retransmits,
            [500, 1500, 3500, 7500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500]
        );
        assert_eq!(seen.last(), Some(&(32_000, A::Timeout)));
        assert!(tx.is_terminated());
        assert_eq!(tx.poll_timeout(), None);
    }

    #[test]
    fn provisional_switches_timer_e_to_t2() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        assert_eq!(tx.handle_timeout(t0 + ms(500)), Some(A::Retransmit));
        assert_eq!(tx.on_response(100, t0 + ms(600)), Some(A::PassToTu));
        assert_eq!(tx.state(), S::Proceeding);
        // Timer E keeps its deadline (500 + 1000), then repeats every T2.
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(1500)));
        assert_eq!(tx.handle_timeout(t0 + ms(1500)), Some(A::Retransmit));
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(5500)));
        assert_eq!(tx.handle_timeout(t0 + ms(5500)), Some(A::Retransmit));
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(9500)));
        assert_eq!(tx.on_response(180, t0 + ms(6000)), Some(A::PassToTu));
        // Timer F still bounds the transaction in Proceeding.
        let seen = run(&mut tx, t0, ms(40_000));
        assert_eq!(seen.last(), Some(&(32_000, A::Timeout)));
    }

    #[test]
    fn final_response_completes_and_timer_k_absorbs_retransmissions() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        assert_eq!(tx.on_response(200, t0 + ms(100)), Some(A::PassToTu));
        assert_eq!(tx.state(), S::Completed);
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(5100)));
        assert_eq!(tx.on_response(200, t0 + ms(200)), None);
        assert_eq!(tx.on_response(180, t0 + ms(300)), None);
        assert_eq!(tx.handle_timeout(t0 + ms(5099)), None);
        assert_eq!(tx.handle_timeout(t0 + ms(5100)), Some(A::Terminated));
        assert!(tx.is_terminated());
    }

    #[test]
    fn failure_from_proceeding_completes() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        tx.on_response(100, t0);
        assert_eq!(tx.on_response(503, t0 + ms(10)), Some(A::PassToTu));
        assert_eq!(tx.state(), S::Completed);
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(5010)));
    }

    #[test]
    fn reliable_transport_never_retransmits_and_skips_timer_k() {
        let t0 = Instant::now();
        let mut tx = tcp(t0);
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(32_000)));
        assert_eq!(tx.handle_timeout(t0 + ms(31_999)), None);
        assert_eq!(tx.on_response(200, t0 + ms(50)), Some(A::PassToTu));
        assert!(tx.is_terminated());
        assert_eq!(tx.poll_timeout(), None);
    }

    #[test]
    fn reliable_transport_times_out_with_timer_f_only() {
        let t0 = Instant::now();
        let mut tx = tcp(t0);
        let seen = run(&mut tx, t0, ms(40_000));
        assert_eq!(seen, [(32_000, A::Timeout)]);
    }

    #[test]
    fn transport_error_terminates_before_a_final_response() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        assert_eq!(tx.on_transport_error(), Some(A::TransportError));
        assert!(tx.is_terminated());
        assert_eq!(tx.poll_timeout(), None);
        assert_eq!(tx.on_transport_error(), None);
        assert_eq!(tx.on_response(200, t0), None);

        let mut tx = udp(t0);
        tx.on_response(200, t0);
        assert_eq!(tx.on_transport_error(), None);
        assert_eq!(tx.state(), S::Completed);
    }

    #[test]
    fn a_late_retransmission_rearms_from_now() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        assert_eq!(tx.handle_timeout(t0 + ms(100)), None);
        assert_eq!(tx.handle_timeout(t0 + ms(800)), Some(A::Retransmit));
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(1800)));
    }

    #[test]
    fn invalid_status_is_ignored() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        assert_eq!(tx.on_response(0, t0), None);
        assert_eq!(tx.on_response(99, t0), None);
        assert_eq!(tx.on_response(700, t0), None);
        assert_eq!(tx.state(), S::Trying);
    }
}
