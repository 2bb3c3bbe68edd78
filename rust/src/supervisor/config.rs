//! The worker's settings: the config dict Python builds from the app (`wakaq/daemon.py`), validated once into plain
//! Rust values and held by one frozen `Settings` object that the parent (`run_worker`) and each child's `Consumer`
//! both take.

use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyString};

use crate::broker::parent::CoordinatorConfig;
use crate::broker::tls::TlsOptions;

const KEYS: [&str; 28] = [
    "concurrency",
    "max_mem_percent",
    "log_file",
    "log_level",
    "wait_timeout",
    "daemon_id",
    "hostname",
    "heartbeat_interval",
    "heartbeat_timeout",
    "shutdown_timeout",
    "url",
    "prefix",
    "queues",
    "socket_timeout",
    "connect_timeout",
    "max_tasks_per_worker",
    "ssl_ca_certs",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_cert_reqs",
    "task_names",
    "limited_tasks",
    "queue_rates",
    "task_rates",
    "conc_limits",
    "start_method",
    "spawn_command",
    "spawn_env",
];

/// Largest per-key concurrency limit (python/wakaq/concurrency.py checks the same bound).
pub const MAX_CONC_LIMIT: u32 = 1_000_000;

#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    pub concurrency: usize,
    /// Machine memory use (percent) at which children are recycled and forking waits.
    pub max_mem_percent: Option<f64>,
    /// None: the parent's stderr.
    pub log_file: Option<String>,
    /// Python logging level number; the parent's own lines below it are dropped.
    pub log_level: i64,
    pub wait_timeout: Duration,
    pub daemon_id: String,
    pub hostname: String,
    pub heartbeat_interval: Duration,
    pub heartbeat_timeout: Duration,
    /// How long a graceful stop waits for running tasks; None waits forever.
    pub shutdown_timeout: Option<Duration>,
    /// None: no Redis at all (an internal no-op coordinator).
    pub url: Option<String>,
    pub prefix: String,
    pub queues: Vec<String>,
    /// Registered task names: with the queues, the cells of the shared-memory task counters.
    pub task_names: Vec<String>,
    /// Names of the tasks with a rate limit (broker/parked.rs: parked lists of other tasks are released).
    pub limited_tasks: Vec<String>,
    pub socket_timeout: Option<Duration>,
    pub connect_timeout: Option<Duration>,
    /// `rediss://` settings (redis-py's `ssl_*` names).
    pub tls: TlsOptions,
    /// Rate limits as claim_limited.lua takes them (T, tau in microseconds): per queue of `queues` ((0, 0): none)
    /// and per limited task (name, T, tau). Both empty: no rate limit.
    pub queue_rates: Vec<(f64, f64)>,
    pub task_rates: Vec<(String, f64, f64)>,
    /// Per-key concurrency limits (task name, most running per key; lua/conc.lua). Empty: none.
    pub conc_limits: Vec<(String, u32)>,
    /// None: fork children (the default). Some: `start_method="spawn"` (spawn.rs).
    pub spawn: Option<SpawnCommand>,
}

/// How spawn mode starts a child: `argv` (the interpreter and its arguments; spawn.rs appends the slot, the
/// shared-memory fds and the parent's pid) with `env` added to the parent's environment as `WAKAQ_SPAWN`.
#[derive(Debug, Clone)]
pub struct SpawnCommand {
    pub argv: Vec<String>,
    pub env: String,
}

impl SupervisorConfig {
    pub fn from_py(config: &Bound<'_, PyAny>) -> PyResult<Self> {
        let py = config.py();
        let dict = py.get_type::<PyDict>().call1((config,))?.cast_into::<PyDict>()?;
        reject_unknown_keys(&dict)?;
        let f = Fields(dict);
        let hostname = f.opt_string("hostname")?.unwrap_or_else(local_hostname);
        let heartbeat_interval = f.secs("heartbeat_interval", 2.0)?;
        let cfg = Self {
            concurrency: f.concurrency()?,
            max_mem_percent: f.percent("max_mem_percent")?,
            log_file: f.opt_string("log_file")?,
            log_level: f.int("log_level", 20)?,
            wait_timeout: f.secs("wait_timeout", 1.0)?,
            daemon_id: f
                .opt_string("daemon_id")?
                .unwrap_or_else(|| format!("{hostname}-{}", std::process::id())),
            heartbeat_timeout: f.secs("heartbeat_timeout", heartbeat_interval.as_secs_f64() * 5.0)?,
            heartbeat_interval,
            hostname,
            shutdown_timeout: f.opt_secs("shutdown_timeout")?,
            url: f.opt_string("url")?,
            prefix: f.opt_string("prefix")?.unwrap_or_else(|| "wakaq".to_owned()),
            queues: f.str_list("queues")?,
            task_names: f.str_list("task_names")?,
            limited_tasks: f.str_list("limited_tasks")?,
            socket_timeout: f.opt_secs("socket_timeout")?,
            connect_timeout: f.opt_secs("connect_timeout")?,
            tls: TlsOptions::from_options(
                f.opt_string("ssl_ca_certs")?,
                f.opt_string("ssl_certfile")?,
                f.opt_string("ssl_keyfile")?,
                f.opt_string("ssl_cert_reqs")?.as_deref(),
            )
            .map_err(PyValueError::new_err)?,
            queue_rates: f.queue_rates()?,
            task_rates: f.task_rates()?,
            conc_limits: f.conc_limits()?,
            spawn: f.spawn()?,
        };
        cfg.check()?;
        Ok(cfg)
    }

