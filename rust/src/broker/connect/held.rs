//! Signals held off a producer's Redis call. Python installs its handlers without `SA_RESTART`, so a signal that
//! arrives while a call waits for its reply makes the socket read fail with EINTR. redis-py retries such a read
//! (PEP 475); redis-rs returns the error, and a push cannot be sent again after it (it may have run). So the
//! calling thread blocks the asynchronous signals for the length of the call: one that arrives meanwhile stays
//! pending, and its handler runs as soon as the call returns (Python then runs the Python-level handler, and an
//! exception it raises reaches the caller right after the push it interrupted).
//!
//! Signals the CPU raises for this thread (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS) and SIGABRT are never
//! blocked: a blocked fault signal kills the process without its handler (faulthandler's traceback).

use std::marker::PhantomData;
use std::sync::OnceLock;

/// The signal mask of this thread before `hold`; restored on drop.
pub struct Held {
    previous: libc::sigset_t,
    // NOTE: a raw pointer makes the guard !Send: the mask belongs to the thread that set it.
    _thread: PhantomData<*const ()>,
}

fn asynchronous() -> &'static libc::sigset_t {
    static SET: OnceLock<libc::sigset_t> = OnceLock::new();
    SET.get_or_init(|| {
        // SAFETY: sigset_t is plain data; sigfillset/sigdelset initialise and edit the value they are given.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&raw mut set);
            for sig in [
                libc::SIGSEGV,
                libc::SIGBUS,
                libc::SIGFPE,
                libc::SIGILL,
                libc::SIGTRAP,
                libc::SIGSYS,
                libc::SIGABRT,
            ] {
                libc::sigdelset(&raw mut set, sig);
            }
            set
        }
    })
}

/// Block the asynchronous signals in this thread until the returned guard drops.
pub fn hold() -> Held {
    // SAFETY: both pointers refer to live sigset_t values; pthread_sigmask only fails on an invalid `how`.
    unsafe {
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, asynchronous(), &raw mut previous);
        Held {
            previous,
            _thread: PhantomData,
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved by `hold` on this same thread (the guard is not Send).
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &raw const self.previous, std::ptr::null_mut());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(sig: libc::c_int) -> bool {
        // SAFETY: reads this thread's mask into a live value.
        unsafe {
            let mut now: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &raw mut now);
            libc::sigismember(&raw const now, sig) == 1
        }
    }

    #[test]
    fn holds_asynchronous_signals_only_while_the_guard_lives() {
        assert!(!blocked(libc::SIGALRM));
        {
            let _held = hold();
            assert!(blocked(libc::SIGALRM) && blocked(libc::SIGINT) && blocked(libc::SIGTERM));
            assert!(!blocked(libc::SIGSEGV) && !blocked(libc::SIGABRT));
        }
        assert!(!blocked(libc::SIGALRM));
    }
}
