//! The UDP flows of registered phones, kept in memory with the expiry of their
//! registration, so the edge that owns a flow sends its NAT keepalives (RFC 5626
//! section 3.5.1 describes the client side; here the edge holds the pinhole from its
//! side, as nathelper's `nat_keepalive` does).
//!
//! A flow is learned from the 200 OK to a REGISTER that came in on it: the registrar's
//! 200 lists every binding of the AoR with its expiry, and the ones the phone sent in
//! its request say how long this flow stays registered.

use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use hasip::sip::typed::Contacts;
use hasip::sip::Message;
use hasip::transport::Flow;

/// What a REGISTER's 200 OK means for the flow it came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// The request held no Contact (a query): nothing changes.
    Unchanged,
    /// The phone's bindings on this flow live this long.
    For(Duration),
    /// The phone removed its bindings (or they were refused): forget the flow.
    Removed,
}

/// Reads the bindings the phone sent in `request` back out of the registrar's 2xx
/// `response` and returns the longest expiry among them.
pub fn registration(request: &Message, response: &Message) -> Registration {
    let sent = match request.contacts() {
        Ok(Contacts::List(list)) => list,
        Ok(Contacts::Star) => return Registration::Removed,
        Ok(Contacts::None) | Err(_) => return Registration::Unchanged,
    };
    let granted = match response.contacts() {
        Ok(Contacts::List(list)) => list,
        _ => return Registration::Removed,
    };
    let default = response.expires().ok().flatten();
    let longest = granted
        .iter()
        .filter(|g| sent.iter().any(|s| s.uri() == g.uri()))
        .filter_map(|g| g.expires().or(default))
        .max();
    match longest {
        Some(0) | None => Registration::Removed,
        Some(secs) => Registration::For(Duration::from_secs(u64::from(secs))),
    }
}

