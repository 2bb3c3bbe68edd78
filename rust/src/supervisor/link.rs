//! The parent's way to Redis: the `Coordinator`, guarded against outages. One WARNING per outage, one INFO
//! on recovery, retries with backoff (0.5 s doubling to 2 s), and an ordered queue of the operations that
//! must not be lost (failing a hard-timeout task, then requeueing its child's other tasks).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::broker::parent::{BrokerResult, Coordinator, DaemonInfo};

use super::backoff::{Backoff, RECONNECT_MAX};
use super::logs::Logger;

/// Work that must reach Redis eventually, in this order.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Fail { pid: u32, seq: u64, reason: String },
    Requeue { pid: u32, running: Option<u64>, bump: bool },
}

/// Log the first failure of an outage: ERROR for what only a human can fix (credentials, TLS setup), else
/// WARNING. Either way the daemon keeps retrying: the server side may be fixed without restarting workers
/// (an ACL user created, a certificate replaced), and a worker that exits would just be restarted into the
/// same error by its service manager.
pub fn log_redis_failure(log: &mut Logger, line: &str, cause: &str) {
    if cause.contains("redis authentication failed") || cause.contains("redis TLS handshake failed") {
        log.error(&format!("{line}; retrying until it is fixed"));
    } else {
        log.warning(line);
    }
}

pub struct Link {
    coord: Box<dyn Coordinator>,
    down: bool,
    backoff: Backoff,
    retry_at: Option<Instant>,
    pending: VecDeque<Op>,
}

impl Link {
    pub fn new(coord: Box<dyn Coordinator>) -> Self {
        Self {
            coord,
            down: false,
            backoff: Backoff::new(Duration::from_millis(500), RECONNECT_MAX),
            retry_at: None,
            pending: VecDeque::new(),
        }
    }

    /// Run `f` unless we are backing off after a failure; None when skipped or failed.
    pub fn call<T>(&mut self, log: &mut Logger, f: impl FnOnce(&mut dyn Coordinator) -> BrokerResult<T>) -> Option<T> {
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            return None;
        }
        match f(self.coord.as_mut()) {
            Ok(v) => {
                self.recovered(log);
                Some(v)
            }
            Err(e) => {
                if !self.down {
                    let msg = e.to_string();
                    // NOTE: the broker's messages mostly say what failed already; don't stutter.
                    let line = if msg.starts_with("redis ") {
                        msg.clone()
                    } else {
                        format!("redis unavailable: {msg}")
                    };
                    log_redis_failure(log, &line, &msg);
                    self.down = true;
                }
                self.retry_at = Some(Instant::now() + self.backoff.next_delay());
                None
            }
        }
    }

    fn recovered(&mut self, log: &mut Logger) {
        if self.down {
            log.info("redis available again");
            self.down = false;
        }
        self.backoff.reset();
        self.retry_at = None;
    }

    pub fn push(&mut self, op: Op) {
        self.pending.push_back(op);
    }

    /// Send the queued operations in order, stopping at the first failure (retried later).
    pub fn flush(&mut self, log: &mut Logger) {
        while let Some(op) = self.pending.front().cloned() {
            let done = self.call(log, |c| match &op {
                Op::Fail { pid, seq, reason } => c.fail_child_task(*pid, *seq, reason),
                Op::Requeue { pid, running, bump } => c.requeue_child(*pid, *running, *bump).map(|_| ()),
            });
            if done.is_none() {
                return;
            }
            self.pending.pop_front();
        }
    }

    /// Forget the backoff (one last attempt at shutdown).
    pub fn retry_now(&mut self) {
        self.retry_at = None;
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// When queued work will next be retried.
    pub fn wake_at(&self) -> Option<Instant> {
        if self.pending.is_empty() {
            None
        } else {
            Some(self.retry_at.unwrap_or_else(Instant::now))
        }
    }

    /// In a forked child: leak the coordinator. WARN: dropping it would close or unsubscribe sockets the
    /// parent is still using (design-notes 1.4 step 3).
    pub fn forget_in_child(&mut self) {
        std::mem::forget(std::mem::replace(&mut self.coord, Box::new(NoRedis)));
    }
}

