//! Spawn mode (`start_method="spawn"`): children are fresh interpreters, fork+exec'd, for apps that start
//! threads or open connections at import and so cannot be forked safely. Between fork and exec the child runs
//! only async-signal-safe calls (no Python, no allocation, no lock), so whatever the parent's other threads
//! held at the fork cannot deadlock it. The exec'd child (`python -m wakaq._spawned`) imports the app, maps the
//! slot table and counter regions from the memory files it inherited (shm.rs) and runs the same `child::run`
//! as a forked child; the parent supervises it exactly like a forked one (same pid, pipe, slot).

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;

use pyo3::prelude::*;

use super::child::{self, ChildStart};
use super::config::{SpawnCommand, SupervisorConfig};
use super::counters::CounterTable;
use super::shm;
use super::signals;
use super::slots::SlotTable;
use super::tally::{layout, Tally};

/// The environment variable that carries `SpawnCommand::env` to the spawned child.
const ENV_NAME: &str = "WAKAQ_SPAWN";
/// Exit status of a child whose exec failed (as a shell's "command not found").
const EXEC_FAILED: libc::c_int = 127;

/// The parent's side: the memory files and the command, prepared once.
pub struct Spawner {
    slots_fd: OwnedFd,
    counters_fd: OwnedFd,
    argv: Vec<CString>,
    env: Vec<CString>,
}

/// The parent's shared tables: anonymous mappings for fork mode (unchanged), memory files for spawn mode.
pub fn tables(cfg: &SupervisorConfig) -> io::Result<(SlotTable, Tally, Option<Spawner>)> {
    let Some(cmd) = &cfg.spawn else {
        let slots = SlotTable::new(cfg.concurrency)?;
        let tally = Tally::new(cfg.concurrency, &cfg.queues, &cfg.task_names)?;
        return Ok((slots, tally, None));
    };
    let slots_fd = shm::memfd(c"wakaq-slots")?;
    let counters_fd = shm::memfd(c"wakaq-counters")?;
    let slots = SlotTable::in_memfd(cfg.concurrency, slots_fd.as_raw_fd(), true)?;
    let table = CounterTable::in_memfd(
        cfg.concurrency,
        layout(&cfg.queues, &cfg.task_names),
        counters_fd.as_raw_fd(),
        true,
    )?;
    let spawner = Spawner::new(cmd, slots_fd, counters_fd)?;
    Ok((slots, Tally::with_table(table), Some(spawner)))
}

fn c_string(s: impl Into<Vec<u8>>) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in the spawn command"))
}

impl Spawner {
    fn new(cmd: &SpawnCommand, slots_fd: OwnedFd, counters_fd: OwnedFd) -> io::Result<Self> {
        let argv = cmd
            .argv
            .iter()
            .map(|a| c_string(a.as_str()))
            .collect::<io::Result<_>>()?;
        // NOTE: the environment is read once, at start (a parent that changes os.environ later is not seen);
        // the config travels in the environment, not argv, because it holds the Redis URL (password) and argv
        // is world-readable in /proc.
        let mut env: Vec<CString> = std::env::vars_os()
            .filter(|(k, _)| k != ENV_NAME)
            .map(|(k, v)| {
                let mut kv = k.into_vec();
                kv.push(b'=');
                kv.extend(v.into_vec());
                c_string(kv)
            })
            .collect::<io::Result<_>>()?;
        env.push(c_string(OsString::from(format!("{ENV_NAME}={}", cmd.env)).into_vec())?);
        Ok(Self {
            slots_fd,
            counters_fd,
            argv,
            env,
        })
    }

