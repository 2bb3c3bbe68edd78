//! Parent signals through a self-pipe: our `sigaction` handler writes the signal number as one byte into a
//! non-blocking pipe whose read end sits in the parent's `poll` set. The handler does nothing else, so it is
//! async-signal-safe.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

use libc::c_int;

/// The signals the parent handles: each asks for a stop (a second one for a fast stop).
pub const HANDLED: [c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGQUIT];

/// Write end of the self-pipe, read by the handler; -1 when no supervisor is running.
static WRITE_FD: AtomicI32 = AtomicI32::new(-1);

#[cfg(target_os = "linux")]
fn errno_ptr() -> *mut c_int {
    // SAFETY: returns this thread's errno location; always valid.
    unsafe { libc::__errno_location() }
}

#[cfg(not(target_os = "linux"))]
fn errno_ptr() -> *mut c_int {
    // SAFETY: returns this thread's errno location; always valid.
    unsafe { libc::__error() }
}

extern "C" fn on_signal(sig: c_int) {
    // NOTE: only async-signal-safe calls here: an atomic load and write(2). errno is saved and restored so
    // the interrupted code never sees it change.
    let errno = errno_ptr();
    // SAFETY: errno_ptr() points at this thread's errno.
    let saved = unsafe { *errno };
    let fd = WRITE_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = sig as u8;
        // SAFETY: writes one byte from a live stack variable; a full pipe just drops the byte (O_NONBLOCK),
        // which is fine because the pending bytes already wake the parent.
        unsafe { libc::write(fd, (&raw const byte).cast(), 1) };
    }
    // SAFETY: as above.
    unsafe { *errno = saved };
}

fn check(rc: c_int) -> io::Result<()> {
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Owns the self-pipe and our handlers; restores the previous dispositions on drop.
pub struct SignalPipe {
    read: OwnedFd,
    write: OwnedFd,
    previous: Vec<(c_int, libc::sigaction)>,
}

impl SignalPipe {
    pub fn install() -> io::Result<Self> {
        let (read, write) = nonblocking_pipe()?;
        if WRITE_FD
            .compare_exchange(-1, write.as_raw_fd(), Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(io::Error::other(
                "a wakaq supervisor is already running in this process",
            ));
        }
        let mut pipe = Self {
            read,
            write,
            previous: Vec::new(),
        };
        for sig in HANDLED {
            let old = set_disposition(sig, on_signal as *const () as libc::sighandler_t)?;
            pipe.previous.push((sig, old));
        }
        Ok(pipe)
    }

    pub fn read_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// Both ends (a child closes them).
    pub fn fds(&self) -> [RawFd; 2] {
        [self.read.as_raw_fd(), self.write.as_raw_fd()]
    }

    /// Signals received since the last call, in arrival order.
    pub fn drain(&self) -> Vec<c_int> {
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: reads into a live stack buffer of the given length from our own non-blocking fd.
            let n = unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if let Ok(n @ 1..) = usize::try_from(n) {
                got.extend(buf[..n].iter().map(|&b| c_int::from(b)));
            } else if n == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                break;
            }
        }
        got
    }
}

impl Drop for SignalPipe {
    fn drop(&mut self) {
        for (sig, old) in self.previous.drain(..) {
            // SAFETY: reinstalls the exact sigaction struct the kernel gave us when we installed ours.
            unsafe { libc::sigaction(sig, &raw const old, std::ptr::null_mut()) };
        }
        WRITE_FD.store(-1, Ordering::Release);
    }
}

/// Install `handler` for `sig` (SA_RESTART, nothing masked extra); returns the previous action.
fn set_disposition(sig: c_int, handler: libc::sighandler_t) -> io::Result<libc::sigaction> {
    // SAFETY: an all-zero sigaction is a valid value (no flags, empty mask) before we fill it in.
    let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
    new.sa_sigaction = handler;
    new.sa_flags = libc::SA_RESTART;
    // SAFETY: as above, zeroed is valid; the kernel overwrites it.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to live structs; `sig` is a catchable signal.
    check(unsafe { libc::sigemptyset(&raw mut new.sa_mask) })?;
    // SAFETY: as above.
    check(unsafe { libc::sigaction(sig, &raw const new, &raw mut old) })?;
    Ok(old)
}

fn handled_set() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set before sigaddset uses it; the signals are valid numbers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut set);
        for sig in HANDLED {
            libc::sigaddset(&raw mut set, sig);
        }
        set
    }
}

/// Block the handled signals (around fork, so neither side runs a handler mid-fork); returns the old mask.
pub fn block_handled() -> io::Result<libc::sigset_t> {
    let set = handled_set();
    // SAFETY: as in handled_set; `old` is written by pthread_sigmask before it is read.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to live sigsets.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &raw const set, &raw mut old) };
    if rc == 0 {
        Ok(old)
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// Put back the mask returned by `block_handled`.
pub fn restore_mask(old: &libc::sigset_t) {
    // SAFETY: `old` is a mask the kernel gave us.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, old, std::ptr::null_mut()) };
}

/// Child, right after fork with the handled signals still blocked: SIGINT ignored (a terminal's Ctrl-C goes
/// to the parent, which decides), the others back to their defaults, and no pipe to the parent.
pub fn reset_in_child() {
    WRITE_FD.store(-1, Ordering::Relaxed);
    for sig in HANDLED {
        let disposition = if sig == libc::SIGINT {
            libc::SIG_IGN
        } else {
            libc::SIG_DFL
        };
        // NOTE: cannot fail for these catchable signals; a failure would only leave our handler, which does
        // nothing now that WRITE_FD is -1.
        let _ = set_disposition(sig, disposition);
    }
}

/// A pipe with both ends non-blocking and close-on-exec.
pub fn nonblocking_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_pipe_receives_signal_and_restores() {
        let pipe = SignalPipe::install().expect("install");
        assert!(SignalPipe::install().is_err(), "second supervisor refused");
        // SAFETY: raising SIGQUIT runs our handler (installed above), which only writes to the pipe.
        unsafe { libc::raise(libc::SIGQUIT) };
        assert_eq!(pipe.drain(), vec![libc::SIGQUIT]);
        assert!(pipe.drain().is_empty());
        drop(pipe);
        assert_eq!(WRITE_FD.load(Ordering::Acquire), -1);
    }
}
