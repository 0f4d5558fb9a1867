//! The forking state of one proxied request (RFC 3261 sections 16.7 to 16.10, RFC 5626
//! section 5.3), sans-IO: responses, failures, the caller's CANCEL and the time go in;
//! requests to send, CANCELs and responses for the caller come out.
//!
//! - Destinations of one q group are tried in parallel, groups one after the other.
//! - Provisional responses other than 100 are forwarded; every 2xx to an INVITE is
//!   forwarded and cancels the pending branches; a 6xx cancels them and stops new ones.
//! - Otherwise the best final response is sent once every branch has one (section
//!   16.7 step 6): 6xx, then the lowest class, with 401/407/415/420/484 preferred.
//! - Timer C (section 16.8) runs per INVITE branch: when it fires the branch is
//!   cancelled and counts as a 408.
//! - On 430 Flow Failed or a transport error, the next flow of the same RFC 5626
//!   instance is tried before the destination counts as failed.
//!
//! The type of a response is a parameter, so the machine is tested with plain values.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::route::{Destination, Target};

/// Identifies one branch (one client transaction) of a fork.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BranchId(pub usize);

/// Why a branch ended without a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The client transaction timed out (Timer B or F): counts as 408.
    Timeout,
    /// The request could not be sent: try the next flow, else counts as 480.
    Transport,
}

/// A response for the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply<R> {
    /// Forward a response a branch received.
    Forward(R),
    /// Generate a response with this status.
    Generate(u16),
}

/// What the I/O shell must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action<R> {
    /// Send the request to a target on a new branch.
    Send {
        /// The new branch.
        branch: BranchId,
        /// Where and how.
        target: Target,
    },
    /// CANCEL the branch's INVITE (the transaction layer waits for a provisional).
    Cancel(BranchId),
    /// Send this to the caller: a provisional, a 2xx, or the final response.
    Respond(Reply<R>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for a final response.
    Calling,
    /// Has its outcome (a final response, a failure, or a cancel).
    Done,
}

#[derive(Debug)]
struct Branch {
    destination: usize,
    flow: usize,
    state: State,
    provisional: bool,
    timer_c: Option<Instant>,
}

/// The best final response so far.
#[derive(Debug)]
struct Best<R> {
    code: u16,
    rank: u16,
    reply: Reply<R>,
}

/// How good a final response is for the caller; lower is better (section 16.7 step 6).
fn rank(code: u16, generated: bool) -> u16 {
    match code {
        600..=699 => 0,
        300..=399 => 10,
        401 | 407 | 415 | 420 | 484 => 20,
        400..=499 if generated => 22,
        400..=499 => 21,
        _ => 30,
    }
}

/// The forking state of one request.
#[derive(Debug)]
pub struct Fork<R> {
    invite: bool,
    timer_c: Duration,
    groups: VecDeque<Vec<Destination>>,
    destinations: Vec<Destination>,
    branches: Vec<Branch>,
    best: Option<Best<R>>,
    final_sent: bool,
    /// No new branches: a 2xx, a 6xx or the caller's CANCEL came.
    stopped: bool,
}

impl<R> Fork<R> {
    /// A fork over q groups (see [`super::route::q_groups`]); `invite` turns on Timer C,
    /// CANCEL and the forwarding of every 2xx.
    pub fn new(invite: bool, groups: Vec<Vec<Destination>>, timer_c: Duration) -> Self {
        Fork {
            invite,
            timer_c,
            groups: groups.into_iter().filter(|g| !g.is_empty()).collect(),
            destinations: Vec::new(),
            branches: Vec::new(),
            best: None,
            final_sent: false,
            stopped: false,
        }
    }

    /// Starts the first q group; with no destination at all, answers 480.
    pub fn start(&mut self, now: Instant) -> Vec<Action<R>> {
        let mut out = Vec::new();
        self.advance(now, &mut out);
        out
    }

    /// Whether the caller has its final response.
    pub fn final_sent(&self) -> bool {
        self.final_sent
    }

    /// The earliest Timer C deadline of a pending branch.
    pub fn deadline(&self) -> Option<Instant> {
        self.branches
            .iter()
            .filter(|b| b.state == State::Calling)
            .filter_map(|b| b.timer_c)
            .min()
    }

