//! A circuit breaker for one remote backend: after `threshold` failed calls
//! in a row it opens and callers skip the backend for `cooldown`; then one
//! trial call is let through (half-open) — its success closes the breaker,
//! its failure opens it again.
//!
//! Owns: the state machine and its clock. Never: what a failure is (the
//! caller reports them) or what happens instead (the caller falls back).

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    failures: u32,
    opened_at: Option<Instant>,
}

impl Breaker {
    /// `threshold` 0 is taken as 1.
    pub fn new(threshold: u32, cooldown: Duration) -> Breaker {
        Breaker { threshold: threshold.max(1), cooldown, failures: 0, opened_at: None }
    }

    pub fn state(&self) -> BreakerState {
        match self.opened_at {
            None => BreakerState::Closed,
            Some(t) if t.elapsed() < self.cooldown => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// May a call go to the backend now (closed, or the half-open trial)?
    pub fn allows(&self) -> bool {
        self.state() != BreakerState::Open
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    pub fn record_success(&mut self) {
        self.failures = 0;
        self.opened_at = None;
    }

    /// Counts a failed call; returns true when this one opened (or re-opened) the breaker.
    pub fn record_failure(&mut self) -> bool {
        self.failures = self.failures.saturating_add(1);
        let half_open = self.state() == BreakerState::HalfOpen;
        if half_open || (self.opened_at.is_none() && self.failures >= self.threshold) {
            self.opened_at = Some(Instant::now());
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_half_opens_after_the_cooldown() {
        let mut b = Breaker::new(2, Duration::from_millis(40));
        assert!(b.allows());
        assert!(!b.record_failure());
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.record_failure(), "the second failure opens it");
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.allows());
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.allows(), "one trial call");
        assert!(b.record_failure(), "a failed trial re-opens at once");
        assert!(!b.allows());
        std::thread::sleep(Duration::from_millis(50));
        b.record_success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.failures(), 0);
    }

    #[test]
    fn a_success_resets_the_count() {
        let mut b = Breaker::new(3, Duration::from_secs(60));
        b.record_failure();
        b.record_failure();
        b.record_success();
        b.record_failure();
        b.record_failure();
        assert!(b.allows());
    }
}
