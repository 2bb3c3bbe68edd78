//! Allocation accounting around one decode call, on both heaps a decode can use:
//!
//! - Rust's, through a counting `#[global_allocator]`: live bytes, their peak, the largest block;
//! - Python's, through wrappers installed with `PyMem_SetAllocator` on its three domains (raw, mem,
//!   object): bytes requested (an upper bound of the peak, since frees are not subtracted) and the
//!   largest block. Python objects are built on this heap, so a length that was trusted for an
//!   allocation shows up here as one huge block.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::OnceLock;

use pyo3::ffi;

pub struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);
static PY_REQUESTED: AtomicUsize = AtomicUsize::new(0);
static PY_LARGEST: AtomicUsize = AtomicUsize::new(0);

fn grew(size: usize) {
    let live = LIVE.fetch_add(size, Relaxed) + size;
    PEAK.fetch_max(live, Relaxed);
    LARGEST.fetch_max(size, Relaxed);
}

// SAFETY: every call is forwarded to `System` with the caller's arguments unchanged; the counters are
// atomics that never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is (see the impl).
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is (see the impl).
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is (see the impl).
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is (see the impl).
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE.fetch_sub(layout.size(), Relaxed);
            grew(new_size);
        }
        new
    }
}

/// What one decode call allocated, in bytes.
#[derive(Debug, Default, Clone, Copy)]
pub struct Usage {
    /// Peak of live Rust heap bytes above what was live when the call started.
    pub rust_peak: usize,
    pub rust_largest: usize,
    /// Bytes requested from Python's allocators (frees not subtracted).
    pub py_requested: usize,
    pub py_largest: usize,
}

/// Measures the allocations made while `f` runs.
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, Usage) {
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    LARGEST.store(0, Relaxed);
    PY_REQUESTED.store(0, Relaxed);
    PY_LARGEST.store(0, Relaxed);
    let result = f();
    let usage = Usage {
        rust_peak: PEAK.load(Relaxed).saturating_sub(base),
        rust_largest: LARGEST.load(Relaxed),
        py_requested: PY_REQUESTED.load(Relaxed),
        py_largest: PY_LARGEST.load(Relaxed),
    };
    (result, usage)
}

fn py_grew(size: usize) {
    PY_REQUESTED.fetch_add(size, Relaxed);
    PY_LARGEST.fetch_max(size, Relaxed);
}

/// The allocators that were installed before ours, one per domain; our wrappers get theirs as `ctx`.
static ORIGINALS: OnceLock<[usize; 3]> = OnceLock::new();

fn original(ctx: *mut c_void) -> &'static ffi::PyMemAllocatorEx {
    // SAFETY: `ctx` is one of the leaked boxes made in `install_python_hooks`, never freed or mutated.
    unsafe { &*ctx.cast::<ffi::PyMemAllocatorEx>() }
}

extern "C" fn py_malloc(ctx: *mut c_void, size: usize) -> *mut c_void {
    py_grew(size);
    let inner = original(ctx);
    (inner.malloc.expect("malloc"))(inner.ctx, size)
}

extern "C" fn py_calloc(ctx: *mut c_void, count: usize, size: usize) -> *mut c_void {
    py_grew(count.saturating_mul(size));
    let inner = original(ctx);
    (inner.calloc.expect("calloc"))(inner.ctx, count, size)
}

extern "C" fn py_realloc(ctx: *mut c_void, ptr: *mut c_void, size: usize) -> *mut c_void {
    py_grew(size);
    let inner = original(ctx);
    (inner.realloc.expect("realloc"))(inner.ctx, ptr, size)
}

extern "C" fn py_free(ctx: *mut c_void, ptr: *mut c_void) {
    let inner = original(ctx);
    (inner.free.expect("free"))(inner.ctx, ptr);
}

/// Wraps Python's three allocator domains with counting hooks. Once, with the interpreter attached.
///
/// NOTE: after initialisation Python allows only hooks that forward to the previous allocator (memory
/// allocated before must still be freed by it), which is what these are.
pub fn install_python_hooks(_py: pyo3::Python<'_>) {
    let domains = [
        ffi::PyMemAllocatorDomain::PYMEM_DOMAIN_RAW,
        ffi::PyMemAllocatorDomain::PYMEM_DOMAIN_MEM,
        ffi::PyMemAllocatorDomain::PYMEM_DOMAIN_OBJ,
    ];
    ORIGINALS.get_or_init(|| domains.map(|domain| wrap_domain(domain) as usize));
}

fn wrap_domain(domain: ffi::PyMemAllocatorDomain) -> *mut ffi::PyMemAllocatorEx {
    let inner = Box::into_raw(Box::new(ffi::PyMemAllocatorEx {
        ctx: std::ptr::null_mut(),
        malloc: None,
        calloc: None,
        realloc: None,
        free: None,
    }));
    let mut hooks = ffi::PyMemAllocatorEx {
        ctx: inner.cast(),
        malloc: Some(py_malloc),
        calloc: Some(py_calloc),
        realloc: Some(py_realloc),
        free: Some(py_free),
    };
    // SAFETY: attached to the interpreter (the caller holds a Python token); `inner` is a valid, leaked
    // struct that PyMem_GetAllocator fills before our hooks, which read it, are installed.
    unsafe {
        ffi::PyMem_GetAllocator(domain, inner);
        ffi::PyMem_SetAllocator(domain, &raw mut hooks);
    }
    inner
}
