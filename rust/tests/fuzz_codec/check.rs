//! Runs one input through the decoder entry points and checks the properties: no panic, only
//! `ValueError`s (PayloadError) as errors, allocation bounded by the input's length, valid samples
//! decode, canonical ones come back byte for byte, and anything decoded encodes to a fixed point.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use _wakaq::codec::{decode_task_bytes, encode_task_into, pack_into, unpack};
use pyo3::prelude::*;

use crate::alloc::{measure, Usage};

/// What an input is expected to do.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A generated msgpack value: `unpackb` must decode it (and give the same bytes back if canonical).
    Value { canonical: bool },
    /// A generated task payload: `decode_task` must decode it (same bytes back if canonical).
    Task { canonical: bool },
    /// A generated WakaQ JSON payload: `decode_task` must decode it.
    Json,
    /// A strict prefix of a valid input: both entry points must fail.
    Prefix,
    /// Anything else: no panic, no unbounded allocation, errors only as `PayloadError`.
    Anything,
}

/// Allocation allowed per decode call: `PER_BYTE` bytes per input byte plus a constant. See
/// docs/internals.md ("Fuzzing") for how these were calibrated.
pub const RUST_PER_BYTE: usize = 16;
pub const RUST_CONSTANT: usize = 64 << 10;
pub const PY_PER_BYTE: usize = 160;
pub const PY_CONSTANT: usize = 64 << 10;

/// The input with the most allocation beyond its per-byte allowance, for one metric.
#[derive(Default)]
pub struct Worst {
    pub bytes: usize,
    pub input: Vec<u8>,
}

#[derive(Default)]
pub struct Stats {
    /// Inputs decoded, and how many of them were generated (the others are truncations of those).
    pub inputs: u64,
    pub generated: u64,
    pub outcomes: BTreeMap<(&'static str, &'static str), u64>,
    pub round_trips: u64,
    pub fixed_points: u64,
    pub worst: [Worst; 4],
}

/// The entry points, by the names Python knows them by.
const UNPACK: &str = "unpackb";
const TASK: &str = "decode_task";

pub fn check(py: Python<'_>, data: &[u8], expect: Expect, stats: &mut Stats) -> Result<(), String> {
    stats.inputs += 1;
    let value = call(py, data, UNPACK, stats, || unpack(py, data))?;
    let task = call(py, data, TASK, stats, || decode_task_bytes(py, data))?;
    match expect {
        Expect::Value { canonical } => {
            let value = value.ok_or("a valid value did not decode")?;
            settle_value(py, &value, canonical.then_some(data), stats)?;
        }
        Expect::Task { canonical } => {
            let task = task.ok_or("a valid task did not decode")?;
            settle_task(py, &task, canonical.then_some(data), stats)?;
        }
        Expect::Json => {
            let task = task.ok_or("a valid JSON task did not decode")?;
            settle_task(py, &task, None, stats)?;
        }
        Expect::Prefix if value.is_some() || task.is_some() => return Err("a truncated input decoded".into()),
        Expect::Prefix | Expect::Anything => {
            if let Some(value) = value {
                settle_value(py, &value, None, stats)?;
            }
            if let Some(task) = task {
                let json = data.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
                match settle_task(py, &task, None, stats) {
                    // NOTE: JSON strings may hold lone surrogates, which msgpack strs (UTF-8) cannot.
                    Err(e) if json && e.contains("lone surrogate") => {}
                    other => other?,
                }
            }
        }
    }
    Ok(())
}

/// Calls one entry point: a panic, an error other than ValueError or an allocation over the bound is a
/// failure; `None` is a (well-behaved) decode error.
fn call<T>(
    py: Python<'_>,
    data: &[u8],
    entry: &'static str,
    stats: &mut Stats,
    f: impl FnOnce() -> PyResult<T>,
) -> Result<Option<T>, String> {
    let (result, usage) = measure(|| catch_unwind(AssertUnwindSafe(f)));
    check_usage(usage, data, stats).map_err(|e| format!("{entry}: {e}"))?;
    let result = result.map_err(|panic| format!("{entry} panicked: {}", panic_message(&*panic)))?;
    let kind = match &result {
        Ok(_) => "ok",
        Err(e) if is_payload_error(py, e) => error_kind(&e.value(py).to_string()),
        Err(e) => return Err(format!("{entry} raised something other than PayloadError: {e}")),
    };
    *stats.outcomes.entry((entry, kind)).or_default() += 1;
    Ok(result.ok())
}

