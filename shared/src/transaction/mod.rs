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
    use super::StatusClass;

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
}
