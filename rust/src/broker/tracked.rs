//! Tasks the supervisor settles itself, for the opt-in features: a task that stores results or holds a uniqueness
//! lock, and that a script dead-lists (its child or daemon died on it `MAX_DELIVERIES` times) or that the parent
//! records failed (its child was killed past the hard timeout), gets its result record's final status, and its
//! lock is released. No child is left to do it, so without this the record would read "running" and the lock be
//! held until their TTLs.
//!
//! NOTE: after the script that settled the task, not inside it (the scripts decode no payloads): a parent that dies
//! between the two leaves the record and the lock to their TTLs, as before.

use std::time::{SystemTime, UNIX_EPOCH};

use redis::{ConnectionLike, RedisResult};

use super::keys::Keys;
use super::scripts;
use crate::codec::meta;

/// The error type of a task whose worker died on it (as Celery names it).
pub const WORKER_LOST: &str = "WorkerLost";
/// The error type of a task killed past its hard timeout.
pub const HARD_TIMEOUT: &str = "HardTimeout";

/// Record `payload`'s task failed (`error_type`, `message`) if it stores results, release its lock if it holds one.
pub fn settle_failed(
    c: &mut dyn ConnectionLike,
    keys: &Keys,
    payload: &[u8],
    error_type: &str,
    message: &str,
) -> RedisResult<()> {
    let Some(t) = meta::tracked(payload) else {
        return Ok(());
    };
    match (t.results, &t.unique) {
        (Some(ttl), lock) => {
            let mut inv = scripts::result_mark().key(keys.result(&t.id));
            inv.key(keys.result_ready(&t.id));
            if let Some(lock) = lock {
                inv.key(lock);
            }
            let at = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            inv.arg("failed").arg(ttl.saturating_mul(1000)).arg("1").arg(&t.id);
            inv.arg("at").arg(at.to_string());
            inv.arg("error_type").arg(error_type).arg("error").arg(message);
            inv.invoke::<i64>(c).map(|_| ())
        }
        (None, Some(lock)) => scripts::unique_release()
            .key(lock)
            .arg(&t.id)
            .invoke::<i64>(c)
            .map(|_| ()),
        (None, None) => Ok(()),
    }
}
