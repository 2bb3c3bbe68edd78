//! What the supervisor (parent process) asks of Redis. The supervisor depends only on this trait, so its
//! loop can be tested with an in-memory double and the broker can change without touching it.

use std::fmt;

/// A Redis failure as the supervisor sees it: it logs it once per outage and retries with backoff.
#[derive(Debug, Clone)]
pub struct BrokerFailure(pub String);

impl fmt::Display for BrokerFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BrokerFailure {}

pub type BrokerResult<T> = Result<T, BrokerFailure>;

/// Live facts about one worker daemon, written into its heartbeat key.
#[derive(Debug, Clone, Default)]
pub struct DaemonInfo {
    pub host: String,
    pub pid: u32,
    pub children: Vec<u32>,
    pub tasks_done: u64,
    pub started_at: f64,
    /// The daemon parent's RSS.
    pub rss_bytes: Option<u64>,
    /// What each child is doing, in `children`'s order (may be empty: then only pids are published).
    pub child_details: Vec<ChildInfo>,
}

/// One child as the dashboard shows it.
#[derive(Debug, Clone, Default)]
pub struct ChildInfo {
    pub pid: u32,
    pub busy: bool,
    /// (queue, task name) of the sync task it runs now.
    pub task: Option<(String, String)>,
    /// Seconds since that task started.
    pub running_for: Option<f64>,
    pub rss_bytes: Option<u64>,
}

/// The parent's Redis operations. Each call is one bounded round trip (or a few); none blocks.
pub trait Coordinator {
    /// Register the daemon (first call) and refresh its heartbeat TTL. True when a reaper had taken the daemon for
    /// dead since the last call (its parent stalled past the heartbeat timeout): it is registered again now.
    fn heartbeat(&mut self, info: &DaemonInfo) -> BrokerResult<bool>;
    /// Return the in-flight tasks of daemons whose heartbeat expired to the front of their queues.
    fn reap_dead_daemons(&mut self) -> BrokerResult<usize>;
    /// A child died: return its in-flight tasks; `running` (the seq it was running, if known) gets its
    /// delivery count bumped and is dead-listed at the limit. `bump` false for a deliberate stop.
    fn requeue_child(&mut self, pid: u32, running: Option<u64>, bump: bool) -> BrokerResult<usize>;
    /// The watchdog killed a child at its hard timeout: record task `seq` as failed with `reason`.
    fn fail_child_task(&mut self, pid: u32, seq: u64, reason: &str) -> BrokerResult<()>;
    /// Move due eta tasks to the front of their queues (bounded); the next due unix time, if any.
    fn promote_eta(&mut self) -> BrokerResult<Option<f64>>;
    /// Hand one broadcast payload heard on the broadcast channel to this daemon's children (exactly one child runs
    /// it). wakaq's producers hand broadcasts over in broadcast.lua; the channel carries those of WakaQ's producers
    /// (at most once, as WakaQ delivers them).
    fn relay_broadcast(&mut self, payload: &[u8]) -> BrokerResult<()>;
    /// Clean shutdown: remove the heartbeat and the daemon's registration; the broadcasts its children did not run
    /// are recorded failed. Returns how many were.
    fn deregister(&mut self) -> BrokerResult<i64>;
    /// Redis server time as unix seconds (one clock for every machine).
    fn server_time(&mut self) -> BrokerResult<f64>;
    /// Register the lists this daemon's rate limits may park tasks in, and move the parked tasks of limits it
    /// does not have back to the front of their queues (bounded). Returns how many moved.
    fn release_parked(&mut self) -> BrokerResult<u64> {
        Ok(0)
    }
    /// Publish the daemon's task counters (`(field, total)` pairs) and info; `again` when an earlier publish
    /// succeeded. True when the daemon was reaped since then (nothing written). No-op without Redis.
    fn publish_stats(&mut self, _info: &DaemonInfo, _fields: &[(String, u64)], _again: bool) -> BrokerResult<bool> {
        Ok(false)
    }
}

/// What the parent needs to reach Redis. Built by the supervisor from the Python config dict.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    pub url: String,
    pub prefix: String,
    pub daemon_id: String,
    /// Queue names in priority order (after exclude_queues); their eta sets are promoted by this daemon.
    pub queues: Vec<String>,
    /// Names of the tasks with a rate limit in this daemon's config (their parked lists are its own).
    pub limited_tasks: Vec<String>,
    /// Registered task names and the per-key concurrency limits among them (broker/conc.rs: a registered task
    /// without a limit lets its waiters go).
    pub task_names: Vec<String>,
    pub conc_limits: Vec<(String, u32)>,
    pub heartbeat_timeout: std::time::Duration,
    pub socket_timeout: Option<std::time::Duration>,
    pub connect_timeout: Option<std::time::Duration>,
    pub tls: super::tls::TlsOptions,
}

/// The Redis-backed coordinator. Connects lazily: a Redis outage shows up as errors from its calls.
/// An unusable URL (already validated in Python, so unlikely) gives a coordinator whose calls all fail.
pub fn connect(cfg: &CoordinatorConfig) -> Box<dyn Coordinator> {
    match super::coordinator::RedisCoordinator::new(cfg) {
        Ok(c) => Box::new(c),
        Err(e) => Box::new(Unavailable(format!(
            "invalid redis settings: {}",
            super::conn::first_line(&e)
        ))),
    }
}

/// A coordinator for an unusable URL: every call fails with the same message.
struct Unavailable(String);

impl Unavailable {
    fn fail<T>(&self) -> BrokerResult<T> {
        Err(BrokerFailure(self.0.clone()))
    }
}

impl Coordinator for Unavailable {
    fn heartbeat(&mut self, _info: &DaemonInfo) -> BrokerResult<bool> {
        self.fail()
    }
    fn publish_stats(&mut self, _info: &DaemonInfo, _fields: &[(String, u64)], _again: bool) -> BrokerResult<bool> {
        self.fail()
    }
    fn reap_dead_daemons(&mut self) -> BrokerResult<usize> {
        self.fail()
    }
    fn requeue_child(&mut self, _pid: u32, _running: Option<u64>, _bump: bool) -> BrokerResult<usize> {
        self.fail()
    }
    fn fail_child_task(&mut self, _pid: u32, _seq: u64, _reason: &str) -> BrokerResult<()> {
        self.fail()
    }
    fn promote_eta(&mut self) -> BrokerResult<Option<f64>> {
        self.fail()
    }
    fn relay_broadcast(&mut self, _payload: &[u8]) -> BrokerResult<()> {
        self.fail()
    }
    fn deregister(&mut self) -> BrokerResult<i64> {
        self.fail()
    }
    fn release_parked(&mut self) -> BrokerResult<u64> {
        self.fail()
    }
    fn server_time(&mut self) -> BrokerResult<f64> {
        self.fail()
    }
}
