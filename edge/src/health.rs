//! Registrar health from OPTIONS probes and from the fate of forwarded transactions.
//!
//! A registrar goes down after `down_after` failures in a row (a probe or a
//! transaction that timed out, or a 503), and comes back up after `up_after` probe
//! answers in a row. Any answer to a forwarded request counts as a success. The caller
//! applies each transition to the [`crate::ring::Ring`].

use serde::Deserialize;

/// Thresholds for marking registrars down and up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// Milliseconds between OPTIONS probes to each registrar.
    pub probe_interval_ms: u64,
    /// Milliseconds a probe may wait for its answer.
    pub probe_timeout_ms: u64,
    /// Consecutive failures (probes or transactions) that mark a registrar down.
    pub down_after: u32,
    /// Consecutive answered probes that bring a down registrar back.
    pub up_after: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            probe_interval_ms: 2000,
            probe_timeout_ms: 1000,
            down_after: 1,
            up_after: 2,
        }
    }
}

/// What an observation did to a registrar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Nothing changed.
    None,
    /// It just went down: take it out of the ring.
    Down,
    /// It just came back: put it back in the ring.
    Up,
}

#[derive(Debug, Clone, Copy, Default)]
struct State {
    down: bool,
    failures: u32,
    successes: u32,
}

/// The health of every registrar, by index.
#[derive(Debug, Clone)]
pub struct Health {
    config: HealthConfig,
    states: Vec<State>,
}

impl Health {
    /// All `count` registrars start up.
    pub fn new(count: usize, config: HealthConfig) -> Self {
        Health {
            config,
            states: vec![State::default(); count],
        }
    }

    /// Whether registrar `index` is down.
    pub fn is_down(&self, index: usize) -> bool {
        self.states.get(index).is_some_and(|s| s.down)
    }

    /// A probe or transaction failed.
    pub fn failure(&mut self, index: usize) -> Transition {
        let down_after = self.config.down_after.max(1);
        let Some(state) = self.states.get_mut(index) else {
            return Transition::None;
        };
        state.successes = 0;
        state.failures = state.failures.saturating_add(1);
        if !state.down && state.failures >= down_after {
            state.down = true;
            return Transition::Down;
        }
        Transition::None
    }

    /// A probe was answered.
    pub fn probe_answered(&mut self, index: usize) -> Transition {
        let up_after = self.config.up_after.max(1);
        let Some(state) = self.states.get_mut(index) else {
            return Transition::None;
        };
        state.failures = 0;
        state.successes = state.successes.saturating_add(1);
        if state.down && state.successes >= up_after {
            state.down = false;
            return Transition::Up;
        }
        Transition::None
    }

    /// A forwarded request was answered: proof of life, but a down registrar waits for
    /// its probes to come back so one lucky answer does not flap it.
    pub fn answered(&mut self, index: usize) {
        if let Some(state) = self.states.get_mut(index) {
            if !state.down {
                state.failures = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(down_after: u32, up_after: u32) -> HealthConfig {
        HealthConfig {
            down_after,
            up_after,
            ..HealthConfig::default()
        }
    }

    #[test]
    fn goes_down_after_the_threshold_and_up_after_its_own() {
        let mut health = Health::new(2, config(3, 2));
        assert_eq!(health.failure(0), Transition::None);
        assert_eq!(health.failure(0), Transition::None);
        assert!(!health.is_down(0));
        assert_eq!(health.failure(0), Transition::Down);
        assert!(health.is_down(0));
        assert_eq!(health.failure(0), Transition::None);
        assert_eq!(health.probe_answered(0), Transition::None);
        assert_eq!(health.probe_answered(0), Transition::Up);
        assert!(!health.is_down(0));
        assert!(!health.is_down(1));
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let mut health = Health::new(1, config(2, 1));
        health.failure(0);
        health.answered(0);
        assert_eq!(health.failure(0), Transition::None);
        assert_eq!(health.failure(0), Transition::Down);
        // A forwarded answer alone does not bring it back.
        health.answered(0);
        assert!(health.is_down(0));
        assert_eq!(health.probe_answered(0), Transition::Up);
    }

    #[test]
    fn a_failure_interrupts_the_way_back() {
        let mut health = Health::new(1, config(1, 2));
        assert_eq!(health.failure(0), Transition::Down);
        health.probe_answered(0);
        health.failure(0);
        assert_eq!(health.probe_answered(0), Transition::None);
        assert_eq!(health.probe_answered(0), Transition::Up);
    }

    #[test]
    fn unknown_indexes_are_ignored() {
        let mut health = Health::new(1, HealthConfig::default());
        assert_eq!(health.failure(9), Transition::None);
        assert_eq!(health.probe_answered(9), Transition::None);
        assert!(!health.is_down(9));
    }
}
