//! Timeout decisions for one child, from its slot snapshot. Pure: the parent loop does the killing.

use std::time::Duration;

use super::slots::SlotState;

/// How often the watchdog looks while some task has a deadline, and otherwise.
/// NOTE: children announce a task only through shared memory (no syscall), so an idle parent learns of a
/// new deadline at its next tick: the idle tick bounds how late a short soft timeout can fire. Four
/// wake-ups a second cost nothing measurable and no Redis calls.
pub const BUSY_TICK: Duration = Duration::from_millis(100);
pub const IDLE_TICK: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Fine,
    /// Send SIGQUIT (once per task seq).
    Soft {
        seq: u64,
    },
    /// SIGKILL the child and record task `seq` as failed with `reason`.
    Hard {
        seq: u64,
        reason: String,
    },
}

/// `soft_sent`: the seq the child was last sent SIGQUIT for.
pub fn judge(s: &SlotState, now: u64, soft_sent: Option<u64>) -> Verdict {
    if s.sync_seq != 0 && s.hard_deadline != 0 && now >= s.hard_deadline {
        let ran = s.hard_deadline.saturating_sub(s.sync_started);
        return Verdict::Hard {
            seq: s.sync_seq,
            reason: format!("hard timeout: ran longer than {}s", secs(ran)),
        };
    }
    if s.async_hard_deadline != 0 && now >= s.async_hard_deadline {
        let reason = "hard timeout: async task ran past its hard deadline".to_owned();
        return Verdict::Hard {
            seq: s.async_seq,
            reason,
        };
    }
    if s.sync_seq != 0 && s.soft_deadline != 0 && now >= s.soft_deadline && soft_sent != Some(s.sync_seq) {
        return Verdict::Soft { seq: s.sync_seq };
    }
    Verdict::Fine
}

/// Nanoseconds as short seconds: 1000000000 -> "1", 300000000 -> "0.3".
pub fn secs(ns: u64) -> String {
    let text = format!("{:.3}", ns as f64 / 1e9);
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn running(seq: u64, soft: u64, hard: u64) -> SlotState {
        SlotState {
            sync_seq: seq,
            sync_started: 10 * S,
            soft_deadline: soft,
            hard_deadline: hard,
            ..SlotState::default()
        }
    }

    #[test]
    fn idle_is_fine() {
        assert_eq!(judge(&SlotState::default(), u64::MAX, None), Verdict::Fine);
    }

    #[test]
    fn soft_once_per_seq() {
        let s = running(3, 11 * S, 0);
        assert_eq!(judge(&s, 10 * S, None), Verdict::Fine);
        assert_eq!(judge(&s, 11 * S, None), Verdict::Soft { seq: 3 });
        assert_eq!(judge(&s, 12 * S, Some(3)), Verdict::Fine);
        assert_eq!(judge(&running(4, 11 * S, 0), 12 * S, Some(3)), Verdict::Soft { seq: 4 });
    }

    #[test]
    fn hard_wins_over_soft() {
        let s = running(5, 11 * S, 12 * S);
        let reason = "hard timeout: ran longer than 2s".to_owned();
        assert_eq!(judge(&s, 12 * S, None), Verdict::Hard { seq: 5, reason });
    }

    #[test]
    fn async_hard_deadline() {
        let s = SlotState {
            async_seq: 8,
            async_hard_deadline: 20 * S,
            ..SlotState::default()
        };
        assert_eq!(judge(&s, 19 * S, None), Verdict::Fine);
        assert!(matches!(judge(&s, 20 * S, None), Verdict::Hard { seq: 8, .. }));
    }

    #[test]
    fn seconds_text() {
        assert_eq!(secs(S), "1");
        assert_eq!(secs(300_000_000), "0.3");
        assert_eq!(secs(1_250_000_000), "1.25");
        assert_eq!(secs(0), "0");
    }
}
