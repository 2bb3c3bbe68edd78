//! The payload codec: msgpack <-> Python objects, written directly over PyO3 (no serde, no value tree).
//!
//! - `marker`, `write`, `read`, `timestamp`: msgpack bytes, pure Rust, unit-tested in place;
//! - `encode`, `decode`, `ext`, `fields`: walking Python objects to bytes and back;
//! - `task`: the task payload map, and the Rust API the broker uses (`encode_task_into`, `decode_task_bytes`);
//! - `json`: WakaQ's JSON payloads, read for migrations; `json_encode`, `json_text`: written the same way, for
//!   `WakaQ(payload_format="json")` (a producer whose tasks WakaQ's workers can run).

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

mod decode;
mod encode;
mod error;
mod ext;
mod fields;
mod format;
mod json;
mod json_encode;
mod json_text;
pub mod marker;
pub mod meta;
pub(crate) mod read;
mod retried;
mod task;
mod timestamp;
mod write;

pub use decode::unpack;
pub use format::PayloadFormat;
pub use json_encode::encode_task_json_into;
pub use retried::retried;
pub use task::{
    decode_task_bytes, decode_task_meta_object, decode_task_object, encode_task_into, encode_task_meta_into, PyTask,
    PyTaskMeta, Task,
};

/// Containers nested deeper than this are refused, both ways: it bounds the recursion (and so the
/// stack) on untrusted input, and stops containers that contain themselves.
pub const MAX_DEPTH: usize = 128;

pub fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(packb, m)?)?;
    m.add_function(wrap_pyfunction!(unpackb, m)?)?;
    m.add_function(wrap_pyfunction!(encode_task, m)?)?;
    m.add_function(wrap_pyfunction!(encode_task_json, m)?)?;
    m.add_function(wrap_pyfunction!(decode_task, m)?)?;
    m.add_function(wrap_pyfunction!(decode_task_meta, m)?)?;
    m.add_function(wrap_pyfunction!(retried_task, m)?)?;
    Ok(())
}

/// Runs `f`, turning a panic into `RuntimeError`: no panic may cross into Python.
///
/// NOTE: the one known source is PyO3's dict iterator, which panics when a dict changes size while
/// being encoded (possible only if user code, e.g. a tzinfo, mutates the arguments).
pub(crate) fn guarded<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(ToString::to_string)
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(PyRuntimeError::new_err(format!("wakaq codec failed: {why}")))
    })
}

/// Appends the msgpack of one value to `out` (what `packb` returns); the Rust API, used by the fuzzer.
pub fn pack_into(out: &mut Vec<u8>, obj: &Bound<'_, PyAny>) -> PyResult<()> {
    encode::Encoder::new(out).value(obj).map_err(|e| e.into_pyerr("obj"))
}

/// Encode one value as msgpack (deterministic).
#[pyfunction]
fn packb<'py>(py: Python<'py>, obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    guarded(|| {
        let mut out = Vec::with_capacity(128);
        pack_into(&mut out, obj)?;
        Ok(PyBytes::new(py, &out))
    })
}

/// Decode exactly one msgpack value.
#[pyfunction]
fn unpackb<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    guarded(|| decode::unpack(py, data))
}

/// Encode a task payload: msgpack map {name, args, kwargs, retry[, meta]}.
#[pyfunction]
#[pyo3(signature = (name, args, kwargs, retry = 0, meta = None))]
fn encode_task<'py>(
    py: Python<'py>,
    name: &str,
    args: &Bound<'py, PyAny>,
    kwargs: &Bound<'py, PyAny>,
    retry: i64,
    meta: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyBytes>> {
    guarded(|| {
        let mut out = Vec::with_capacity(128);
        encode_task_meta_into(py, &mut out, name, args, kwargs, retry, meta)?;
        Ok(PyBytes::new(py, &out))
    })
}

/// Encode a task payload as WakaQ 4.0.4 writes it (JSON): `{"name", "args", "kwargs"}`, then `"retry"` when given
/// (WakaQ's queue pushes carry it, its eta tasks and broadcasts do not).
#[pyfunction]
#[pyo3(signature = (name, args, kwargs, retry = None))]
fn encode_task_json<'py>(
    py: Python<'py>,
    name: &str,
    args: &Bound<'py, PyAny>,
    kwargs: &Bound<'py, PyAny>,
    retry: Option<i64>,
) -> PyResult<Bound<'py, PyBytes>> {
    guarded(|| {
        let mut out = Vec::with_capacity(128);
        encode_task_json_into(&mut out, name, args, kwargs, retry)?;
        Ok(PyBytes::new(py, &out))
    })
}

/// Decode a task payload (msgpack, or WakaQ's JSON when it starts with `{`).
#[pyfunction]
fn decode_task<'py>(py: Python<'py>, data: &[u8]) -> PyResult<PyTask<'py>> {
    guarded(|| decode_task_object(py, data))
}

/// Decode a task payload with its `meta` map: `(name, args, kwargs, retry, meta or None)`.
#[pyfunction]
fn decode_task_meta<'py>(py: Python<'py>, data: &[u8]) -> PyResult<PyTaskMeta<'py>> {
    guarded(|| decode_task_meta_object(py, data))
}

/// A retry's payload: `payload`'s own name, args and kwargs bytes with a new `retry` and `meta` (retried.rs).
#[pyfunction]
#[pyo3(signature = (payload, retry, meta = None))]
fn retried_task<'py>(
    py: Python<'py>,
    payload: &[u8],
    retry: i64,
    meta: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyBytes>> {
    guarded(|| Ok(PyBytes::new(py, &retried::retried(py, payload, Some(retry), meta)?)))
}
