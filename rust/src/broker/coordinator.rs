//! The Redis implementation of the supervisor's `Coordinator`.

use std::fmt::Write as _;
use std::time::Instant;

use redis::RedisResult;

use super::conn::Conn;
use super::element::MAX_DELIVERIES;
use super::finish::{Finish, Mode};
use super::give_back::{self, Requeue, FAILED_KEEP};
use super::keys::Keys;
use super::parent::{BrokerFailure, BrokerResult, ChildInfo, Coordinator, CoordinatorConfig, DaemonInfo};
use super::scripts;
use super::settle::{Settlement, HARD_TIMEOUT};

/// Eta tasks moved per promotion call, so one call never stalls Redis.
const PROMOTE_BATCH: u32 = 1000;

pub struct RedisCoordinator {
    conn: Conn,
    keys: Keys,
    cfg: CoordinatorConfig,
    /// Redis server clock at a local instant, refreshed by every script that reads TIME.
    clock: Option<(f64, Instant)>,
    /// A heartbeat registered this daemon: a later one that finds it unregistered knows a reaper took it for dead.
    registered: bool,
    /// Where the heartbeat's walk of the concurrency registry goes on (SSCAN cursor; broker/conc.rs).
    conc_cursor: u64,
}

impl RedisCoordinator {
    pub fn new(cfg: &CoordinatorConfig) -> RedisResult<Self> {
        let conn = Conn::new(&cfg.url, &cfg.tls, cfg.socket_timeout, cfg.connect_timeout)?;
        Ok(Self {
            keys: Keys::new(&cfg.prefix, conn.is_cluster()),
            conn,
            cfg: cfg.clone(),
            clock: None,
            registered: false,
            conc_cursor: 0,
        })
    }

    fn run<T>(&mut self, f: impl FnMut(&mut dyn redis::ConnectionLike) -> RedisResult<T>) -> BrokerResult<T> {
        let result = self.conn.run(f);
        result.map_err(|e| BrokerFailure(self.conn.explain(&e)))
    }

    fn set_clock(&mut self, server_now: &str) {
        if let Ok(now) = server_now.parse::<f64>() {
            self.clock = Some((now, Instant::now()));
        }
    }

    fn worker(&self) -> String {
        format!("{}/parent", self.cfg.daemon_id)
    }

