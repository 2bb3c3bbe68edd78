//! The calls that return in-flight entries to their queues (requeue.lua, reap.lua). The scripts touch only the
//! keys passed to them (a Redis Cluster rule), so they are called with the queues the caller knows; an entry of
//! another queue is left in flight and named in the reply, and the call is made again with that queue added.

use redis::{ConnectionLike, RedisResult, Value};

use super::element::MAX_DELIVERIES;
use super::keys::Keys;
use super::scripts;
use super::tracked::{self, WORKER_LOST};

/// Failure records kept per queue.
pub const FAILED_KEEP: u32 = 10_000;

/// Calls per give-back: the first with the known queues, the next with the queues its reply named. NOTE: more
/// than two passes only when entries of new queues keep appearing meanwhile (a child of an older config).
const PASSES: usize = 4;

/// What requeue.lua returns to its queues: the fields of one child (`field_prefix` "<pid>:", '' = all), maybe only
/// some seqs (`only`, comma separated), with the delivery of `counted` bumped ('' = none, '*' = all).
pub struct Requeue<'a> {
    pub inflight: &'a str,
    pub field_prefix: &'a str,
    pub counted: &'a str,
    pub only: &'a str,
    pub worker: &'a str,
    pub reason: &'a str,
}

/// What requeue.lua (and reap.lua after its first item) returns.
#[derive(Debug, PartialEq, Eq)]
struct Reply {
    count: i64,
    /// dead-listed payloads that may carry meta, to settle (tracked.rs)
    dead: Vec<Vec<u8>>,
    /// queues of entries left in flight
    missing: Vec<String>,
}

