//! The child side of a fork (design-notes 1.4, in order): signals, fds, stdout/stderr, slot, then
//! `child_main(slot)`, then `_exit`. Nothing here returns into the parent's code.

use std::os::fd::RawFd;

use pyo3::exceptions::PySystemExit;
use pyo3::prelude::*;

use super::counters::CounterTable;
use super::signals;
use super::slots::SlotTable;

/// Everything the child needs from the parent, gathered before the fork's child branch starts.
pub struct ChildStart<'a> {
    pub slot: usize,
    pub slots: &'a SlotTable,
    pub counters: &'a CounterTable,
    /// Write end of this child's log pipe: becomes fds 1 and 2.
    pub log_pipe: RawFd,
    /// The parent's fds: signal pipe, pub/sub socket, log file, other children's pipe ends, our read end.
    pub close: Vec<RawFd>,
    pub restore_mask: libc::sigset_t,
    /// The supervisor: when it dies, this child is told to stop (see `die_with_parent`).
    pub parent_pid: libc::pid_t,
}

/// Run the child to completion and leave the process with `_exit`.
pub fn run(py: Python<'_>, start: &ChildStart<'_>, child_main: &Bound<'_, PyAny>) -> ! {
    reset_signals(py, &start.restore_mask);
    die_with_parent(start.parent_pid);
    redirect_fds(start);
    start.slots.make_current(start.slot);
    start.counters.make_current(start.slot);
    line_buffer_stdout(py);
    let code = match child_main.call1((start.slot,)) {
        Ok(ret) => exit_code_of_return(&ret),
        Err(err) => exit_code_of_error(py, &err),
    };
    flush_std_streams(py);
    // SAFETY: _exit ends the process without running the parent's atexit handlers or Rust destructors,
    // which belong to the parent's objects (Redis connections, pub/sub socket, slot mapping).
    unsafe { libc::_exit(code) }
}

/// 1.4 step 1: dispositions back to default (SIGINT ignored), Python's view synced, no wakeup fd, unblock.
fn reset_signals(py: Python<'_>, restore_mask: &libc::sigset_t) {
    signals::reset_in_child();
    // NOTE: best effort: these fail only off the main thread, where the C-level reset above still holds.
    let _ = py.import("signal").and_then(|signal| {
        signal.call_method1("set_wakeup_fd", (-1,))?;
        let ign = signal.getattr("SIG_IGN")?;
        let dfl = signal.getattr("SIG_DFL")?;
        signal.call_method1("signal", (libc::SIGINT, ign))?;
        signal.call_method1("signal", (libc::SIGTERM, &dfl))?;
        signal.call_method1("signal", (libc::SIGQUIT, &dfl))
    });
    signals::restore_mask(restore_mask);
}

/// A child must not outlive its supervisor (kill -9 of the daemon): unsupervised it would keep claiming tasks
/// into the dead daemon's in-flight hash, with no watchdog, and once the dead daemon is reaped nobody would
/// ever return what it claims. The kernel sends SIGTERM when the parent dies: the child finishes its running
/// task, hands back what it claimed and did not start, and exits; the survivors' reaper returns the rest.
#[cfg(target_os = "linux")]
fn die_with_parent(parent_pid: libc::pid_t) {
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets a flag on this process.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong, 0, 0, 0) };
    // NOTE: the parent may have died before the prctl: then no signal comes, so send it ourselves (nothing is
    // claimed yet, the default action is fine).
    // SAFETY: getppid cannot fail; raise only signals this process.
    if unsafe { libc::getppid() } != parent_pid {
        unsafe { libc::raise(libc::SIGTERM) };
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_parent_pid: libc::pid_t) {}

/// 1.4 steps 2 and 4: close the parent's fds (never everything from 3 up: the app may own some), then the
/// log pipe becomes stdout and stderr.
fn redirect_fds(start: &ChildStart<'_>) {
    for &fd in &start.close {
        // SAFETY: each fd is one the parent opened and only the parent uses; the child never touches the
        // Rust objects that own them again (it leaves with _exit), so nothing double-closes or reuses them.
        unsafe { libc::close(fd) };
    }
    for target in [libc::STDOUT_FILENO, libc::STDERR_FILENO] {
        // SAFETY: dup2 onto the standard fds; the pipe's write end is open (created just before the fork).
        unsafe { libc::dup2(start.log_pipe, target) };
    }
    if start.log_pipe > libc::STDERR_FILENO {
        // SAFETY: the original write end is now duplicated onto 1 and 2 and not used again.
        unsafe { libc::close(start.log_pipe) };
    }
}

/// stdout is now a pipe, which Python would block-buffer: line buffering keeps `print` output timely.
fn line_buffer_stdout(py: Python<'_>) {
    let _ = py.import("sys").and_then(|sys| {
        let kwargs = pyo3::types::PyDict::new(py);
        kwargs.set_item("line_buffering", true)?;
        sys.getattr("stdout")?.call_method("reconfigure", (), Some(&kwargs))
    });
}

fn flush_std_streams(py: Python<'_>) {
    let _ = py.import("sys").map(|sys| {
        for name in ["stdout", "stderr"] {
            let _ = sys.getattr(name).and_then(|s| s.call_method0("flush"));
        }
    });
}

/// `child_main` returned: None is 0, an int is the exit status (mod 256), anything else is 1.
fn exit_code_of_return(ret: &Bound<'_, PyAny>) -> i32 {
    if ret.is_none() {
        return 0;
    }
    ret.extract::<i64>().map_or(1, |n| (n & 0xff) as i32)
}

/// `child_main` raised. SystemExit is an exit code as in Python (never `PyErr_Print`, which would run the
/// parent's interpreter shutdown in this child); anything else prints its traceback and exits 1.
fn exit_code_of_error(py: Python<'_>, err: &PyErr) -> i32 {
    if !err.is_instance_of::<PySystemExit>(py) {
        err.display(py);
        return 1;
    }
    let code = err.value(py).getattr("code").ok();
    match code {
        None => 1,
        Some(c) if c.is_none() => 0,
        Some(c) => c.extract::<i64>().map_or_else(
            |_| {
                let _ = py.import("sys").and_then(|sys| {
                    sys.getattr("stderr")?
                        .call_method1("write", (format!("{}\n", c.str()?),))
                });
                1
            },
            |n| (n & 0xff) as i32,
        ),
    }
}