    /// The queues this daemon's children claim from: its broadcast list, then its queues.
    fn queue_names(&self) -> Vec<String> {
        let mut names = vec![Keys::broadcast_queue_name(&self.cfg.daemon_id)];
        names.extend(self.cfg.queues.iter().cloned());
        names
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The heartbeat value: JSON so `wakaq-info` and humans with redis-cli can read it. `children` are objects
/// (pid, busy, task, queue, running_for, rss_bytes) when the details are known, else bare pids.
pub fn info_json(id: &str, info: &DaemonInfo) -> String {
    let children: Vec<String> = if info.child_details.is_empty() {
        info.children.iter().map(u32::to_string).collect()
    } else {
        info.child_details.iter().map(child_json).collect()
    };
    format!(
        "{{\"id\":{},\"host\":{},\"pid\":{},\"children\":[{}],\"tasks_done\":{},\"started_at\":{:.3},\"rss_bytes\":{}}}",
        json_str(id),
        json_str(&info.host),
        info.pid,
        children.join(","),
        info.tasks_done,
        info.started_at,
        json_opt(info.rss_bytes)
    )
}

fn json_opt(v: Option<u64>) -> String {
    v.map_or_else(|| "null".to_owned(), |v| v.to_string())
}

fn child_json(c: &ChildInfo) -> String {
    let (queue, task) = c
        .task
        .as_ref()
        .map_or(("null".to_owned(), "null".to_owned()), |(q, t)| {
            (json_str(q), json_str(t))
        });
    let running_for = c.running_for.map_or_else(|| "null".to_owned(), |s| format!("{s:.3}"));
    format!(
        "{{\"pid\":{},\"busy\":{},\"task\":{task},\"queue\":{queue},\"running_for\":{running_for},\"rss_bytes\":{}}}",
        c.pid,
        c.busy,
        json_opt(c.rss_bytes)
    )
}

impl Coordinator for RedisCoordinator {
    fn heartbeat(&mut self, info: &DaemonInfo) -> BrokerResult<bool> {
        let (set, hb) = (self.keys.daemons(), self.keys.heartbeat(&self.cfg.daemon_id));
        let value = info_json(&self.cfg.daemon_id, info);
        let ttl = self.cfg.heartbeat_timeout.as_millis().max(1) as u64;
        let id = self.cfg.daemon_id.clone();
        let before = if self.registered { "1" } else { "0" };
        let (now, reaped): (String, i64) = self.run(|c| {
            scripts::heartbeat()
                .key(&set)
                .key(&hb)
                .arg(&id)
                .arg(&value)
                .arg(ttl)
                .arg(before)
                .invoke(c)
        })?;
        self.registered = true;
        self.set_clock(&now);
        Ok(reaped == 1)
    }

    fn publish_stats(&mut self, info: &DaemonInfo, fields: &[(String, u64)], again: bool) -> BrokerResult<bool> {
        let id = self.cfg.daemon_id.clone();
        let keys = [self.keys.daemons(), self.keys.stats(&id), self.keys.daemon_info(&id)];
        let value = info_json(&id, info);
        let reaped: i64 = self.run(|c| {
            let mut inv = scripts::stats().prepare_invoke();
            for k in &keys {
                inv.key(k);
            }
            inv.arg(&id).arg(if again { "1" } else { "0" }).arg(&value);
            for (field, n) in fields {
                inv.arg(field).arg(*n);
            }
            inv.invoke(c)
        })?;
        Ok(reaped == 1)
    }

    fn reap_dead_daemons(&mut self) -> BrokerResult<usize> {
        let (keys, worker) = (self.keys.clone(), self.worker());
        let (_daemons, tasks) = self.run(|c| give_back::reap(c, &keys, &worker))?;
        Ok(tasks as usize)
    }

    fn requeue_child(&mut self, pid: u32, running: Option<u64>, bump: bool) -> BrokerResult<usize> {
        let inflight = self.keys.inflight(&self.cfg.daemon_id);
        let field_prefix = format!("{pid}:");
        let counted = match running {
            Some(seq) if bump => format!("{pid}:{seq}"),
            _ => String::new(),
        };
        let (keys, names, worker) = (self.keys.clone(), self.queue_names(), self.worker());
        let reason = format!("child process {pid} died while running it {MAX_DELIVERIES} times (poison pill)");
        let r = Requeue {
            inflight: &inflight,
            field_prefix: &field_prefix,
            counted: &counted,
            only: "",
            worker: &worker,
            reason: &reason,
        };
        let n = self.run(|c| give_back::requeue(c, &keys, &names, &r))?;
        Ok(n as usize)
    }

    fn fail_child_task(&mut self, pid: u32, seq: u64, reason: &str) -> BrokerResult<()> {
        let inflight = self.keys.inflight(&self.cfg.daemon_id);
        let field = format!("{pid}:{seq}");
        let entry: Option<Vec<u8>> = self.run(|c| redis::cmd("HGET").arg(&inflight).arg(&field).query(c))?;
        let Some(entry) = entry else { return Ok(()) };
        let Some(nl) = entry.iter().position(|b| *b == b'\n') else {
            return Ok(());
        };
        let queue = String::from_utf8_lossy(&entry[..nl]).into_owned();
        let settlement = Settlement::of_payload(&self.keys, super::element::split(&entry[nl + 1..]).1);
        let (worker, fp, keys) = (self.worker(), format!("{pid}:"), self.keys.clone());
        // NOTE: the record and the lock are settled by the same script that records the failure: a resend after a
        // lost reply finds the task settled already, with everything that goes with it.
        let fields: [(&str, &[u8]); 2] = [("error_type", HARD_TIMEOUT.as_bytes()), ("error", reason.as_bytes())];
        let finish = Finish {
            inflight: &inflight,
            field_prefix: &fp,
            seq,
            queue: &queue,
            worker: &worker,
            settlement: settlement.as_ref(),
            status: "failed",
            fields: &fields,
            acks: &[],
        };
        self.run(|c| finish.run(c, &keys, Mode::Fail(reason, "")).map(|_| ()))
    }

    fn promote_eta(&mut self) -> BrokerResult<Option<f64>> {
        let queues = self.cfg.queues.clone();
        let mut keys: Vec<String> = queues.iter().map(|q| self.keys.eta(q)).collect();
        keys.extend(queues.iter().map(|q| self.keys.queue(q)));
        keys.extend(queues.iter().map(|q| self.keys.bell(q)));
        let (_moved, now, next): (i64, String, String) = self.run(|c| {
            let mut inv = scripts::promote().prepare_invoke();
            for k in &keys {
                inv.key(k);
            }
            inv.arg(PROMOTE_BATCH).invoke(c)
        })?;
        self.set_clock(&now);
        Ok(match next.as_str() {
            "" => None,
            "now" => now.parse().ok(),
            due => due.parse().ok(),
        })
    }

    fn relay_broadcast(&mut self, payload: &[u8]) -> BrokerResult<()> {
        let name = Keys::broadcast_queue_name(&self.cfg.daemon_id);
        let (queue, bell) = (self.keys.queue(&name), self.keys.bell(&name));
        // NOTE: at most once (a resend after a lost reply would run the broadcast twice on this daemon)
        let result = self
            .conn
            .run_once(|c| scripts::enqueue().key(&queue).key(&bell).arg(payload).invoke::<i64>(c));
        result.map(|_| ()).map_err(|e| BrokerFailure(self.conn.explain(&e)))
    }

    fn deregister(&mut self) -> BrokerResult<i64> {
        let id = self.cfg.daemon_id.clone();
        let (set, hb) = (self.keys.daemons(), self.keys.heartbeat(&id));
        let name = Keys::broadcast_queue_name(&id);
        let (bq, bell) = (self.keys.queue(&name), self.keys.bell(&name));
        // NOTE: the in-flight hash is left alone: children returned their tasks; anything still there
        // (a crash during shutdown) is reaped by another daemon once this one is gone from the set... so
        // requeue it here first.
        let inflight = self.keys.inflight(&id);
        let (keys, names, worker) = (self.keys.clone(), self.queue_names(), self.worker());
        let r = Requeue {
            inflight: &inflight,
            field_prefix: "",
            counted: "",
            only: "",
            worker: &worker,
            reason: "",
        };
        self.run(|c| give_back::requeue(c, &keys, &names, &r))?;
        let retire = [
            set.clone(),
            self.keys.stats_retired(),
            self.keys.stats(&id),
            self.keys.daemon_info(&id),
            bq,
            bell,
            self.keys.failed(&name),
        ];
        let recorded = self.run(|c| {
            let mut inv = scripts::retire().prepare_invoke();
            for k in &retire {
                inv.key(k);
            }
            inv.arg(&id).arg(FAILED_KEEP).invoke::<i64>(c)
        })?;
        // NOTE: one command, not a pipeline: it follows a cluster redirection on its own (the keys share a slot).
        self.run(|c| redis::cmd("DEL").arg(&hb).arg(&inflight).query::<()>(c))?;
        Ok(recorded)
    }

    fn release_parked(&mut self) -> BrokerResult<u64> {
        let (keys, queues, limited) = (
            self.keys.clone(),
            self.cfg.queues.clone(),
            self.cfg.limited_tasks.clone(),
        );
        let moved = self.run(|c| super::parked::release(c, &keys, &queues, &limited))?;
        // NOTE: waiters of per-key concurrency are parked tasks too (broker/conc.rs); one SSCAN per beat without them
        let (mut cursor, cfg) = (self.conc_cursor, self.cfg.clone());
        let freed = self.run(|c| super::conc::sweep(c, &keys, &cfg.task_names, &cfg.conc_limits, &mut cursor))?;
        self.conc_cursor = cursor;
        Ok(moved + freed)
    }

    fn server_time(&mut self) -> BrokerResult<f64> {
        if let Some((at, when)) = self.clock {
            return Ok(at + when.elapsed().as_secs_f64());
        }
        let (secs, micros): (u64, u64) = self.run(|c| redis::cmd("TIME").query(c))?;
        let now = secs as f64 + micros as f64 / 1e6;
        self.clock = Some((now, Instant::now()));
        Ok(now)
    }
}
