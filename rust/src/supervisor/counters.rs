//! Per-child task counters in shared memory: one region per child index in an anonymous `MAP_SHARED` mapping
//! made before the first fork, next to the slots. A child counts each task with a few plain atomic stores into
//! its own region (no syscall, no Redis, no lock); the parent sums the regions of its live children with the
//! totals of the children that already exited, and publishes them with its heartbeat.
//!
//! A region is a header (the running sync task's cell and start time) and one cell per (queue, task name) pair,
//! laid out from names both sides know before the fork (`Layout`), so no name ever crosses the mapping. Each cell
//! is `FIELDS` monotonic `u64`s with a single writer: the parent reads each one atomically and never sees a value
//! go down; fields of one cell may be a task apart from each other, which the next heartbeat settles.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::clock::monotonic_ns;

pub const STARTED: usize = 0;
pub const DONE: usize = 1;
pub const RETRIED: usize = 2;
pub const EXCEPTION: usize = 3;
pub const HARD_TIMEOUT: usize = 4;
pub const DEAD: usize = 5;
pub const UNDECODABLE: usize = 6;
/// Sum of run times in microseconds.
pub const RUNTIME_US: usize = 7;
/// First histogram bucket; `BUCKETS_NS.len() + 1` buckets follow (the last one is +Inf).
pub const BUCKET0: usize = 8;
/// Tasks an admin cancelled while they ran (python/wakaq/cancel.py); after the buckets, so their indexes stay put.
pub const CANCELLED: usize = BUCKET0 + BUCKETS_NS.len() + 1;
/// u64s per cell (29 used, padded to 256 bytes).
pub const FIELDS: usize = 32;
const _: () = assert!(CANCELLED < FIELDS);
const HEADER: usize = 8;

/// Upper bounds of the run-time buckets in ns: 1-2.5-5 per decade from 100 us to 100 s (constants.py has the
/// same list in seconds, `RUNTIME_BUCKETS`).
pub const BUCKETS_NS: [u64; 19] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    25_000_000_000,
    50_000_000_000,
    100_000_000_000,
];

/// Names of the published fields, by index (`rt<i>` = bucket i, not cumulative).
pub fn field_name(i: usize) -> Option<String> {
    const SCALARS: [&str; 8] = [
        "started",
        "done",
        "retried",
        "exception",
        "hard_timeout",
        "dead",
        "undecodable",
        "rt_us",
    ];
    match i {
        _ if i < BUCKET0 => Some(SCALARS[i].to_owned()),
        _ if i <= BUCKET0 + BUCKETS_NS.len() => Some(format!("rt{}", i - BUCKET0)),
        CANCELLED => Some("cancelled".to_owned()),
        _ => None,
    }
}

/// The bucket index of a run time.
pub fn bucket_of(ns: u64) -> usize {
    BUCKETS_NS.partition_point(|&le| le < ns)
}

/// The task name of counts that have no registered task: undecodable payloads and unknown task names.
pub const UNKNOWN_TASK: &str = "?";

/// Which (queue, task) pair each cell counts: queues x (tasks + `UNKNOWN_TASK`), row-major.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    pub queues: Vec<String>,
    pub tasks: Vec<String>,
}

impl Layout {
    pub fn new(queues: Vec<String>, mut tasks: Vec<String>) -> Self {
        tasks.push(UNKNOWN_TASK.to_owned());
        Self { queues, tasks }
    }

    pub fn cells(&self) -> usize {
        self.queues.len() * self.tasks.len()
    }

    /// The cell of `task` from `queue`; an unknown task name counts in the queue's `UNKNOWN_TASK` cell, an
    /// unknown queue in cell 0 (never happens: children claim only from these queues).
    pub fn cell(&self, queue: &str, task: Option<&str>) -> usize {
        let Some(q) = self.queues.iter().position(|n| n == queue) else {
            return 0;
        };
        let last = self.tasks.len() - 1;
        let t = task
            .and_then(|t| self.tasks[..last].iter().position(|n| n == t))
            .unwrap_or(last);
        q * self.tasks.len() + t
    }

    /// (queue, task) of a cell.
    pub fn names(&self, cell: usize) -> Option<(&str, &str)> {
        let width = self.tasks.len();
        let q = self.queues.get(cell / width.max(1))?;
        Some((q.as_str(), self.tasks.get(cell % width.max(1))?.as_str()))
    }
}

/// One child's region, as the parent sees it.
pub struct Region<'a> {
    header: &'a [AtomicU64],
    cells: &'a [AtomicU64],
}

impl Region<'_> {
    /// The cell of the sync task running now, if any.
    pub fn current_cell(&self) -> Option<usize> {
        match self.header[0].load(Ordering::Acquire) {
            0 => None,
            n => usize::try_from(n - 1).ok(),
        }
    }

    /// The cell of the async task whose hard deadline the watchdog watches, if any.
    pub fn async_deadline_cell(&self) -> Option<usize> {
        match self.header[2].load(Ordering::Acquire) {
            0 => None,
            n => usize::try_from(n - 1).ok(),
        }
    }

    /// Add every counter into `totals` (`cells * FIELDS` long).
    pub fn add_into(&self, totals: &mut [u64]) {
        for (t, c) in totals.iter_mut().zip(self.cells) {
            *t = t.wrapping_add(c.load(Ordering::Relaxed));
        }
    }

    /// Before a new child is forked into this region (nobody writes it then).
    pub fn clear(&self) {
        for c in self.header.iter().chain(self.cells) {
            c.store(0, Ordering::Relaxed);
        }
    }
}