    /// A response `code` on `branch`.
    pub fn response(
        &mut self,
        branch: BranchId,
        code: u16,
        response: R,
        now: Instant,
    ) -> Vec<Action<R>> {
        let mut out = Vec::new();
        let invite = self.invite;
        let timer_c = self.timer_c;
        let Some(b) = self.branches.get_mut(branch.0) else {
            return out;
        };
        match code {
            100..=199 => {
                if b.state == State::Calling && code > 100 {
                    b.provisional = true;
                    if invite {
                        b.timer_c = Some(now + timer_c);
                    }
                }
                if code > 100 && !self.final_sent && b.state == State::Calling {
                    out.push(Action::Respond(Reply::Forward(response)));
                }
            }
            200..=299 => {
                b.state = State::Done;
                if invite {
                    // Every 2xx goes up, also after the first (section 16.7 step 5).
                    out.push(Action::Respond(Reply::Forward(response)));
                    if !self.final_sent {
                        self.final_sent = true;
                        self.stop(&mut out);
                    }
                } else if !self.final_sent {
                    self.final_sent = true;
                    self.stopped = true;
                    out.push(Action::Respond(Reply::Forward(response)));
                }
            }
            300..=699 => {
                if b.state == State::Done {
                    // The 487 of a branch we cancelled, or a late answer.
                    return out;
                }
                b.state = State::Done;
                if code == 430 && self.next_flow(branch, now, &mut out) {
                    return out;
                }
                if code == 430 {
                    // No other flow of that instance: the phone is unreachable.
                    self.consider(480, Reply::Generate(480));
                } else {
                    self.consider(code, Reply::Forward(response));
                }
                if code >= 600 {
                    self.stop(&mut out);
                }
                self.advance(now, &mut out);
            }
            _ => {}
        }
        out
    }

    /// `branch` ended without a final response.
    pub fn failed(&mut self, branch: BranchId, failure: Failure, now: Instant) -> Vec<Action<R>> {
        let mut out = Vec::new();
        let Some(b) = self.branches.get_mut(branch.0) else {
            return out;
        };
        if b.state == State::Done {
            return out;
        }
        b.state = State::Done;
        match failure {
            Failure::Transport => {
                if self.next_flow(branch, now, &mut out) {
                    return out;
                }
                self.consider(480, Reply::Generate(480));
            }
            Failure::Timeout => self.consider(408, Reply::Generate(408)),
        }
        self.advance(now, &mut out);
        out
    }

    /// The caller CANCELled (section 16.10): cancel every pending branch, start no new
    /// one, and answer 487 unless a final response went up already.
    pub fn cancel(&mut self) -> Vec<Action<R>> {
        let mut out = Vec::new();
        if !self.invite || self.final_sent {
            return out;
        }
        self.stop(&mut out);
        self.final_sent = true;
        out.push(Action::Respond(Reply::Generate(487)));
        out
    }

    /// Fires the Timer C of every branch whose deadline is not after `now`: such a
    /// branch is cancelled and counts as a 408.
    pub fn expire(&mut self, now: Instant) -> Vec<Action<R>> {
        let mut out = Vec::new();
        let mut fired = false;
        for (i, b) in self.branches.iter_mut().enumerate() {
            if b.state == State::Calling && b.timer_c.is_some_and(|t| t <= now) {
                b.state = State::Done;
                out.push(Action::Cancel(BranchId(i)));
                fired = true;
            }
        }
        if fired {
            self.consider(408, Reply::Generate(408));
            self.advance(now, &mut out);
        }
        out
    }

    /// Keeps the better of the best so far and this one; the first wins a tie.
    fn consider(&mut self, code: u16, reply: Reply<R>) {
        let generated = matches!(reply, Reply::Generate(_));
        let rank = rank(code, generated);
        if self.best.as_ref().is_none_or(|b| rank < b.rank) {
            self.best = Some(Best { code, rank, reply });
        }
    }

    /// Cancels every pending branch and stops new ones.
    fn stop(&mut self, out: &mut Vec<Action<R>>) {
        self.stopped = true;
        for (i, b) in self.branches.iter_mut().enumerate() {
            if b.state == State::Calling {
                b.state = State::Done;
                if self.invite {
                    out.push(Action::Cancel(BranchId(i)));
                }
            }
        }
    }

    /// Starts a branch on the flow after the one `branch` used, if its destination has one.
    fn next_flow(&mut self, branch: BranchId, now: Instant, out: &mut Vec<Action<R>>) -> bool {
        if self.stopped || self.final_sent {
            return false;
        }
        let Some(b) = self.branches.get(branch.0) else {
            return false;
        };
        let (destination, flow) = (b.destination, b.flow + 1);
        let exists = self
            .destinations
            .get(destination)
            .is_some_and(|d| d.flows.get(flow).is_some());
        if exists {
            self.open(destination, flow, now, out);
        }
        exists
    }

