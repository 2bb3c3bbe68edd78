//! Forking while attached to the interpreter, through CPython's own fork hooks (design-notes 1.3, option A).

use std::io;

use pyo3::{ffi, Python};

use super::signals;

pub enum Forked {
    /// In the parent: the new child's pid.
    Parent(libc::pid_t),
    /// In the child, with the handled signals still blocked; `restore_mask` unblocks them once the child
    /// has reset its signal dispositions.
    Child { restore_mask: libc::sigset_t },
}

/// Fork the process. The `Python` token proves the thread is attached, which `PyOS_AfterFork_Child` needs
/// (it asserts a current thread state).
///
/// WARN: the caller must be the only OS thread (check `os_thread_count` first and warn): locks held by other
/// threads stay locked forever in the child.
pub fn fork(_py: Python<'_>) -> io::Result<Forked> {
    let old_mask = signals::block_handled()?;
    // SAFETY: attached (the token) on the thread that will continue in both processes. PyOS_BeforeFork
    // takes the interpreter's fork locks and runs `os.register_at_fork(before=...)` hooks; exactly one of the
    // AfterFork functions below releases/reinitialises them in each process.
    unsafe { ffi::PyOS_BeforeFork() };
    // SAFETY: a plain fork(2); the child only runs the code in `child::run`, which ends in `_exit`.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: in the new child, still attached on the forking thread, as PyOS_AfterFork_Child requires.
        unsafe { ffi::PyOS_AfterFork_Child() };
        return Ok(Forked::Child { restore_mask: old_mask });
    }
    let err = io::Error::last_os_error();
    // SAFETY: in the parent, pairs the PyOS_BeforeFork above (also when fork failed, as os.fork does).
    unsafe { ffi::PyOS_AfterFork_Parent() };
    signals::restore_mask(&old_mask);
    if pid < 0 {
        Err(err)
    } else {
        Ok(Forked::Parent(pid))
    }
}

/// Number of OS threads of this process (field 20 of `/proc/self/stat`), as CPython checks before forking.
pub fn os_thread_count() -> Option<u64> {
    parse_stat_threads(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// Field 20 (`num_threads`) of a `/proc/<pid>/stat` line. The command name (field 2) may contain spaces and
/// parentheses, so fields are counted after its closing parenthesis (the last `)` of the line).
pub fn parse_stat_threads(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // after_comm starts at field 3 (state); field 20 is the 18th field from there.
    after_comm.split_whitespace().nth(17)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_threads_field() {
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 1234 0 0 0 10 5 0 0 20 0 7 0 99 1000 200";
        assert_eq!(parse_stat_threads(stat), Some(7));
        assert_eq!(parse_stat_threads("1 (x) S 1 2"), None);
        assert_eq!(parse_stat_threads("garbage"), None);
    }

    #[test]
    fn own_thread_count_is_readable() {
        assert!(os_thread_count().is_some_and(|n| n >= 1));
    }
}