/// `{count, {dead payloads...}, queue names...}`.
fn parse(reply: Vec<Value>) -> Reply {
    let mut items = reply.into_iter().peekable();
    let count = match items.next() {
        Some(Value::Int(n)) => n,
        _ => 0,
    };
    let dead = match items.next_if(|v| matches!(v, Value::Array(_))) {
        Some(Value::Array(values)) => values
            .into_iter()
            .filter_map(|v| match v {
                Value::BulkString(b) => Some(b),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let missing = items
        .filter_map(|v| match v {
            Value::BulkString(b) => Some(String::from_utf8_lossy(&b).into_owned()),
            _ => None,
        })
        .collect();
    Reply { count, dead, missing }
}

/// Settle the tracked meta of dead-listed tasks (`reason`: why they were dead-listed).
fn settle_dead(c: &mut dyn ConnectionLike, keys: &Keys, dead: &[Vec<u8>], reason: &str) -> RedisResult<()> {
    for payload in dead {
        tracked::settle_failed(c, keys, payload, WORKER_LOST, reason)?;
    }
    Ok(())
}

fn add_missing(names: &mut Vec<String>, missing: Vec<String>) {
    for m in missing {
        if !names.contains(&m) {
            names.push(m);
        }
    }
}

/// Run requeue.lua for `r`, starting from the queues `names`. Returns the number of tasks requeued.
pub fn requeue(c: &mut dyn ConnectionLike, keys: &Keys, names: &[String], r: &Requeue<'_>) -> RedisResult<i64> {
    let mut names = names.to_vec();
    let mut total = 0;
    for _ in 0..PASSES {
        let mut inv = scripts::requeue().key(r.inflight);
        inv.key(keys.stats_retired());
        for k in keys.targets(&names) {
            inv.key(k);
        }
        inv.arg(names.len())
            .arg(r.field_prefix)
            .arg(r.counted)
            .arg(MAX_DELIVERIES)
            .arg(r.worker)
            .arg(FAILED_KEEP)
            .arg(r.reason)
            .arg(r.only);
        for n in &names {
            inv.arg(n);
        }
        let Reply { count, dead, missing } = parse(inv.invoke(c)?);
        settle_dead(c, keys, &dead, r.reason)?;
        total += count;
        if missing.is_empty() {
            break;
        }
        add_missing(&mut names, missing);
    }
    Ok(total)
}

/// The queue names of in-flight entries ("<queue>\n<element>").
fn entry_queues(entries: &[Vec<u8>]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for e in entries {
        if let Some(nl) = e.iter().position(|b| *b == b'\n') {
            add_missing(&mut names, vec![String::from_utf8_lossy(&e[..nl]).into_owned()]);
        }
    }
    names
}

/// Reap the daemons whose heartbeat expired: read each one's in-flight queues, then let reap.lua re-check the
/// heartbeat and return the entries atomically. Returns (daemons reaped, tasks requeued).
pub fn reap(c: &mut dyn ConnectionLike, keys: &Keys, reaper: &str) -> RedisResult<(usize, i64)> {
    let ids: Vec<String> = redis::cmd("SMEMBERS").arg(keys.daemons()).query(c)?;
    if ids.is_empty() {
        return Ok((0, 0));
    }
    let beats: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
        .arg(ids.iter().map(|id| keys.heartbeat(id)).collect::<Vec<_>>())
        .query(c)?;
    let (mut daemons, mut tasks) = (0, 0);
    for (id, beat) in ids.iter().zip(beats) {
        if beat.is_none() {
            let (gone, n) = reap_one(c, keys, id, reaper)?;
            daemons += usize::from(gone);
            tasks += n;
        }
    }
    Ok((daemons, tasks))
}

fn reap_one(c: &mut dyn ConnectionLike, keys: &Keys, id: &str, reaper: &str) -> RedisResult<(bool, i64)> {
    let inflight = keys.inflight(id);
    let entries: Vec<Vec<u8>> = redis::cmd("HVALS").arg(&inflight).query(c)?;
    let mut names = entry_queues(&entries);
    let bcast = Keys::broadcast_queue_name(id);
    let mut tasks = 0;
    for _ in 0..PASSES {
        let mut inv = scripts::reap().prepare_invoke();
        inv.key(keys.daemons())
            .key(keys.heartbeat(id))
            .key(&inflight)
            .key(keys.queue(&bcast))
            .key(keys.bell(&bcast))
            .key(keys.stats_retired())
            .key(keys.stats(id))
            .key(keys.daemon_info(id));
        for k in keys.targets(&names) {
            inv.key(k);
        }
        inv.arg(id)
            .arg(names.len())
            .arg(MAX_DELIVERIES)
            .arg(reaper)
            .arg(FAILED_KEEP);
        for n in &names {
            inv.arg(n);
        }
        let reply: Vec<Value> = inv.invoke(c)?;
        let gone = matches!(reply.first(), Some(Value::Int(1)));
        let Reply { count, dead, missing } = parse(reply.into_iter().skip(1).collect());
        settle_dead(c, keys, &dead, &format!("worker daemon {id} died while running it"))?;
        tasks += count;
        if gone || missing.is_empty() {
            return Ok((gone, tasks));
        }
        add_missing(&mut names, missing);
    }
    Ok((false, tasks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_queues_are_unique_and_ordered() {
        let entries = vec![b"b\nx".to_vec(), b"a\ny".to_vec(), b"b\nz".to_vec(), b"bad".to_vec()];
        assert_eq!(entry_queues(&entries), ["b", "a"]);
    }

    #[test]
    fn replies_parse() {
        let dead = Value::Array(vec![Value::BulkString(b"p".to_vec())]);
        let reply = vec![Value::Int(3), dead, Value::BulkString(b"q".to_vec())];
        let want = Reply {
            count: 3,
            dead: vec![b"p".to_vec()],
            missing: vec!["q".to_owned()],
        };
        assert_eq!(parse(reply), want);
        let none = Reply {
            count: 0,
            dead: Vec::new(),
            missing: Vec::new(),
        };
        assert_eq!(parse(vec![Value::Int(0), Value::Array(Vec::new())]), none);
        assert_eq!(parse(Vec::new()), none);
    }
}
