//! `Consumer`: one forked child's side of the delivery protocol (claim, wait, settle, release).
//! Created in the child after fork, so its connections are its own.

use super::seq_map::SeqMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyString;
use redis::Value;

use super::claimed::ClaimedTask;
use super::conn::{call_detached, first_line, is_interrupted, Conn, Failure};
use super::element;
use super::finish::{Finish, Mode};
use super::give_back::{self, Requeue};
use super::keys::Keys;
use super::scripts;
use super::settle::Settlement;
use crate::codec::{meta, retried};
use crate::errors::broker_error;
use crate::supervisor::config::Settings;
use crate::supervisor::counters;

#[pyclass(frozen, module = "wakaq._wakaq")]
pub struct Consumer {
    conn: Mutex<Conn>,
    block_conn: Mutex<Conn>,
    keys: Keys,
    worker: String,
    /// The registered daemons (claim.lua refuses a daemon that is not one of them) and this daemon's id.
    daemons: String,
    /// The paused queues (claim.lua skips those named there; keys.rs `paused`).
    paused: String,
    daemon_id: String,
    inflight: String,
    field_prefix: String,
    /// KEYS of claim.lua after the in-flight hash: the queues (broadcast first), then their bells.
    claim_keys: Vec<String>,
    bells: Vec<String>,
    names: Vec<String>,
    /// What a claimed task of each queue says its queue is (`ClaimedTask.queue`): the names, "broadcast" first.
    labels: Vec<Py<PyString>>,
    next_seq: AtomicU64,
    /// Rate limits (claim_limited.lua), None when the app has none: then claim.lua runs exactly as before.
    limits: Option<Limits>,
    /// What the last claim said about budget: seconds until it returns and the starved queues (indexes into
    /// `names`), None when it claimed or found nothing pending.
    budget: Mutex<Option<(f64, Vec<usize>)>>,
    /// What this child owes Redis: acks not known to have landed, seqs that Redis may have claimed for us (the
    /// reply was lost, not necessarily the work), and claimed tasks whose meta is malformed, to record failed. One
    /// list, cleared only after a call that settles them was answered; settled before the next claim.
    owed: Mutex<Owed>,
    /// Seqs claimed through this Consumer and not yet settled (acked, failed, retried, released), with what settles
    /// their result record and lock: what this child holds. A seq leaves only once the call settling it was
    /// answered. After the connection was made again, in-flight fields of this child that are neither held nor
    /// owed are stale and go back to their queues (`reconcile`).
    held: Mutex<SeqMap<Option<Box<Settlement>>>>,
    /// Every uniqueness lock of the app starts with this (`meta::check` refuses other keys).
    lock_prefix: String,
    /// The last claim was refused: this daemon is not registered (a reaper took it for dead while it was stalled);
    /// its parent registers it again with its next heartbeat.
    refused: std::sync::atomic::AtomicBool,
    /// `Conn::connects` when the in-flight fields were last reconciled.
    reconciled: AtomicU64,
    /// Per-key concurrency: the limited task names, the (task, key) of each held seq that holds a permit, and the
    /// keys of tasks settled since the last claim, which that claim names so their waiters get the room at once.
    conc_tasks: Vec<String>,
    permits: Mutex<SeqMap<(String, String)>>,
    released: Mutex<Vec<(String, String)>>,
}

/// claim_limited.lua's extra ARGV (its extra KEYS follow the bells in `claim_keys`).
struct Limits {
    /// after the acks: n, m, the longest useful wait (us)
    head: Vec<String>,
    /// after the queue names: T and tau (us) per queue, then name, T, tau per limited task, then the per-key
    /// concurrency limits (c, then name, limit, permit and waiter key prefixes) and the queue and bell key prefixes
    tail: Vec<String>,
    /// The registry of concurrency keys (the last KEYS, after the daemons), when a task has a per-key limit.
    conc_registry: Option<String>,
}

/// A rate limit as the scripts take it: emission interval T and burst tolerance tau, in microseconds.
type Rate = (f64, f64);

