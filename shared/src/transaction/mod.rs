//! RFC 3261 section 17 transactions, sans-IO.
//!
//! Each state machine takes events (a message arrived, a transport error, the current
//! time) and returns actions (send, pass up, arm a timer, terminated). Nothing here
//! touches a socket or a clock, so tests drive the timers deterministically.
//!
//! The shell that owns a machine keeps the bytes (the request, the last response) and
//! acts on what comes back. After every call it checks `poll_timeout()` and, once that
//! instant has passed, calls `handle_timeout(now)` until `poll_timeout()` lies in the
//! future again. When `is_terminated()` turns true it drops the transaction.
//! RFC 6026 is followed: INVITE transactions that see a 2xx move to Accepted instead
//! of ending at once, so every 2xx of a fork and every ACK for a 2xx still finds them.

pub mod client_invite;
pub mod client_non_invite;
pub mod key;
pub mod server_invite;
pub mod server_non_invite;
pub mod timers;

pub use client_invite::{ClientInvite, ClientInviteAction, ClientInviteState};
pub use client_non_invite::{ClientNonInvite, ClientNonInviteAction, ClientNonInviteState};
pub use key::{ClientKey, ClientKeyParts, ServerKey, ServerKeyParts};
pub use server_invite::{ServerInvite, ServerInviteAction, ServerInviteState};
pub use server_non_invite::{ServerNonInvite, ServerNonInviteAction, ServerNonInviteState};
pub use timers::{Reliability, TimerConfig, TimerKind};

/// The class of a response status code, as the state machines see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusClass {
    /// 100-199.
    Provisional,
    /// 200-299.
    Success,
    /// 300-699.
    Failure,
}

