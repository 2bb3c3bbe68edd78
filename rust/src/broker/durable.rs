//! Durable enqueue (opt-in): after a push, `WAIT <replicas> <ms>` on the same connection, so `.delay()` returns
//! only once that many replicas have the push (or raises `DurabilityError`).
//!
//! NOTE: WAIT counts the replicas that acknowledged every write this connection made so far, so it must follow the
//! push on the very connection that sent it: it is pipelined with the push (or sent right after it, inside the same
//! `Conn::run_blocking` closure, whose read timeout is stretched by the wait).

use std::time::Duration;

use pyo3::prelude::*;

use crate::errors::durability_error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durability {
    pub replicas: u32,
    pub timeout: Duration,
}

impl Durability {
    /// `replicas = 0` means off; the timeout must be positive (`WAIT n 0` would block forever).
    pub fn from_args(replicas: u32, timeout_secs: f64) -> Option<Self> {
        let timeout = Duration::try_from_secs_f64(timeout_secs).ok()?;
        (replicas > 0 && !timeout.is_zero()).then_some(Self { replicas, timeout })
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX).max(1)
    }

    pub fn command(&self) -> redis::Cmd {
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(self.replicas).arg(self.millis());
        cmd
    }

    /// The error for a WAIT that answered fewer replicas than asked.
    pub fn check(&self, py: Python<'_>, confirmed: i64) -> PyResult<()> {
        if confirmed >= i64::from(self.replicas) {
            return Ok(());
        }
        let msg = format!(
            "durable enqueue: only {confirmed} of {} replica(s) confirmed the push within {} ms; the task is on \
             the master and may still run (sending it again may run it twice)",
            self.replicas,
            self.millis()
        );
        Err(durability_error(
            py,
            msg,
            confirmed,
            self.replicas,
            self.timeout.as_secs_f64(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_unless_replicas_and_a_timeout() {
        assert_eq!(Durability::from_args(0, 1.0), None);
        assert_eq!(Durability::from_args(1, 0.0), None);
        assert_eq!(Durability::from_args(1, f64::NAN), None);
        assert_eq!(Durability::from_args(1, -1.0), None);
        let d = Durability::from_args(2, 0.25).expect("on");
        assert_eq!((d.replicas, d.millis()), (2, 250));
        assert_eq!(Durability::from_args(1, 0.0001).expect("on").millis(), 1);
    }
}
