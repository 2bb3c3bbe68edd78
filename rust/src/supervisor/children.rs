//! The parent's record of each live child: pid, slot, log pipe, and what the parent already did to it.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Instant;

use super::logs::{LineBuffer, Logger};

/// Reads of 16 KiB per child per wake-up, at most.
const MAX_READS_PER_TICK: usize = 64;

/// Why the parent SIGKILLed a child: it then requeues the child's tasks without a delivery bump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kill {
    HardTimeout,
    ShutdownTimeout,
    FastStop,
}

pub struct Child {
    pub pid: libc::pid_t,
    pub slot: usize,
    pipe: Option<OwnedFd>,
    lines: LineBuffer,
    pub born: Instant,
    /// The task seq the child was last sent SIGQUIT for.
    pub soft_sent: Option<u64>,
    pub killed: Option<Kill>,
    /// Sent SIGTERM by the memory guard (finishes its task, then exits).
    pub recycling: bool,
    /// Sent SIGTERM by a graceful stop.
    pub stopping: bool,
}

/// How a child ended, from `waitpid`'s status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
    /// Reaped by someone else: status unknown.
    Lost,
}

impl Exit {
    pub fn from_status(status: libc::c_int) -> Self {
        if libc::WIFSIGNALED(status) {
            Self::Signal(libc::WTERMSIG(status))
        } else {
            Self::Code(libc::WEXITSTATUS(status))
        }
    }

    pub fn describe(self) -> String {
        match self {
            Self::Code(c) => format!("exited with code {c}"),
            Self::Signal(s) => format!("killed by signal {s}"),
            Self::Lost => "was reaped elsewhere (status unknown)".to_owned(),
        }
    }
}

impl Child {
    pub fn new(pid: libc::pid_t, slot: usize, pipe: OwnedFd) -> Self {
        Self {
            pid,
            slot,
            pipe: Some(pipe),
            lines: LineBuffer::default(),
            born: Instant::now(),
            soft_sent: None,
            killed: None,
            recycling: false,
            stopping: false,
        }
    }

    pub fn pid_u32(&self) -> u32 {
        self.pid as u32
    }

    pub fn pipe_fd(&self) -> Option<RawFd> {
        self.pipe.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// Send `sig`; a child that is already gone (not yet reaped) is not an error worth reporting.
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: `pid` is our own unreaped child, so the pid cannot have been reused by another process.
        unsafe { libc::kill(self.pid, sig) };
    }

    /// Relay whatever the child wrote: complete lines go to the log now, a partial line waits for its
    /// newline (or for `finish_logs`). Closes the pipe at EOF.
    pub fn relay_logs(&mut self, log: &mut Logger) {
        let Some(fd) = self.pipe_fd() else { return };
        let mut out = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        let mut eof = false;
        // NOTE: bounded, so a child that writes nonstop cannot starve the rest of the loop.
        for _ in 0..MAX_READS_PER_TICK {
            // SAFETY: reads into a live stack buffer from the non-blocking pipe this record owns.
            let n = unsafe { libc::read(fd, chunk.as_mut_ptr().cast(), chunk.len()) };
            match usize::try_from(n) {
                Ok(0) => eof = true,
                Ok(n) => self.lines.push(&chunk[..n], &mut out),
                Err(_) => match io::Error::last_os_error().kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock => break,
                    _ => eof = true,
                },
            }
            if eof {
                break;
            }
            // NOTE: write as we go so a chatty child cannot make us buffer without bound.
            if out.len() >= 64 * 1024 {
                log.write_raw(&out);
                out.clear();
            }
        }
        if eof {
            self.lines.finish(&mut out);
            self.pipe = None;
        }
        if !out.is_empty() {
            log.write_raw(&out);
        }
    }

    /// The child is gone: relay the rest of its output, including an unterminated last line.
    pub fn finish_logs(&mut self, log: &mut Logger) {
        self.relay_logs(log);
        let mut out = Vec::new();
        self.lines.finish(&mut out);
        if !out.is_empty() {
            log.write_raw(&out);
        }
        self.pipe = None;
    }
}

/// A child's log pipe: the parent's read end non-blocking, both ends close-on-exec (the child's `dup2`
/// onto fds 1 and 2 clears the flag there). The write end stays blocking: a full pipe slows a chatty
/// child down instead of failing its writes.
pub fn log_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded: both fds are open and owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: F_GETFL/F_SETFL on a descriptor we own.
    let rc = unsafe {
        let flags = libc::fcntl(read.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(read.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK)
    };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok((read, write))
}

/// `waitpid(pid, WNOHANG)`: Some(exit) once the child is gone, None while it runs.
pub fn try_reap(pid: libc::pid_t) -> Option<Exit> {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: waits only for our own child `pid`; `status` is a live int.
        let rc = unsafe { libc::waitpid(pid, &raw mut status, libc::WNOHANG) };
        if rc == pid {
            return Some(Exit::from_status(status));
        }
        if rc == 0 {
            return None;
        }
        match io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR) => {}
            // NOTE: ECHILD: someone else (app code calling os.wait) reaped it; it is gone all the same.
            _ => return Some(Exit::Lost),
        }
    }
}