    /// Opens a branch to one flow of a destination.
    fn open(&mut self, destination: usize, flow: usize, now: Instant, out: &mut Vec<Action<R>>) {
        let Some(target) = self
            .destinations
            .get(destination)
            .and_then(|d| d.flows.get(flow))
            .cloned()
        else {
            return;
        };
        let id = BranchId(self.branches.len());
        self.branches.push(Branch {
            destination,
            flow,
            state: State::Calling,
            provisional: false,
            timer_c: self.invite.then(|| now + self.timer_c),
        });
        out.push(Action::Send { branch: id, target });
    }

    /// When no branch is pending: the next q group, or the best final response.
    fn advance(&mut self, now: Instant, out: &mut Vec<Action<R>>) {
        if self.branches.iter().any(|b| b.state == State::Calling) {
            return;
        }
        if !self.stopped && !self.final_sent {
            if let Some(group) = self.groups.pop_front() {
                for dest in group {
                    let index = self.destinations.len();
                    self.destinations.push(dest);
                    self.open(index, 0, now, out);
                }
                if self.branches.iter().any(|b| b.state == State::Calling) {
                    return;
                }
            }
        }
        if self.final_sent {
            return;
        }
        self.final_sent = true;
        let reply = match self.best.take() {
            // Section 16.7 step 6: a 503 from downstream goes up as 500.
            Some(Best { code: 503, .. }) => Reply::Generate(500),
            Some(best) => best.reply,
            None => Reply::Generate(480),
        };
        out.push(Action::Respond(reply));
    }

