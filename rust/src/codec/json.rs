//! WakaQ's JSON payloads (upstream 3.x/4.x), read so that tasks queued by old producers still run.
//!
//! NOTE: parsing goes through Python's `json` module: this path only serves migrations, so it is not hot,
//! and the stdlib parser is well tested against garbage. Rust supplies the `object_hook` that turns
//! upstream's `{"__class__": ...}` objects back into values.
//!
//! Upstream (`wakaq/serializer.py`) writes datetime as fields (year, month, day, hour, minute, second,
//! microsecond, fold; aware ones converted to UTC first), date as year/month/day, timedelta as
//! `{"kwargs": {days, seconds, microseconds}}`, Decimal and bytes (base64) as `value`. The ISO-string
//! `value` forms (and timedelta as total seconds) are read too, for producers that wrote those.

use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyCFunction, PyDict, PyFloat, PyInt, PyList, PyString};
use pyo3::{intern, wrap_pyfunction};

use super::decode::DecodeFail;
use super::ext::decimal_type;
use super::read::DecodeError;
use super::task::PyTask;
use super::MAX_DEPTH;
use crate::errors::payload_error;

const DATETIME_FIELDS: [&str; 8] = [
    "year",
    "month",
    "day",
    "hour",
    "minute",
    "second",
    "microsecond",
    "fold",
];
const DATE_FIELDS: [&str; 3] = ["year", "month", "day"];

/// Parses a JSON payload and checks its shape (same rules and messages as the msgpack one).
pub fn decode_task<'py>(py: Python<'py>, data: &[u8]) -> Result<PyTask<'py>, DecodeFail> {
    let payload = parse(py, data)?;
    if !payload.is_instance_of::<PyDict>() {
        return Err(shape(format!("payload must be a map, got {}", json_kind(&payload))));
    }
    let payload = payload.cast_into::<PyDict>().map_err(PyErr::from)?;
    let name = match payload.get_item("name")? {
        None => return Err(shape("payload has no 'name'".into())),
        Some(v) => v
            .cast_into::<PyString>()
            .map_err(|e| wrong("name", "a str", e.into_inner().as_ref()))?,
    };
    // NOTE: JSON can escape a lone surrogate (`\ud800`), which no msgpack str (UTF-8) can hold.
    if name.to_str().is_err() {
        return Err(shape("'name' holds a lone surrogate (not valid UTF-8)".into()));
    }
    let args = match payload.get_item("args")? {
        None => PyList::empty(py),
        Some(v) => v
            .cast_into::<PyList>()
            .map_err(|e| wrong("args", "an array", e.into_inner().as_ref()))?,
    };
    let kwargs = match payload.get_item("kwargs")? {
        None => PyDict::new(py),
        Some(v) => v
            .cast_into::<PyDict>()
            .map_err(|e| wrong("kwargs", "a map", e.into_inner().as_ref()))?,
    };
    let retry = match payload.get_item("retry")? {
        None => 0,
        Some(v) if v.is_exact_instance_of::<PyInt>() => v
            .extract::<i64>()
            .map_err(|_| shape("'retry' is out of range".into()))?,
        Some(v) => return Err(wrong("retry", "an int", &v)),
    };
    Ok((name, args, kwargs, retry))
}

/// `json.loads(data, object_hook=...)`; any exception it raises means the bytes are bad.
fn parse<'py>(py: Python<'py>, data: &[u8]) -> Result<Bound<'py, PyAny>, DecodeFail> {
    // NOTE: WakaQ writes UTF-8 (json.dumps, then redis-py). Given bytes, json.loads would also detect UTF-16
    // and UTF-32, whose bytes `check_depth` cannot read; given a str, it parses just that.
    let text = std::str::from_utf8(data)
        .map_err(|e| shape(format!("invalid JSON payload: not UTF-8 at offset {}", e.valid_up_to())))?;
    check_depth(data)?;
    let loads = py.import(intern!(py, "json"))?.getattr(intern!(py, "loads"))?;
    let options = PyDict::new(py);
    options.set_item(intern!(py, "object_hook"), object_hook(py)?)?;
    loads.call((text,), Some(&options)).map_err(|e| {
        if e.is_instance_of::<PyException>(py) {
            shape(format!("invalid JSON payload: {}", e.value(py)))
        } else {
            DecodeFail::Py(e) // KeyboardInterrupt and friends pass through
        }
    })
}

