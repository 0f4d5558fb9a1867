//! RFC 3261 section 17 transactions, sans-IO.
//!
//! Each state machine takes events (a message arrived, a transport error, the current
//! time) and returns actions (send, pass up, arm a timer, terminated). Nothing here
//! touches a socket or a clock, so tests drive the timers deterministically.

pub mod client_invite;
pub mod client_non_invite;
pub mod key;
pub mod server_invite;
pub mod server_non_invite;
pub mod timers;
