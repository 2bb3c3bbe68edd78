//! Tasks parked by a task rate limit this daemon does not have (the limit was removed, the task renamed, a deploy
//! rolled back) go back to the front of their queues: the daemon reads the registry of parked lists
//! (`Keys::parked_registry`), picks the lists of its own queues whose task it does not limit, and release_parked.lua
//! moves a bounded batch per call. The same script registers the daemon's own limited lists.

use std::collections::HashSet;

use redis::{ConnectionLike, RedisResult};

use super::keys::Keys;
use super::scripts;

/// Elements moved per script call (each call is atomic and bounded).
const BATCH: u32 = 1000;
/// Calls per release step: at most `BATCH * CALLS` elements per heartbeat, the rest at the next one.
const CALLS: usize = 10;

/// Register this daemon's parked lists (`queues` x `limited` tasks) and release the registered lists of `queues`
/// whose task is not in `limited`. Returns the number of elements moved.
pub fn release(c: &mut dyn ConnectionLike, keys: &Keys, queues: &[String], limited: &[String]) -> RedisResult<u64> {
    let own: Vec<String> = queues
        .iter()
        .flat_map(|q| limited.iter().map(move |t| Keys::parked_member(q, t)))
        .collect();
    let registry = keys.parked_registry();
    let members: Vec<Vec<u8>> = redis::cmd("SMEMBERS").arg(&registry).query(c)?;
    let ours: HashSet<&str> = queues.iter().map(String::as_str).collect();
    let free: Vec<(String, String)> = members
        .iter()
        .filter_map(|m| Keys::parse_parked_member(m))
        .filter(|(q, t)| ours.contains(q.as_str()) && !limited.contains(t))
        .collect();
    let unregistered = own.iter().any(|m| !members.iter().any(|x| x == m.as_bytes()));
    if free.is_empty() && !unregistered {
        return Ok(0);
    }
    let mut total = 0;
    for _ in 0..CALLS {
        let mut inv = scripts::release_parked().key(&registry);
        for (q, t) in &free {
            inv.key(keys.parked(q, t)).key(keys.queue(q)).key(keys.bell(q));
        }
        inv.arg(BATCH).arg(own.len()).arg(&own);
        for (q, t) in &free {
            inv.arg(Keys::parked_member(q, t));
        }
        let moved: u64 = inv.invoke(c)?;
        total += moved;
        if moved < u64::from(BATCH) {
            break;
        }
    }
    Ok(total)
}
