//! The registrar ring: consistent hashing of the normalised AoR over the live
//! registrars, each placed at many virtual points so a dead one's share spreads over
//! every other registrar instead of landing on one neighbour.
//!
//! Every edge builds the same ring from the same registrar list (virtual points are
//! hashed from the registrar's address, not from its position in the config), so all
//! edges send an AoR to the same registrar.

use std::hash::{Hash, Hasher};
use std::net::SocketAddr;

use hashring::HashRing;

/// One virtual point of a registrar on the ring.
#[derive(Debug, Clone, Copy)]
struct VNode {
    /// The registrar's index in the configured list.
    index: usize,
    /// What the point is hashed from: the registrar's address and the replica number.
    addr: SocketAddr,
    replica: u32,
}

impl Hash for VNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.addr.hash(state);
        self.replica.hash(state);
    }
}

/// The consistent-hash ring over the registrars that are up.
#[derive(Debug, Clone)]
pub struct Ring {
    addrs: Vec<SocketAddr>,
    up: Vec<bool>,
    virtual_nodes: u32,
    live: HashRing<VNode>,
}

impl Ring {
    /// A ring over `addrs`, all up, each at `virtual_nodes` points (at least one).
    pub fn new(addrs: Vec<SocketAddr>, virtual_nodes: u32) -> Self {
        let up = vec![true; addrs.len()];
        let mut ring = Ring {
            addrs,
            up,
            virtual_nodes: virtual_nodes.max(1),
            live: HashRing::new(),
        };
        ring.rebuild();
        ring
    }

    fn rebuild(&mut self) {
        let mut points = Vec::with_capacity(self.addrs.len() * self.virtual_nodes as usize);
        // With every registrar marked down, every one is tried again: the marks come
        // from probes and transactions that timed out, and a core that is only slow
        // (a burst after an outage) should answer late rather than get no chance.
        let nobody_up = !self.up.contains(&true);
        for (index, (&addr, &up)) in self.addrs.iter().zip(&self.up).enumerate() {
            if up || nobody_up {
                points.extend((0..self.virtual_nodes).map(|replica| VNode {
                    index,
                    addr,
                    replica,
                }));
            }
        }
        let mut live = HashRing::new();
        live.batch_add(points);
        self.live = live;
    }

    /// The registrars' addresses, in configured order.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Whether registrar `index` is in the ring.
    pub fn is_up(&self, index: usize) -> bool {
        self.up.get(index).copied().unwrap_or(false)
    }

    /// Takes registrar `index` in or out of the ring; true if that changed anything.
    pub fn set_up(&mut self, index: usize, up: bool) -> bool {
        match self.up.get_mut(index) {
            Some(slot) if *slot != up => {
                *slot = up;
                self.rebuild();
                true
            }
            _ => false,
        }
    }

    /// The live registrar that owns `aor` (any registrar when every one is marked down);
    /// `None` only when none is configured.
    pub fn choose(&self, aor: &str) -> Option<usize> {
        self.live.get(&aor).map(|point| point.index)
    }