/// The keepalive after one due at `was`: an interval on, so each flow keeps the phase it
/// was learned with and the flows learned over a second do not all fall due in the same
/// tick; an interval from `now` when that is past already (the loop fell behind).
fn after(was: Instant, interval: Duration, now: Instant, expires: Instant) -> Instant {
    match was.checked_add(interval) {
        Some(next) if next > now => next,
        _ => now.checked_add(interval).unwrap_or(expires),
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    expires: Instant,
    next_keepalive: Instant,
    /// When this flow's live item in the schedule fires: the earlier of the two above.
    slot: Instant,
}

/// An item of the schedule; ordered by time only, earliest first out of the heap.
#[derive(Debug, Clone, Copy)]
struct Slot {
    at: Instant,
    flow: Flow,
}

impl PartialEq for Slot {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}

impl Eq for Slot {}

impl PartialOrd for Slot {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Slot {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // Reversed, so the max-heap gives the earliest slot.
        other.at.cmp(&self.at)
    }
}

/// The flows to keep open, each with its registration's end and next keepalive.
///
/// A heap orders the flows by their next event, so a tick costs the flows that are due,
/// not a scan of every flow. A rescheduled flow leaves a stale heap item behind, which
/// is recognised and skipped when it comes out.
#[derive(Debug)]
pub struct FlowTable {
    interval: Duration,
    max_flows: usize,
    flows: HashMap<Flow, Entry>,
    schedule: BinaryHeap<Slot>,
}

impl FlowTable {
    /// An empty table sending a keepalive every `interval`, holding at most `max_flows`.
    pub fn new(interval: Duration, max_flows: usize) -> Self {
        FlowTable {
            interval,
            max_flows,
            flows: HashMap::new(),
            schedule: BinaryHeap::new(),
        }
    }

    /// Applies what a 200 OK said about `flow`.
    pub fn apply(&mut self, flow: Flow, registration: Registration, now: Instant) {
        match registration {
            Registration::Unchanged => {}
            Registration::Removed => {
                self.flows.remove(&flow);
            }
            Registration::For(lifetime) => {
                let Some(expires) = now.checked_add(lifetime) else {
                    return;
                };
                if let Some(entry) = self.flows.get_mut(&flow) {
                    entry.expires = expires;
                    if expires < entry.slot {
                        entry.slot = expires;
                        self.schedule.push(Slot { at: expires, flow });
                    }
                    return;
                }
                if self.flows.len() >= self.max_flows {
                    self.expire(now);
                    if self.flows.len() >= self.max_flows {
                        return;
                    }
                }
                let next_keepalive = now.checked_add(self.interval).unwrap_or(expires);
                let slot = next_keepalive.min(expires);
                self.flows.insert(
                    flow,
                    Entry {
                        expires,
                        next_keepalive,
                        slot,
                    },
                );
                self.schedule.push(Slot { at: slot, flow });
            }
        }
    }

    /// Drops every expired flow at once (only when the table is full).
    fn expire(&mut self, now: Instant) {
        self.flows.retain(|_, e| e.expires > now);
        let flows = &self.flows;
        self.schedule
            .retain(|slot| flows.get(&slot.flow).is_some_and(|e| e.slot == slot.at));
    }

    /// Returns the flows due for a keepalive at `now` and schedules their next one, and
    /// drops the flows whose registration ended; also returns how many were dropped.
    pub fn due(&mut self, now: Instant) -> (Vec<Flow>, usize) {
        let mut due = Vec::new();
        let mut expired = 0;
        while let Some(slot) = self.schedule.peek().copied() {
            if slot.at > now {
                break;
            }
            self.schedule.pop();
            let Some(entry) = self.flows.get_mut(&slot.flow) else {
                continue;
            };
            if entry.slot != slot.at {
                continue;
            }
            if entry.expires <= now {
                self.flows.remove(&slot.flow);
                expired += 1;
                continue;
            }
            if entry.next_keepalive <= now {
                due.push(slot.flow);
                entry.next_keepalive =
                    after(entry.next_keepalive, self.interval, now, entry.expires);
            }
            entry.slot = entry.next_keepalive.min(entry.expires);
            self.schedule.push(Slot {
                at: entry.slot,
                flow: slot.flow,
            });
        }
        (due, expired)
    }

    /// The earliest instant something may be due, if any flow is tracked.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.schedule.peek().map(|slot| slot.at)
    }

    /// Whether `flow` is tracked.
    pub fn contains(&self, flow: &Flow) -> bool {
        self.flows.contains_key(flow)
    }

    /// How many flows are tracked.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// Whether no flow is tracked.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use hasip::sip::Limits;
    use hasip::transport::Transport;

    use super::*;

    fn parse(text: &str) -> Message {
        Message::parse(Bytes::copy_from_slice(text.as_bytes()), &Limits::default())
            .unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    fn register(contact: &str) -> Message {
        parse(&format!(
            "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.168.1.2;branch=z9hG4bK1\r\n\
             From: <sip:a@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\nCall-ID: c1\r\n\
             CSeq: 1 REGISTER\r\n{contact}Content-Length: 0\r\n\r\n"
        ))
    }

    fn ok(contacts: &str) -> Message {
        parse(&format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.168.1.2;branch=z9hG4bK1\r\n\
             From: <sip:a@example.com>;tag=1\r\nTo: <sip:a@example.com>;tag=r\r\nCall-ID: c1\r\n\
             CSeq: 1 REGISTER\r\n{contacts}Content-Length: 0\r\n\r\n"
        ))
    }

    fn flow(port: u16) -> Flow {
        Flow {
            transport: Transport::Udp,
            local: ([127, 0, 0, 1], 5060).into(),
            remote: ([127, 0, 0, 2], port).into(),
            conn: None,
        }
    }

    #[test]
    fn the_phones_own_binding_gives_the_lifetime() {
        let request = register("Contact: <sip:a@192.168.1.2:5060>\r\n");
        let response = ok("Contact: <sip:other@10.9.9.9>;expires=3000, \
             <sip:a@192.168.1.2:5060>;expires=600\r\n");
        assert_eq!(
            registration(&request, &response),
            Registration::For(Duration::from_secs(600))
        );
    }

    #[test]
    fn the_expires_header_fills_in_and_zero_removes() {
        let request = register("Contact: <sip:a@192.168.1.2:5060>\r\n");
        let with_header = ok("Expires: 120\r\nContact: <sip:a@192.168.1.2:5060>\r\n");
        assert_eq!(
            registration(&request, &with_header),
            Registration::For(Duration::from_secs(120))
        );
        let gone = ok("Contact: <sip:other@10.9.9.9>;expires=3000\r\n");
        assert_eq!(registration(&request, &gone), Registration::Removed);
        let zero = ok("Contact: <sip:a@192.168.1.2:5060>;expires=0\r\n");
        assert_eq!(registration(&request, &zero), Registration::Removed);
        assert_eq!(
            registration(&register("Contact: *\r\nExpires: 0\r\n"), &ok("")),
            Registration::Removed
        );
        assert_eq!(
            registration(&register(""), &with_header),
            Registration::Unchanged
        );
    }

    #[test]
    fn keepalives_come_every_interval_until_expiry() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut table = FlowTable::new(s(25), 10);
        table.apply(flow(1), Registration::For(s(60)), t0);
        table.apply(flow(2), Registration::For(s(3600)), t0);
        assert_eq!(table.len(), 2);
        assert_eq!(table.next_deadline(), Some(t0 + s(25)));
        assert_eq!(table.due(t0 + s(10)).0, vec![]);
        let (mut due, expired) = table.due(t0 + s(25));
        due.sort_by_key(|f| f.remote.port());
        assert_eq!((due, expired), (vec![flow(1), flow(2)], 0));
        assert_eq!(table.due(t0 + s(30)).0, vec![]);
        assert_eq!(table.due(t0 + s(50)).0.len(), 2);
        // Flow 1's registration ends at 60 s: it goes and gets no more keepalives.
        let (due, expired) = table.due(t0 + s(75));
        assert_eq!((due, expired), (vec![flow(2)], 1));
        assert!(!table.contains(&flow(1)));
        // A refresh extends, a removal forgets.
        table.apply(flow(2), Registration::For(s(10)), t0 + s(80));
        assert_eq!(table.due(t0 + s(91)), (vec![], 1));
        assert!(table.is_empty());
        assert_eq!(
            table.due(t0 + s(200)),
            (vec![], 0),
            "stale items are skipped"
        );
        assert_eq!(table.next_deadline(), None);
    }

    #[test]
    fn a_tick_costs_only_the_due_flows() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut table = FlowTable::new(s(25), 100_000);
        for port in 0..50_000 {
            table.apply(
                flow(port),
                Registration::For(s(3600)),
                t0 + s(u64::from(port % 25)),
            );
        }
        // One second's share comes due each second, never the whole table.
        let (due, expired) = table.due(t0 + s(25));
        assert_eq!((due.len(), expired), (2000, 0));
        let (due, _) = table.due(t0 + s(26));
        assert_eq!(due.len(), 2000);
        assert_eq!(table.len(), 50_000);
    }

    #[test]
    fn each_flow_keeps_its_own_phase() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut table = FlowTable::new(ms(25_000), 100);
        table.apply(flow(1), Registration::For(ms(3_600_000)), t0);
        table.apply(flow(2), Registration::For(ms(3_600_000)), t0 + ms(600));
        // Both are found by a late look; each is next due an interval after its own time,
        // not an interval after the look, so a late look does not bunch them up.
        let (mut due, _) = table.due(t0 + ms(25_900));
        due.sort_by_key(|f| f.remote.port());
        assert_eq!(due, vec![flow(1), flow(2)]);
        assert_eq!(table.due(t0 + ms(49_999)), (vec![], 0));
        assert_eq!(table.due(t0 + ms(50_000)), (vec![flow(1)], 0));
        assert_eq!(table.due(t0 + ms(50_599)), (vec![], 0));
        assert_eq!(table.due(t0 + ms(50_600)), (vec![flow(2)], 0));
        // A look more than an interval late: the next ones are an interval from it.
        assert_eq!(table.due(t0 + ms(101_000)).0.len(), 2);
        assert_eq!(table.due(t0 + ms(125_999)), (vec![], 0));
        assert_eq!(table.due(t0 + ms(126_000)).0.len(), 2);
    }

    #[test]
    fn the_table_is_bounded() {
        let t0 = Instant::now();
        let mut table = FlowTable::new(Duration::from_secs(25), 3);
        for port in 0..10 {
            table.apply(flow(port), Registration::For(Duration::from_secs(60)), t0);
        }
        assert_eq!(table.len(), 3);
        table.apply(flow(0), Registration::Removed, t0);
        assert_eq!(table.len(), 2);
    }
}
