//! `wakaq-purge`: empty a queue (its list, the lists its tasks were parked in by a task rate limit, its eta set)
//! and settle what it removes. Read in chunks, each payload's meta parsed here (the one meta parser, through
//! `Settlement::of_payload`), then
//! purge.lua removes exactly the elements read and, in the same script, releases the uniqueness lock of each
//! removed task and writes "cancelled" into its result record.

use redis::{ConnectionLike, RedisResult};

use super::element;
use super::keys::Keys;
use super::scripts;
use super::settle::Settlement;

/// Elements read and removed per script call.
const CHUNK: isize = 500;
/// The error of a purged task's result record.
const PURGED: &str = "purged by admin";

/// What one list or zset is to purge.
struct Source<'a> {
    key: String,
    zset: bool,
    /// its registry member when it is a parked list ('' else)
    member: String,
    keys: &'a Keys,
}

/// Purge `queue`: its list, its parked lists (those in the registry, and those of `limited`, the tasks the
/// caller's config limits) and its eta set. Returns (pending tasks removed, eta tasks removed).
pub fn purge(c: &mut dyn ConnectionLike, keys: &Keys, queue: &str, limited: &[String]) -> RedisResult<(i64, i64)> {
    let members: Vec<Vec<u8>> = redis::cmd("SMEMBERS").arg(keys.parked_registry()).query(c)?;
    let mut tasks: Vec<String> = members
        .iter()
        .filter_map(|m| Keys::parse_parked_member(m))
        .filter(|(q, _)| q == queue)
        .map(|(_, t)| t)
        .collect();
    for t in limited {
        if !tasks.contains(t) {
            tasks.push(t.clone());
        }
    }
    // NOTE: the eta set first, then the parked lists, then the queue: promotion and release move tasks that way
    let eta = Source::new(keys, keys.eta(queue), true, String::new()).purge(c)?;
    let mut pending = 0;
    for t in &tasks {
        pending += Source::new(keys, keys.parked(queue, t), false, Keys::parked_member(queue, t)).purge(c)?;
    }
    pending += Source::new(keys, keys.queue(queue), false, String::new()).purge(c)?;
    Ok((pending, eta))
}

impl<'a> Source<'a> {
    fn new(keys: &'a Keys, key: String, zset: bool, member: String) -> Self {
        Self {
            key,
            zset,
            member,
            keys,
        }
    }

    /// Remove what the key holds now, chunk by chunk from its front. NOTE: bounded by its length when we started
    /// (plus a chunk): tasks pushed meanwhile by a busy producer are not chased forever.
    fn purge(&self, c: &mut dyn ConnectionLike) -> RedisResult<i64> {
        let len: i64 = redis::cmd(if self.zset { "ZCARD" } else { "LLEN" })
            .arg(&self.key)
            .query(c)?;
        let (mut seen, mut removed) = (0, 0);
        loop {
            let items: Vec<Vec<u8>> = redis::cmd(if self.zset { "ZRANGE" } else { "LRANGE" })
                .arg(&self.key)
                .arg(0)
                .arg(CHUNK - 1)
                .query(c)?;
            // NOTE: called also with nothing read: for a parked list, the script unregisters it once empty
            if items.is_empty() && (self.member.is_empty() || seen > 0) {
                return Ok(removed);
            }
            seen += items.len() as i64;
            removed += self.remove(c, &items)?;
            if items.is_empty() || seen > len + CHUNK as i64 {
                return Ok(removed);
            }
        }
    }

    fn remove(&self, c: &mut dyn ConnectionLike, items: &[Vec<u8>]) -> RedisResult<i64> {
        let mut inv = scripts::purge().key(&self.key);
        inv.key(self.keys.parked_registry());
        inv.arg(if self.zset { "zset" } else { "list" })
            .arg(&self.member)
            .arg(PURGED);
        for item in items {
            inv.arg(item.as_slice());
            let settlement = Settlement::of_payload(self.keys, element::split(item).1);
            Settlement::push_args(settlement.as_ref(), &mut inv);
        }
        inv.invoke(c)
    }
}
