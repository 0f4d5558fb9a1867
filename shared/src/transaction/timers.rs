//! RFC 3261 section 17 transaction timers (Table 4), with Timers L and M from RFC 6026.
//!
//! The machines never read a clock: they turn a [`TimerConfig`] and the `now` they are
//! given into deadlines, and the shell calls them back when the earliest one passes.

use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer};

use crate::transport::Transport;

/// Whether the transport under a transaction is reliable; reliable ones turn off
/// retransmissions and zero the wait-for-retransmissions timers (D, I, J, K).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reliability {
    /// TCP (or TLS, SCTP): the transport itself delivers or fails.
    Reliable,
    /// UDP: the transaction retransmits and absorbs retransmissions.
    Unreliable,
}

impl Reliability {
    /// True for [`Reliability::Reliable`].
    pub fn is_reliable(self) -> bool {
        matches!(self, Reliability::Reliable)
    }
}

impl From<Transport> for Reliability {
    fn from(transport: Transport) -> Self {
        if transport.is_reliable() {
            Reliability::Reliable
        } else {
            Reliability::Unreliable
        }
    }
}

/// The named transaction timers of RFC 3261 Table 4 and RFC 6026.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerKind {
    /// INVITE request retransmission (client, unreliable only).
    A,
    /// INVITE transaction timeout (client, Calling state).
    B,
    /// Wait time for response retransmissions (client INVITE, Completed state).
    D,
    /// Non-INVITE request retransmission (client, unreliable only).
    E,
    /// Non-INVITE transaction timeout (client).
    F,
    /// INVITE final response retransmission (server, unreliable only).
    G,
    /// Wait time for ACK receipt (server INVITE, Completed state).
    H,
    /// Wait time for ACK retransmissions (server INVITE, Confirmed state).
    I,
    /// Wait time for non-INVITE request retransmissions (server, Completed state).
    J,
    /// Wait time for response retransmissions (client non-INVITE, Completed state).
    K,
    /// Wait time for INVITE retransmissions and ACKs after a 2xx (server, RFC 6026).
    L,
    /// Wait time for 2xx retransmissions and forked 2xx (client, RFC 6026).
    M,
    /// Not an RFC timer: the 200 ms after which a server INVITE transaction sends
    /// 100 Trying if the TU has not answered (RFC 3261 section 17.2.1).
    Trying,
}

/// How long a server INVITE transaction waits for the TU before sending 100 Trying.
pub const TRYING_DELAY: Duration = Duration::from_millis(200);

/// The lower bound of Timer D on unreliable transports (RFC 3261 section 17.1.1.2).
const TIMER_D_MIN: Duration = Duration::from_secs(32);

/// Guards the retransmission loops against a zero T1 or T2 set in code.
const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// The base timer values T1, T2 and T4 (RFC 3261 section 17 and Table 4).
///
/// In a config file the values are whole milliseconds: `t1_ms`, `t2_ms`, `t4_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimerConfig {
    /// RTT estimate; the first retransmission interval (default 500 ms).
    #[serde(rename = "t1_ms", deserialize_with = "nonzero_millis")]
    pub t1: Duration,
    /// Cap on retransmission intervals for non-INVITE requests and INVITE responses
    /// (default 4 s).
    #[serde(rename = "t2_ms", deserialize_with = "nonzero_millis")]
    pub t2: Duration,
    /// Maximum time a message stays in the network (default 5 s).
    #[serde(rename = "t4_ms", deserialize_with = "nonzero_millis")]
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// Reads milliseconds and refuses zero, which would make retransmissions spin.
fn nonzero_millis<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let ms = u64::deserialize(deserializer)?;
    if ms == 0 {
        return Err(serde::de::Error::custom(
            "a timer value must be at least 1 ms",
        ));
    }
    Ok(Duration::from_millis(ms))
}

impl TimerConfig {
    /// 64*T1: Timers B, F, H, L, M and J on unreliable transports.
    pub fn transaction_timeout(&self) -> Duration {
        self.t1.checked_mul(64).unwrap_or(Duration::MAX)
    }

    /// The value a timer starts with (Table 4). Retransmission timers (A, E, G) give
    /// their first interval; timers that are zero on reliable transports give zero.
    pub fn initial(&self, kind: TimerKind, reliability: Reliability) -> Duration {
        let reliable = reliability.is_reliable();
        match kind {
            TimerKind::A | TimerKind::E | TimerKind::G => self.t1.max(MIN_INTERVAL),
            TimerKind::B | TimerKind::F | TimerKind::H | TimerKind::L | TimerKind::M => {
                self.transaction_timeout()
            }
            TimerKind::D if reliable => Duration::ZERO,
            // Timer D must outlast the server's response retransmissions (Timer H).
            TimerKind::D => self.transaction_timeout().max(TIMER_D_MIN),
            TimerKind::I | TimerKind::K if reliable => Duration::ZERO,
            TimerKind::I | TimerKind::K => self.t4,
            TimerKind::J if reliable => Duration::ZERO,
            TimerKind::J => self.transaction_timeout(),
            TimerKind::Trying => TRYING_DELAY,
        }
    }

