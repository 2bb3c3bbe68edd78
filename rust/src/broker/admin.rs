//! The calls of admin commands and producers' opt-in features that change a task's delivery state: a unique push,
//! a cancel of a queued task, a scheduler's fire, a requeue of a failed task. Each is one script (lib.lua's helpers,
//! the task's result record and lock settled inside it); `Broker` (producer.rs) exposes them to Python.

use redis::{ConnectionLike, RedisResult, Value};

use super::give_back::FAILED_KEEP;
use super::keys::Keys;
use super::scripts;
use super::settle::Settlement;

/// When an eta task is due: `delay` seconds from now on Redis's clock, or at a unix time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Due {
    In(f64),
    At(f64),
}

impl Due {
    /// The form the scripts take ("+<seconds>" or "<unix time>").
    pub fn arg(self) -> String {
        match self {
            Self::In(delay) => format!("+{:.6}", delay.max(0.0)),
            Self::At(at) => format!("{at:.6}"),
        }
    }
}

/// A unique push (enqueue_unique.lua): None when enqueued, else the id of the task holding the lock.
pub struct UniquePush<'a> {
    pub queue: &'a str,
    pub lock: &'a str,
    pub id: &'a str,
    pub ttl_ms: u64,
    pub payload: &'a [u8],
    pub due: Option<Due>,
}

impl UniquePush<'_> {
    pub fn run(&self, c: &mut dyn ConnectionLike, keys: &Keys) -> RedisResult<Option<String>> {
        let target = if self.due.is_some() {
            keys.eta(self.queue)
        } else {
            keys.queue(self.queue)
        };
        let (pushed, holder): (i64, Option<String>) = scripts::enqueue_unique()
            .key(self.lock)
            .key(target)
            .key(keys.bell(self.queue))
            .arg(self.id)
            .arg(self.ttl_ms.max(1))
            .arg(self.payload)
            .arg(self.due.map(Due::arg).unwrap_or_default())
            .arg(keys.eta_channel())
            .invoke(c)?;
        Ok(if pushed == 1 {
            None
        } else {
            Some(holder.unwrap_or_default())
        })
    }
}

/// A debounced push (enqueue_debounce.lua): opens a window of `window` seconds under `key`, or replaces the call
/// pending in it. Returns (replaced a pending call, due unix time on Redis's clock).
pub struct DebouncePush<'a> {
    pub queue: &'a str,
    pub key: &'a str,
    pub window: f64,
    pub payload: &'a [u8],
}

impl DebouncePush<'_> {
    pub fn run(&self, c: &mut dyn ConnectionLike, keys: &Keys) -> RedisResult<(bool, f64)> {
        let settlement = Settlement::of_payload(keys, self.payload);
        let mut inv = scripts::enqueue_debounce().key(keys.debounce(self.key));
        inv.key(keys.eta(self.queue))
            .arg(format!("{:.6}", self.window))
            .arg(self.payload)
            .arg(keys.eta_channel());
        Settlement::push_args(settlement.as_ref(), &mut inv);
        let (replaced, due): (i64, String) = inv.invoke(c)?;
        Ok((replaced == 1, due.parse().unwrap_or(0.0)))
    }
}

/// Remove one queued task (`key`: its queue list, parked list or eta zset; `zset` for an eta set), record it failed
/// with `reason` and settle its result record and lock (cancel.lua). False when it was no longer there.
pub fn cancel_queued(
    c: &mut dyn ConnectionLike,
    keys: &Keys,
    key: &str,
    zset: bool,
    element: &[u8],
    queue: &str,
    reason: &str,
) -> RedisResult<bool> {
    let settlement = Settlement::of_payload(keys, super::element::split(element).1);
    let mut inv = scripts::cancel().key(key);
    inv.key(keys.failed(queue));
    inv.arg(if zset { "zset" } else { "list" })
        .arg(element)
        .arg(queue)
        .arg(reason)
        .arg("admin")
        .arg(FAILED_KEEP);
    Settlement::push_args(settlement.as_ref(), &mut inv);
    inv.invoke::<i64>(c).map(|n| n == 1)
}

/// Claim fire slot `slot` of schedule `schedule` for scheduler `ident` and push `element` onto `queue` (fire.lua).
pub fn fire(
    c: &mut dyn ConnectionLike,
    keys: &Keys,
    (schedule, slot): (&str, &str),
    ident: &str,
    ttl: u64,
    queue: &str,
    element: &[u8],
) -> RedisResult<bool> {
    scripts::fire()
        .key(keys.schedule_slot(schedule, slot))
        .key(keys.queue(queue))
        .key(keys.bell(queue))
        .arg(ident)
        .arg(ttl.max(1))
        .arg(element)
        .invoke::<i64>(c)
        .map(|n| n == 1)
}

/// Drop failure records: `record` (exact bytes) from the failed list of `queues[0]`, or every record of `queues`.
pub fn drop_failed(
    c: &mut dyn ConnectionLike,
    keys: &Keys,
    queues: &[String],
    record: Option<&[u8]>,
) -> RedisResult<i64> {
    if queues.is_empty() {
        return Ok(0);
    }
    let mut inv = scripts::drop_failed().prepare_invoke();
    for q in queues {
        inv.key(keys.failed(q));
    }
    inv.arg(record.unwrap_or_default()).invoke(c)
}

/// Requeue the task of failure record `record` (of `failed_queue`'s list) onto `queue` as `payload`, dropping its
/// result record (requeue_failed.lua). False when the record was gone.
pub fn requeue_failed(
    c: &mut dyn ConnectionLike,
    keys: &Keys,
    failed_queue: &str,
    record: &[u8],
    queue: &str,
    payload: &[u8],
) -> RedisResult<bool> {
    let meta = crate::codec::meta::check(payload, &keys.unique("")).ok().flatten();
    let id = meta.and_then(|m| m.id.filter(|_| m.results.is_some()));
    let (result, ready) = id.map_or((String::new(), String::new()), |id| {
        (keys.result(&id), keys.result_ready(&id))
    });
    let reply: Value = scripts::requeue_failed()
        .key(keys.failed(failed_queue))
        .key(keys.queue(queue))
        .key(keys.bell(queue))
        .arg(record)
        .arg(payload)
        .arg(result)
        .arg(ready)
        .invoke(c)?;
    Ok(matches!(reply, Value::Int(1)))
}

/// Pause (`paused`) or resume `queue` on every daemon (pause.lua): claims skip a paused queue; a resume rings its
/// bell. True when its state changed.
pub fn set_paused(c: &mut dyn ConnectionLike, keys: &Keys, queue: &str, paused: bool) -> RedisResult<bool> {
    scripts::pause()
        .key(keys.paused())
        .key(keys.bell(queue))
        .arg(if paused { "pause" } else { "resume" })
        .arg(queue)
        .invoke::<i64>(c)
        .map(|n| n == 1)
}