/// Brackets may nest `MAX_DEPTH` levels inside the payload object, as containers may in msgpack payloads:
/// deeper JSON would decode, and then fail when the task is encoded again (a retry). Counted on the bytes,
/// outside strings, before parsing; class objects count too, so this is never looser than the msgpack rule.
///
/// In UTF-8 no byte of a multi-byte character is ASCII, so quotes and brackets are seen for what they are.
fn check_depth(data: &[u8]) -> Result<(), DecodeError> {
    let (mut depth, mut in_string, mut escaped) = (0_usize, false, false);
    for &byte in data {
        if in_string {
            in_string = escaped || byte != b'"';
            escaped = !escaped && byte == b'\\';
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' if depth > MAX_DEPTH => return Err(DecodeError::TooDeep),
            b'[' | b'{' => depth += 1,
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn object_hook(py: Python<'_>) -> PyResult<&Bound<'_, PyCFunction>> {
    static HOOK: PyOnceLock<Py<PyCFunction>> = PyOnceLock::new();
    HOOK.get_or_try_init(py, || wrap_pyfunction!(wakaq_json_object_hook, py).map(Bound::unbind))
        .map(|f| f.bind(py))
}

/// Turns upstream's `{"__class__": ...}` objects into values; other objects pass through unchanged.
#[pyfunction]
fn wakaq_json_object_hook(obj: Bound<'_, PyDict>) -> PyResult<Bound<'_, PyAny>> {
    let py = obj.py();
    let Some(class) = obj.get_item(intern!(py, "__class__"))? else {
        return Ok(obj.into_any());
    };
    let Ok(class) = class.cast::<PyString>().map(ToString::to_string) else {
        return Ok(obj.into_any());
    };
    let made = match class.as_str() {
        "datetime" => datetime(&obj),
        "date" => date(&obj),
        "timedelta" => timedelta(&obj),
        "Decimal" => decimal_type(py).and_then(|t| t.call1((required(&obj, "value")?,))),
        "bytes" => bytes(&obj),
        _ => return Ok(obj.into_any()),
    };
    made.map_err(|e| payload_error(py, format!("invalid '{class}' object in JSON payload: {}", e.value(py))))
}

fn required<'py>(obj: &Bound<'py, PyDict>, key: &str) -> PyResult<Bound<'py, PyAny>> {
    obj.get_item(key)?
        .ok_or_else(|| pyo3::exceptions::PyKeyError::new_err(key.to_owned()))
}

/// The listed fields that are present, as keyword arguments for a constructor.
fn fields<'py>(obj: &Bound<'py, PyDict>, names: &[&str]) -> PyResult<Bound<'py, PyDict>> {
    let kwargs = PyDict::new(obj.py());
    for name in names {
        if let Some(v) = obj.get_item(name)? {
            kwargs.set_item(name, v)?;
        }
    }
    Ok(kwargs)
}

/// Naive results as they are (upstream's are UTC); aware ISO strings are converted to naive UTC.
fn datetime<'py>(obj: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyAny>> {
    let py = obj.py();
    let module = py.import("datetime")?;
    let class = module.getattr("datetime")?;
    let Some(value) = obj.get_item("value")? else {
        return class.call((), Some(&fields(obj, &DATETIME_FIELDS)?));
    };
    let dt = class.call_method1("fromisoformat", (value,))?;
    if dt.getattr("tzinfo")?.is_none() {
        return Ok(dt);
    }
    let utc = module.getattr("timezone")?.getattr("utc")?;
    let naive = PyDict::new(py);
    naive.set_item("tzinfo", py.None())?;
    dt.call_method1("astimezone", (utc,))?
        .call_method("replace", (), Some(&naive))
}

fn date<'py>(obj: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyAny>> {
    let class = obj.py().import("datetime")?.getattr("date")?;
    match obj.get_item("value")? {
        Some(value) => class.call_method1("fromisoformat", (value,)),
        None => class.call((), Some(&fields(obj, &DATE_FIELDS)?)),
    }
}

/// `{"kwargs": {...}}` (upstream) or `{"value": total_seconds}`.
fn timedelta<'py>(obj: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyAny>> {
    let class = obj.py().import("datetime")?.getattr("timedelta")?;
    if let Some(kwargs) = obj.get_item("kwargs")? {
        return class.call((), Some(kwargs.cast::<PyDict>()?));
    }
    let seconds = required(obj, "value")?;
    if !(seconds.is_instance_of::<PyInt>() || seconds.is_instance_of::<PyFloat>()) || seconds.is_instance_of::<PyBool>()
    {
        return Err(pyo3::exceptions::PyTypeError::new_err(
            "value must be a number of seconds",
        ));
    }
    let kwargs = PyDict::new(obj.py());
    kwargs.set_item("seconds", seconds)?;
    class.call((), Some(&kwargs))
}

/// Base64 checked strictly (upstream decodes leniently, but only ever wrote valid base64).
fn bytes<'py>(obj: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyAny>> {
    let options = PyDict::new(obj.py());
    options.set_item("validate", true)?;
    obj.py()
        .import("base64")?
        .getattr("b64decode")?
        .call((required(obj, "value")?,), Some(&options))
}

fn shape(what: String) -> DecodeFail {
    DecodeFail::Bad(DecodeError::Shape(what))
}

/// The JSON type name of a value, for messages.
fn json_kind(v: &Bound<'_, PyAny>) -> &'static str {
    if v.is_none() {
        "null"
    } else if v.is_instance_of::<PyBool>() {
        "bool"
    } else if v.is_instance_of::<PyInt>() {
        "int"
    } else if v.is_instance_of::<PyFloat>() {
        "float"
    } else if v.is_instance_of::<PyString>() {
        "str"
    } else if v.is_instance_of::<PyList>() {
        "array"
    } else if v.is_instance_of::<PyDict>() {
        "map"
    } else {
        "a decoded object"
    }
}

fn wrong(field: &str, expected: &str, got: &Bound<'_, PyAny>) -> DecodeFail {
    shape(format!("'{field}' must be {expected}, got {}", json_kind(got)))
}