    /// Whether the branch got a provisional response (the transaction layer needs one
    /// before a CANCEL may go).
    pub fn had_provisional(&self, branch: BranchId) -> bool {
        self.branches.get(branch.0).is_some_and(|b| b.provisional)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::route::Hop;
    use hasip::transport::Transport;

    const TC: Duration = Duration::from_secs(180);

    fn target(name: &str) -> Target {
        Target {
            ruid: name.into(),
            request_uri: format!("sip:{name}@10.0.0.1"),
            route: vec![],
            hop: Hop {
                host: "10.0.0.1".into(),
                port: None,
                transport: Transport::Udp,
            },
        }
    }

    fn dest(q: u16, flows: &[&str]) -> Destination {
        Destination {
            q,
            flows: flows.iter().map(|f| target(f)).collect(),
        }
    }

    /// Responses are their names, e.g. "486 from b".
    type A = Action<&'static str>;

    fn sent(actions: &[A]) -> Vec<(usize, String)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send { branch, target } => Some((branch.0, target.ruid.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn parallel_ring_one_answers_other_cancelled() {
        let now = Instant::now();
        let mut f = Fork::new(true, vec![vec![dest(1000, &["a"]), dest(1000, &["b"])]], TC);
        let a = f.start(now);
        assert_eq!(sent(&a), vec![(0, "a".into()), (1, "b".into())]);
        assert_eq!(f.response(BranchId(0), 100, "100 a", now), vec![]);
        assert_eq!(
            f.response(BranchId(1), 180, "180 b", now),
            vec![A::Respond(Reply::Forward("180 b"))]
        );
        assert_eq!(
            f.response(BranchId(1), 200, "200 b", now),
            vec![A::Respond(Reply::Forward("200 b")), A::Cancel(BranchId(0))]
        );
        assert!(f.final_sent());
        // The cancelled branch's 487 is absorbed; a late 2xx still goes up.
        assert_eq!(f.response(BranchId(0), 487, "487 a", now), vec![]);
        assert_eq!(
            f.response(BranchId(0), 200, "200 a", now),
            vec![A::Respond(Reply::Forward("200 a"))]
        );
    }

    #[test]
    fn sequential_q_groups() {
        let now = Instant::now();
        let mut f = Fork::new(
            true,
            vec![vec![dest(1000, &["hi"])], vec![dest(500, &["lo"])]],
            TC,
        );
        assert_eq!(sent(&f.start(now)), vec![(0, "hi".into())]);
        let a = f.response(BranchId(0), 486, "486 hi", now);
        assert_eq!(sent(&a), vec![(1, "lo".into())]);
        assert_eq!(
            f.response(BranchId(1), 404, "404 lo", now),
            vec![A::Respond(Reply::Forward("486 hi"))]
        );
    }

    #[test]
    fn best_response_prefers_6xx_then_lowest_class_then_auth() {
        let now = Instant::now();
        let three = vec![vec![
            dest(1000, &["a"]),
            dest(1000, &["b"]),
            dest(1000, &["c"]),
        ]];
        let mut f = Fork::new(false, three.clone(), TC);
        f.start(now);
        assert_eq!(f.response(BranchId(0), 503, "503 a", now), vec![]);
        assert_eq!(f.response(BranchId(1), 486, "486 b", now), vec![]);
        assert_eq!(
            f.response(BranchId(2), 407, "407 c", now),
            vec![A::Respond(Reply::Forward("407 c"))]
        );

        let mut f = Fork::new(true, three.clone(), TC);
        f.start(now);
        assert_eq!(
            f.response(BranchId(1), 603, "603 b", now),
            vec![
                A::Cancel(BranchId(0)),
                A::Cancel(BranchId(2)),
                A::Respond(Reply::Forward("603 b"))
            ]
        );

        let mut f = Fork::new(false, vec![vec![dest(1000, &["a"])]], TC);
        f.start(now);
        assert_eq!(
            f.response(BranchId(0), 503, "503 a", now),
            vec![A::Respond(Reply::Generate(500))]
        );
    }

    #[test]
    fn caller_cancel_cancels_branches_and_answers_487() {
        let now = Instant::now();
        let mut f: Fork<&str> =
            Fork::new(true, vec![vec![dest(1000, &["a"]), dest(1000, &["b"])]], TC);
        f.start(now);
        f.response(BranchId(0), 180, "180 a", now);
        assert_eq!(
            f.cancel(),
            vec![
                A::Cancel(BranchId(0)),
                A::Cancel(BranchId(1)),
                A::Respond(Reply::Generate(487))
            ]
        );
        assert_eq!(f.response(BranchId(0), 487, "487 a", now), vec![]);
        assert_eq!(f.cancel(), vec![]);
    }

    #[test]
    fn timer_c_cancels_and_answers_408() {
        let now = Instant::now();
        let mut f: Fork<&str> = Fork::new(true, vec![vec![dest(1000, &["a"])]], TC);
        f.start(now);
        assert_eq!(f.deadline(), Some(now + TC));
        let later = now + Duration::from_secs(100);
        f.response(BranchId(0), 180, "180 a", later);
        assert_eq!(f.deadline(), Some(later + TC));
        assert_eq!(f.expire(now + TC), vec![]);
        assert_eq!(
            f.expire(later + TC),
            vec![A::Cancel(BranchId(0)), A::Respond(Reply::Generate(408))]
        );
        assert_eq!(f.deadline(), None);
    }

    #[test]
    fn flow_failure_tries_the_next_flow_of_the_instance() {
        let now = Instant::now();
        let mut f: Fork<&str> = Fork::new(true, vec![vec![dest(1000, &["f1", "f2"])]], TC);
        assert_eq!(sent(&f.start(now)), vec![(0, "f1".into())]);
        assert_eq!(
            sent(&f.response(BranchId(0), 430, "430", now)),
            vec![(1, "f2".into())]
        );
        assert_eq!(
            f.failed(BranchId(1), Failure::Transport, now),
            vec![A::Respond(Reply::Generate(480))]
        );
    }

    #[test]
    fn timeouts_and_empty_target_sets() {
        let now = Instant::now();
        let mut f: Fork<&str> = Fork::new(false, vec![vec![dest(1000, &["a"])]], TC);
        f.start(now);
        assert_eq!(f.deadline(), None);
        assert_eq!(
            f.failed(BranchId(0), Failure::Timeout, now),
            vec![A::Respond(Reply::Generate(408))]
        );
        let mut f: Fork<&str> = Fork::new(true, vec![], TC);
        assert_eq!(f.start(now), vec![A::Respond(Reply::Generate(480))]);
        // Unknown branches are ignored.
        assert_eq!(f.response(BranchId(7), 200, "x", now), vec![]);
    }

    #[test]
    fn non_invite_first_2xx_is_final_and_others_ignored() {
        let now = Instant::now();
        let mut f = Fork::new(
            false,
            vec![vec![dest(1000, &["a"]), dest(1000, &["b"])]],
            TC,
        );
        f.start(now);
        assert_eq!(
            f.response(BranchId(0), 200, "200 a", now),
            vec![A::Respond(Reply::Forward("200 a"))]
        );
        assert_eq!(f.response(BranchId(1), 200, "200 b", now), vec![]);
        assert_eq!(f.response(BranchId(1), 404, "404 b", now), vec![]);
    }
}