impl Limits {
    /// `None` when nothing is limited. Extends `claim_keys` with the buckets and parked lists.
    fn new(
        keys: &Keys,
        names: &[String],
        queue_rates: &[Rate],
        task_rates: &[(String, f64, f64)],
        conc_limits: &[(String, u32)],
        wait_timeout: f64,
        claim_keys: &mut Vec<String>,
    ) -> Option<Self> {
        if queue_rates.iter().all(|r| r.0 <= 0.0) && task_rates.is_empty() && conc_limits.is_empty() {
            return None;
        }
        claim_keys.extend(names.iter().map(|n| keys.rate_queue(n)));
        claim_keys.extend(task_rates.iter().map(|t| keys.rate_task(&t.0)));
        for queue in names.iter().skip(1) {
            claim_keys.extend(task_rates.iter().map(|t| keys.parked(queue, &t.0)));
        }
        claim_keys.push(keys.parked_registry());
        let horizon = (wait_timeout.max(0.001) * 1e6).round();
        let head = vec![
            names.len().to_string(),
            task_rates.len().to_string(),
            format!("{horizon}"),
        ];
        // NOTE: index 0 is the daemon's broadcasts: never limited
        let mut tail = vec!["0".to_owned(), "0".to_owned()];
        for i in 0..names.len() - 1 {
            let (t, tau) = queue_rates.get(i).copied().unwrap_or((0.0, 0.0));
            tail.push(format!("{t}"));
            tail.push(format!("{tau}"));
        }
        for (name, t, tau) in task_rates {
            tail.extend([name.clone(), format!("{t}"), format!("{tau}")]);
        }
        tail.push(conc_limits.len().to_string());
        for (name, limit) in conc_limits {
            tail.extend([
                name.clone(),
                limit.to_string(),
                keys.conc(name, ""),
                keys.conc_wait(name, ""),
            ]);
        }
        tail.extend([keys.queue(""), keys.bell("")]);
        let conc_registry = (!conc_limits.is_empty()).then(|| keys.conc_registry());
        Some(Self {
            head,
            tail,
            conc_registry,
        })
    }
}

#[derive(Default)]
struct Owed {
    acks: Vec<u64>,
    claims: Vec<u64>,
    /// (seq, queue name, why its meta is refused)
    malformed: Vec<(u64, String, String)>,
}

impl Owed {
    fn is_empty(&self) -> bool {
        self.acks.is_empty() && self.claims.is_empty() && self.malformed.is_empty()
    }
}

/// Claimed elements as Redis sent them: (seq, queue index, element).
type Claimed = Vec<(u64, usize, Vec<u8>)>;

/// How long a task's progress is kept after its last report when it stores no results (seconds: a day, the default
/// `result_ttl`); a task that stores results keeps it as long as its record.
const PROGRESS_TTL: i64 = 86_400;
/// The largest progress value (packed bytes): a report is a counter and a few words, not a payload.
const PROGRESS_MAX: usize = 64 * 1024;

/// Interrupted calls sent again, at most this many times in a row.
const INTERRUPTED_RETRIES: usize = 3;

/// An idempotent call (settle, requeue by seq): sent again when a signal interrupted it, since the
/// interruption says nothing about Redis (a SIGTERM at shutdown must not look like an outage).
fn run<T: Send>(
    py: Python<'_>,
    conn: &Mutex<Conn>,
    mut f: impl FnMut(&mut dyn redis::ConnectionLike) -> redis::RedisResult<T> + Send,
) -> PyResult<T> {
    for _ in 0..INTERRUPTED_RETRIES {
        match call_detached(py, conn, false, &mut f) {
            Ok(v) => return Ok(v),
            Err(Failure::Interrupted) => {}
            Err(Failure::Broker(msg)) => return Err(broker_error(py, msg)),
        }
    }
    Err(broker_error(
        py,
        "redis call interrupted by a signal, 3 times in a row".to_owned(),
    ))
}

/// The first seq of a child: its start time in milliseconds (mod 2^40, 35 years) times 64.
///
/// NOTE: an in-flight field is "<pid>:<seq>", and the kernel may give a new child the pid of one that died. Were seqs
/// to start at 1 again, the new child's first claims would overwrite the dead child's fields while its requeue waits
/// (a Redis outage): those tasks would be lost. Seqs that start past anything the dead child can have reached (64
/// claims per millisecond it lived) cannot collide. WARN: seqs stay below 1e14 (2^40 * 64 = 7e13): the scripts add
/// to them in Lua, whose numbers are doubles; claim.lua formats them with '%d' (exact below 2^53), and any `..` of one
/// would print 14 digits.
fn seq_base() -> u64 {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_millis() as u64);
    (ms % (1 << 40)).max(1) << 6
}

