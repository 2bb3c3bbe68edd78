//! Shared-memory child slots: one anonymous `MAP_SHARED` mapping made before the first fork, two cache lines
//! per child index. The child writes its running task into its own slot (atomics only: no syscall, no
//! allocation, no lock); the parent's watchdog reads every slot each tick.
//!
//! Each slot is a tiny seqlock: the child (the only writer) makes `version` odd, writes the fields, makes it
//! even again; the parent retries a read that saw an odd or changed version, so it never acts on a torn
//! mix of two tasks.
//!
//! The second cache line is a mailbox the other way: the parent posts seqs of tasks an admin asked to cancel
//! (`post_cancel`, then SIGUSR2), the child takes them in its signal handler (`take_cancels`). Each entry is one
//! atomic (0 = empty) written by compare-and-swap, so no seqlock is needed there.

use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicPtr, AtomicU64, Ordering};

use super::clock::monotonic_ns;

/// Cancel requests a slot holds until the child takes them; more at once are refused (logged by the parent).
pub const MAILBOX: usize = 8;

/// One child's state. 8 x u64 = 64 bytes = one cache line, then the mailbox line, so children never share a line.
#[repr(C, align(64))]
#[derive(Default)]
pub struct Slot {
    version: AtomicU64,
    sync_seq: AtomicU64,
    sync_started: AtomicU64,
    soft_deadline: AtomicU64,
    hard_deadline: AtomicU64,
    async_seq: AtomicU64,
    async_hard_deadline: AtomicU64,
    tasks_done: AtomicU64,
    /// Parent -> child: seqs to cancel (0 = empty entry).
    cancels: [AtomicU64; MAILBOX],
}

/// A consistent copy of a slot. Times are `CLOCK_MONOTONIC` ns; 0 means none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlotState {
    pub sync_seq: u64,
    pub sync_started: u64,
    pub soft_deadline: u64,
    pub hard_deadline: u64,
    pub async_seq: u64,
    pub async_hard_deadline: u64,
    pub tasks_done: u64,
}

impl SlotState {
    /// The sync task running now, if any.
    pub const fn running(&self) -> Option<u64> {
        if self.sync_seq == 0 {
            None
        } else {
            Some(self.sync_seq)
        }
    }

    /// Whether the watchdog has a deadline to watch in this slot.
    pub const fn has_deadline(&self) -> bool {
        (self.sync_seq != 0 && (self.soft_deadline != 0 || self.hard_deadline != 0)) || self.async_hard_deadline != 0
    }
}

/// A deadline `timeout_ns` after `now`, or 0 (none) for a zero timeout.
pub const fn deadline_after(now: u64, timeout_ns: u64) -> u64 {
    if timeout_ns == 0 {
        0
    } else {
        now.saturating_add(timeout_ns)
    }
}