    fn check(&self) -> PyResult<()> {
        if self.heartbeat_timeout <= self.heartbeat_interval {
            return Err(PyValueError::new_err(
                "heartbeat_timeout must be longer than heartbeat_interval",
            ));
        }
        if self.prefix.is_empty() || self.daemon_id.is_empty() {
            return Err(PyValueError::new_err("prefix and daemon_id must not be empty"));
        }
        match &self.url {
            Some(url) => self.tls.check_url(url).map_err(PyValueError::new_err)?,
            None if self.tls.is_set() => return Err(PyValueError::new_err("ssl_* options need a url")),
            None => {}
        }
        if self.url.as_deref().is_some_and(crate::broker::tls::is_tls_url) {
            // NOTE: read the PEM files now, so a bad path stops the daemon at start, not at every reconnect.
            self.tls
                .rustls_config()
                .map_err(|e| PyValueError::new_err(format!("invalid redis settings: {e}")))?;
        }
        Ok(())
    }

    /// What the Redis coordinator and pub/sub need; None when running without Redis.
    ///
    /// NOTE: the parent's loop is single-threaded, so a Redis call that hangs also stalls the watchdog, the log
    /// relay and signal handling: its socket and connect timeouts are capped at `parent_redis_timeout` (its
    /// scripts are bounded and take milliseconds; a slower Redis counts as an outage, retried with backoff).
    pub fn coordinator(&self) -> Option<CoordinatorConfig> {
        let limit = parent_redis_timeout(self.heartbeat_timeout);
        let cap = |t: Option<Duration>| Some(t.map_or(limit, |t| t.min(limit)));
        Some(CoordinatorConfig {
            url: self.url.clone()?,
            prefix: self.prefix.clone(),
            daemon_id: self.daemon_id.clone(),
            queues: self.queues.clone(),
            limited_tasks: self.limited_tasks.clone(),
            task_names: self.task_names.clone(),
            conc_limits: self.conc_limits.clone(),
            heartbeat_timeout: self.heartbeat_timeout,
            socket_timeout: cap(self.socket_timeout),
            connect_timeout: cap(self.connect_timeout),
            tls: self.tls.clone(),
        })
    }
}

/// The parent's socket and connect timeouts: a tenth of `heartbeat_timeout`, between 0.25 s and 2 s.
///
/// NOTE: one call on a stalled socket can wait up to three of them: a fresh connection waits for the TCP
/// connect and then for the reply, and a connection that broke (an I/O error, not a timeout) is replaced and the
/// call sent once more (`Conn::run`). So the loop is blocked at most ~0.3 x `heartbeat_timeout` per call, and
/// after a failure the link backs off (`Link`), so one loop iteration makes at most one failing call.
pub fn parent_redis_timeout(heartbeat_timeout: Duration) -> Duration {
    (heartbeat_timeout / 10).clamp(Duration::from_millis(250), Duration::from_secs(2))
}

fn reject_unknown_keys(dict: &Bound<'_, PyDict>) -> PyResult<()> {
    for key in dict.keys() {
        let name = key.extract::<String>().unwrap_or_else(|_| key.to_string());
        if !KEYS.contains(&name.as_str()) {
            return Err(PyValueError::new_err(format!(
                "unknown worker config key '{name}'; known keys: {}",
                KEYS.join(", ")
            )));
        }
    }
    Ok(())
}

struct Fields<'py>(Bound<'py, PyDict>);

impl<'py> Fields<'py> {
    /// The value of `key`, None when missing or None.
    fn get(&self, key: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        Ok(self.0.get_item(key)?.filter(|v| !v.is_none()))
    }