    /// The next live registrar on the ring for `aor` that is not in `tried`: the one a
    /// transaction moves to after a timeout or a 503.
    pub fn next_after(&self, aor: &str, tried: &[usize]) -> Option<usize> {
        if let Some(first) = self.choose(aor) {
            if !tried.contains(&first) {
                return Some(first);
            }
        }
        // Failover is rare, so walking a copy of the ring costs little.
        let points = self.live.get_with_replicas(&aor, self.live.len())?;
        points
            .into_iter()
            .map(|point| point.index)
            .find(|index| !tried.contains(index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(n: u16) -> Vec<SocketAddr> {
        (0..n)
            .map(|i| SocketAddr::from(([10, 0, 0, 1], 5060 + i)))
            .collect()
    }

    fn aor(i: usize) -> String {
        format!("sip:user{i}@example.com")
    }

    fn spread(ring: &Ring, n: usize) -> Vec<usize> {
        let mut counts = vec![0; ring.addrs().len()];
        for i in 0..n {
            if let Some(slot) = ring.choose(&aor(i)).and_then(|r| counts.get_mut(r)) {
                *slot += 1;
            }
        }
        counts
    }

    #[test]
    fn choice_is_stable_and_independent_of_config_order() {
        let ring = Ring::new(addrs(4), 512);
        let mut reversed = addrs(4);
        reversed.reverse();
        let other = Ring::new(reversed.clone(), 512);
        for i in 0..500 {
            let a = ring
                .choose(&aor(i))
                .and_then(|r| ring.addrs().get(r).copied());
            let b = other
                .choose(&aor(i))
                .and_then(|r| other.addrs().get(r).copied());
            assert!(a.is_some());
            assert_eq!(a, b, "{}", aor(i));
            assert_eq!(
                ring.choose(&aor(i)),
                Ring::new(addrs(4), 512).choose(&aor(i))
            );
        }
    }

    #[test]
    fn ten_thousand_aors_spread_evenly_over_four_registrars() {
        let ring = Ring::new(addrs(4), 512);
        let counts = spread(&ring, 10_000);
        println!("spread of 10000 AoRs over 4 registrars: {counts:?}");
        for count in &counts {
            // 2500 each when perfect; 512 virtual nodes keep it within 15%.
            assert!((2125..=2875).contains(count), "{counts:?}");
        }
        assert_eq!(counts.iter().sum::<usize>(), 10_000);
    }

    #[test]
    fn a_dead_registrars_share_spreads_over_all_the_others() {
        let mut ring = Ring::new(addrs(4), 512);
        let before: Vec<_> = (0..10_000).map(|i| ring.choose(&aor(i))).collect();
        assert!(ring.set_up(2, false));
        let mut moved_to = [0usize; 4];
        for (i, old) in before.iter().enumerate() {
            let new = ring.choose(&aor(i));
            if *old == Some(2) {
                if let Some(slot) = new.and_then(|n| moved_to.get_mut(n)) {
                    *slot += 1;
                }
            } else {
                // Nobody else's AoRs move.
                assert_eq!(new, *old);
            }
        }
        println!("registrar 2's AoRs moved to: {moved_to:?}");
        assert_eq!(moved_to[2], 0);
        let total: usize = moved_to.iter().sum();
        for other in [0, 1, 3] {
            // Each survivor takes a real part, not one neighbour taking all.
            assert!(moved_to[other] * 6 > total, "{moved_to:?}");
        }
        // Back up, it takes back exactly its share.
        assert!(ring.set_up(2, true));
        for (i, old) in before.iter().enumerate() {
            assert_eq!(ring.choose(&aor(i)), *old);
        }
    }

    #[test]
    fn failover_walks_to_the_registrar_that_takes_over() {
        let mut ring = Ring::new(addrs(4), 512);
        for i in 0..300 {
            let key = aor(i);
            let first = ring.choose(&key).unwrap_or(usize::MAX);
            let second = ring.next_after(&key, &[first]).unwrap_or(usize::MAX);
            assert_ne!(first, second);
            // The failover target is where the AoR lands once `first` is marked down.
            ring.set_up(first, false);
            assert_eq!(ring.choose(&key), Some(second));
            ring.set_up(first, true);
            let third = ring.next_after(&key, &[first, second]);
            assert!(third.is_some_and(|t| t != first && t != second));
            assert_eq!(ring.next_after(&key, &[0, 1, 2, 3]), None);
        }
    }

    #[test]
    fn all_down_tries_every_registrar_again() {
        let mut ring = Ring::new(addrs(2), 8);
        let owner = ring.choose("sip:a@b");
        ring.set_up(0, false);
        ring.set_up(1, false);
        assert!(!ring.is_up(0) && !ring.is_up(1));
        // The owner is the one it was with everyone up, then the other one, then nobody.
        assert_eq!(ring.choose("sip:a@b"), owner);
        let first = owner.unwrap_or_default();
        assert_eq!(ring.next_after("sip:a@b", &[first]), Some(1 - first));
        assert_eq!(ring.next_after("sip:a@b", &[0, 1]), None);
        // One back up takes everything.
        ring.set_up(1, true);
        assert_eq!(ring.choose("sip:a@b"), Some(1));
        assert!(!ring.set_up(7, true));
        assert!(!ring.is_up(7));
    }
}