impl Slot {
    /// Child side: the single writer. `f` stores fields with Relaxed; the version fences publish them.
    fn write(&self, f: impl FnOnce(&Self)) {
        let v = self.version.load(Ordering::Relaxed);
        self.version.store(v.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        f(self);
        self.version.store(v.wrapping_add(2), Ordering::Release);
    }

    pub fn task_started(&self, seq: u64, soft_ns: u64, hard_ns: u64) {
        self.task_started_at(monotonic_ns(), seq, soft_ns, hard_ns);
    }

    /// `task_started` with the clock already read (the task counters use the same start).
    pub fn task_started_at(&self, now: u64, seq: u64, soft_ns: u64, hard_ns: u64) {
        self.write(|s| {
            s.sync_seq.store(seq, Ordering::Relaxed);
            s.sync_started.store(now, Ordering::Relaxed);
            s.soft_deadline.store(deadline_after(now, soft_ns), Ordering::Relaxed);
            s.hard_deadline.store(deadline_after(now, hard_ns), Ordering::Relaxed);
        });
    }

    /// The child works on task `seq` before (or without) running it as a sync task: decoding it, writing its
    /// "running" record, starting it as an async task. A child that dies now dies on that task: its parent counts
    /// the delivery, so a payload that kills every child that takes it is dead-listed, not retried forever. 0: done.
    pub fn task_handling(&self, seq: u64) {
        self.write(|s| {
            s.sync_seq.store(seq, Ordering::Relaxed);
            s.soft_deadline.store(0, Ordering::Relaxed);
            s.hard_deadline.store(0, Ordering::Relaxed);
        });
    }

    pub fn task_finished(&self) {
        self.write(|s| {
            s.sync_seq.store(0, Ordering::Relaxed);
            s.soft_deadline.store(0, Ordering::Relaxed);
            s.hard_deadline.store(0, Ordering::Relaxed);
            s.tasks_done.fetch_add(1, Ordering::Relaxed);
        });
    }

    /// An async task ended (with or without success): counted in `tasks_done` as a finished sync task is.
    pub fn async_finished(&self) {
        self.write(|s| {
            s.tasks_done.fetch_add(1, Ordering::Relaxed);
        });
    }

    pub fn async_deadline(&self, seq: u64, hard_deadline_ns: u64) {
        self.write(|s| {
            s.async_seq
                .store(if hard_deadline_ns == 0 { 0 } else { seq }, Ordering::Relaxed);
            s.async_hard_deadline.store(hard_deadline_ns, Ordering::Relaxed);
        });
    }

    fn load_fields(&self) -> SlotState {
        SlotState {
            sync_seq: self.sync_seq.load(Ordering::Relaxed),
            sync_started: self.sync_started.load(Ordering::Relaxed),
            soft_deadline: self.soft_deadline.load(Ordering::Relaxed),
            hard_deadline: self.hard_deadline.load(Ordering::Relaxed),
            async_seq: self.async_seq.load(Ordering::Relaxed),
            async_hard_deadline: self.async_hard_deadline.load(Ordering::Relaxed),
            tasks_done: self.tasks_done.load(Ordering::Relaxed),
        }
    }

    /// Parent side: a consistent snapshot, or `None` if the child kept writing during every attempt.
    pub fn read(&self) -> Option<SlotState> {
        for _ in 0..64 {
            let before = self.version.load(Ordering::Acquire);
            if before % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let state = self.load_fields();
            fence(Ordering::Acquire);
            if self.version.load(Ordering::Relaxed) == before {
                return Some(state);
            }
        }
        None
    }

    /// Parent side, for a dead child: whatever is there (a child killed mid-write left an odd version).
    pub fn read_final(&self) -> SlotState {
        self.read().unwrap_or_else(|| self.load_fields())
    }

    /// Parent side: ask the child to cancel task `seq` (the caller then sends SIGUSR2). False when the mailbox is
    /// full (the child has not taken earlier requests yet) or `seq` is 0.
    pub fn post_cancel(&self, seq: u64) -> bool {
        seq != 0
            && self.cancels.iter().any(|entry| {
                entry
                    .compare_exchange(0, seq, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            })
    }

    /// Child side (its SIGUSR2 handler): every posted seq, emptying the mailbox. Lock-free, so a request posted
    /// meanwhile is either taken now or left for the next signal.
    pub fn take_cancels(&self) -> Vec<u64> {
        self.cancels
            .iter()
            .map(|entry| entry.swap(0, Ordering::AcqRel))
            .filter(|&seq| seq != 0)
            .collect()
    }

    /// Parent side, before forking a new child into this slot (nobody else writes it then).
    pub fn clear(&self) {
        for field in [
            &self.version,
            &self.sync_seq,
            &self.sync_started,
            &self.soft_deadline,
            &self.hard_deadline,
            &self.async_seq,
            &self.async_hard_deadline,
            &self.tasks_done,
        ] {
            field.store(0, Ordering::Relaxed);
        }
        for entry in &self.cancels {
            entry.store(0, Ordering::Relaxed);
        }
        fence(Ordering::Release);
    }
}

/// The mapping with `len` slots. Unmapped on drop (in the parent, after every child is gone; a child
/// never drops it: it leaves with `_exit`).
pub struct SlotTable {
    base: NonNull<Slot>,
    len: usize,
}

impl SlotTable {
    pub fn new(len: usize) -> std::io::Result<Self> {
        // NOTE: mmap returns page-aligned, zero-filled memory: every Slot is 64-aligned and all-zero is a
        // valid Slot (atomics of 0), so no initialisation is needed.
        let ptr = super::shm::map_anonymous(Self::bytes(len))?;
        Ok(Self { base: ptr.cast(), len })
    }

    /// Spawn mode: the table in the memory file `fd` (shm.rs), sized by the parent (`create`), mapped as it is
    /// by a spawned child. Page-aligned and zero-filled like `new`.
    pub fn in_memfd(len: usize, fd: std::os::fd::RawFd, create: bool) -> std::io::Result<Self> {
        let ptr = super::shm::map(fd, Self::bytes(len), create)?;
        Ok(Self { base: ptr.cast(), len })
    }

    const fn bytes(len: usize) -> usize {
        let n = if len == 0 { 1 } else { len };
        n * std::mem::size_of::<Slot>()
    }

    pub fn get(&self, index: usize) -> Option<&Slot> {
        // SAFETY: `index < len` keeps the pointer inside the mapping, which lives as long as `self`.
        (index < self.len).then(|| unsafe { &*self.base.as_ptr().add(index) })
    }

    /// Child side: make `index` the slot that `task_started` & co. write to. The mapping is never unmapped
    /// in a child, so the pointer stays valid until `_exit`.
    pub fn make_current(&self, index: usize) {
        if let Some(slot) = self.get(index) {
            CURRENT.store(std::ptr::from_ref(slot).cast_mut(), Ordering::Release);
        }
    }
}

impl Drop for SlotTable {
    fn drop(&mut self) {
        CURRENT.store(std::ptr::null_mut(), Ordering::Release);
        // SAFETY: unmaps exactly the mapping created in `new`; no `&Slot` outlives `self` (borrow rules).
        unsafe { libc::munmap(self.base.as_ptr().cast(), Self::bytes(self.len)) };
    }
}

/// The current child's slot (null in the parent and in processes not started by `run_worker`).
static CURRENT: AtomicPtr<Slot> = AtomicPtr::new(std::ptr::null_mut());

/// Run `f` on the current child's slot; a no-op outside a supervised child (e.g. burst mode, tests).
pub fn with_current(f: impl FnOnce(&Slot)) {
    let ptr = CURRENT.load(Ordering::Acquire);
    // SAFETY: CURRENT is only ever set to a slot inside a live SlotTable mapping (make_current) and reset to
    // null before that mapping is unmapped (Drop).
    if let Some(slot) = unsafe { ptr.as_ref() } {
        f(slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_is_two_cache_lines() {
        assert_eq!(std::mem::size_of::<Slot>(), 128);
        assert_eq!(std::mem::align_of::<Slot>(), 64);
    }

    #[test]
    fn cancel_mailbox() {
        let t = SlotTable::new(1).expect("mmap");
        let s = t.get(0).expect("slot");
        assert!(s.take_cancels().is_empty());
        assert!(!s.post_cancel(0));
        for seq in 1..=MAILBOX as u64 {
            assert!(s.post_cancel(seq));
        }
        assert!(!s.post_cancel(99), "full");
        assert_eq!(s.take_cancels(), (1..=MAILBOX as u64).collect::<Vec<_>>());
        assert!(s.post_cancel(5));
        s.clear();
        assert!(s.take_cancels().is_empty());
    }

    #[test]
    fn table_slots_are_distinct_lines() {
        let t = SlotTable::new(3).expect("mmap");
        let a = std::ptr::from_ref(t.get(0).expect("slot 0")) as usize;
        let c = std::ptr::from_ref(t.get(2).expect("slot 2")) as usize;
        assert_eq!(c - a, 256);
        assert_eq!(a % 64, 0);
        assert!(t.get(3).is_none());
    }

    #[test]
    fn started_finished_roundtrip() {
        let t = SlotTable::new(1).expect("mmap");
        let s = t.get(0).expect("slot");
        assert_eq!(s.read(), Some(SlotState::default()));
        s.task_started(7, 300_000_000, 0);
        let st = s.read().expect("consistent");
        assert_eq!(st.running(), Some(7));
        assert_eq!(st.soft_deadline - st.sync_started, 300_000_000);
        assert_eq!(st.hard_deadline, 0);
        assert!(st.has_deadline());
        s.task_finished();
        let st = s.read().expect("consistent");
        assert_eq!((st.running(), st.tasks_done, st.has_deadline()), (None, 1, false));
        s.async_deadline(9, 123);
        assert_eq!(
            s.read().map(|st| (st.async_seq, st.async_hard_deadline)),
            Some((9, 123))
        );
        s.async_deadline(9, 0);
        assert_eq!(s.read().map(|st| st.async_seq), Some(0));
        s.async_finished();
        assert_eq!(
            s.read().map(|st| st.tasks_done),
            Some(2),
            "async tasks count as finished too"
        );
        s.clear();
        assert_eq!(s.read(), Some(SlotState::default()));
    }

    #[test]
    fn torn_write_is_not_read_as_consistent() {
        let t = SlotTable::new(1).expect("mmap");
        let s = t.get(0).expect("slot");
        s.version.store(1, Ordering::Relaxed);
        s.sync_seq.store(5, Ordering::Relaxed);
        assert_eq!(s.read(), None);
        assert_eq!(s.read_final().sync_seq, 5);
    }

    #[test]
    fn deadline_zero_means_none() {
        assert_eq!(deadline_after(10, 0), 0);
        assert_eq!(deadline_after(10, 5), 15);
        assert_eq!(deadline_after(u64::MAX, 5), u64::MAX);
    }
}