fn is_payload_error(py: Python<'_>, err: &PyErr) -> bool {
    let payload_error = py
        .import("wakaq.exceptions")
        .and_then(|m| m.getattr("PayloadError"))
        .expect("wakaq.exceptions is loaded at start");
    err.get_type(py).is(&payload_error)
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

fn check_usage(usage: Usage, data: &[u8], stats: &mut Stats) -> Result<(), String> {
    let len = data.len();
    let metrics = [
        ("Rust peak live bytes", usage.rust_peak, RUST_PER_BYTE, RUST_CONSTANT),
        (
            "largest Rust allocation",
            usage.rust_largest,
            RUST_PER_BYTE,
            RUST_CONSTANT,
        ),
        ("Python bytes requested", usage.py_requested, PY_PER_BYTE, PY_CONSTANT),
        ("largest Python allocation", usage.py_largest, PY_PER_BYTE, PY_CONSTANT),
    ];
    for (worst, (what, bytes, per_byte, constant)) in stats.worst.iter_mut().zip(metrics) {
        if bytes.saturating_sub(per_byte * len) > worst.bytes.saturating_sub(per_byte * worst.input.len()) {
            *worst = Worst {
                bytes,
                input: data.to_vec(),
            };
        }
        if bytes > per_byte * len + constant {
            return Err(format!(
                "{what}: {bytes} bytes for a {len}-byte input (bound {per_byte} * len + {constant})"
            ));
        }
    }
    Ok(())
}

/// A short name for an error message, to count errors by kind.
fn error_kind(message: &str) -> &'static str {
    const KINDS: &[(&str, &str)] = &[
        ("truncated payload", "truncated"),
        ("invalid msgpack marker", "bad marker"),
        ("nesting deeper", "too deep"),
        ("trailing bytes", "trailing bytes"),
        ("invalid UTF-8", "bad UTF-8"),
        ("unknown ext type", "unknown ext"),
        ("invalid JSON payload", "bad JSON"),
        ("in JSON payload", "bad JSON class object"),
        ("payload must be a map", "not a map"),
        ("has no 'name'", "no name"),
        ("must be", "wrong field type"),
        ("payload key is not a str", "key not a str"),
        ("lone surrogate", "name not UTF-8"),
        ("out of range", "out of range"),
        ("unusable map key", "unhashable key"),
        ("timestamp", "bad timestamp"),
        ("ext of", "bad ext length"),
        ("big int ext", "bad big int"),
        ("invalid ", "bad ext value"),
    ];
    KINDS
        .iter()
        .find(|(needle, _)| message.contains(needle))
        .map_or("other", |(_, kind)| kind)
}

fn pack(value: &Bound<'_, PyAny>) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    pack_into(&mut out, value).map_err(|e| format!("a decoded value did not encode: {e}"))?;
    Ok(out)
}

/// encode(decode(x)) == x when `canonical` is x; else encode(decode(encode(v))) == encode(v).
fn settle_value(
    py: Python<'_>,
    value: &Bound<'_, PyAny>,
    canonical: Option<&[u8]>,
    stats: &mut Stats,
) -> Result<(), String> {
    let packed = pack(value)?;
    if let Some(original) = canonical {
        stats.round_trips += 1;
        return same(original, &packed);
    }
    stats.fixed_points += 1;
    let again = unpack(py, &packed).map_err(|e| format!("an encoded value did not decode: {e}"))?;
    same(&packed, &pack(&again)?)
}

fn pack_task(py: Python<'_>, task: &_wakaq::codec::Task<'_>) -> Result<Vec<u8>, String> {
    let (name, args, kwargs, retry) = task;
    let mut out = Vec::new();
    encode_task_into(py, &mut out, name, args, kwargs, *retry)
        .map_err(|e| format!("a decoded task did not encode: {e}"))?;
    Ok(out)
}

fn settle_task(
    py: Python<'_>,
    task: &_wakaq::codec::Task<'_>,
    canonical: Option<&[u8]>,
    stats: &mut Stats,
) -> Result<(), String> {
    let packed = pack_task(py, task)?;
    if let Some(original) = canonical {
        stats.round_trips += 1;
        return same(original, &packed);
    }
    stats.fixed_points += 1;
    let again = decode_task_bytes(py, &packed).map_err(|e| format!("an encoded task did not decode: {e}"))?;
    same(&packed, &pack_task(py, &again)?)
}

fn same(want: &[u8], got: &[u8]) -> Result<(), String> {
    if want == got {
        Ok(())
    } else {
        Err(format!("re-encoding differs: got {}", crate::hex(got)))
    }
}