    /// The interval after a retransmission timer fired with `previous`: A doubles
    /// without bound, E and G double up to T2. Other timers do not repeat and keep
    /// `previous`.
    pub fn next_interval(&self, kind: TimerKind, previous: Duration) -> Duration {
        let doubled = previous.checked_mul(2).unwrap_or(Duration::MAX);
        match kind {
            TimerKind::A => doubled,
            TimerKind::E | TimerKind::G => doubled.min(self.t2).max(MIN_INTERVAL),
            _ => previous,
        }
    }
}

/// `now + after`, or `None` (never) if the sum does not fit in an `Instant`.
pub(crate) fn deadline(now: Instant, after: Duration) -> Option<Instant> {
    now.checked_add(after)
}

/// The earlier of two optional deadlines.
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Whether an armed deadline has passed at `now`.
pub(crate) fn due(at: Option<Instant>, now: Instant) -> bool {
    at.is_some_and(|at| at <= now)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn defaults_match_rfc_3261() {
        let c = TimerConfig::default();
        assert_eq!(c.t1, MS(500));
        assert_eq!(c.t2, MS(4000));
        assert_eq!(c.t4, MS(5000));
    }

    #[test]
    fn table_4_unreliable() {
        let c = TimerConfig::default();
        let u = Reliability::Unreliable;
        assert_eq!(c.initial(TimerKind::A, u), MS(500));
        assert_eq!(c.initial(TimerKind::B, u), MS(32_000));
        assert_eq!(c.initial(TimerKind::D, u), MS(32_000));
        assert_eq!(c.initial(TimerKind::E, u), MS(500));
        assert_eq!(c.initial(TimerKind::F, u), MS(32_000));
        assert_eq!(c.initial(TimerKind::G, u), MS(500));
        assert_eq!(c.initial(TimerKind::H, u), MS(32_000));
        assert_eq!(c.initial(TimerKind::I, u), MS(5000));
        assert_eq!(c.initial(TimerKind::J, u), MS(32_000));
        assert_eq!(c.initial(TimerKind::K, u), MS(5000));
        assert_eq!(c.initial(TimerKind::L, u), MS(32_000));
        assert_eq!(c.initial(TimerKind::M, u), MS(32_000));
        assert_eq!(c.initial(TimerKind::Trying, u), MS(200));
    }

    #[test]
    fn table_4_reliable_zeroes_d_i_j_k() {
        let c = TimerConfig::default();
        let r = Reliability::Reliable;
        for kind in [TimerKind::D, TimerKind::I, TimerKind::J, TimerKind::K] {
            assert_eq!(c.initial(kind, r), Duration::ZERO, "{kind:?}");
        }
        for kind in [TimerKind::B, TimerKind::F, TimerKind::H] {
            assert_eq!(c.initial(kind, r), MS(32_000), "{kind:?}");
        }
    }

    #[test]
    fn timer_d_is_at_least_32_s_with_a_small_t1() {
        let c = TimerConfig {
            t1: MS(100),
            ..TimerConfig::default()
        };
        assert_eq!(c.initial(TimerKind::D, Reliability::Unreliable), MS(32_000));
        assert_eq!(c.initial(TimerKind::B, Reliability::Unreliable), MS(6400));
    }

    #[test]
    fn retransmission_intervals() {
        let c = TimerConfig::default();
        let mut a = c.initial(TimerKind::A, Reliability::Unreliable);
        let mut e = c.initial(TimerKind::E, Reliability::Unreliable);
        let mut a_seen = vec![];
        let mut e_seen = vec![];
        for _ in 0..6 {
            a_seen.push(a.as_millis());
            e_seen.push(e.as_millis());
            a = c.next_interval(TimerKind::A, a);
            e = c.next_interval(TimerKind::E, e);
        }
        assert_eq!(a_seen, [500, 1000, 2000, 4000, 8000, 16_000]);
        assert_eq!(e_seen, [500, 1000, 2000, 4000, 4000, 4000]);
        assert_eq!(c.next_interval(TimerKind::G, MS(4000)), MS(4000));
        assert_eq!(c.next_interval(TimerKind::A, Duration::MAX), Duration::MAX);
    }

    #[test]
    fn reliability_from_transport() {
        assert_eq!(Reliability::from(Transport::Tcp), Reliability::Reliable);
        assert_eq!(Reliability::from(Transport::Udp), Reliability::Unreliable);
    }

    #[test]
    fn deadline_overflow_is_never() {
        let now = Instant::now();
        assert_eq!(deadline(now, Duration::MAX), None);
        assert_eq!(earliest(None, Some(now)), Some(now));
        assert!(!due(None, now));
        assert!(due(Some(now), now));
    }

    fn load(toml: &str) -> Result<TimerConfig, config::ConfigError> {
        config::Config::builder()
            .add_source(config::File::from_str(toml, config::FileFormat::Toml))
            .build()?
            .try_deserialize()
    }

    #[test]
    fn config_reads_millis_with_defaults() {
        let c = load("t1_ms = 250\n").expect("valid timer config");
        assert_eq!(c.t1, MS(250));
        assert_eq!(c.t2, MS(4000));
        assert_eq!(c.t4, MS(5000));
    }

    #[test]
    fn config_refuses_unknown_key_by_name() {
        let err = load("t3_ms = 250\n").expect_err("unknown key");
        assert!(err.to_string().contains("t3_ms"), "{err}");
    }

    #[test]
    fn config_refuses_zero() {
        let err = load("t2_ms = 0\n").expect_err("zero");
        assert!(err.to_string().contains("at least 1 ms"), "{err}");
    }
}
