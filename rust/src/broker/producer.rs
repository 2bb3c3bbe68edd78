//! `Broker`: the producer side (`.delay()`, eta, bulk, broadcast). Encodes while attached, then does the
//! round trip with the GIL released. Thread-safe: one connection behind a mutex.
//!
//! Its payload format (msgpack, or WakaQ's JSON with `payload_format="json"`) applies to every push it makes;
//! in JSON mode a broadcast is PUBLISHed on WakaQ's channel instead (see `broadcast`).

use std::sync::Mutex;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PySequence;
use redis::{ConnectionLike, RedisResult};

use super::admin;
use super::conn::{call_producing, first_line, Conn};
use super::durable::Durability;
use super::keys::{Keys, DEFAULT_PREFIX};
use super::scripts;
use super::tls::TlsOptions;
use super::workflow;
use crate::codec::PayloadFormat;
use crate::errors::broker_error;

/// Elements per EVALSHA in a bulk push (Lua's unpack has a stack limit of a few thousand).
const BULK_CHUNK: usize = 1000;

#[pyclass(frozen, module = "wakaq._wakaq")]
pub struct Broker {
    conn: Mutex<Conn>,
    keys: Keys,
    cluster: bool,
    format: PayloadFormat,
}

pub fn seconds(value: Option<f64>) -> Option<Duration> {
    // NOTE: `try_`: `from_secs_f64` panics on values past u64 seconds, and no panic may reach Python
    value
        .filter(|s| *s > 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
}

/// `lock_run` for a call that ends with a WAIT of up to `d.timeout`: the read timeout is stretched by it.
fn lock_run_waiting<T: Send>(
    py: Python<'_>,
    conn: &Mutex<Conn>,
    d: Durability,
    f: impl FnMut(&mut dyn redis::ConnectionLike) -> RedisResult<T> + Send,
) -> PyResult<T> {
    call_producing(py, conn, true, Some(d.timeout), f).map_err(|failure| broker_error(py, failure.message()))
}

/// `once`: a push or a PUBLISH, never sent twice (`Conn::run_once`); else an idempotent call (eta ZADD, PING).
fn lock_run<T: Send>(
    py: Python<'_>,
    conn: &Mutex<Conn>,
    once: bool,
    f: impl FnMut(&mut dyn redis::ConnectionLike) -> RedisResult<T> + Send,
) -> PyResult<T> {
    call_producing(py, conn, once, None, f).map_err(|failure| broker_error(py, failure.message()))
}

/// One node of `start_workflow`: (kind, parent, flag, queue, name, args, kwargs).
type WorkflowNode<'py> = (String, i64, bool, String, String, Bound<'py, PyAny>, Bound<'py, PyAny>);

type ManyItem<'py> = (
    String,
    String,
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
    Option<Bound<'py, PyAny>>,
);