    /// Fork and exec a child for `slot` whose stdout and stderr are `log_pipe`; returns its pid.
    pub fn spawn(&self, slot: usize, parent_pid: libc::pid_t, log_pipe: RawFd) -> io::Result<libc::pid_t> {
        let (slots_fd, counters_fd) = (self.slots_fd.as_raw_fd(), self.counters_fd.as_raw_fd());
        // NOTE: everything the child needs is allocated here, before the fork.
        let mut argv = self.argv.clone();
        for n in [
            slot.to_string(),
            slots_fd.to_string(),
            counters_fd.to_string(),
            parent_pid.to_string(),
        ] {
            argv.push(c_string(n)?);
        }
        let argv_ptrs: Vec<*const libc::c_char> = argv
            .iter()
            .map(|a| a.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        let env_ptrs: Vec<*const libc::c_char> = self
            .env
            .iter()
            .map(|a| a.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        // NOTE: blocked so that no handler of ours runs in the child before execve (it would write the
        // parent's signal pipe); the child unblocks once its dispositions are back to default.
        let old_mask = signals::block_handled()?;
        // SAFETY: a plain fork(2), no Python fork hooks: the child only runs `exec_child`, which is
        // async-signal-safe and ends in execve or _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: in the new child; every pointer is to memory allocated before the fork.
            unsafe { exec_child(&argv_ptrs, &env_ptrs, log_pipe, [slots_fd, counters_fd], &old_mask) }
        }
        let err = io::Error::last_os_error();
        signals::restore_mask(&old_mask);
        if pid < 0 {
            Err(err)
        } else {
            Ok(pid)
        }
    }
}

/// The child between fork and exec. Async-signal-safe calls only: sigaction, prctl, dup2, fcntl,
/// pthread_sigmask, execve, write, _exit.
///
/// # Safety
/// Only in a child just forked by `Spawner::spawn`; `argv` and `env` are NULL-terminated arrays of live C strings.
unsafe fn exec_child(
    argv: &[*const libc::c_char],
    env: &[*const libc::c_char],
    log_pipe: RawFd,
    keep: [RawFd; 2],
    mask: &libc::sigset_t,
) -> ! {
    // NOTE: SIGINT ignored, SIGTERM/SIGQUIT default, as a forked child; an ignored SIGINT stays ignored across
    // exec, so the interpreter does not install its KeyboardInterrupt handler (Ctrl-C is the parent's call).
    signals::reset_in_child();
    // SAFETY (whole block): plain syscalls on fds and memory of this process.
    unsafe {
        // NOTE: PR_SET_PDEATHSIG survives execve (not of set-uid binaries); the exec'd child sets it again and
        // checks it still has its parent (child::die_with_parent), covering a parent that died before now.
        #[cfg(target_os = "linux")]
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong, 0, 0, 0);
        libc::dup2(log_pipe, libc::STDOUT_FILENO);
        libc::dup2(log_pipe, libc::STDERR_FILENO);
        // NOTE: the memory files are close-on-exec in the parent (so the app's subprocesses never get them);
        // only here, in our own child, are they kept open across exec.
        for fd in keep {
            libc::fcntl(fd, libc::F_SETFD, 0);
        }
        signals::restore_mask(mask);
        libc::execve(argv[0], argv.as_ptr(), env.as_ptr());
        let msg = b"wakaq: spawn mode could not exec the child's interpreter\n";
        libc::write(libc::STDERR_FILENO, msg.as_ptr().cast(), msg.len());
        libc::_exit(EXEC_FAILED)
    }
}

/// In the exec'd child (`wakaq._spawned`): map the parent's tables and run the child like a forked one.
/// Returns only on a setup error (the child then exits 1 with it); otherwise ends in `_exit`.
pub fn run_child(
    py: Python<'_>,
    cfg: &SupervisorConfig,
    slot: usize,
    (slots_fd, counters_fd): (RawFd, RawFd),
    parent_pid: libc::pid_t,
    child_main: &Bound<'_, PyAny>,
) -> io::Result<()> {
    if slot >= cfg.concurrency {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("slot {slot} is not below concurrency {}", cfg.concurrency),
        ));
    }
    let slots = SlotTable::in_memfd(cfg.concurrency, slots_fd, false)?;
    let counters = CounterTable::in_memfd(
        cfg.concurrency,
        layout(&cfg.queues, &cfg.task_names),
        counters_fd,
        false,
    )?;
    let restore_mask = signals::block_handled()?;
    let start = ChildStart {
        slot,
        slots: &slots,
        counters: &counters,
        // NOTE: fds 1 and 2 already are the log pipe (set before exec); the mappings outlive their fds.
        log_pipe: libc::STDOUT_FILENO,
        close: vec![slots_fd, counters_fd],
        restore_mask,
        parent_pid,
    };
    child::run(py, &start, child_main)
}