    fn number(&self, key: &str) -> PyResult<Option<f64>> {
        let Some(v) = self.get(key)? else { return Ok(None) };
        if v.is_instance_of::<PyBool>() || !(v.is_instance_of::<PyInt>() || v.is_instance_of::<PyFloat>()) {
            return Err(PyValueError::new_err(format!(
                "{key} must be a number, got {}",
                type_name(&v)
            )));
        }
        let x: f64 = v.extract()?;
        if x.is_nan() {
            return Err(PyValueError::new_err(format!("{key} must not be NaN")));
        }
        Ok(Some(x))
    }

    fn int(&self, key: &str, default: i64) -> PyResult<i64> {
        let Some(v) = self.get(key)? else { return Ok(default) };
        if v.is_instance_of::<PyBool>() || !v.is_instance_of::<PyInt>() {
            return Err(PyValueError::new_err(format!(
                "{key} must be an int, got {}",
                type_name(&v)
            )));
        }
        v.extract()
            .map_err(|_| PyValueError::new_err(format!("{key} is out of range")))
    }

    fn concurrency(&self) -> PyResult<usize> {
        if self.get("concurrency")?.is_none() {
            return Err(PyValueError::new_err("concurrency is required"));
        }
        let n = self.int("concurrency", 0)?;
        match usize::try_from(n) {
            Ok(n @ 1..=4096) => Ok(n),
            _ => Err(PyValueError::new_err(format!(
                "concurrency must be between 1 and 4096, got {n}"
            ))),
        }
    }

    fn percent(&self, key: &str) -> PyResult<Option<f64>> {
        match self.number(key)? {
            Some(p) if !(p > 0.0 && p <= 100.0) => {
                Err(PyValueError::new_err(format!("{key} must be in (0, 100], got {p}")))
            }
            p => Ok(p),
        }
    }

    /// Optional seconds; None, infinity or more than a Duration holds mean "no limit". Must be >= 0.
    fn opt_secs(&self, key: &str) -> PyResult<Option<Duration>> {
        match self.number(key)? {
            None => Ok(None),
            Some(x) if x > 0.0 && Duration::try_from_secs_f64(x).is_err() => Ok(None),
            Some(x) => Duration::try_from_secs_f64(x)
                .map(Some)
                .map_err(|_| PyValueError::new_err(format!("{key} must be >= 0 seconds, got {x}"))),
        }
    }

    /// Seconds with a default; must be finite and > 0.
    fn secs(&self, key: &str, default: f64) -> PyResult<Duration> {
        let x = self.number(key)?.unwrap_or(default);
        if let Some(d) = Some(x)
            .filter(|x| x.is_finite() && *x > 0.0)
            .and_then(|x| Duration::try_from_secs_f64(x).ok())
        {
            Ok(d)
        } else {
            Err(PyValueError::new_err(format!(
                "{key} must be a positive number of seconds, got {x}"
            )))
        }
    }

    fn opt_string(&self, key: &str) -> PyResult<Option<String>> {
        let Some(v) = self.get(key)? else { return Ok(None) };
        if !v.is_instance_of::<PyString>() {
            return Err(PyValueError::new_err(format!(
                "{key} must be a str, got {}",
                type_name(&v)
            )));
        }
        Ok(Some(v.extract()?))
    }

    fn spawn(&self) -> PyResult<Option<SpawnCommand>> {
        match self.opt_string("start_method")?.as_deref() {
            None | Some("fork") => Ok(None),
            Some("spawn") => {
                let argv = self.str_list("spawn_command")?;
                if argv.is_empty() || argv.iter().any(|a| a.contains('\0')) {
                    return Err(PyValueError::new_err(
                        "start_method 'spawn' needs spawn_command, a non-empty list of str without NUL",
                    ));
                }
                let env = self.opt_string("spawn_env")?.unwrap_or_default();
                if env.contains('\0') {
                    return Err(PyValueError::new_err("spawn_env must not contain NUL"));
                }
                Ok(Some(SpawnCommand { argv, env }))
            }
            Some(other) => Err(PyValueError::new_err(format!(
                "start_method must be 'fork' or 'spawn', got {other:?}"
            ))),
        }
    }

    /// `queue_rates`: a list of (T, tau) pairs, one per queue.
    fn queue_rates(&self) -> PyResult<Vec<(f64, f64)>> {
        self.items("queue_rates", "a list of (T, tau) pairs", |item| {
            let [t, tau] = rate_numbers::<2>(item)?;
            Some((t, tau))
        })
    }

    /// `task_rates`: a list of (task name, T, tau).
    fn task_rates(&self) -> PyResult<Vec<(String, f64, f64)>> {
        self.items("task_rates", "a list of (task name, T, tau)", |item| {
            let name: String = item.get_item(0).ok()?.extract().ok()?;
            let rest = item.get_item(pyo3::types::PySlice::new(item.py(), 1, 3, 1)).ok()?;
            let [t, tau] = rate_numbers::<2>(&rest)?;
            (item.len().ok()? == 3).then_some((name, t, tau))
        })
    }

