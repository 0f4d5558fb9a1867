//! The table of server transactions, by key.
//!
//! A running transaction has a task and an input queue. A non-INVITE transaction over
//! UDP that has sent its final response has nothing left to do but answer request
//! retransmissions with that response until Timer J (64*T1, 32 s by default). Its task
//! ends there and its machine, flow and response stay in the table, in the order their
//! Timer J fires; whoever next touches the table drops the ones that are due. At a few
//! thousand requests a second this keeps a few hundred thousand tasks, channels and
//! timers from waiting out Timer J.

use std::collections::hash_map::Entry as MapEntry;
use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::server::Input;
use super::Entry;
use crate::transaction::{ServerKey, ServerNonInvite, ServerNonInviteAction};
use crate::transport::Flow;

/// A completed non-INVITE server transaction without a task.
#[derive(Debug)]
pub(super) struct Completed {
    /// The id of the transaction whose task parked it.
    pub(super) id: u64,
    /// The machine, in its Completed state, which keeps Timer J.
    pub(super) machine: ServerNonInvite,
    /// The flow the request arrived on, over which the response goes again.
    pub(super) flow: Flow,
    /// The final response, re-sent byte for byte.
    pub(super) response: Bytes,
}

#[derive(Debug)]
enum Slot {
    Running(Entry<Input>),
    Completed(Box<Completed>),
}

impl Slot {
    fn id(&self) -> u64 {
        match self {
            Slot::Running(entry) => entry.id,
            Slot::Completed(completed) => completed.id,
        }
    }
}

/// What a request's key found in the table.
#[derive(Debug)]
pub(super) enum Found {
    /// Nothing: a new transaction.
    None,
    /// A running transaction's input queue.
    Running(mpsc::Sender<Input>),
    /// A completed transaction: send `response` over `flow` again.
    Resend {
        /// The flow of the original request.
        flow: Flow,
        /// The final response.
        response: Bytes,
    },
    /// A completed transaction with nothing to send.
    Absorbed,
}

/// The server transactions, running and completed.
#[derive(Debug, Default)]
pub(super) struct ServerTable {
    slots: HashMap<ServerKey, Slot>,
    /// The completed transactions' Timer J deadlines in parking order. Timer J is one
    /// length for the whole layer, so that is deadline order, give or take the moments
    /// between a final response and its parking, so an entry may end that much late.
    deadlines: VecDeque<(Instant, ServerKey, u64)>,
    /// Whether a task is sweeping `deadlines` while the layer is idle.
    pub(super) sweeping: bool,
}

impl ServerTable {
    /// Number of transactions, running or completed.
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Adds a running transaction, in place of whatever held the key.
    pub(super) fn insert_running(&mut self, key: ServerKey, entry: Entry<Input>) {
        self.slots.insert(key, Slot::Running(entry));
    }

    /// Routes a second key to a running transaction; an entry already there stays.
    pub(super) fn add_alias(&mut self, alias: ServerKey, entry: Entry<Input>) {
        self.slots.entry(alias).or_insert(Slot::Running(entry));
    }

    /// Removes a transaction's entry unless a newer one took its key.
    pub(super) fn remove(&mut self, key: &ServerKey, id: u64) {
        if self.slots.get(key).is_some_and(|slot| slot.id() == id) {
            self.slots.remove(key);
        }
    }

    /// Turns running transaction `id` into a completed one; false when the key has
    /// moved on to another transaction (the caller then counts it ended).
    pub(super) fn park(&mut self, key: ServerKey, completed: Completed) -> bool {
        let Some(deadline) = completed.machine.poll_timeout() else {
            self.remove(&key, completed.id);
            return false;
        };
        let id = completed.id;
        match self.slots.get_mut(&key) {
            Some(slot) if slot.id() == id => *slot = Slot::Completed(Box::new(completed)),
            _ => return false,
        }
        self.deadlines.push_back((deadline, key, id));
        true
    }

    /// Drops the completed transactions whose Timer J is due at `now`; returns how
    /// many ended.
    pub(super) fn sweep(&mut self, now: Instant) -> usize {
        let mut ended = 0;
        while let Some((deadline, _, _)) = self.deadlines.front() {
            if *deadline > now {
                break;
            }
            let Some((_, key, id)) = self.deadlines.pop_front() else {
                break;
            };
            // Timer J: the transaction ends with its entry, unless a newer one took the key.
            if let MapEntry::Occupied(slot) = self.slots.entry(key) {
                if matches!(slot.get(), Slot::Completed(completed) if completed.id == id) {
                    slot.remove();
                    ended += 1;
                }
            }
        }
        ended
    }

