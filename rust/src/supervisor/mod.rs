//! The worker daemon's parent: forks `concurrency` children that run `child_main(slot)`, relays their logs,
//! enforces timeouts through shared-memory slots, recycles on memory pressure, reforks, promotes eta tasks,
//! relays broadcasts and keeps the daemon's heartbeat. Single-threaded by design (design-notes 1.2).

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;

pub mod backoff;
mod child;
mod children;
pub mod clock;
pub mod config;
pub mod counters;
pub mod eta;
mod fork;
mod link;
mod logs;
mod memory;
mod parent_loop;
mod shm;
mod signals;
pub mod slots;
mod spawn;
mod tally;
mod watchdog;

/// Run the worker daemon's parent loop until SIGINT/SIGTERM/SIGQUIT; returns the exit code.
#[pyfunction]
fn run_worker(py: Python<'_>, settings: &Bound<'_, config::Settings>, child_main: &Bound<'_, PyAny>) -> PyResult<i32> {
    let cfg = settings.get().config.clone();
    if !child_main.is_callable() {
        return Err(PyTypeError::new_err("child_main must be callable"));
    }
    catch_unwind(AssertUnwindSafe(|| parent_loop::run(py, cfg, child_main))).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(PyRuntimeError::new_err(format!("wakaq supervisor failed: {what}")))
    })
}

/// Spawn mode, in the exec'd child (`wakaq._spawned`): map the parent's shared tables (memory files `slots_fd`
/// and `counters_fd`), then run `child_main(slot)` as a forked child would and `_exit`. Returns only by raising,
/// when that setup fails.
#[pyfunction]
fn run_spawned_child(
    py: Python<'_>,
    settings: &Bound<'_, config::Settings>,
    slot: usize,
    slots_fd: i32,
    counters_fd: i32,
    parent_pid: i32,
    child_main: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let cfg = &settings.get().config;
    if !child_main.is_callable() {
        return Err(PyTypeError::new_err("child_main must be callable"));
    }
    catch_unwind(AssertUnwindSafe(|| {
        spawn::run_child(py, cfg, slot, (slots_fd, counters_fd), parent_pid, child_main)
    }))
    .map_err(|_| PyRuntimeError::new_err("wakaq spawned child failed to start"))?
    .map_err(|e| PyRuntimeError::new_err(format!("wakaq spawned child cannot start: {e}")))
}

/// Child: a sync task started (seconds from now, 0 = none), counted in `cell` (`counter_cell`). Atomics only:
/// no syscall, no allocation.
#[pyfunction]
#[pyo3(signature = (seq, soft_timeout, hard_timeout, cell = None))]
fn task_started(seq: u64, soft_timeout: f64, hard_timeout: f64, cell: Option<usize>) {
    let now = clock::monotonic_ns();
    let (soft, hard) = (clock::secs_to_ns(soft_timeout), clock::secs_to_ns(hard_timeout));
    slots::with_current(|s| s.task_started_at(now, seq, soft, hard));
    if let Some(cell) = cell {
        counters::sync_started(cell, now);
    }
}

/// Child: it works on task `seq` (0: no longer), see `Slot::task_handling` (`ClaimedTask.decode` marks the start).
/// Atomics only.
#[pyfunction]
fn task_handling(seq: u64) {
    slots::with_current(|s| s.task_handling(seq));
}

/// Child: the sync task finished (`done`: without an exception; its run time goes into the histogram).
#[pyfunction]
#[pyo3(signature = (done = true))]
fn task_finished(done: bool) {
    slots::with_current(slots::Slot::task_finished);
    counters::sync_finished(done);
}

/// Child: the counter cell of tasks named `task` (None: undecodable) from queue `queue` ("broadcast" for
/// broadcasts). Worked out once per (task, queue) pair; 0 outside a worker child, where counting does nothing.
#[pyfunction]
#[pyo3(signature = (queue, task = None))]
fn counter_cell(queue: &str, task: Option<&str>) -> usize {
    counters::cell_for(queue, task)
}

/// Child: count one event of a task (`"started"`, `"retried"`, `"exception"`, `"undecodable"`, `"cancelled"`), or, with
/// `seconds`, the end of an async task and its run time (`"done"`; any other event: ended without success,
/// counted as a failure separately).
#[pyfunction]
#[pyo3(signature = (cell, event, seconds = None))]
fn count_task(cell: usize, event: &str, seconds: Option<f64>) -> PyResult<()> {
    let what = match event {
        "started" => counters::STARTED,
        "done" => counters::DONE,
        "retried" => counters::RETRIED,
        "exception" => counters::EXCEPTION,
        "undecodable" => counters::UNDECODABLE,
        "cancelled" => counters::CANCELLED,
        _ => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "unknown task event {event:?}"
            )))
        }
    };
    // NOTE: the end of an async task only adds its run time (and done): a failure is counted where it is
    // recorded, with its kind.
    // NOTE: the slot's `tasks_done` (finished tasks, in the daemon's info) counts async ends too, as sync ones.
    match seconds {
        Some(s) => {
            counters::observe(cell, clock::secs_to_ns(s), what == counters::DONE);
            slots::with_current(slots::Slot::async_finished);
        }
        None => counters::count(cell, what),
    }
    Ok(())
}

/// Child (its SIGUSR2 handler): seqs of tasks an admin asked this child to cancel, posted by the parent into the
/// slot's mailbox; empty outside a supervised child.
#[pyfunction]
fn take_cancels() -> Vec<u64> {
    let mut seqs = Vec::new();
    slots::with_current(|s| seqs = s.take_cancels());
    seqs
}

/// Child: the earliest hard deadline of its async tasks (monotonic seconds, `time.monotonic()`), 0 for none.
/// `cell`: the counter cell of that task, so a hard-timeout kill is counted against it.
#[pyfunction]
#[pyo3(signature = (seq, hard_timeout_at, cell = None))]
fn async_deadline(seq: u64, hard_timeout_at: f64, cell: Option<usize>) {
    slots::with_current(|s| s.async_deadline(seq, clock::secs_to_ns(hard_timeout_at)));
    counters::async_deadline_cell(cell);
}

pub fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<config::Settings>()?;
    m.add_function(wrap_pyfunction!(run_worker, m)?)?;
    m.add_function(wrap_pyfunction!(run_spawned_child, m)?)?;
    m.add_function(wrap_pyfunction!(task_started, m)?)?;
    m.add_function(wrap_pyfunction!(task_finished, m)?)?;
    m.add_function(wrap_pyfunction!(task_handling, m)?)?;
    m.add_function(wrap_pyfunction!(async_deadline, m)?)?;
    m.add_function(wrap_pyfunction!(counter_cell, m)?)?;
    m.add_function(wrap_pyfunction!(count_task, m)?)?;
    m.add_function(wrap_pyfunction!(take_cancels, m)?)?;
    Ok(())
}
