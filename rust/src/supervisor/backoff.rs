//! Exponential backoff: used for Redis outages, pub/sub reconnects and crash-looping children.

use std::time::Duration;

/// The parent's longest pause between two attempts to reach Redis during an outage (the coordinator link and
/// pub/sub): how late it may notice that Redis is back.
pub const RECONNECT_MAX: Duration = Duration::from_secs(2);

/// Delays `first, 2*first, 4*first, ...` capped at `max`. `reset()` after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub const fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            failures: 0,
        }
    }

    /// Record one more failure and return how long to wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        // NOTE: the shift is capped so the multiplication can never overflow, however long an outage lasts.
        let factor = 1u32 << self.failures.min(16);
        self.failures = self.failures.saturating_add(1);
        self.first.saturating_mul(factor).min(self.max)
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// How many failures in a row since the last reset.
    pub const fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_then_caps() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(5));
        let got: Vec<u128> = (0..7).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(got, vec![500, 1000, 2000, 4000, 5000, 5000, 5000]);
        assert_eq!(b.failures(), 7);
    }

    #[test]
    fn reset_starts_over() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        for _ in 0..100 {
            b.next_delay();
        }
        assert_eq!(b.next_delay(), Duration::from_secs(30));
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_secs(1));
    }
}