    /// `conc_limits`: a list of (task name, limit), the limit an int from 1 to `MAX_CONC_LIMIT`.
    fn conc_limits(&self) -> PyResult<Vec<(String, u32)>> {
        self.items("conc_limits", "a list of (task name, limit >= 1)", |item| {
            if item.is_instance_of::<PyString>() || item.len().ok()? != 2 {
                return None;
            }
            let name: String = item.get_item(0).ok()?.extract().ok()?;
            let limit = item.get_item(1).ok()?;
            if limit.is_instance_of::<PyBool>() {
                return None;
            }
            let limit: u32 = limit.extract().ok()?;
            (1..=MAX_CONC_LIMIT).contains(&limit).then_some((name, limit))
        })
    }

    /// The items of list `key`, each converted by `f` (None: a bad item, refused with `expected`).
    fn items<T>(&self, key: &str, expected: &str, f: impl Fn(&Bound<'py, PyAny>) -> Option<T>) -> PyResult<Vec<T>> {
        let bad = |got: &Bound<'_, PyAny>| PyValueError::new_err(format!("{key} must be {expected}, got {got}"));
        let Some(v) = self.get(key)? else { return Ok(Vec::new()) };
        if v.is_instance_of::<PyString>() {
            return Err(bad(&v));
        }
        v.try_iter()
            .map_err(|_| bad(&v))?
            .map(|item| {
                let item = item?;
                f(&item).ok_or_else(|| bad(&item))
            })
            .collect()
    }

    fn str_list(&self, key: &str) -> PyResult<Vec<String>> {
        let Some(v) = self.get(key)? else { return Ok(Vec::new()) };
        if v.is_instance_of::<PyString>() {
            return Err(PyValueError::new_err(format!("{key} must be a list of str, not a str")));
        }
        v.try_iter()
            .map_err(|_| PyValueError::new_err(format!("{key} must be a list of str, got {}", type_name(&v))))?
            .map(|item| {
                let item = item?;
                item.extract::<String>().map_err(|_| {
                    PyValueError::new_err(format!("{key} must contain only str, got {}", type_name(&item)))
                })
            })
            .collect()
    }
}

/// A sequence of exactly `N` finite numbers >= 0 (not bools), None otherwise.
fn rate_numbers<const N: usize>(item: &Bound<'_, PyAny>) -> Option<[f64; N]> {
    if item.is_instance_of::<PyString>() || item.len().ok()? != N {
        return None;
    }
    let mut out = [0.0; N];
    for (i, slot) in out.iter_mut().enumerate() {
        let x = item.get_item(i).ok()?;
        if x.is_instance_of::<PyBool>() {
            return None;
        }
        *slot = x.extract::<f64>().ok().filter(|x| x.is_finite() && *x >= 0.0)?;
    }
    Some(out)
}

/// The worker's settings, validated once from the config dict (`SupervisorConfig::from_py`): what the parent
/// (`run_worker`) and every child's `Consumer` take, so no setting crosses from Python twice.
#[pyclass(frozen, module = "wakaq._wakaq")]
pub struct Settings {
    pub config: SupervisorConfig,
}

#[pymethods]
impl Settings {
    /// ValueError naming the key for an unknown key or a bad value.
    #[new]
    fn new(config: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(Self {
            config: SupervisorConfig::from_py(config)?,
        })
    }

    #[getter]
    fn daemon_id(&self) -> &str {
        &self.config.daemon_id
    }

    #[getter]
    fn concurrency(&self) -> usize {
        self.config.concurrency
    }

    #[getter]
    fn queues(&self) -> Vec<String> {
        self.config.queues.clone()
    }

    #[getter]
    fn wait_timeout(&self) -> f64 {
        self.config.wait_timeout.as_secs_f64()
    }

    fn __repr__(&self) -> String {
        let c = &self.config;
        format!(
            "Settings(daemon_id={:?}, concurrency={}, queues={:?})",
            c.daemon_id, c.concurrency, c.queues
        )
    }
}

fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type().name().map_or_else(|_| "?".to_owned(), |n| n.to_string())
}

fn local_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into our live buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    if rc == 0 && end > 0 {
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "localhost".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_redis_timeout_is_a_tenth_of_the_heartbeat_timeout_within_bounds() {
        let t = |s: f64| parent_redis_timeout(Duration::from_secs_f64(s)).as_secs_f64();
        assert!((t(15.0) - 1.5).abs() < 1e-9);
        assert!((t(5.0) - 0.5).abs() < 1e-9);
        assert!((t(1.0) - 0.25).abs() < 1e-9);
        assert!((t(300.0) - 2.0).abs() < 1e-9);
    }
}