/// The mapping: `children` regions of `HEADER + cells * FIELDS` u64s. Unmapped on drop (a child never drops
/// it: it leaves with `_exit`).
pub struct CounterTable {
    base: NonNull<AtomicU64>,
    children: usize,
    words: usize,
    pub layout: Layout,
}

impl CounterTable {
    pub fn new(children: usize, layout: Layout) -> std::io::Result<Self> {
        let words = HEADER + layout.cells() * FIELDS;
        let bytes = children.max(1) * words * 8;
        // NOTE: zero-filled and page-aligned: all-zero AtomicU64s, 8-aligned. Untouched pages cost no memory.
        let base: NonNull<AtomicU64> = super::shm::map_anonymous(bytes)?.cast();
        *LAYOUT.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(layout.clone());
        Ok(Self {
            base,
            children,
            words,
            layout,
        })
    }

    /// Spawn mode: the table in the memory file `fd` (shm.rs), sized by the parent (`create`), mapped as it is
    /// by a spawned child, whose size check catches an app that computed another layout.
    pub fn in_memfd(children: usize, layout: Layout, fd: std::os::fd::RawFd, create: bool) -> std::io::Result<Self> {
        let words = HEADER + layout.cells() * FIELDS;
        let base = super::shm::map(fd, children.max(1) * words * 8, create)?.cast::<AtomicU64>();
        *LAYOUT.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(layout.clone());
        Ok(Self {
            base,
            children,
            words,
            layout,
        })
    }

    fn words_of(&self, index: usize) -> Option<&[AtomicU64]> {
        // SAFETY: `index < children` keeps the slice inside the mapping, which lives as long as `self`.
        (index < self.children)
            .then(|| unsafe { std::slice::from_raw_parts(self.base.as_ptr().add(index * self.words), self.words) })
    }

    pub fn region(&self, index: usize) -> Option<Region<'_>> {
        self.words_of(index).map(|w| {
            let (header, cells) = w.split_at(HEADER);
            Region { header, cells }
        })
    }

    /// Child side: make `index` the region the counting functions below write to.
    pub fn make_current(&self, index: usize) {
        if let Some(w) = self.words_of(index) {
            CURRENT.store(w.as_ptr().cast_mut(), Ordering::Release);
            CURRENT_CELLS.store(self.layout.cells(), Ordering::Release);
        }
    }

    pub fn totals_len(&self) -> usize {
        self.layout.cells() * FIELDS
    }
}

impl Drop for CounterTable {
    fn drop(&mut self) {
        CURRENT.store(std::ptr::null_mut(), Ordering::Release);
        CURRENT_CELLS.store(0, Ordering::Release);
        // SAFETY: unmaps exactly the mapping made in `new`; no `Region` outlives `self` (borrow rules).
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.children.max(1) * self.words * 8) };
    }
}

/// The layout of the daemon this process belongs to (set by the parent before forking, inherited by children).
static LAYOUT: Mutex<Option<Layout>> = Mutex::new(None);
/// The current child's region (null in the parent and outside a supervised child: counting is a no-op).
static CURRENT: AtomicPtr<AtomicU64> = AtomicPtr::new(std::ptr::null_mut());
static CURRENT_CELLS: AtomicUsize = AtomicUsize::new(0);

/// Child side: the cell for (queue, task); 0 outside a supervised child (where counting does nothing).
pub fn cell_for(queue: &str, task: Option<&str>) -> usize {
    let layout = LAYOUT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    layout.as_ref().map_or(0, |l| l.cell(queue, task))
}

/// Run `f` on the header and the fields of `cell` in the current child's region; a no-op elsewhere.
fn with_cell(cell: usize, f: impl FnOnce(&[AtomicU64], &[AtomicU64])) {
    let ptr = CURRENT.load(Ordering::Acquire);
    if ptr.is_null() || cell >= CURRENT_CELLS.load(Ordering::Acquire) {
        return;
    }
    // SAFETY: CURRENT points at a live region of HEADER + CURRENT_CELLS * FIELDS words (make_current) until the
    // mapping is dropped, which resets it first; `cell` was checked against the cell count.
    let (header, fields) = unsafe {
        (
            std::slice::from_raw_parts(ptr, HEADER),
            std::slice::from_raw_parts(ptr.add(HEADER + cell * FIELDS), FIELDS),
        )
    };
    f(header, fields);
}

/// Single writer: a load and a store, no locked read-modify-write.
fn bump(field: &AtomicU64, by: u64) {
    field.store(field.load(Ordering::Relaxed).wrapping_add(by), Ordering::Relaxed);
}