fn join_seqs(seqs: &[u64]) -> String {
    seqs.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

impl Consumer {
    fn owe(&self) -> std::sync::MutexGuard<'_, Owed> {
        self.owed.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Return what lost claim replies may have claimed, and record claimed tasks with a malformed meta as failed.
    /// Each is forgotten only once its call was answered.
    fn settle_owed(&self, py: Python<'_>) -> PyResult<()> {
        let claims = self.owe().claims.clone();
        if !claims.is_empty() {
            self.requeue_seqs(py, &claims)?;
            self.owe().claims.retain(|s| !claims.contains(s));
        }
        let malformed = self.owe().malformed.clone();
        for (seq, queue, reason) in malformed {
            let finish = Finish {
                inflight: &self.inflight,
                field_prefix: &self.field_prefix,
                seq,
                queue: &queue,
                worker: &self.worker,
                settlement: None,
                status: "",
                fields: &[],
                acks: &[],
            };
            run(py, &self.conn, |c| finish.run(c, &self.keys, Mode::Fail(&reason, "")))?;
            self.owe().malformed.retain(|m| m.0 != seq);
            self.hold().remove(&seq);
        }
        Ok(())
    }

    /// Split a claim's tasks into those a child may run and those whose meta is malformed (owed as failures,
    /// counted as undecodable; no Python code ever sees them).
    fn vet(&self, py: Python<'_>, claimed: Claimed) -> Vec<ClaimedTask> {
        let mut good = Vec::with_capacity(claimed.len());
        let mut held = self.hold();
        for (seq, index, element) in claimed {
            match meta::check(element::split(&element).1, &self.lock_prefix) {
                Ok(meta) => {
                    // NOTE: claim.lua answers with an index into the queues it was given; anything else stays in
                    // flight, requeued by the parent when this child exits
                    let Some(label) = self.labels.get(index) else { continue };
                    if let Some(key) = meta.as_ref().and_then(|m| m.ck.as_ref()) {
                        self.note_permit(seq, &element, key);
                    }
                    held.insert(seq, meta.and_then(|m| Settlement::of(&self.keys, &m)).map(Box::new));
                    good.push(ClaimedTask::new(seq, index, label.clone_ref(py), element));
                }
                Err(e) => {
                    held.insert(seq, None);
                    let queue = self.names.get(index).cloned().unwrap_or_default();
                    let counted = if index == 0 { "broadcast" } else { queue.as_str() };
                    counters::count(counters::cell_for(counted, None), counters::UNDECODABLE);
                    self.owe().malformed.push((seq, queue, e.to_string()));
                }
            }
        }
        good
    }

    /// A claimed task of a concurrency-limited task holds a permit of `key` (claim_limited.lua took it).
    fn note_permit(&self, seq: u64, element: &[u8], key: &str) {
        let Some(name) = meta::task_name(element::split(element).1) else {
            return;
        };
        if self.conc_tasks.iter().any(|t| t == name) {
            let mut permits = self.permits.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            permits.insert(seq, (name.to_owned(), key.to_owned()));
        }
    }

    /// These seqs were settled: the keys whose permits they held are named by the next claim.
    fn let_go(&self, seqs: &[u64]) {
        if self.conc_tasks.is_empty() {
            return;
        }
        let mut permits = self.permits.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut released = self.released.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for seq in seqs {
            if let Some(pair) = permits.remove(seq) {
                if !released.contains(&pair) {
                    released.push(pair);
                }
            }
        }
    }

    fn hold(&self) -> std::sync::MutexGuard<'_, SeqMap<Option<Box<Settlement>>>> {
        self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// After a new connection: give back this child's in-flight fields that it does not hold.
    ///
    /// NOTE: a failover promotes a replica that may not have seen the last writes: an ack that the old master
    /// answered can be missing there, leaving a field for a task that already ran. The child is alive, so nothing
    /// else would ever requeue it (the parent requeues a child's fields only when it dies) and it would sit in
    /// flight until the daemon stops. Requeued, it runs again: at least once, as for any lost reply. Claims whose
    /// reply was lost are settled before (`settle_lost_claims`); `acks` are being acknowledged by this claim.
    fn reconcile(&self, py: Python<'_>) -> PyResult<()> {
        let connects = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .connects();
        // NOTE: the first connection has nothing to reconcile (no field of this child can predate it)
        if connects <= 1 || connects == self.reconciled.load(Ordering::Relaxed) {
            return Ok(());
        }
        let fields: Vec<String> = run(py, &self.conn, |c| redis::cmd("HKEYS").arg(&self.inflight).query(c))?;
        let connects = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .connects();
        let stale: Vec<u64> = {
            let (held, owed) = (self.hold(), self.owe());
            fields
                .iter()
                .filter_map(|f| f.strip_prefix(&self.field_prefix)?.parse::<u64>().ok())
                .filter(|seq| !held.contains_key(seq) && !owed.acks.contains(seq) && !owed.claims.contains(seq))
                .collect()
        };
        if !stale.is_empty() {
            self.requeue_seqs(py, &stale)?;
        }
        self.reconciled.store(connects, Ordering::Relaxed);
        Ok(())
    }

    fn requeue_seqs(&self, py: Python<'_>, seqs: &[u64]) -> PyResult<i64> {
        let only = join_seqs(seqs);
        let r = Requeue {
            inflight: &self.inflight,
            field_prefix: &self.field_prefix,
            counted: "",
            only: &only,
            worker: &self.worker,
            reason: "",
        };
        run(py, &self.conn, |c| give_back::requeue(c, &self.keys, &self.names, &r))
    }

    /// A claim_limited.lua reply `{-1, wait us, starved...}`: remember it and say so; any other reply clears it.
    fn note_budget(&self, reply: &[Value]) -> bool {
        let mut budget = self.budget.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(Value::Int(-1)) = reply.first() else {
            *budget = None;
            return false;
        };
        let wait = match reply.get(1) {
            Some(Value::Int(us)) => *us as f64 / 1e6,
            _ => 0.0,
        };
        let starved = reply[2..]
            .iter()
            .filter_map(|v| match v {
                Value::Int(i) => usize::try_from(*i).ok(),
                _ => None,
            })
            .collect();
        *budget = Some((wait.max(0.0), starved));
        true
    }

    /// The bells an idle child blocks on: all of them, less those of queues waiting for budget (their tokens would
    /// only wake it to find no budget; it comes back when the budget does).
    fn bells_to_wait_on(&self) -> Vec<String> {
        let budget = self.budget.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*budget {
            Some((_, starved)) if !starved.is_empty() => self
                .bells
                .iter()
                .enumerate()
                .filter(|(i, _)| !starved.contains(i))
                .map(|(_, b)| b.clone())
                .collect(),
            _ => self.bells.clone(),
        }
    }

    /// claim.lua's reply `{queue index, element, ...}` as `(seq, queue index, element)` triples.
    fn parse_claim(reply: Vec<Value>, first_seq: u64) -> Claimed {
        let mut items = reply.into_iter();
        let Some(Value::Int(index)) = items.next() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, v) in items.enumerate() {
            if let Value::BulkString(bytes) = v {
                out.push((first_seq + i as u64, index as usize, bytes));
            }
        }
        out
    }
}