    /// When the next completed transaction's Timer J fires.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.front().map(|(deadline, _, _)| *deadline)
    }

    /// Looks up a request's key at `now` (after a [`ServerTable::sweep`]).
    pub(super) fn find(&mut self, key: &ServerKey, now: Instant) -> Found {
        match self.slots.get_mut(key) {
            None => Found::None,
            Some(Slot::Running(entry)) => Found::Running(entry.input.clone()),
            Some(Slot::Completed(completed)) => match completed.machine.on_request(now) {
                Some(ServerNonInviteAction::ResendResponse) => Found::Resend {
                    flow: completed.flow,
                    response: completed.response.clone(),
                },
                _ => Found::Absorbed,
            },
        }
    }

    /// The input queue of a running transaction with `key`.
    pub(super) fn running(&self, key: &ServerKey) -> Option<mpsc::Sender<Input>> {
        match self.slots.get(key) {
            Some(Slot::Running(entry)) => Some(entry.input.clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::transaction::{Reliability, ServerNonInviteState, TimerConfig, TimerKind};
    use crate::transport::Transport;

    fn key(branch: &str) -> ServerKey {
        ServerKey::Rfc3261 {
            branch: branch.to_owned(),
            sent_by: "h:5060".to_owned(),
            method: "REGISTER".to_owned(),
        }
    }

    fn running(id: u64) -> Entry<Input> {
        let (input, _) = mpsc::channel(1);
        Entry { id, input }
    }

    fn flow() -> Flow {
        Flow {
            transport: Transport::Udp,
            local: "127.0.0.1:5060".parse().unwrap_or_else(|e| panic!("{e}")),
            remote: "127.0.0.1:5070".parse().unwrap_or_else(|e| panic!("{e}")),
            conn: None,
        }
    }

    /// A machine that answered 200 at `at` over UDP.
    fn completed(id: u64, at: Instant) -> Completed {
        let mut machine =
            ServerNonInvite::new(Reliability::Unreliable, &TimerConfig::default(), at);
        assert!(machine.send_response(200, at).is_some());
        assert_eq!(machine.state(), ServerNonInviteState::Completed);
        Completed {
            id,
            machine,
            flow: flow(),
            response: Bytes::from_static(b"SIP/2.0 200 OK\r\n\r\n"),
        }
    }

    #[test]
    fn a_completed_transaction_resends_until_timer_j() {
        let start = Instant::now();
        let j = TimerConfig::default().initial(TimerKind::J, Reliability::Unreliable);
        let mut table = ServerTable::default();
        table.insert_running(key("a"), running(1));
        assert!(matches!(table.find(&key("a"), start), Found::Running(_)));
        assert!(table.park(key("a"), completed(1, start)));
        assert_eq!(table.next_deadline(), Some(start + j));

        let before = start + j - Duration::from_millis(1);
        assert_eq!(table.sweep(before), 0);
        match table.find(&key("a"), before) {
            Found::Resend { response, .. } => assert_eq!(&response[..], b"SIP/2.0 200 OK\r\n\r\n"),
            other => panic!("expected a resend, got {other:?}"),
        }
        assert_eq!(table.sweep(start + j), 1);
        assert!(matches!(table.find(&key("a"), start + j), Found::None));
        assert_eq!(table.len(), 0);
        assert_eq!(table.next_deadline(), None);
    }

    #[test]
    fn a_newer_transaction_on_the_key_is_left_alone() {
        let start = Instant::now();
        let mut table = ServerTable::default();
        table.insert_running(key("a"), running(1));
        assert!(table.park(key("a"), completed(1, start)));
        // The key is taken by a new transaction before the old one's Timer J.
        table.insert_running(key("a"), running(2));
        assert_eq!(table.sweep(start + Duration::from_secs(60)), 0);
        assert!(matches!(table.find(&key("a"), start), Found::Running(_)));
        // Parking a transaction whose key moved on keeps the newer one.
        assert!(!table.park(key("a"), completed(1, start)));
        table.remove(&key("a"), 1);
        assert_eq!(table.len(), 1);
        table.remove(&key("a"), 2);
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn only_running_transactions_take_inputs() {
        let start = Instant::now();
        let mut table = ServerTable::default();
        table.insert_running(key("a"), running(1));
        assert!(table.running(&key("a")).is_some());
        assert!(table.park(key("a"), completed(1, start)));
        assert!(table.running(&key("a")).is_none());
        assert!(table.running(&key("b")).is_none());
    }
}
