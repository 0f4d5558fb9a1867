//! Flood protection (in the spirit of Kamailio's pike): each source IP may send at most
//! `max_requests` messages per `window`; one that sends more is blocked for `block`.
//!
//! Memory stays bounded: at most `max_sources` IPs are tracked. When the table is full
//! the stale entries go first; if all are fresh, the quietest one is forgotten (a
//! blocked source is never forgotten early, so an attacker cannot flush its own block by
//! spraying from other addresses). Time is passed in, so tests run without a clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The rate limiter's settings (from the `[protection]` section).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PikeConfig {
    /// Messages one source may send per window; 0 turns the limiter off.
    pub max_requests: u32,
    /// The window, in milliseconds.
    pub window_ms: u64,
    /// How long a source that went over stays blocked, in milliseconds.
    pub block_ms: u64,
    /// Most sources tracked at once.
    pub max_sources: usize,
}

impl Default for PikeConfig {
    fn default() -> Self {
        PikeConfig {
            max_requests: 100,
            window_ms: 2000,
            block_ms: 60_000,
            max_sources: 100_000,
        }
    }
}

/// The verdict on one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit.
    Allow,
    /// This message pushed the source over the limit: it is now blocked.
    NewlyBlocked,
    /// The source is blocked.
    Blocked,
}

#[derive(Debug, Clone, Copy)]
struct Source {
    window_start: Instant,
    count: u32,
    blocked_until: Option<Instant>,
}

/// Per-source message counters and blocks.
#[derive(Debug)]
pub struct Pike {
    config: PikeConfig,
    sources: HashMap<IpAddr, Source>,
}

impl Pike {
    /// An empty limiter.
    pub fn new(config: PikeConfig) -> Self {
        Pike {
            config,
            sources: HashMap::new(),
        }
    }

    fn window(&self) -> Duration {
        Duration::from_millis(self.config.window_ms.max(1))
    }

    /// Counts one message from `ip` at `now` and says whether to handle it.
    pub fn check(&mut self, ip: IpAddr, now: Instant) -> Verdict {
        if self.config.max_requests == 0 {
            return Verdict::Allow;
        }
        let window = self.window();
        if !self.sources.contains_key(&ip) && self.sources.len() >= self.config.max_sources.max(1) {
            self.make_room(now);
        }
        let source = self.sources.entry(ip).or_insert(Source {
            window_start: now,
            count: 0,
            blocked_until: None,
        });
        if let Some(until) = source.blocked_until {
            if now < until {
                return Verdict::Blocked;
            }
            source.blocked_until = None;
            source.window_start = now;
            source.count = 0;
        }
        if now.saturating_duration_since(source.window_start) >= window {
            source.window_start = now;
            source.count = 0;
        }
        source.count = source.count.saturating_add(1);
        if source.count > self.config.max_requests {
            source.blocked_until = now.checked_add(Duration::from_millis(self.config.block_ms));
            return Verdict::NewlyBlocked;
        }
        Verdict::Allow
    }

    /// Drops every entry whose window and block are over, and then, until a sixteenth of
    /// the table is free, the unblocked sources with the fewest messages; blocks go only
    /// when everyone tracked is blocked, those that end first going first.
    ///
    /// Each call scans the whole table, so it frees room for many new sources at once: a
    /// spray from fresh addresses (spoofed UDP costs an attacker nothing) then costs one
    /// scan per [`Pike::room`] new sources instead of one per message.
    fn make_room(&mut self, now: Instant) {
        let window = self.window();
        let before = self.sources.len();
        self.sources.retain(|_, s| !is_stale(s, now, window));
        let wanted = self.room().saturating_sub(before - self.sources.len());
        if wanted == 0 {
            return;
        }
        let mut open: Vec<(u32, IpAddr)> = self
            .sources
            .iter()
            .filter(|(_, s)| s.blocked_until.is_none())
            .map(|(ip, s)| (s.count, *ip))
            .collect();
        if open.is_empty() {
            let mut blocked: Vec<(Option<Instant>, IpAddr)> = self
                .sources
                .iter()
                .map(|(ip, s)| (s.blocked_until, *ip))
                .collect();
            forget_first(&mut self.sources, &mut blocked, wanted);
        } else {
            forget_first(&mut self.sources, &mut open, wanted);
        }
    }