/// The coordinator for `url=None`: no Redis at all, every call succeeds and does nothing, so the supervisor
/// can run (and be tested) alone.
pub struct NoRedis;

impl Coordinator for NoRedis {
    fn heartbeat(&mut self, _info: &DaemonInfo) -> BrokerResult<bool> {
        Ok(false)
    }
    fn reap_dead_daemons(&mut self) -> BrokerResult<usize> {
        Ok(0)
    }
    fn requeue_child(&mut self, _pid: u32, _running: Option<u64>, _bump: bool) -> BrokerResult<usize> {
        Ok(0)
    }
    fn fail_child_task(&mut self, _pid: u32, _seq: u64, _reason: &str) -> BrokerResult<()> {
        Ok(())
    }
    fn promote_eta(&mut self) -> BrokerResult<Option<f64>> {
        Ok(None)
    }
    fn relay_broadcast(&mut self, _payload: &[u8]) -> BrokerResult<()> {
        Ok(())
    }
    fn deregister(&mut self) -> BrokerResult<i64> {
        Ok(0)
    }
    fn server_time(&mut self) -> BrokerResult<f64> {
        Ok(super::clock::unix_now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::parent::BrokerFailure;
    use std::sync::{Arc, Mutex};

    /// Records calls; fails while `up` is false.
    struct Flaky {
        up: Arc<Mutex<bool>>,
        calls: Arc<Mutex<Vec<String>>>,
    }

    impl Flaky {
        fn go(&mut self, what: String) -> BrokerResult<()> {
            if *self.up.lock().expect("lock") {
                self.calls.lock().expect("lock").push(what);
                Ok(())
            } else {
                Err(BrokerFailure("connection refused".into()))
            }
        }
    }

    impl Coordinator for Flaky {
        fn heartbeat(&mut self, _info: &DaemonInfo) -> BrokerResult<bool> {
            self.go("hb".into()).map(|()| false)
        }
        fn reap_dead_daemons(&mut self) -> BrokerResult<usize> {
            self.go("reap".into()).map(|()| 0)
        }
        fn requeue_child(&mut self, pid: u32, running: Option<u64>, bump: bool) -> BrokerResult<usize> {
            self.go(format!("requeue {pid} {running:?} {bump}")).map(|()| 0)
        }
        fn fail_child_task(&mut self, pid: u32, seq: u64, _reason: &str) -> BrokerResult<()> {
            self.go(format!("fail {pid} {seq}"))
        }
        fn promote_eta(&mut self) -> BrokerResult<Option<f64>> {
            self.go("eta".into()).map(|()| None)
        }
        fn relay_broadcast(&mut self, _payload: &[u8]) -> BrokerResult<()> {
            self.go("bcast".into())
        }
        fn deregister(&mut self) -> BrokerResult<i64> {
            self.go("dereg".into()).map(|()| 0)
        }
        fn server_time(&mut self) -> BrokerResult<f64> {
            self.go("time".into()).map(|()| 0.0)
        }
    }

    #[test]
    fn pending_ops_survive_an_outage_in_order() {
        let up = Arc::new(Mutex::new(false));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let mut link = Link::new(Box::new(Flaky {
            up: up.clone(),
            calls: calls.clone(),
        }));
        let mut log = Logger::open(Some("/dev/null"), 0).expect("log");
        link.push(Op::Fail {
            pid: 1,
            seq: 2,
            reason: "hard".into(),
        });
        link.push(Op::Requeue {
            pid: 1,
            running: None,
            bump: false,
        });
        link.flush(&mut log);
        assert_eq!(link.pending(), 2);
        assert!(link.wake_at().is_some_and(|t| t > Instant::now()), "backing off");
        link.flush(&mut log);
        assert_eq!(
            link.call(&mut log, |c| c.heartbeat(&DaemonInfo::default())),
            None::<bool>,
            "skipped during backoff"
        );
        *up.lock().expect("lock") = true;
        link.retry_now();
        link.flush(&mut log);
        assert_eq!(link.pending(), 0);
        assert_eq!(
            *calls.lock().expect("lock"),
            vec!["fail 1 2".to_owned(), "requeue 1 None false".to_owned()]
        );
        assert_eq!(
            link.call(&mut log, |c| c.heartbeat(&DaemonInfo::default())),
            Some(false)
        );
    }
}