impl Broker {
    /// A payload in this broker's format; `retry` None for eta tasks and broadcasts (WakaQ's JSON has none there).
    fn encode(
        &self,
        py: Python<'_>,
        name: &str,
        args: &Bound<'_, PyAny>,
        kwargs: &Bound<'_, PyAny>,
        retry: Option<i64>,
        meta: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<u8>> {
        let mut buf = Vec::with_capacity(128);
        self.format.encode_into(py, &mut buf, name, args, kwargs, retry, meta)?;
        Ok(buf)
    }

    /// JSON mode's broadcast: WakaQ's PUBLISH, so WakaQ's daemons (each runs it on one child) and ours (their
    /// parents relay the channel) both get it, at most once. Returns the channel's subscribers.
    fn publish_broadcast(&self, py: Python<'_>, payload: &[u8]) -> PyResult<i64> {
        let channel = self.keys.broadcast_channel();
        lock_run(py, &self.conn, true, |c| {
            redis::cmd("PUBLISH").arg(&channel).arg(payload).query::<i64>(c)
        })
    }

    /// One `push_many` item: `(queue, name, args, kwargs)` or `(queue, name, args, kwargs, meta)`.
    fn many_item<'py>(item: &Bound<'py, PyAny>) -> PyResult<ManyItem<'py>> {
        if let Ok((queue, name, args, kwargs)) =
            item.extract::<(String, String, Bound<'py, PyAny>, Bound<'py, PyAny>)>()
        {
            return Ok((queue, name, args, kwargs, None));
        }
        let (queue, name, args, kwargs, meta) = item.extract()?;
        Ok((queue, name, args, kwargs, Some(meta)))
    }

    fn enqueue_elements(&self, py: Python<'_>, queue: &str, elements: &[Vec<u8>]) -> PyResult<i64> {
        let (qkey, bell) = (self.keys.queue(queue), self.keys.bell(queue));
        if self.cluster {
            return lock_run(py, &self.conn, true, |c| enqueue_each(c, &qkey, &bell, elements));
        }
        lock_run(py, &self.conn, true, |c| {
            Self::enqueue_on(c, &qkey, &bell, elements, None)
        })
        .map(|(n, _)| n)
    }

    /// The durable variant: the WAIT is pipelined after the pushes (same connection); raises when too few
    /// replicas confirmed.
    fn enqueue_durably(&self, py: Python<'_>, queue: &str, elements: &[Vec<u8>], d: Durability) -> PyResult<i64> {
        self.refuse_on_cluster(py)?;
        let (qkey, bell) = (self.keys.queue(queue), self.keys.bell(queue));
        let (n, confirmed) = lock_run_waiting(py, &self.conn, d, |c| {
            Self::enqueue_on(c, &qkey, &bell, elements, Some(d))
        })?;
        d.check(py, confirmed)?;
        Ok(n)
    }

    /// NOTE: on a cluster the WAIT would have to go to the node that took the push, on that connection; not done.
    fn refuse_on_cluster(&self, py: Python<'_>) -> PyResult<()> {
        if self.cluster {
            return Err(broker_error(
                py,
                "durable enqueue is not supported on Redis Cluster".to_owned(),
            ));
        }
        Ok(())
    }

    /// EVALSHA of `enqueue.lua` per chunk of elements, pipelined, then WAIT when `durable`: (pushed, confirmed).
    fn enqueue_on(
        c: &mut dyn ConnectionLike,
        qkey: &str,
        bell: &str,
        elements: &[Vec<u8>],
        durable: Option<Durability>,
    ) -> RedisResult<(i64, i64)> {
        let build = || {
            let mut pipe = redis::pipe();
            for chunk in elements.chunks(BULK_CHUNK) {
                let mut cmd = redis::cmd("EVALSHA");
                cmd.arg(scripts::enqueue().get_hash()).arg(2).arg(qkey).arg(bell);
                for e in chunk {
                    cmd.arg(e.as_slice());
                }
                pipe.add_command(cmd);
            }
            if let Some(d) = durable {
                pipe.add_command(d.command());
            }
            pipe
        };
        let mut counts: Vec<i64> = match build().query(c) {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                scripts::enqueue().load(c)?;
                build().query(c)?
            }
            other => other?,
        };
        let confirmed = if durable.is_some() {
            counts.pop().unwrap_or(0)
        } else {
            0
        };
        Ok((counts.iter().sum(), confirmed))
    }
}

/// One script call per chunk, on a cluster. NOTE: a pipeline's replies are not redirected (a MOVED inside one
/// fails the whole pipeline), and sending a whole pipeline again after a partial run would double its first
/// chunks: single commands are each redirected, and resent only when they did not run.
fn enqueue_each(c: &mut dyn ConnectionLike, qkey: &str, bell: &str, elements: &[Vec<u8>]) -> RedisResult<i64> {
    let mut total = 0;
    for chunk in elements.chunks(BULK_CHUNK) {
        let mut inv = scripts::enqueue().key(qkey);
        inv.key(bell);
        for e in chunk {
            inv.arg(e.as_slice());
        }
        total += inv.invoke::<i64>(c)?;
    }
    Ok(total)
}