    /// How many entries [`Pike::make_room`] frees at least.
    fn room(&self) -> usize {
        (self.config.max_sources / 16).max(1)
    }

    /// Forgets finished windows and blocks; run now and then to give memory back.
    pub fn sweep(&mut self, now: Instant) {
        let window = self.window();
        self.sources.retain(|_, s| !is_stale(s, now, window));
    }

    /// How many sources are tracked.
    pub fn tracked(&self) -> usize {
        self.sources.len()
    }

    /// How many sources are blocked at `now`.
    pub fn blocked(&self, now: Instant) -> usize {
        self.sources
            .values()
            .filter(|s| s.blocked_until.is_some_and(|until| now < until))
            .count()
    }
}

/// Removes from `sources` the `n` addresses of `ranked` that sort first.
fn forget_first<K: Ord>(
    sources: &mut HashMap<IpAddr, Source>,
    ranked: &mut Vec<(K, IpAddr)>,
    n: usize,
) {
    if ranked.len() > n {
        ranked.select_nth_unstable(n);
        ranked.truncate(n);
    }
    for (_, ip) in ranked.iter() {
        sources.remove(ip);
    }
}

fn is_stale(source: &Source, now: Instant, window: Duration) -> bool {
    let window_over = now.saturating_duration_since(source.window_start) >= window;
    let block_over = source.blocked_until.is_none_or(|until| now >= until);
    window_over && block_over
}

/// Whether a User-Agent matches the deny list (case-insensitive substring, as scanners
/// such as `friendly-scanner` or `sipvicious` put their name anywhere in it).
pub fn user_agent_denied(user_agent: &str, deny: &[String]) -> bool {
    deny.iter().any(|bad| {
        !bad.is_empty()
            && user_agent
                .to_ascii_lowercase()
                .contains(&bad.to_ascii_lowercase())
    })
}