/// Child: count one event (`STARTED`, `RETRIED`, `EXCEPTION`, `UNDECODABLE`...) for `cell`.
pub fn count(cell: usize, what: usize) {
    with_cell(cell, |_, f| {
        if let Some(field) = f.get(what) {
            bump(field, 1);
        }
    });
}

/// Child: a task of `cell` ran `ns` nanoseconds; `done` when it raised nothing.
pub fn observe(cell: usize, ns: u64, done: bool) {
    with_cell(cell, |_, f| {
        if done {
            bump(&f[DONE], 1);
        }
        bump(&f[RUNTIME_US], ns / 1000);
        bump(&f[BUCKET0 + bucket_of(ns)], 1);
    });
}

/// Child: a sync task of `cell` started at `now` (monotonic ns; the parent reads which one runs from the header).
pub fn sync_started(cell: usize, now: u64) {
    with_cell(cell, |h, f| {
        bump(&f[STARTED], 1);
        h[1].store(now, Ordering::Relaxed);
        h[0].store(cell as u64 + 1, Ordering::Release);
    });
}

/// Child: the cell of the async task with the earliest hard deadline (None: no such task).
pub fn async_deadline_cell(cell: Option<usize>) {
    let ptr = CURRENT.load(Ordering::Acquire);
    if ptr.is_null() {
        return;
    }
    // SAFETY: as in `with_cell`: the header's words are inside the live region.
    let header = unsafe { std::slice::from_raw_parts(ptr, HEADER) };
    header[2].store(cell.map_or(0, |c| c as u64 + 1), Ordering::Release);
}

/// Child: the running sync task ended (`done`: without an exception).
pub fn sync_finished(done: bool) {
    let ptr = CURRENT.load(Ordering::Acquire);
    if ptr.is_null() {
        return;
    }
    // SAFETY: as in `with_cell`: the header's words are inside the live region.
    let header = unsafe { std::slice::from_raw_parts(ptr, HEADER) };
    let Some(cell) = header[0].load(Ordering::Relaxed).checked_sub(1) else {
        return;
    };
    let started = header[1].load(Ordering::Relaxed);
    header[0].store(0, Ordering::Release);
    observe(
        usize::try_from(cell).unwrap_or(usize::MAX),
        monotonic_ns().saturating_sub(started),
        done,
    );
}

/// Tests that count through the process-wide current region take this first.
#[cfg(test)]
pub static TEST_LOCK: Mutex<()> = Mutex::new(());

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout::new(vec!["broadcast".into(), "a".into()], vec!["t1".into(), "t2".into()])
    }

    #[test]
    fn cells_and_names() {
        let l = layout();
        assert_eq!(l.cells(), 6);
        assert_eq!(l.cell("a", Some("t2")), 4);
        assert_eq!(l.cell("a", Some("nope")), 5);
        assert_eq!(l.cell("a", None), 5);
        assert_eq!(l.names(4), Some(("a", "t2")));
        assert_eq!(l.names(5), Some(("a", UNKNOWN_TASK)));
        assert_eq!(l.names(6), None);
    }

    #[test]
    fn buckets() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(100_000), 0);
        assert_eq!(bucket_of(100_001), 1);
        assert_eq!(bucket_of(u64::MAX), BUCKETS_NS.len());
        assert_eq!(field_name(BUCKET0 + BUCKETS_NS.len()).as_deref(), Some("rt19"));
        assert_eq!(field_name(CANCELLED).as_deref(), Some("cancelled"));
        assert_eq!(field_name(CANCELLED + 1), None);
    }

    #[test]
    fn counting_lands_in_the_current_region() {
        let _guard = TEST_LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let t = CounterTable::new(2, layout()).expect("mmap");
        t.make_current(1);
        sync_started(4, monotonic_ns());
        assert_eq!(t.region(1).and_then(|r| r.current_cell()), Some(4));
        sync_finished(true);
        count(4, EXCEPTION);
        count(99, EXCEPTION); // out of range: ignored
        observe(1, 3_000_000_000, false);
        let mut totals = vec![0; t.totals_len()];
        t.region(1).expect("region").add_into(&mut totals);
        t.region(0).expect("region").add_into(&mut totals);
        assert_eq!(totals[4 * FIELDS + STARTED], 1);
        assert_eq!(totals[4 * FIELDS + DONE], 1);
        assert_eq!(totals[4 * FIELDS + EXCEPTION], 1);
        assert_eq!(totals[FIELDS + DONE], 0);
        assert_eq!(totals[FIELDS + BUCKET0 + bucket_of(3_000_000_000)], 1);
        assert_eq!(totals[FIELDS + RUNTIME_US], 3_000_000);
        assert_eq!(t.region(1).and_then(|r| r.current_cell()), None);
        t.region(1).expect("region").clear();
        let mut again = vec![0; t.totals_len()];
        t.region(1).expect("region").add_into(&mut again);
        assert!(again.iter().all(|&v| v == 0));
        assert_eq!(cell_for("a", Some("t1")), 3);
    }
}