#[pymethods]
impl Broker {
    #[new]
    #[pyo3(signature = (
        url, prefix = DEFAULT_PREFIX, socket_timeout = None, connect_timeout = None,
        *, ssl_ca_certs = None, ssl_certfile = None, ssl_keyfile = None, ssl_cert_reqs = None,
        payload_format = "msgpack",
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        url: &str,
        prefix: &str,
        socket_timeout: Option<f64>,
        connect_timeout: Option<f64>,
        ssl_ca_certs: Option<String>,
        ssl_certfile: Option<String>,
        ssl_keyfile: Option<String>,
        ssl_cert_reqs: Option<&str>,
        payload_format: &str,
    ) -> PyResult<Self> {
        let format = PayloadFormat::parse(payload_format)?;
        let tls = TlsOptions::from_options(ssl_ca_certs, ssl_certfile, ssl_keyfile, ssl_cert_reqs)
            .map_err(|e| broker_error(py, format!("invalid redis settings: {e}")))?;
        let conn = Conn::new(url, &tls, seconds(socket_timeout), seconds(connect_timeout))
            .map_err(|e| broker_error(py, format!("invalid redis settings: {}", first_line(&e))))?;
        Ok(Self {
            keys: Keys::new(prefix, conn.is_cluster()),
            cluster: conn.is_cluster(),
            conn: Mutex::new(conn),
            format,
        })
    }

    /// Encode a task and push it at the end of `queue` (one round trip). `replicas > 0`: durable enqueue, then
    /// `WAIT replicas replica_timeout` in the same round trip (`DurabilityError` when too few confirm).
    #[pyo3(signature = (queue, name, args, kwargs, retry = 0, meta = None, *, replicas = 0, replica_timeout = 1.0))]
    #[allow(clippy::too_many_arguments)]
    fn push(
        &self,
        py: Python<'_>,
        queue: &str,
        name: &str,
        args: &Bound<'_, PyAny>,
        kwargs: &Bound<'_, PyAny>,
        retry: i64,
        meta: Option<&Bound<'_, PyAny>>,
        replicas: u32,
        replica_timeout: f64,
    ) -> PyResult<()> {
        let payload = self.encode(py, name, args, kwargs, Some(retry), meta)?;
        match Durability::from_args(replicas, replica_timeout) {
            None => self.enqueue_elements(py, queue, &[payload]).map(|_| ()),
            Some(d) => self.enqueue_durably(py, queue, &[payload], d).map(|_| ()),
        }
    }

    /// Push an already encoded element (requeue of a failed task, tests).
    fn push_raw(&self, py: Python<'_>, queue: &str, payload: &[u8]) -> PyResult<()> {
        self.enqueue_elements(py, queue, &[payload.to_vec()]).map(|_| ())
    }

    /// Add an eta task due at `due` (unix seconds), or `due` seconds from now on Redis's clock when `relative`; equal
    /// tasks dedupe. `replicas`: as for `push` (the WAIT follows the script on the same connection).
    #[pyo3(signature = (queue, name, args, kwargs, due, meta = None, *, replicas = 0, replica_timeout = 1.0, relative = false))]
    #[allow(clippy::too_many_arguments)]
    fn push_eta(
        &self,
        py: Python<'_>,
        queue: &str,
        name: &str,
        args: &Bound<'_, PyAny>,
        kwargs: &Bound<'_, PyAny>,
        due: f64,
        meta: Option<&Bound<'_, PyAny>>,
        replicas: u32,
        replica_timeout: f64,
        relative: bool,
    ) -> PyResult<()> {
        let payload = self.encode(py, name, args, kwargs, None, meta)?;
        let (key, channel) = (self.keys.eta(queue), self.keys.eta_channel());
        let score = if relative {
            admin::Due::In(due)
        } else {
            admin::Due::At(due)
        }
        .arg();
        let push = |c: &mut dyn ConnectionLike| {
            scripts::enqueue_eta()
                .key(&key)
                .arg(&score)
                .arg(payload.as_slice())
                .arg(&channel)
                .invoke::<i64>(c)
        };
        let Some(d) = Durability::from_args(replicas, replica_timeout) else {
            return lock_run(py, &self.conn, false, push).map(|_| ());
        };
        self.refuse_on_cluster(py)?;
        let confirmed = lock_run_waiting(py, &self.conn, d, |c| {
            push(c)?;
            d.command().query::<i64>(c)
        })?;
        d.check(py, confirmed)
    }

    /// Push many tasks: `[(queue, name, args, kwargs[, meta]), ...]`, one round trip per queue. Returns the count.
    /// `replicas`: as for `push`, one WAIT per queue's round trip.
    #[pyo3(signature = (items, *, replicas = 0, replica_timeout = 1.0))]
    fn push_many(
        &self,
        py: Python<'_>,
        items: &Bound<'_, PySequence>,
        replicas: u32,
        replica_timeout: f64,
    ) -> PyResult<i64> {
        let mut by_queue: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
        for item in items.try_iter()? {
            let item = item?;
            let (queue, name, args, kwargs, meta) = Self::many_item(&item)?;
            let payload = self.encode(py, &name, &args, &kwargs, Some(0), meta.as_ref())?;
            match by_queue.iter_mut().find(|(q, _)| *q == queue) {
                Some((_, v)) => v.push(payload),
                None => by_queue.push((queue, vec![payload])),
            }
        }
        let durable = Durability::from_args(replicas, replica_timeout);
        let mut total = 0;
        for (queue, payloads) in &by_queue {
            total += match durable {
                None => self.enqueue_elements(py, queue, payloads)?,
                Some(d) => self.enqueue_durably(py, queue, payloads, d)?,
            };
        }
        Ok(total)
    }

    /// Hand a broadcast task to every live worker daemon (broadcast.lua: onto each registered daemon's broadcast
    /// list, in one script); returns how many daemons it was handed to. Sent once: a resend after a lost reply
    /// would run it twice on every daemon. In JSON mode: WakaQ's PUBLISH instead (`publish_broadcast`).
    fn broadcast(
        &self,
        py: Python<'_>,
        name: &str,
        args: &Bound<'_, PyAny>,
        kwargs: &Bound<'_, PyAny>,
    ) -> PyResult<i64> {
        let payload = self.encode(py, name, args, kwargs, None, None)?;
        if self.format == PayloadFormat::Json {
            return self.publish_broadcast(py, &payload);
        }
        let k = &self.keys;
        // NOTE: a daemon's keys are these prefixes plus its id (tested in keys.rs)
        let empty = Keys::broadcast_queue_name("");
        let (daemons, list, bell, beat) = (k.daemons(), k.queue(&empty), k.bell(&empty), k.heartbeat(""));
        lock_run(py, &self.conn, true, |c| {
            scripts::broadcast()
                .key(&daemons)
                .arg(payload.as_slice())
                .arg(&list)
                .arg(&bell)
                .arg(&beat)
                .invoke::<i64>(c)
        })
    }

    /// Push a unique task (its payload carries meta `id` and `unique` = `lock`): take the lock for `ttl` seconds (plus
    /// the wait of an eta task) and push, in one script. `delay`: due that many seconds from now on Redis's clock;
    /// `due`: at that unix time. None when enqueued, else the id of the task holding the lock.
    #[pyo3(signature = (queue, name, args, kwargs, meta, lock, ttl, *, delay = None, due = None))]
    #[allow(clippy::too_many_arguments)]
    fn push_unique(
        &self,
        py: Python<'_>,
        queue: &str,
        name: &str,
        args: &Bound<'_, PyAny>,
        kwargs: &Bound<'_, PyAny>,
        meta: &Bound<'_, PyAny>,
        lock: &str,
        ttl: f64,
        delay: Option<f64>,
        due: Option<f64>,
    ) -> PyResult<Option<String>> {
        let payload = self.encode(py, name, args, kwargs, Some(0), Some(meta))?;
        let id = meta.get_item("id")?.extract::<String>()?;
        let push = admin::UniquePush {
            queue,
            lock,
            id: &id,
            ttl_ms: (ttl.max(0.0) * 1000.0).ceil() as u64,
            payload: &payload,
            due: delay.map(admin::Due::In).or(due.map(admin::Due::At)),
        };
        let keys = &self.keys;
        lock_run(py, &self.conn, true, |c| push.run(c, keys))
    }

    /// Debounce a call (its payload carries meta `id`): the first call of a window under `key` adds the task to the
    /// eta set of `queue`, due `window` seconds from now on Redis's clock; a call within the window replaces the
    /// pending one (same due time), so the task runs once, with the last call's arguments (enqueue_debounce.lua).
    /// Returns (replaced a pending call, due unix time).
    #[allow(clippy::too_many_arguments)]
    fn push_debounced(
        &self,
        py: Python<'_>,
        queue: &str,
        name: &str,
        args: &Bound<'_, PyAny>,
        kwargs: &Bound<'_, PyAny>,
        meta: &Bound<'_, PyAny>,
        key: &str,
        window: f64,
    ) -> PyResult<(bool, f64)> {
        if !(window.is_finite() && window > 0.0) {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "debounce must be a positive number of seconds, got {window}"
            )));
        }
        let payload = self.encode(py, name, args, kwargs, None, Some(meta))?;
        let push = admin::DebouncePush {
            queue,
            key,
            window,
            payload: &payload,
        };
        let keys = &self.keys;
        // NOTE: idempotent (a resend replaces its own member and settles nothing), so a stale connection is retried
        lock_run(py, &self.conn, false, |c| push.run(c, keys))
    }

    /// Cancel one queued task: remove exactly `element` from `key` (a queue list or parked list; `zset`: an eta set),
    /// record it failed with `reason` and settle its result record and lock, in one script. False when it was gone.
    #[pyo3(signature = (key, element, queue, reason, *, zset = false))]
    fn cancel_queued(
        &self,
        py: Python<'_>,
        key: &str,
        element: &[u8],
        queue: &str,
        reason: &str,
        zset: bool,
    ) -> PyResult<bool> {
        let keys = &self.keys;
        lock_run(py, &self.conn, false, |c| {
            admin::cancel_queued(c, keys, key, zset, element, queue, reason)
        })
    }

    /// A scheduler fires slot `slot` of schedule `schedule`: push `element` onto `queue` unless another scheduler
    /// already fired that slot (its claim lives `ttl` seconds). True when this call fired it.
    #[allow(clippy::too_many_arguments)]
    fn fire(
        &self,
        py: Python<'_>,
        schedule: &str,
        slot: &str,
        ident: &str,
        ttl: u64,
        queue: &str,
        element: &[u8],
    ) -> PyResult<bool> {
        let keys = &self.keys;
        lock_run(py, &self.conn, false, |c| {
            admin::fire(c, keys, (schedule, slot), ident, ttl, queue, element)
        })
    }

    /// Requeue the task of failure record `record` (in `failed_queue`'s failed list) onto `queue` as `payload`:
    /// the record goes, the task is pushed and its result record dropped, in one script. False when it was gone.
    fn requeue_failed(
        &self,
        py: Python<'_>,
        failed_queue: &str,
        record: &[u8],
        queue: &str,
        payload: &[u8],
    ) -> PyResult<bool> {
        let keys = &self.keys;
        lock_run(py, &self.conn, false, |c| {
            admin::requeue_failed(c, keys, failed_queue, record, queue, payload)
        })
    }

    /// Drop failure records: `record` (its exact bytes) from the failed list of `queues[0]`, or every record of the
    /// failed lists of `queues`. Returns how many were dropped.
    #[pyo3(signature = (queues, record = None))]
    fn drop_failed(&self, py: Python<'_>, queues: Vec<String>, record: Option<&[u8]>) -> PyResult<i64> {
        let keys = &self.keys;
        lock_run(py, &self.conn, false, |c| admin::drop_failed(c, keys, &queues, record))
    }

    /// Empty `queue` (wakaq-purge), settling what it removes (broker/purge.rs); `limited`: the tasks the caller's
    /// config rate-limits (their parked lists, registered or not). Returns (pending removed, eta removed).
    fn purge(&self, py: Python<'_>, queue: &str, limited: Vec<String>) -> PyResult<(i64, i64)> {
        let keys = &self.keys;
        lock_run(py, &self.conn, false, |c| super::purge::purge(c, keys, queue, &limited))
    }

    /// Start workflow `id` (python/wakaq/workflow.py): `nodes` in pre-order, each `(kind, parent, flag, queue, name,
    /// args, kwargs)` with kind "t" (a task step; flag: it ignores the previous result), "c" (a chain) or "g" (a group;
    /// flag: allow_failure), parent -1 for the root. Each step's payload carries meta `id` (`<id>-<node>`), `results`
    /// and `wf`; its result record, like the workflow's keys, lives `ttl` seconds. False when `id` exists already.
    fn start_workflow(&self, py: Python<'_>, id: &str, ttl: u64, nodes: Vec<WorkflowNode<'_>>) -> PyResult<bool> {
        if self.format != PayloadFormat::Msgpack {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "workflows need msgpack payloads (their steps carry meta): payload_format=\"json\" cannot send them",
            ));
        }
        let ttl = ttl.clamp(1, u64::try_from(crate::codec::meta::MAX_TTL).unwrap_or(u64::MAX));
        let mut tree = Vec::with_capacity(nodes.len());
        for (i, (kind, parent, flag, queue, name, args, kwargs)) in nodes.into_iter().enumerate() {
            let node = match kind.as_str() {
                "c" => workflow::Node::Chain,
                "g" => workflow::Node::Group { allow_failure: flag },
                "t" => {
                    let meta = pyo3::types::PyDict::new(py);
                    meta.set_item("id", workflow::member_id(id, i))?;
                    meta.set_item("results", ttl)?;
                    meta.set_item("wf", id)?;
                    let payload = self.encode(py, &name, &args, &kwargs, Some(0), Some(meta.as_any()))?;
                    workflow::Node::Task {
                        queue,
                        name,
                        payload,
                        immutable: flag,
                    }
                }
                other => {
                    return Err(pyo3::exceptions::PyValueError::new_err(format!(
                        "unknown node kind {other:?}"
                    )))
                }
            };
            tree.push((node, parent));
        }
        let fields = workflow::fields(&self.keys, id, &tree).map_err(pyo3::exceptions::PyValueError::new_err)?;
        let keys = &self.keys;
        lock_run(py, &self.conn, true, |c| {
            workflow::start(c, keys, id, ttl * 1000, &fields)
        })
    }

    /// Cancel workflow `id`: no later step or callback starts; returns the status it had ("" when there is none).
    fn cancel_workflow(&self, py: Python<'_>, id: &str, reason: &str) -> PyResult<String> {
        let keys = &self.keys;
        lock_run(py, &self.conn, false, |c| workflow::cancel(c, keys, id, reason))
    }

    /// Pause `queue` on every daemon: claims skip it from their next call; pushes and eta promotion go on. True
    /// when it was not paused.
    fn pause(&self, py: Python<'_>, queue: &str) -> PyResult<bool> {
        let keys = &self.keys;
        lock_run(py, &self.conn, false, |c| admin::set_paused(c, keys, queue, true))
    }

    /// Resume a paused `queue` and ring its bell, so idle children claim at once. True when it was paused.
    fn resume(&self, py: Python<'_>, queue: &str) -> PyResult<bool> {
        let keys = &self.keys;
        lock_run(py, &self.conn, false, |c| admin::set_paused(c, keys, queue, false))
    }

    fn ping(&self, py: Python<'_>) -> PyResult<bool> {
        lock_run(py, &self.conn, false, |c| redis::cmd("PING").query::<String>(c)).map(|r| r == "PONG")
    }

    #[getter]
    fn prefix(&self) -> &str {
        &self.keys.prefix
    }

    /// "msgpack" or "json": the payloads this broker writes.
    #[getter]
    fn payload_format(&self) -> &'static str {
        self.format.name()
    }

    fn __repr__(&self) -> String {
        format!("Broker(prefix={:?})", self.keys.prefix)
    }
}
