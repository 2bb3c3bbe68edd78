//! The calls that return in-flight entries to their queues (requeue.lua, reap.lua). The scripts touch only the
//! keys passed to them (a Redis Cluster rule), so they are called with the queues the caller knows; an entry of
//! another queue is left in flight and named in the reply, and the call is made again with that queue added.

use redis::{ConnectionLike, RedisResult, Value};

use super::element::{self, MAX_DELIVERIES};
use super::keys::Keys;
use super::scripts;
use super::settle::Settlement;

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

/// What requeue.lua and reap.lua return after their leading values: queues of entries left in flight ('' names
/// entries the script would dead-list without having been told how to settle them).
fn missing(items: impl Iterator<Item = Value>) -> Vec<String> {
    items
        .filter_map(|v| match v {
            Value::BulkString(b) => Some(String::from_utf8_lossy(&b).into_owned()),
            _ => None,
        })
        .collect()
}

fn int(v: Option<Value>) -> i64 {
    match v {
        Some(Value::Int(n)) => n,
        _ => 0,
    }
}

fn add_missing(names: &mut Vec<String>, missing: Vec<String>) {
    for m in missing {
        if !m.is_empty() && !names.contains(&m) {
            names.push(m);
        }
    }
}

/// Settlements of the entries `r` may dead-list: `(field, settlement)` for every matching field whose delivery is
/// counted and would reach `MAX_DELIVERIES`. Read from the hash, so a script can settle them atomically.
fn settlements(
    c: &mut dyn ConnectionLike,
    keys: &Keys,
    r: &Requeue<'_>,
) -> RedisResult<Vec<(String, Option<Settlement>)>> {
    let fields: Vec<(String, Vec<u8>)> = match r.counted {
        "" => return Ok(Vec::new()),
        "*" => redis::cmd("HGETALL").arg(r.inflight).query(c)?,
        one => {
            let entry: Option<Vec<u8>> = redis::cmd("HGET").arg(r.inflight).arg(one).query(c)?;
            entry.map(|e| (one.to_owned(), e)).into_iter().collect()
        }
    };
    Ok(fields
        .into_iter()
        .filter(|(f, _)| f.starts_with(r.field_prefix))
        .filter_map(|(f, entry)| {
            let nl = entry.iter().position(|b| *b == b'\n')?;
            let (count, payload) = element::split(&entry[nl + 1..]);
            (u32::from(count) + 1 >= MAX_DELIVERIES).then(|| (f, Settlement::of_payload(keys, payload)))
        })
        .collect())
}

/// Run requeue.lua for `r`, starting from the queues `names`. Returns the number of tasks requeued.
pub fn requeue(c: &mut dyn ConnectionLike, keys: &Keys, names: &[String], r: &Requeue<'_>) -> RedisResult<i64> {
    let mut names = names.to_vec();
    let mut total = 0;
    let mut known = settlements(c, keys, r)?;
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
        inv.arg(known.len());
        for (field, s) in &known {
            inv.arg(field);
            Settlement::push_args(s.as_ref(), &mut inv);
        }
        let mut reply = inv.invoke::<Vec<Value>>(c)?.into_iter();
        total += int(reply.next());
        let left = missing(reply);
        if left.is_empty() {
            break;
        }
        if left.iter().any(String::is_empty) {
            known = settlements(c, keys, r)?;
        }
        add_missing(&mut names, left);
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
            .key(keys.daemon_info(id))
            .key(keys.failed(&bcast));
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
        let mut reply = inv.invoke::<Vec<Value>>(c)?.into_iter();
        let gone = int(reply.next()) == 1;
        tasks += int(reply.next());
        let missing = missing(reply);
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
    fn missing_queues_skip_the_unread_marker() {
        let mut names = vec!["a".to_owned()];
        let left = missing(
            vec![
                Value::BulkString(b"q".to_vec()),
                Value::BulkString(Vec::new()),
                Value::Int(1),
            ]
            .into_iter(),
        );
        assert_eq!(left, ["q", ""]);
        add_missing(&mut names, left);
        assert_eq!(names, ["a", "q"]);
    }
}
