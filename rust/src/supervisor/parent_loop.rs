//! The parent loop: one thread, one `poll`, then a checklist of small named steps (the shape of WakaQ's
//! `_parent`). The GIL is detached only while waiting in `poll`; it is held for forking.

use std::os::fd::{AsRawFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use pyo3::prelude::*;

use crate::broker::parent::{connect, ChildInfo, DaemonInfo};
use crate::broker::pubsub::{Event, PubSub};

use super::backoff::Backoff;
use super::child::{self, ChildStart};
use super::children::{log_pipe, try_reap, Child, Exit, Kill};
use super::clock::{monotonic_ns, unix_now};
use super::config::SupervisorConfig;
use super::fork::{fork, os_thread_count, Forked};
use super::link::{log_redis_failure, Link, NoRedis, Op};
use super::logs::Logger;
use super::signals::SignalPipe;
use super::slots::{Slot, SlotTable};
use super::spawn::{self as spawn_mode, Spawner};
use super::tally::Tally;
use super::watchdog::{judge, secs, Verdict, BUSY_TICK, IDLE_TICK};
use super::{eta, memory};

/// A child that dies sooner than this after its fork counts towards the crash-loop backoff.
const YOUNG: Duration = Duration::from_secs(1);
const MEMORY_CHECK_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Running,
    /// Children were sent SIGTERM; SIGKILL whoever is left at the deadline (None: wait forever).
    Graceful {
        deadline: Option<Instant>,
    },
    /// Children were sent SIGKILL.
    Fast,
}

pub struct Parent {
    cfg: SupervisorConfig,
    log: Logger,
    slots: SlotTable,
    tally: Tally,
    signals: SignalPipe,
    link: Link,
    pubsub: Option<PubSub>,
    pubsub_down: bool,
    events: Vec<Event>,
    children: Vec<Child>,
    stop: Stop,
    crash: Backoff,
    fork_not_before: Instant,
    memory_high: bool,
    next_memory_check: Instant,
    next_heartbeat: Instant,
    next_eta: Instant,
    clock_offset: f64,
    retired_done: u64,
    warned_threads: bool,
    started_at: f64,
    /// Spawn mode: children are fork+exec'd fresh interpreters (None: forked, the default).
    spawner: Option<Spawner>,
}

/// Run the daemon until it is stopped by a signal; returns the exit code (0).
pub fn run(py: Python<'_>, cfg: SupervisorConfig, child_main: &Bound<'_, PyAny>) -> PyResult<i32> {
    let mut parent = Parent::new(cfg)?;
    parent.log_started();
    parent.run(py, child_main);
    parent.shutdown();
    Ok(0)
}

impl Parent {
    fn new(cfg: SupervisorConfig) -> std::io::Result<Self> {
        let mut log = Logger::open(cfg.log_file.as_deref(), cfg.log_level)?;
        let (slots, tally, spawner) = spawn_mode::tables(&cfg)?;
        let (link, pubsub) = match cfg.coordinator() {
            None => (Link::new(Box::new(NoRedis)), None),
            Some(cc) => {
                let pubsub = PubSub::new(&cc)
                    .map_err(|e| log.error(&format!("{e}; broadcasts and eta wake-ups are disabled")))
                    .ok();
                (Link::new(connect(&cc)), pubsub)
            }
        };
        let signals = SignalPipe::install()?;
        let now = Instant::now();
        Ok(Self {
            cfg,
            log,
            slots,
            tally,
            signals,
            link,
            pubsub,
            pubsub_down: false,
            events: Vec::new(),
            children: Vec::new(),
            stop: Stop::Running,
            crash: Backoff::new(Duration::from_secs(1), Duration::from_secs(30)),
            fork_not_before: now,
            memory_high: false,
            next_memory_check: now,
            next_heartbeat: now,
            next_eta: now,
            clock_offset: 0.0,
            retired_done: 0,
            warned_threads: false,
            started_at: unix_now(),
            spawner,
        })
    }

    fn log_started(&mut self) {
        let queues = if self.cfg.queues.is_empty() {
            "(none)".to_owned()
        } else {
            self.cfg.queues.join(", ")
        };
        let msg = format!(
            "wakaq worker {} started: {} children, queues {queues}",
            self.cfg.daemon_id, self.cfg.concurrency
        );
        self.log.info(&msg);
    }

