//! The supervisor's shared memory (slot table, counter regions): an anonymous `MAP_SHARED` mapping made before
//! fork (fork mode), or, in spawn mode, a `memfd` so a child that was exec'd (not forked) can map the same pages
//! from an inherited fd.

use std::ffi::c_void;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;

/// A new, empty, close-on-exec memory file (the spawner clears close-on-exec for its children only).
#[cfg(target_os = "linux")]
pub fn memfd(name: &std::ffi::CStr) -> io::Result<OwnedFd> {
    // SAFETY: `name` is a valid C string; memfd_create only creates a new fd.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: memfd_create returned a new fd that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(not(target_os = "linux"))]
pub fn memfd(_name: &std::ffi::CStr) -> io::Result<OwnedFd> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "start_method='spawn' needs Linux (memfd_create)",
    ))
}

/// Map `bytes` of the memory file `fd`, shared. `create` (the parent): size the file first (zero-filled).
/// Otherwise (a spawned child) the file must have exactly that size: a child whose app computed another
/// table layout than its parent's must not write past, or into the wrong, counters.
pub fn map(fd: RawFd, bytes: usize, create: bool) -> io::Result<NonNull<c_void>> {
    let len = libc::off_t::try_from(bytes).map_err(|_| io::Error::other("shared memory too large"))?;
    if create {
        // SAFETY: ftruncate on a descriptor we own; a fresh memfd reads as zeros up to `len`.
        if unsafe { libc::ftruncate(fd, len) } != 0 {
            return Err(io::Error::last_os_error());
        }
    } else {
        // SAFETY: an all-zero stat is a valid value for fstat to overwrite.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstat writes into the live `st`.
        if unsafe { libc::fstat(fd, &raw mut st) } != 0 {
            return Err(io::Error::last_os_error());
        }
        if st.st_size != len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "shared memory fd {fd} has {} bytes, this app needs {bytes} (the spawned child's app has \
                     other queues or tasks than its parent's)",
                    st.st_size
                ),
            ));
        }
    }
    mmap_shared(bytes, libc::MAP_SHARED, fd)
}

/// An anonymous shared mapping of `bytes` (> 0), inherited by forked children. Page-aligned and zero-filled.
pub fn map_anonymous(bytes: usize) -> io::Result<NonNull<c_void>> {
    mmap_shared(bytes, libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1)
}

fn mmap_shared(bytes: usize, flags: libc::c_int, fd: RawFd) -> io::Result<NonNull<c_void>> {
    // SAFETY: a new shared mapping of `bytes` (> 0) bytes, anonymous (fd -1) or of a file of at least that size
    // (`map` checked or set its size); no existing memory is touched.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            fd,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(ptr).ok_or_else(|| io::Error::other("mmap returned null"))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;
    use crate::supervisor::slots::{Slot, SlotState, SlotTable};

    #[test]
    fn a_second_mapping_sees_the_first_and_a_wrong_size_is_refused() {
        let fd = memfd(c"wakaq-test").expect("memfd");
        let parent = SlotTable::in_memfd(2, fd.as_raw_fd(), true).expect("parent map");
        let child = SlotTable::in_memfd(2, fd.as_raw_fd(), false).expect("child map");
        child.get(1).expect("slot 1").task_started(42, 0, 0);
        assert_eq!(
            parent.get(1).and_then(Slot::read).and_then(|s: SlotState| s.running()),
            Some(42)
        );
        let err = SlotTable::in_memfd(3, fd.as_raw_fd(), false)
            .err()
            .expect("size mismatch refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