impl StatusClass {
    /// Classifies a status code; `None` outside 100-699, which the machines ignore.
    pub(crate) fn of(status: u16) -> Option<StatusClass> {
        match status {
            100..=199 => Some(StatusClass::Provisional),
            200..=299 => Some(StatusClass::Success),
            300..=699 => Some(StatusClass::Failure),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn status_classes() {
        assert_eq!(StatusClass::of(99), None);
        assert_eq!(StatusClass::of(100), Some(StatusClass::Provisional));
        assert_eq!(StatusClass::of(199), Some(StatusClass::Provisional));
        assert_eq!(StatusClass::of(200), Some(StatusClass::Success));
        assert_eq!(StatusClass::of(299), Some(StatusClass::Success));
        assert_eq!(StatusClass::of(300), Some(StatusClass::Failure));
        assert_eq!(StatusClass::of(699), Some(StatusClass::Failure));
        assert_eq!(StatusClass::of(700), None);
    }

    /// One event for any machine; each machine maps it to its own methods.
    #[derive(Debug, Clone)]
    enum Event {
        /// Advance the clock by this many ms, then fire everything due.
        Advance(u64),
        /// A response arrives (client) or the TU sends one (server).
        Response(u16),
        /// A request retransmission (server) arrives.
        Request,
        /// An ACK arrives (server INVITE).
        Ack,
        /// The transport fails.
        TransportError,
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            (0u64..40_000).prop_map(Event::Advance),
            (0u16..800).prop_map(Event::Response),
            Just(Event::Request),
            Just(Event::Ack),
            Just(Event::TransportError),
        ]
    }

    /// Runs every due timer at `now`; each firing must move the deadline on, so the
    /// shell's loop ends.
    fn fire_due<T>(
        tx: &mut T,
        now: Instant,
        poll: impl Fn(&T) -> Option<Instant>,
        mut fire: impl FnMut(&mut T, Instant),
    ) {
        let mut rounds = 0;
        while let Some(at) = poll(tx) {
            if at > now {
                break;
            }
            fire(tx, now);
            assert_ne!(poll(tx), Some(at), "a due timer did not move");
            rounds += 1;
            assert!(rounds < 100, "timers never settle");
        }
    }

    fn reliability(reliable: bool) -> Reliability {
        if reliable {
            Reliability::Reliable
        } else {
            Reliability::Unreliable
        }
    }

    proptest! {
        #[test]
        fn machines_never_panic_and_stay_terminated(
            reliable: bool,
            events in proptest::collection::vec(event(), 0..40),
        ) {
            let config = TimerConfig::default();
            let rel = reliability(reliable);
            let t0 = Instant::now();
            let mut now = t0;
            let mut ci = ClientInvite::new(rel, &config, now);
            let mut cn = ClientNonInvite::new(rel, &config, now);
            let mut si = ServerInvite::new(rel, &config, now);
            let mut sn = ServerNonInvite::new(rel, &config, now);
            for event in events {
                match event {
                    Event::Advance(ms) => {
                        now += Duration::from_millis(ms);
                        fire_due(&mut ci, now, ClientInvite::poll_timeout, |t, n| {
                            t.handle_timeout(n);
                        });
                        fire_due(&mut cn, now, ClientNonInvite::poll_timeout, |t, n| {
                            t.handle_timeout(n);
                        });
                        fire_due(&mut si, now, ServerInvite::poll_timeout, |t, n| {
                            t.handle_timeout(n);
                        });
                        fire_due(&mut sn, now, ServerNonInvite::poll_timeout, |t, n| {
                            t.handle_timeout(n);
                        });
                    }
                    Event::Response(status) => {
                        ci.on_response(status, now);
                        cn.on_response(status, now);
                        si.send_response(status, now);
                        sn.send_response(status, now);
                    }
                    Event::Request => {
                        si.on_request(now);
                        sn.on_request(now);
                    }
                    Event::Ack => {
                        si.on_ack(now);
                    }
                    Event::TransportError => {
                        ci.on_transport_error();
                        cn.on_transport_error();
                        si.on_transport_error();
                        sn.on_transport_error();
                    }
                }
                // Every armed deadline lies within 64*T1 plus the longest wait of now.
                let horizon = now + Duration::from_secs(64);
                for at in [ci.poll_timeout(), cn.poll_timeout(), si.poll_timeout(), sn.poll_timeout()]
                    .into_iter()
                    .flatten()
                {
                    prop_assert!(at > now && at <= horizon);
                }
                if ci.is_terminated() {
                    prop_assert_eq!(ci.poll_timeout(), None);
                    prop_assert_eq!(ci.on_response(200, now), None);
                }
                if cn.is_terminated() {
                    prop_assert_eq!(cn.poll_timeout(), None);
                    prop_assert_eq!(cn.on_response(200, now), None);
                }
                if si.is_terminated() {
                    prop_assert_eq!(si.poll_timeout(), None);
                    prop_assert_eq!(si.on_request(now), None);
                    prop_assert_eq!(si.send_response(200, now), None);
                }
                if sn.is_terminated() {
                    prop_assert_eq!(sn.poll_timeout(), None);
                    prop_assert_eq!(sn.on_request(now), None);
                }
            }
            // Within 64*T1 plus Timer D of silence everything but a Proceeding INVITE
            // client (bounded by the TU's Timer C) and an unanswered server ends.
            now += Duration::from_secs(70);
            fire_due(&mut ci, now, ClientInvite::poll_timeout, |t, n| { t.handle_timeout(n); });
            fire_due(&mut cn, now, ClientNonInvite::poll_timeout, |t, n| { t.handle_timeout(n); });
            fire_due(&mut si, now, ServerInvite::poll_timeout, |t, n| { t.handle_timeout(n); });
            fire_due(&mut sn, now, ServerNonInvite::poll_timeout, |t, n| { t.handle_timeout(n); });
            prop_assert!(cn.is_terminated());
            prop_assert!(ci.is_terminated() || ci.state() == ClientInviteState::Proceeding);
            prop_assert!(
                si.is_terminated() || si.state() == ServerInviteState::Proceeding,
                "{:?}", si.state()
            );
            prop_assert!(
                sn.is_terminated()
                    || matches!(sn.state(), ServerNonInviteState::Trying | ServerNonInviteState::Proceeding)
            );
        }
    }
}