    fn run(&mut self, py: Python<'_>, child_main: &Bound<'_, PyAny>) {
        // NOTE: before the first fork: registered (children of an unregistered daemon are refused, claim.lua), and
        // tasks parked by a limit this daemon lacks released, so they are claimed in their order
        self.heartbeat();
        loop {
            self.fork_missing(py, child_main);
            self.wait(py);
            self.handle_signals();
            run_python_signal_handlers(py);
            self.relay_logs();
            self.read_pubsub();
            self.reap_children();
            self.watch_timeouts();
            self.enforce_stop_timeout();
            if self.stop != Stop::Running && self.children.is_empty() {
                return;
            }
            self.guard_memory();
            self.promote_eta();
            self.handle_control();
            self.relay_broadcasts();
            self.heartbeat();
            self.link.flush(&mut self.log);
        }
    }

    // ---- wait -----------------------------------------------------------------------------------------

    /// Sleep in `poll` (GIL detached) until a signal, child output, a pub/sub message or the next deadline.
    fn wait(&mut self, py: Python<'_>) {
        let mut fds: Vec<libc::pollfd> = std::iter::once(self.signals.read_fd())
            .chain(self.children.iter().filter_map(Child::pipe_fd))
            .chain(self.pubsub.as_ref().and_then(PubSub::fd))
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let timeout = self.next_wake().saturating_duration_since(Instant::now());
        // NOTE: rounded up so we never wake just before a deadline and spin on a 0 ms poll.
        let ms = timeout.as_micros().div_ceil(1000).min(60_000) as libc::c_int;
        py.detach(|| {
            // SAFETY: `fds` is a live, correctly sized array of pollfd; EINTR just ends the wait early.
            unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        });
    }

