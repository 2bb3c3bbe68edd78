//! When to promote eta tasks next. `promote_eta` answers with the next due time as Redis server unix time;
//! the parent sleeps until then on its own monotonic clock, never waking before the task is due.

use std::time::Duration;

/// Longest sleep between promotions without pub/sub (nothing would wake us for a new, earlier eta task).
pub const CAP_WITHOUT_PUBSUB: Duration = Duration::from_secs(1);
/// Longest sleep with pub/sub: a safety net in case a wake-up message was lost.
pub const CAP_WITH_PUBSUB: Duration = Duration::from_secs(30);
/// Shortest gap between two promotions, so a due time the server does not yet agree with cannot spin us.
pub const MIN_GAP: Duration = Duration::from_millis(10);
/// Added to every wait so rounding never wakes us a hair early.
const MARGIN: Duration = Duration::from_millis(1);

/// How long to sleep before the next promotion. `next_due`: server unix time of the next eta task;
/// `local_now`: our unix time; `offset`: server time minus local time.
pub fn wait_for(next_due: Option<f64>, local_now: f64, offset: f64, pubsub: bool) -> Duration {
    let cap = if pubsub { CAP_WITH_PUBSUB } else { CAP_WITHOUT_PUBSUB };
    let Some(due) = next_due else { return cap };
    let secs = due - (local_now + offset);
    let wait = if secs.is_finite() && secs > 0.0 {
        Duration::try_from_secs_f64(secs).unwrap_or(cap) + MARGIN
    } else {
        Duration::ZERO
    };
    wait.clamp(MIN_GAP, cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_scheduled_sleeps_the_cap() {
        assert_eq!(wait_for(None, 100.0, 0.0, false), CAP_WITHOUT_PUBSUB);
        assert_eq!(wait_for(None, 100.0, 0.0, true), CAP_WITH_PUBSUB);
    }

    #[test]
    fn waits_for_server_time_not_local() {
        // The server runs 5 s ahead of us: a task due at server time 110 is due in 5 s of our time.
        let w = wait_for(Some(110.0), 100.0, 5.0, true);
        assert!(w >= Duration::from_secs(5) && w < Duration::from_millis(5010), "{w:?}");
    }

    #[test]
    fn capped_and_never_negative() {
        assert_eq!(wait_for(Some(1000.0), 100.0, 0.0, false), CAP_WITHOUT_PUBSUB);
        assert_eq!(wait_for(Some(50.0), 100.0, 0.0, true), MIN_GAP);
        assert_eq!(wait_for(Some(f64::NAN), 100.0, 0.0, true), MIN_GAP);
    }
}