#[pymethods]
impl Consumer {
    /// This child's side of the queues in `settings` (the daemon's `Settings`): its url, key prefix, daemon id,
    /// queues, wait and socket timeouts, TLS options and rate limits.
    #[new]
    fn new(py: Python<'_>, settings: &Bound<'_, Settings>) -> PyResult<Self> {
        let cfg = &settings.get().config;
        let Some(url) = cfg.url.as_deref() else {
            return Err(broker_error(
                py,
                "invalid redis settings: a Consumer needs a url".to_owned(),
            ));
        };
        let nonzero = |t: Option<Duration>| t.filter(|d| !d.is_zero());
        let open = || Conn::new(url, &cfg.tls, nonzero(cfg.socket_timeout), nonzero(cfg.connect_timeout));
        let (conn, block_conn) = match (open(), open()) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                return Err(broker_error(py, format!("invalid redis settings: {}", first_line(&e))))
            }
        };
        let (prefix, daemon_id) = (cfg.prefix.as_str(), cfg.daemon_id.as_str());
        let wait_timeout = cfg.wait_timeout.as_secs_f64();
        let queues = cfg.queues.iter().cloned();
        let keys = Keys::new(prefix, conn.is_cluster());
        let mut names = vec![Keys::broadcast_queue_name(daemon_id)];
        names.extend(queues);
        let labels = std::iter::once("broadcast")
            .chain(names.iter().skip(1).map(String::as_str))
            .map(|n| PyString::intern(py, n).unbind())
            .collect();
        let bells: Vec<String> = names.iter().map(|n| keys.bell(n)).collect();
        let mut claim_keys: Vec<String> = names.iter().map(|n| keys.queue(n)).collect();
        claim_keys.extend(bells.iter().cloned());
        let limits = Limits::new(
            &keys,
            &names,
            &cfg.queue_rates,
            &cfg.task_rates,
            &cfg.conc_limits,
            wait_timeout,
            &mut claim_keys,
        );
        let lock_prefix = keys.unique("");
        Ok(Self {
            conn: Mutex::new(conn),
            block_conn: Mutex::new(block_conn),
            daemons: keys.daemons(),
            paused: keys.paused(),
            daemon_id: daemon_id.to_owned(),
            inflight: keys.inflight(daemon_id),
            field_prefix: format!("{}:", std::process::id()),
            worker: format!("{daemon_id}/{}", std::process::id()),
            keys,
            claim_keys,
            bells,
            names,
            labels,
            next_seq: AtomicU64::new(seq_base()),
            limits,
            budget: Mutex::new(None),
            owed: Mutex::new(Owed::default()),
            held: Mutex::new(SeqMap::default()),
            lock_prefix,
            refused: std::sync::atomic::AtomicBool::new(false),
            reconciled: AtomicU64::new(0),
            conc_tasks: cfg.conc_limits.iter().map(|l| l.0.clone()).collect(),
            permits: Mutex::new(SeqMap::default()),
            released: Mutex::new(Vec::new()),
        })
    }

    /// Queue names in claim order (index 0 is this daemon's broadcast list).
    #[getter]
    fn queue_names(&self) -> Vec<String> {
        self.names.clone()
    }

    /// Acknowledge `acks` and claim up to `max_count` tasks (`ClaimedTask`s, in claim order). An empty list
    /// also when a signal interrupted the call (the caller checks its flags, then claims again) and when this daemon
    /// is not registered (`refused`). Claimed tasks whose meta is malformed are recorded failed, never returned.
    fn claim(&self, py: Python<'_>, acks: Vec<u64>, max_count: u32) -> PyResult<Vec<ClaimedTask>> {
        self.owe().acks.extend(acks);
        self.settle_owed(py)?;
        self.reconcile(py)?;
        let acks = self.owe().acks.clone();
        // NOTE: an app without a concurrency limit skips even the lock
        let released = if self.conc_tasks.is_empty() {
            Vec::new()
        } else {
            self.released
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
        };
        let width = u64::from(max_count);
        // NOTE: fresh seqs for every attempt, also the connection's own retry of a stale connection: an attempt
        // whose reply was lost may still have claimed tasks under its seqs, and reusing them would overwrite
        // those in-flight entries (HSET), losing the tasks. Attempts without a reply are settled later.
        let mut attempts: Vec<u64> = Vec::new();
        let result: Result<Vec<Value>, Failure> = call_detached(py, &self.conn, false, |c| {
            let first = self.next_seq.fetch_add(width, Ordering::Relaxed);
            attempts.push(first);
            let script = if self.limits.is_some() {
                scripts::claim_limited()
            } else {
                scripts::claim()
            };
            let mut inv = script.key(&self.inflight);
            for k in &self.claim_keys {
                inv.key(k);
            }
            inv.key(&self.daemons);
            inv.key(&self.paused);
            if let Some(registry) = self.limits.as_ref().and_then(|l| l.conc_registry.as_ref()) {
                inv.key(registry);
            }
            inv.arg(&self.field_prefix).arg(first).arg(max_count).arg(acks.len());
            for a in &acks {
                inv.arg(*a);
            }
            if let Some(l) = &self.limits {
                inv.arg(&l.head);
            }
            for n in &self.names {
                inv.arg(n);
            }
            if let Some(l) = &self.limits {
                inv.arg(&l.tail).arg(released.len());
                for (task, key) in &released {
                    inv.arg(task).arg(key);
                }
            }
            inv.arg(&self.daemon_id);
            inv.invoke(c)
        });
        let answered = match result {
            Ok(_) => attempts.pop(),
            Err(_) => None,
        };
        {
            let mut owed = self.owe();
            owed.claims
                .extend(attempts.iter().flat_map(|&first| first..first + width));
            if result.is_ok() {
                // NOTE: the acks sent are the owed ones from the front (only `claim` adds acks, before it copies
                // them): drop exactly those, without a search per ack
                let sent = acks.len().min(owed.acks.len());
                owed.acks.drain(..sent);
            }
        }
        match (result, answered) {
            (Ok(reply), Some(first)) => {
                {
                    let mut held = self.hold();
                    for a in &acks {
                        held.remove(a);
                    }
                }
                if !released.is_empty() {
                    let mut left = self.released.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    left.retain(|p| !released.contains(p));
                }
                self.let_go(&acks);
                let refused = matches!(reply.first(), Some(Value::Int(-2)));
                self.refused.store(refused, Ordering::Relaxed);
                let claimed = if refused || (self.limits.is_some() && self.note_budget(&reply)) {
                    Vec::new()
                } else {
                    Self::parse_claim(reply, first)
                };
                // keep seqs dense when nothing else took any meanwhile
                let _ = self.next_seq.compare_exchange(
                    first + width,
                    first + claimed.len() as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                let good = self.vet(py, claimed);
                // NOTE: record malformed ones now if Redis answers; else before the next claim
                if !self.owe().malformed.is_empty() {
                    let _ = self.settle_owed(py);
                }
                Ok(good)
            }
            // NOTE: `(Ok, None)` cannot happen (an answer implies an attempt); nothing claimed either way.
            (Err(Failure::Interrupted), _) | (Ok(_), None) => Ok(Vec::new()),
            (Err(Failure::Broker(msg)), _) => Err(broker_error(py, msg)),
        }
    }

    /// Block up to `timeout` seconds for a doorbell token; True when one was taken.
    fn wait(&self, py: Python<'_>, timeout: f64) -> PyResult<bool> {
        // NOTE: `from_secs_f64` panics on infinity, NaN and values past u64 seconds: reject them instead.
        let block = Duration::try_from_secs_f64(timeout.max(0.001))
            .ok()
            .filter(|_| timeout.is_finite())
            .ok_or_else(|| {
                pyo3::exceptions::PyValueError::new_err(format!(
                    "wait timeout must be a finite number of seconds, got {timeout}"
                ))
            })?;
        let filtered = self.limits.as_ref().map(|_| self.bells_to_wait_on());
        let bells = filtered.as_ref().unwrap_or(&self.bells);
        let result = py.detach(|| {
            let mut guard = self
                .block_conn
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let result = guard.run_blocking(block, |c| {
                redis::cmd("BLPOP")
                    .arg(bells)
                    .arg(block.as_secs_f64())
                    .query::<Option<(String, String)>>(c)
            });
            result.map_err(|e| (is_interrupted(&e), guard.explain(&e)))
        });
        match result {
            Ok(token) => Ok(token.is_some()),
            // NOTE: a signal (shutdown, soft timeout) cut the wait short; the dropped connection cancels
            // the BLPOP on the server, so no token is taken. The caller checks its signals and goes on.
            Err((true, _)) => Ok(false),
            Err((false, msg)) => Err(broker_error(py, msg)),
        }
    }

    /// `task` succeeded: its in-flight entry goes, and its result record (if it stores results) says "done" with
    /// `value` (the packed return value) and its lock is released, in one script. Also acks `acks`. For tasks with
    /// something to settle; plain tasks are acked by the next `claim`.
    #[pyo3(signature = (task, value = None, acks = Vec::new()))]
    fn done(
        &self,
        py: Python<'_>,
        task: &Bound<'_, ClaimedTask>,
        value: Option<&[u8]>,
        acks: Vec<u64>,
    ) -> PyResult<()> {
        let fields: Vec<(&str, &[u8])> = value.map(|v| ("value", v)).into_iter().collect();
        self.finish(py, task.get(), Mode::Done, "done", &fields, &acks)
    }

    /// Record `task` as failed with a reason and traceback; its result record gets `status` ("failed" or
    /// "cancelled") with `error` (type name, message), its lock is released. Also acks `acks`.
    #[pyo3(signature = (task, reason, traceback, acks = Vec::new(), *, error = None, status = "failed"))]
    #[allow(clippy::too_many_arguments)]
    fn fail(
        &self,
        py: Python<'_>,
        task: &Bound<'_, ClaimedTask>,
        reason: &str,
        traceback: &str,
        acks: Vec<u64>,
        error: Option<(String, String)>,
        status: &str,
    ) -> PyResult<()> {
        let error = error.unwrap_or_else(|| ("WakaQError".to_owned(), reason.to_owned()));
        let fields: [(&str, &[u8]); 2] = [("error_type", error.0.as_bytes()), ("error", error.1.as_bytes())];
        self.finish(py, task.get(), Mode::Fail(reason, traceback), status, &fields, &acks)
    }

    /// Re-enqueue `task` at the end of its queue as its next attempt (a retry due now): its own payload with
    /// `retry` one more and `meta` in place of its meta (codec/retried.rs; the arguments' bytes as they were sent).
    /// Its result record says "retrying" with `error`. Also acks `acks`.
    #[pyo3(signature = (task, meta = None, acks = Vec::new(), *, error = None))]
    fn retry(
        &self,
        py: Python<'_>,
        task: &Bound<'_, ClaimedTask>,
        meta: Option<&Bound<'_, PyAny>>,
        acks: Vec<u64>,
        error: Option<(String, String)>,
    ) -> PyResult<()> {
        let task = task.get();
        let payload = retried(py, task.payload_bytes(), None, meta)?;
        let fields = error_fields(error.as_ref());
        self.finish(py, task, Mode::Retry(&payload), "retrying", &fields, &acks)
    }

    /// `retry` due `delay` seconds from now on Redis's clock: the in-flight entry goes and the next attempt joins its
    /// queue's eta set in one script (and the eta channel hears of it when it is the earliest).
    #[pyo3(signature = (task, delay, meta = None, acks = Vec::new(), *, error = None))]
    fn retry_at(
        &self,
        py: Python<'_>,
        task: &Bound<'_, ClaimedTask>,
        delay: f64,
        meta: Option<&Bound<'_, PyAny>>,
        acks: Vec<u64>,
        error: Option<(String, String)>,
    ) -> PyResult<()> {
        if !delay.is_finite() {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "delay must be a finite number of seconds, got {delay}"
            )));
        }
        let task = task.get();
        let payload = retried(py, task.payload_bytes(), None, meta)?;
        let fields = error_fields(error.as_ref());
        self.finish(py, task, Mode::Later(&payload, delay), "retrying", &fields, &acks)
    }

    /// `task` starts: its result record says "running" (a round trip only for tasks that store results).
    /// False when the task is no longer in flight here (a reaper gave it back meanwhile).
    fn start(&self, py: Python<'_>, task: &Bound<'_, ClaimedTask>) -> PyResult<bool> {
        let seq = task.get().seq_();
        let Some(settlement) = self.hold().get(&seq).cloned().flatten() else {
            return Ok(true);
        };
        if !settlement.stores_results() {
            return Ok(true);
        }
        let field = format!("{}{seq}", self.field_prefix);
        run(py, &self.conn, |c| {
            let mut inv = scripts::start().key(&self.inflight);
            inv.arg(&field);
            Settlement::push_args(Some(&settlement), &mut inv);
            inv.invoke::<i64>(c)
        })
        .map(|n| n == 1)
    }

    /// `task` reports its progress: `value` (a dict: done, total, info) packed into its own key `progress:<id>`,
    /// with its result record's TTL (else `PROGRESS_TTL`), in one script that writes only while the task is in flight
    /// here and its result record is not final (progress.lua). False when nothing was written: the task has no id
    /// (a plain task), is no longer held by this child, or was settled already.
    fn progress(&self, py: Python<'_>, task: &Bound<'_, ClaimedTask>, value: &Bound<'_, PyAny>) -> PyResult<bool> {
        let task = task.get();
        let seq = task.seq_();
        if !self.hold().contains_key(&seq) {
            return Ok(false);
        }
        let Ok(Some(found)) = meta::check(task.payload_bytes(), &self.lock_prefix) else {
            return Ok(false);
        };
        let Some(id) = found.id.as_deref() else {
            return Ok(false);
        };
        let mut packed = Vec::with_capacity(64);
        crate::codec::guarded(|| crate::codec::pack_into(&mut packed, value))?;
        if packed.len() > PROGRESS_MAX {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "progress is {} bytes packed, more than {PROGRESS_MAX}: keep its info small",
                packed.len()
            )));
        }
        let ttl_ms = found.results.unwrap_or(PROGRESS_TTL).saturating_mul(1000);
        let (key, result) = (self.keys.progress(id), found.results.map(|_| self.keys.result(id)));
        let field = format!("{}{seq}", self.field_prefix);
        run(py, &self.conn, |c| {
            let mut inv = scripts::progress().key(&self.inflight);
            inv.key(&key);
            if let Some(r) = &result {
                inv.key(r);
            }
            inv.arg(&field).arg(ttl_ms).arg(packed.as_slice());
            inv.invoke::<i64>(c)
        })
        .map(|n| n == 1)
    }

    /// Give claimed, not started tasks back to the front of their queues (shutdown). Returns the count.
    fn release(&self, py: Python<'_>, tasks: Vec<PyRef<'_, ClaimedTask>>) -> PyResult<i64> {
        let seqs: Vec<u64> = tasks.iter().map(|t| t.seq_()).collect();
        if seqs.is_empty() {
            return Ok(0);
        }
        let n = self.requeue_seqs(py, &seqs)?;
        let mut held = self.hold();
        for s in &seqs {
            held.remove(s);
        }
        self.let_go(&seqs);
        Ok(n)
    }

    /// Acks or claims parked by a call that got no answer (a signal, a dropped connection): the next `claim`
    /// settles them. A child must not exit while this is true: the parent would requeue finished tasks.
    #[getter]
    fn unsettled(&self) -> bool {
        !self.owe().is_empty()
    }

    /// The last claim was refused because this daemon is not registered (reaped while stalled): wait, the parent
    /// registers it again with its next heartbeat.
    #[getter]
    fn refused(&self) -> bool {
        self.refused.load(Ordering::Relaxed)
    }

    /// After a claim that came back empty: seconds until a rate-limited queue or task with pending work has budget
    /// again (0.0: claim again at once), or None when nothing pending is waiting for budget.
    #[getter]
    fn budget_wait(&self) -> Option<f64> {
        let budget = self.budget.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        budget.as_ref().map(|(wait, _)| *wait)
    }

    /// Some queue or task of these settings has a rate limit: an empty claim may say how long until budget returns
    /// (`budget_wait`).
    #[getter]
    fn rate_limited(&self) -> bool {
        self.limits.is_some()
    }

    /// This child's identity in failure records: `<daemon>/<pid>`.
    #[getter]
    fn worker(&self) -> &str {
        &self.worker
    }
}