    fn next_wake(&self) -> Instant {
        let now = Instant::now();
        let mut wake = now + if self.needs_fast_tick() { BUSY_TICK } else { IDLE_TICK };
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                wake = wake.min(t);
            }
        };
        consider(Some(self.next_heartbeat));
        consider(self.link.wake_at());
        consider(self.pubsub.as_ref().and_then(PubSub::next_retry));
        if self.stop == Stop::Running {
            consider(Some(self.next_eta));
            consider((self.children.len() < self.cfg.concurrency).then_some(self.fork_not_before));
        }
        if let Stop::Graceful { deadline } = self.stop {
            consider(deadline);
        }
        wake
    }

    /// A task has a deadline, or a child is on its way out (reap it promptly).
    fn needs_fast_tick(&self) -> bool {
        self.stop != Stop::Running
            || self.children.iter().any(|c| {
                c.killed.is_some()
                    || c.pipe_fd().is_none()
                    || self
                        .slots
                        .get(c.slot)
                        .and_then(Slot::read)
                        .is_some_and(|s| s.has_deadline())
            })
    }

    // ---- signals and stopping ------------------------------------------------------------------------

    fn handle_signals(&mut self) {
        for sig in self.signals.drain() {
            self.on_stop_signal(sig);
        }
    }

    fn on_stop_signal(&mut self, sig: libc::c_int) {
        let name = signal_name(sig);
        match self.stop {
            Stop::Running => {
                let deadline = self.cfg.shutdown_timeout.map(|d| Instant::now() + d);
                let limit = self.cfg.shutdown_timeout.map_or("no time limit".to_owned(), |d| {
                    format!("up to {}s", secs(d.as_nanos() as u64))
                });
                let n = self.children.len();
                self.log.info(&format!(
                    "received {name}: stopping gracefully, waiting for {n} children ({limit})"
                ));
                for c in &mut self.children {
                    c.signal(libc::SIGTERM);
                    c.stopping = true;
                }
                self.stop = Stop::Graceful { deadline };
            }
            Stop::Graceful { .. } => {
                let n = self.children.len();
                self.log
                    .warning(&format!("received {name} again: killing {n} children now"));
                self.kill_all(Kill::FastStop);
                self.stop = Stop::Fast;
            }
            Stop::Fast => {}
        }
    }

    fn kill_all(&mut self, why: Kill) {
        for c in self.children.iter_mut().filter(|c| c.killed.is_none()) {
            c.signal(libc::SIGKILL);
            c.killed = Some(why);
        }
    }

    fn enforce_stop_timeout(&mut self) {
        let Stop::Graceful {
            deadline: Some(deadline),
        } = self.stop
        else {
            return;
        };
        if Instant::now() < deadline {
            return;
        }
        let n = self.children.len();
        self.log
            .warning(&format!("shutdown_timeout passed: killing {n} children still running"));
        self.kill_all(Kill::ShutdownTimeout);
        self.stop = Stop::Fast;
    }

    // ---- children: logs, reaping, refork ---------------------------------------------------------------

    fn relay_logs(&mut self) {
        for c in &mut self.children {
            c.relay_logs(&mut self.log);
        }
    }

    fn reap_children(&mut self) {
        let mut i = 0;
        while i < self.children.len() {
            match try_reap(self.children[i].pid) {
                Some(exit) => {
                    let child = self.children.swap_remove(i);
                    self.on_child_exit(child, exit);
                }
                None => i += 1,
            }
        }
    }

    fn on_child_exit(&mut self, mut child: Child, exit: Exit) {
        child.finish_logs(&mut self.log);
        let state = self.slots.get(child.slot).map(Slot::read_final).unwrap_or_default();
        self.retired_done += state.tasks_done;
        self.tally.child_exited(child.slot);
        let running = state.running().or((state.async_seq != 0).then_some(state.async_seq));
        // NOTE: a child that finished or started a task was working, not crash-looping (an outside kill, the
        // OOM killer, a poison pill whose deliveries are counted and dead-listed anyway).
        let worked = state.tasks_done > 0 || running.is_some();
        // NOTE: a child we killed gets no bump: a hard-timeout task was already recorded as failed (Op::Fail
        // was queued first), and a stop is our decision, not the task's fault.
        // NOTE: status 0 is no clean exit while a task is still in the slot (`os._exit(0)` in a task): a clean
        // exit finishes or hands back its task first. It counts as a delivery like any other death mid-task.
        let (running, bump) = match child.killed {
            Some(_) => (None, false),
            None => (running, running.is_some()),
        };
        self.link.push(Op::Requeue {
            pid: child.pid_u32(),
            running,
            bump,
        });
        self.log_child_exit(&child, exit, running);
        self.note_crash(&child, worked);
    }

    fn log_child_exit(&mut self, child: &Child, exit: Exit, running: Option<u64>) {
        let task = running.map_or(String::new(), |seq| format!(" while running task {seq}"));
        let msg = format!("child {} (slot {}) {}{task}", child.pid, child.slot, exit.describe());
        let clean = exit == Exit::Code(0) && running.is_none();
        let expected = child.killed.is_some() || child.stopping || child.recycling || clean;
        if expected {
            self.log.info(&msg);
        } else {
            self.log.warning(&msg);
        }
    }

    /// Children dying right after birth, before running any task, mean a crash loop (the app fails at start):
    /// wait 1 s, doubling to 30 s, between forks. A child that ran tasks resets the backoff however young it
    /// died: children killed from outside while working must be replaced at once, not after 30 s.
    fn note_crash(&mut self, child: &Child, worked: bool) {
        let deliberate = child.killed.is_some() || child.recycling || child.stopping;
        if self.stop != Stop::Running || deliberate {
            return;
        }
        if worked || child.born.elapsed() >= YOUNG {
            self.crash.reset();
            return;
        }
        let delay = self.crash.next_delay();
        self.fork_not_before = self.fork_not_before.max(Instant::now() + delay);
        self.log.warning(&format!(
            "children keep dying within {}s of starting ({} in a row): next fork in {}s",
            YOUNG.as_secs(),
            self.crash.failures(),
            secs(delay.as_nanos() as u64)
        ));
    }

    fn fork_missing(&mut self, py: Python<'_>, child_main: &Bound<'_, PyAny>) {
        if self.stop != Stop::Running || Instant::now() < self.fork_not_before {
            return;
        }
        let missing: Vec<usize> = (0..self.cfg.concurrency)
            .filter(|&s| !self.children.iter().any(|c| c.slot == s))
            .collect();
        if missing.is_empty() {
            return;
        }
        self.refresh_memory();
        if self.memory_high {
            return;
        }
        for slot in missing {
            if let Err(e) = self.spawn(py, slot, child_main) {
                let delay = self.crash.next_delay();
                self.log.error(&format!(
                    "fork failed: {e}; retrying in {}s",
                    secs(delay.as_nanos() as u64)
                ));
                self.fork_not_before = Instant::now() + delay;
                return;
            }
        }
    }

    fn spawn(&mut self, py: Python<'_>, slot: usize, child_main: &Bound<'_, PyAny>) -> std::io::Result<()> {
        if self.spawner.is_some() {
            return self.spawn_exec(py, slot);
        }
        let threads = self.check_threads();
        flush_python_stdio(py);
        let (read, write) = log_pipe()?;
        if let Some(s) = self.slots.get(slot) {
            s.clear();
        }
        self.tally.child_forking(slot);
        // SAFETY: getpid cannot fail.
        let parent_pid = unsafe { libc::getpid() };
        match fork(py)? {
            Forked::Parent(pid) => {
                drop(write);
                self.children.push(Child::new(pid, slot, read));
                let threads = threads.map_or("?".to_owned(), |t| t.to_string());
                self.log
                    .debug(&format!("forked child {pid} (slot {slot}, parent threads {threads})"));
                Ok(())
            }
            Forked::Child { restore_mask } => {
                self.become_child(py, slot, (read, write), parent_pid, restore_mask, child_main)
            }
        }
    }

    /// Spawn mode: fork+exec a fresh interpreter into `slot` (no thread check: that is what the mode is for).
    fn spawn_exec(&mut self, py: Python<'_>, slot: usize) -> std::io::Result<()> {
        let Some(spawner) = &self.spawner else { return Ok(()) };
        flush_python_stdio(py);
        let (read, write) = log_pipe()?;
        if let Some(s) = self.slots.get(slot) {
            s.clear();
        }
        self.tally.child_forking(slot);
        // SAFETY: getpid cannot fail.
        let parent_pid = unsafe { libc::getpid() };
        let pid = spawner.spawn(slot, parent_pid, write.as_raw_fd())?;
        drop(write);
        self.children.push(Child::new(pid, slot, read));
        self.log
            .debug(&format!("forked child {pid} (slot {slot}, spawn: exec'd interpreter)"));
        Ok(())
    }

    /// Count OS threads before a fork; warn once if the parent is not single-threaded.
    fn check_threads(&mut self) -> Option<u64> {
        let threads = os_thread_count();
        if threads.is_some_and(|t| t != 1) && !self.warned_threads {
            self.warned_threads = true;
            self.log.warning(&format!(
                "the worker parent has {} OS threads at fork; threads in a forking process can deadlock its \
                 children (does the app start threads at import?)",
                threads.unwrap_or_default()
            ));
        }
        threads
    }

    /// In the new child: hand over to `child::run`, which ends in `_exit`.
    fn become_child(
        &mut self,
        py: Python<'_>,
        slot: usize,
        (read, write): (OwnedFd, OwnedFd),
        parent_pid: libc::pid_t,
        restore_mask: libc::sigset_t,
        child_main: &Bound<'_, PyAny>,
    ) -> ! {
        // WARN: nothing may unwind out of here into the parent's loop (it would run the parent's code, then
        // its destructors, in the child): a panic ends the child with status 70.
        let _ = catch_unwind(AssertUnwindSafe(|| {
            let mut close: Vec<_> = self.signals.fds().to_vec();
            close.extend(self.pubsub.as_ref().and_then(PubSub::fd));
            close.extend(self.log.file_fd());
            close.extend(self.children.iter().filter_map(Child::pipe_fd));
            close.push(read.as_raw_fd());
            let log_pipe = write.as_raw_fd();
            // NOTE: the parent's Redis objects are leaked, never dropped (design-notes 1.4 step 3); the fds
            // are closed by number in child::run, so their owners must not close them again.
            std::mem::forget(self.pubsub.take());
            self.link.forget_in_child();
            std::mem::forget((read, write));
            let start = ChildStart {
                slot,
                slots: &self.slots,
                counters: self.tally.table(),
                log_pipe,
                close,
                restore_mask,
                parent_pid,
            };
            child::run(py, &start, child_main);
        }));
        // SAFETY: leaves the child process at once, running no destructors and no atexit handlers.
        unsafe { libc::_exit(70) }
    }

    // ---- watchdog and memory ---------------------------------------------------------------------------

    fn watch_timeouts(&mut self) {
        let now = monotonic_ns();
        for c in self.children.iter_mut().filter(|c| c.killed.is_none()) {
            let Some(state) = self.slots.get(c.slot).and_then(Slot::read) else {
                continue;
            };
            match judge(&state, now, c.soft_sent) {
                Verdict::Fine => {}
                Verdict::Soft { seq } => {
                    c.signal(libc::SIGQUIT);
                    c.soft_sent = Some(seq);
                    let msg = format!(
                        "child {} (slot {}): task {seq} passed its soft timeout, sent SIGQUIT",
                        c.pid, c.slot
                    );
                    self.log.warning(&msg);
                }
                Verdict::Hard { seq, reason } => {
                    c.signal(libc::SIGKILL);
                    c.killed = Some(Kill::HardTimeout);
                    self.tally.hard_timeout(c.slot, state.running() == Some(seq));
                    self.log.error(&format!(
                        "child {} (slot {}): task {seq} {reason}, killed",
                        c.pid, c.slot
                    ));
                    self.link.push(Op::Fail {
                        pid: c.pid_u32(),
                        seq,
                        reason,
                    });
                }
            }
        }
    }

    /// Re-read machine memory (at most once a second) and log when it crosses `max_mem_percent`.
    fn refresh_memory(&mut self) {
        let Some(limit) = self.cfg.max_mem_percent else { return };
        let now = Instant::now();
        if now < self.next_memory_check {
            return;
        }
        self.next_memory_check = now + MEMORY_CHECK_EVERY;
        let Some(used) = memory::machine_used_percent() else {
            return;
        };
        let high = used >= limit;
        if high && !self.memory_high {
            self.log.warning(&format!(
                "memory at {used:.1}% >= max_mem_percent {limit}: recycling, not forking"
            ));
        } else if !high && self.memory_high {
            self.log.info(&format!(
                "memory at {used:.1}% < max_mem_percent {limit}: forking again"
            ));
        }
        self.memory_high = high;
    }

    /// Above `max_mem_percent`, SIGTERM the biggest child (it finishes its task and exits), one at a time.
    fn guard_memory(&mut self) {
        self.refresh_memory();
        if !self.memory_high || self.stop != Stop::Running || self.children.iter().any(|c| c.recycling) {
            return;
        }
        let biggest = self
            .children
            .iter_mut()
            .filter(|c| c.killed.is_none())
            .filter_map(|c| memory::rss_bytes(c.pid_u32()).map(|rss| (rss, c)))
            .max_by_key(|(rss, _)| *rss);
        if let Some((rss, c)) = biggest {
            c.signal(libc::SIGTERM);
            c.recycling = true;
            let msg = format!(
                "recycling child {} (slot {}, rss {} MiB): memory is high",
                c.pid,
                c.slot,
                rss >> 20
            );
            self.log.warning(&msg);
        }
    }

    // ---- Redis: pub/sub, eta, broadcasts, heartbeat ----------------------------------------------------

    fn read_pubsub(&mut self) {
        let Some(ps) = self.pubsub.as_mut() else { return };
        let connected = ps.maintain(Instant::now(), &mut self.events);
        let read = ps.read_events(&mut self.events);
        // NOTE: back up only once the server confirmed the subscription: a server that accepts the connection
        // and then refuses the login would otherwise flap between "unavailable" and "subscribed again".
        for outcome in [connected, Some(read)].into_iter().flatten() {
            match outcome {
                Err(e) if !self.pubsub_down => {
                    log_redis_failure(&mut self.log, &format!("redis pub/sub unavailable: {e}"), &e);
                    self.pubsub_down = true;
                }
                Ok(()) if self.pubsub_down && ps.is_subscribed() => {
                    self.log.info("pub/sub subscribed again");
                    self.pubsub_down = false;
                }
                _ => {}
            }
        }
    }

    fn promote_eta(&mut self) {
        let now = Instant::now();
        let woken = self.events.iter().any(|e| matches!(e, Event::Eta | Event::Connected));
        if self.stop != Stop::Running || (!woken && now < self.next_eta) {
            return;
        }
        let pubsub = self.pubsub.as_ref().is_some_and(PubSub::is_connected);
        self.next_eta = match self.link.call(&mut self.log, |c| c.promote_eta()) {
            Some(next_due) => now + eta::wait_for(next_due, unix_now(), self.clock_offset, pubsub),
            None => self.link.wake_at().unwrap_or(now).max(now + eta::CAP_WITHOUT_PUBSUB),
        };
    }

    /// Admin requests on the control channel: `cancel <daemon> <pid> <seq>` for one of our live children posts
    /// `seq` into its slot's mailbox and sends it SIGUSR2 (the child raises `TaskCancelled` in that task, or
    /// ignores a seq that already finished: seqs are never reused in a child). Other daemons' requests, pids
    /// that are not (or no longer) our children and malformed messages are ignored.
    fn handle_control(&mut self) {
        for event in &self.events {
            let Event::Control(message) = event else { continue };
            let Some((pid, seq)) = parse_cancel(message, &self.cfg.daemon_id) else {
                continue;
            };
            let Some(c) = self.children.iter().find(|c| c.pid_u32() == pid && c.killed.is_none()) else {
                self.log
                    .info(&format!("cancel of task {seq}: child {pid} is not running here"));
                continue;
            };
            let posted = self.slots.get(c.slot).is_some_and(|s| s.post_cancel(seq));
            if posted {
                c.signal(libc::SIGUSR2);
                self.log.info(&format!(
                    "child {pid} (slot {}): cancel of task {seq} requested, sent SIGUSR2",
                    c.slot
                ));
            } else {
                self.log
                    .warning(&format!("child {pid}: cancel of task {seq} dropped (mailbox full)"));
            }
        }
    }

    fn relay_broadcasts(&mut self) {
        for event in std::mem::take(&mut self.events) {
            let Event::Broadcast(payload) = event else { continue };
            if self.stop != Stop::Running {
                self.log.debug("broadcast dropped: the worker is stopping");
            } else if self.link.call(&mut self.log, |c| c.relay_broadcast(&payload)).is_none() {
                self.log.warning("broadcast dropped: redis unavailable");
            }
        }
    }

    fn heartbeat(&mut self) {
        let now = Instant::now();
        if now < self.next_heartbeat {
            return;
        }
        self.next_heartbeat = now + self.cfg.heartbeat_interval;
        let info = self.daemon_info();
        self.publish_stats(&info);
        // NOTE: the heartbeat first: it is a real round trip. `server_time` mostly answers from the clock the
        // last script read, without Redis; called first, its success ended every outage in the link (an INFO
        // "available again", then a new WARNING, every heartbeat interval, and a backoff stuck at its minimum).
        match self.link.call(&mut self.log, |c| c.heartbeat(&info)) {
            None => return,
            Some(true) => self.log.warning(
                "this daemon was taken for dead (no heartbeat for longer than heartbeat_timeout: a stall, swap, a \
                 pause) and its in-flight tasks were given back to their queues; registered again",
            ),
            Some(false) => {}
        }
        if let Some(server) = self.link.call(&mut self.log, |c| c.server_time()) {
            self.clock_offset = server - unix_now();
        }
        if let Some(n @ 1..) = self.link.call(&mut self.log, |c| c.reap_dead_daemons()) {
            self.log
                .info(&format!("returned {n} tasks of dead worker daemons to their queues"));
        }
        self.release_parked();
    }

    /// Tasks parked by a task rate limit this daemon does not have go back to the front of their queues.
    fn release_parked(&mut self) {
        if let Some(n @ 1..) = self.link.call(&mut self.log, |c| c.release_parked()) {
            self.log.info(&format!(
                "moved {n} tasks parked by a rate limit this worker does not have to their queues"
            ));
        }
    }

    /// Task counters and daemon info, just before the heartbeat (skipped while Redis is down: the heartbeat
    /// logs the outage).
    fn publish_stats(&mut self, info: &DaemonInfo) {
        let (fields, again) = self.tally.fields(self.children.iter().map(|c| c.slot));
        if let Some(reaped) = self.link.call(&mut self.log, |c| c.publish_stats(info, &fields, again)) {
            self.tally.published(reaped);
        }
    }

    /// What each child does now, for the dashboard (one statm read per child, once per heartbeat).
    fn child_details(&self) -> Vec<ChildInfo> {
        let now = monotonic_ns();
        self.children
            .iter()
            .map(|c| {
                let state = self.slots.get(c.slot).map(Slot::read_final).unwrap_or_default();
                let task = state.running().and_then(|_| self.tally.current_task(c.slot));
                ChildInfo {
                    pid: c.pid_u32(),
                    busy: state.running().is_some() || state.async_seq != 0,
                    running_for: task
                        .as_ref()
                        .map(|_| now.saturating_sub(state.sync_started) as f64 / 1e9),
                    task,
                    rss_bytes: memory::rss_bytes(c.pid_u32()),
                }
            })
            .collect()
    }

    fn daemon_info(&self) -> DaemonInfo {
        let running: u64 = self
            .children
            .iter()
            .filter_map(|c| self.slots.get(c.slot).map(|s| s.read_final().tasks_done))
            .sum();
        DaemonInfo {
            host: self.cfg.hostname.clone(),
            pid: std::process::id(),
            children: self.children.iter().map(Child::pid_u32).collect(),
            tasks_done: self.retired_done + running,
            started_at: self.started_at,
            rss_bytes: memory::rss_bytes(std::process::id()),
            child_details: self.child_details(),
        }
    }

    // ---- shutdown -------------------------------------------------------------------------------------

    /// Every child is gone: hand back their tasks, deregister, say goodbye.
    fn shutdown(&mut self) {
        self.link.retry_now();
        self.link.flush(&mut self.log);
        if self.link.pending() == 0 {
            // NOTE: the children's last counts (since the last heartbeat) first: deregistering folds what
            // was published into the retired totals.
            self.link.retry_now();
            let info = self.daemon_info();
            self.publish_stats(&info);
            // NOTE: our children may have parked tasks in a list another daemon emptied and unregistered since our
            // last heartbeat (a rolling deploy that removes a limit): register our lists once more
            self.release_parked();
            self.link.retry_now();
            let recorded = self.link.call(&mut self.log, |c| c.deregister());
            if let Some(n @ 1..) = recorded {
                self.log.warning(&format!(
                    "{n} broadcast(s) not run before stopping: recorded failed (wakaq-failed broadcast)"
                ));
            }
        } else {
            // NOTE: staying registered lets another daemon's reaper return our in-flight tasks once our
            // heartbeat expires; deregistering now could orphan them.
            let n = self.link.pending();
            self.log.warning(&format!(
                "{n} requeue(s) could not reach redis; left to the dead-daemon reaper"
            ));
        }
        self.log.info(&format!("wakaq worker {} stopped", self.cfg.daemon_id));
    }
}