/// The User-Agent value in a message's raw bytes, found without a full parse so that
/// a scanner costs the edge as little as possible. Only the header section is searched.
pub fn raw_user_agent(data: &[u8]) -> Option<&str> {
    const NAME: &[u8] = b"user-agent:";
    let head_end = memchr::memmem::find(data, b"\r\n\r\n").unwrap_or(data.len());
    let head = data.get(..head_end)?;
    let mut at = 0;
    while let Some(found) = memchr::memmem::find(head.get(at..)?, b"\n") {
        let line_start = at + found + 1;
        let line = head.get(line_start..)?;
        let is_ua = line
            .get(..NAME.len())
            .is_some_and(|name| name.eq_ignore_ascii_case(NAME));
        if is_ua {
            let value = line.get(NAME.len()..)?;
            let end = memchr::memchr(b'\r', value).unwrap_or(value.len());
            return std::str::from_utf8(value.get(..end)?).ok().map(str::trim);
        }
        at = line_start;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_requests: u32, max_sources: usize) -> PikeConfig {
        PikeConfig {
            max_requests,
            window_ms: 1000,
            block_ms: 10_000,
            max_sources,
        }
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, n])
    }

    #[test]
    fn over_the_limit_blocks_until_the_block_expires() {
        let t0 = Instant::now();
        let mut pike = Pike::new(config(3, 10));
        for _ in 0..3 {
            assert_eq!(pike.check(ip(1), t0), Verdict::Allow);
        }
        assert_eq!(pike.check(ip(1), t0), Verdict::NewlyBlocked);
        assert_eq!(
            pike.check(ip(1), t0 + Duration::from_secs(5)),
            Verdict::Blocked
        );
        assert_eq!(pike.blocked(t0 + Duration::from_secs(5)), 1);
        // Another source is not affected.
        assert_eq!(pike.check(ip(2), t0), Verdict::Allow);
        // The block ends and the source starts afresh.
        assert_eq!(
            pike.check(ip(1), t0 + Duration::from_secs(10)),
            Verdict::Allow
        );
        assert_eq!(pike.blocked(t0 + Duration::from_secs(10)), 0);
    }

    #[test]
    fn a_new_window_resets_the_count() {
        let t0 = Instant::now();
        let mut pike = Pike::new(config(3, 10));
        for s in 0..10u64 {
            for _ in 0..3 {
                assert_eq!(
                    pike.check(ip(1), t0 + Duration::from_secs(s)),
                    Verdict::Allow
                );
            }
        }
    }

    #[test]
    fn memory_is_bounded_and_blocks_survive_a_spray() {
        let t0 = Instant::now();
        let mut pike = Pike::new(config(1, 4));
        pike.check(ip(1), t0);
        assert_eq!(pike.check(ip(1), t0), Verdict::NewlyBlocked);
        for n in 2..200 {
            pike.check(ip(n), t0);
            assert!(pike.tracked() <= 4);
        }
        assert_eq!(pike.check(ip(1), t0), Verdict::Blocked);
    }

    #[test]
    fn a_full_table_frees_room_for_many_new_sources_at_once() {
        let t0 = Instant::now();
        let mut pike = Pike::new(config(100, 64));
        for n in 0..64 {
            pike.check(ip(n), t0);
        }
        // The busiest sources stay when room is made.
        for _ in 0..5 {
            pike.check(ip(0), t0);
        }
        assert_eq!(pike.tracked(), 64);
        pike.check(ip(200), t0);
        assert_eq!(
            pike.tracked(),
            64 - 64 / 16 + 1,
            "a sixteenth freed at once"
        );
        for n in 201..204 {
            pike.check(ip(n), t0);
        }
        assert_eq!(
            pike.tracked(),
            64,
            "the next three fit without another scan"
        );
        assert!(
            pike.sources.contains_key(&ip(0)),
            "the busiest source was kept"
        );
    }

    #[test]
    fn sweep_forgets_finished_entries() {
        let t0 = Instant::now();
        let mut pike = Pike::new(config(1, 10));
        pike.check(ip(1), t0);
        pike.check(ip(2), t0);
        pike.check(ip(2), t0);
        pike.sweep(t0 + Duration::from_secs(2));
        assert_eq!(pike.tracked(), 1, "the blocked source stays");
        pike.sweep(t0 + Duration::from_secs(11));
        assert_eq!(pike.tracked(), 0);
    }

    #[test]
    fn zero_turns_it_off() {
        let t0 = Instant::now();
        let mut pike = Pike::new(config(0, 1));
        for _ in 0..1000 {
            assert_eq!(pike.check(ip(1), t0), Verdict::Allow);
        }
        assert_eq!(pike.tracked(), 0);
    }

    #[test]
    fn raw_user_agent_is_found_in_the_head_only() {
        let msg = b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nuser-AGENT:  friendly-scanner \r\n\r\n";
        assert_eq!(raw_user_agent(msg), Some("friendly-scanner"));
        let in_body = b"MESSAGE sip:x SIP/2.0\r\nVia: x\r\n\r\nUser-Agent: sipvicious\r\n";
        assert_eq!(raw_user_agent(in_body), None);
        assert_eq!(raw_user_agent(b""), None);
        assert_eq!(raw_user_agent(b"\nUser-Agent:"), Some(""));
        assert_eq!(raw_user_agent(&[0xff, b'\n', 0xfe]), None);
    }

    #[test]
    fn user_agent_deny_list() {
        let deny = vec!["friendly-scanner".to_owned(), "SIPVicious".to_owned()];
        assert!(user_agent_denied("friendly-scanner", &deny));
        assert!(user_agent_denied("sipvicious 0.3", &deny));
        assert!(!user_agent_denied("Yealink SIP-T46S", &deny));
        assert!(!user_agent_denied("anything", &[String::new()]));
    }
}