fn error_fields(error: Option<&(String, String)>) -> Vec<(&str, &[u8])> {
    match error {
        Some((kind, message)) => vec![("error_type", kind.as_bytes()), ("error", message.as_bytes())],
        None => Vec::new(),
    }
}

impl Consumer {
    /// One finish.lua call for a held task; the task and `acks` leave what this child holds once it was answered.
    fn finish(
        &self,
        py: Python<'_>,
        task: &ClaimedTask,
        mode: Mode<'_>,
        status: &str,
        fields: &[(&str, &[u8])],
        acks: &[u64],
    ) -> PyResult<()> {
        let (seq, queue) = (task.seq_(), task.queue_str(py)?);
        let settlement = self.hold().get(&seq).cloned().flatten();
        let finish = Finish {
            inflight: &self.inflight,
            field_prefix: &self.field_prefix,
            seq,
            queue,
            worker: &self.worker,
            settlement: settlement.as_deref(),
            status,
            fields,
            acks,
        };
        run(py, &self.conn, |c| finish.run(c, &self.keys, mode))?;
        {
            let mut held = self.hold();
            held.remove(&seq);
            for a in acks {
                held.remove(a);
            }
        }
        self.let_go(&[seq]);
        self.let_go(acks);
        Ok(())
    }
}