impl Drop for Parent {
    /// Only reached with children left on an error path (panic): never leave orphans behind.
    fn drop(&mut self) {
        for c in &self.children {
            c.signal(libc::SIGKILL);
            let mut status = 0;
            // SAFETY: waits for our own SIGKILLed child, which exits promptly.
            unsafe { libc::waitpid(c.pid, &raw mut status, 0) };
        }
    }
}

/// `(pid, seq)` of a `cancel <daemon> <pid> <seq>` control message addressed to `daemon`.
fn parse_cancel(message: &[u8], daemon: &str) -> Option<(u32, u64)> {
    let text = std::str::from_utf8(message).ok()?;
    let mut words = text.split(' ');
    if words.next()? != "cancel" || words.next()? != daemon {
        return None;
    }
    let pid = words.next()?.parse().ok()?;
    let seq = words.next()?.parse().ok()?;
    words.next().is_none().then_some((pid, seq))
}

fn signal_name(sig: libc::c_int) -> String {
    match sig {
        libc::SIGINT => "SIGINT".to_owned(),
        libc::SIGTERM => "SIGTERM".to_owned(),
        libc::SIGQUIT => "SIGQUIT".to_owned(),
        other => format!("signal {other}"),
    }
}

/// Handlers the app registered with Python's `signal` module (for signals we do not own) run here, since the
/// interpreter cannot run them while we sit in Rust.
fn run_python_signal_handlers(py: Python<'_>) {
    if let Err(err) = py.check_signals() {
        err.display(py);
    }
}

/// Flush Python's stdout/stderr before forking, so buffered text is not written once per child.
fn flush_python_stdio(py: Python<'_>) {
    if let Ok(sys) = py.import("sys") {
        for name in ["stdout", "stderr"] {
            let _ = sys.getattr(name).and_then(|s| s.call_method0("flush"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_cancel;

    #[test]
    fn cancel_messages() {
        assert_eq!(parse_cancel(b"cancel d1 42 7", "d1"), Some((42, 7)));
        assert_eq!(parse_cancel(b"cancel d2 42 7", "d1"), None);
        assert_eq!(parse_cancel(b"cancel d1 42", "d1"), None);
        assert_eq!(parse_cancel(b"cancel d1 42 7 8", "d1"), None);
        assert_eq!(parse_cancel(b"cancel d1 x 7", "d1"), None);
        assert_eq!(parse_cancel(b"stop d1 42 7", "d1"), None);
    }
}
