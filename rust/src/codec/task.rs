//! Task payloads: a msgpack map with keys `name`, `args`, `kwargs`, `retry`, in that order, then an optional
//! `meta` map that only tasks using an opt-in feature (results, retries, uniqueness) carry: a plain task's payload
//! is the same bytes as WakaQ's.
//! These are the Rust-side entry points the broker calls; the pyfunctions in `mod.rs` wrap them.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use super::decode::{str_value, DecodeFail, Decoder};
use super::encode::{type_name, Encoder};
use super::error::{EncodeError, EncodeResult};
use super::json;
use super::read::{DecodeError, Token};
use super::write::{self, TooLong};

/// A decoded task: (name, args, kwargs, retry).
pub type Task<'py> = (String, Bound<'py, PyList>, Bound<'py, PyDict>, i64);

/// The same with the name still a Python str: what `decode_task` returns, without a detour through `String`.
pub type PyTask<'py> = (Bound<'py, PyString>, Bound<'py, PyList>, Bound<'py, PyDict>, i64);

/// `PyTask` plus the `meta` map (`None` when the payload has none): what `decode_task_meta` returns.
pub type PyTaskMeta<'py> = (
    Bound<'py, PyString>,
    Bound<'py, PyList>,
    Bound<'py, PyDict>,
    i64,
    Option<Bound<'py, PyDict>>,
);

/// Appends the msgpack payload of a task to `out` (deterministic: equal arguments give equal bytes,
/// which is what lets equal eta tasks dedupe in their zset).
///
/// `args` must be a list or tuple and `kwargs` a dict (subclasses accepted). On error `out` is left
/// as it was, and the `TypeError` names the failing value's path, e.g. `args[1]['when'][0]`.
/// `_py` is unused but proves the caller is attached to the interpreter.
pub fn encode_task_into(
    py: Python<'_>,
    out: &mut Vec<u8>,
    name: &str,
    args: &Bound<'_, PyAny>,
    kwargs: &Bound<'_, PyAny>,
    retry: i64,
) -> PyResult<()> {
    encode_task_meta_into(py, out, name, args, kwargs, retry, None)
}

/// `encode_task_into` with a `meta` map written after `retry`; `None` or an empty dict writes none.
pub fn encode_task_meta_into(
    _py: Python<'_>,
    out: &mut Vec<u8>,
    name: &str,
    args: &Bound<'_, PyAny>,
    kwargs: &Bound<'_, PyAny>,
    retry: i64,
    meta: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    let start = out.len();
    let result = write_task(out, name, args, kwargs, retry, meta);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn write_task(
    out: &mut Vec<u8>,
    name: &str,
    args: &Bound<'_, PyAny>,
    kwargs: &Bound<'_, PyAny>,
    retry: i64,
    meta: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    check_shape(args, kwargs)?;
    let meta = meta_dict(meta)?;
    let entries = if meta.is_some() { 5 } else { 4 };
    let name_field = |out: &mut Vec<u8>| -> Result<(), TooLong> {
        write::map_len(out, entries)?;
        write::str(out, b"name")?;
        write::str(out, name.as_bytes())
    };
    name_field(out).map_err(|e| Box::<EncodeError>::from(e).into_pyerr("name"))?;
    write_key(out, b"args");
    in_root(Encoder::new(out).value(args), "args")?;
    write_key(out, b"kwargs");
    in_root(Encoder::new(out).value(kwargs), "kwargs")?;
    write_key(out, b"retry");
    write::int(out, retry);
    if let Some(meta) = meta {
        write_key(out, b"meta");
        in_root(Encoder::new(out).value(meta.as_any()), "meta")?;
    }
    Ok(())
}

/// The meta map to write: None for None or an empty dict; TypeError for anything but a dict.
pub fn meta_dict<'a, 'py>(meta: Option<&'a Bound<'py, PyAny>>) -> PyResult<Option<&'a Bound<'py, PyDict>>> {
    match meta {
        Some(m) if m.is_none() => Ok(None),
        Some(m) => {
            let Ok(dict) = m.cast::<PyDict>() else {
                let msg = format!("meta must be a dict, got '{}'", type_name(m));
                return Err(pyo3::exceptions::PyTypeError::new_err(msg));
            };
            Ok((!dict.is_empty()).then_some(dict))
        }
        None => Ok(None),
    }
}

/// Our own short keys: a fixstr header and the bytes, nothing that can fail.
fn write_key(out: &mut Vec<u8>, key: &'static [u8]) {
    debug_assert!(key.len() < 32);
    out.push(super::marker::FIXSTR | key.len() as u8);
    out.extend_from_slice(key);
}

fn in_root(result: EncodeResult, root: &str) -> PyResult<()> {
    result.map_err(|e| e.into_pyerr(root))
}

/// `args` a list or tuple, `kwargs` a dict: anything else is a caller bug, reported before encoding.
pub(super) fn check_shape(args: &Bound<'_, PyAny>, kwargs: &Bound<'_, PyAny>) -> PyResult<()> {
    if !(args.is_instance_of::<PyList>() || args.is_instance_of::<PyTuple>()) {
        let msg = format!("args must be a list or tuple, got '{}'", type_name(args));
        return Err(pyo3::exceptions::PyTypeError::new_err(msg));
    }
    if !kwargs.is_instance_of::<PyDict>() {
        let msg = format!("kwargs must be a dict, got '{}'", type_name(kwargs));
        return Err(pyo3::exceptions::PyTypeError::new_err(msg));
    }
    Ok(())
}

/// Decodes a task payload: msgpack, or WakaQ's JSON when the first non-whitespace byte is `{`.
///
/// Missing `args`/`kwargs` decode as empty and a missing `retry` as 0; unknown keys (WakaQ's
/// `queue`) are skipped. Bad bytes or a wrong shape raise `PayloadError` saying what is wrong.
pub fn decode_task_bytes<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Task<'py>> {
    let (name, args, kwargs, retry) = decode_task_object(py, data)?;
    Ok((name.to_str()?.to_owned(), args, kwargs, retry))
}

/// `decode_task_bytes` keeping the name as a Python str.
pub fn decode_task_object<'py>(py: Python<'py>, data: &[u8]) -> PyResult<PyTask<'py>> {
    let (name, args, kwargs, retry, _) = decode_task_meta_object(py, data)?;
    Ok((name, args, kwargs, retry))
}

/// `decode_task_object` plus the `meta` map (WakaQ's JSON payloads have none).
pub fn decode_task_meta_object<'py>(py: Python<'py>, data: &[u8]) -> PyResult<PyTaskMeta<'py>> {
    let first = data.iter().find(|b| !b.is_ascii_whitespace());
    let task = if first == Some(&b'{') {
        json::decode_task(py, data).map(|(name, args, kwargs, retry)| (name, args, kwargs, retry, None))
    } else {
        decode_msgpack_task(py, data)
    };
    task.map_err(|e| e.into_pyerr(py))
}

/// The fields as they are found; `None` for absent ones.
struct Fields<'py> {
    name: Option<Bound<'py, PyString>>,
    args: Option<Bound<'py, PyList>>,
    kwargs: Option<Bound<'py, PyDict>>,
    retry: i64,
    meta: Option<Bound<'py, PyDict>>,
}

fn decode_msgpack_task<'py>(py: Python<'py>, data: &[u8]) -> Result<PyTaskMeta<'py>, DecodeFail> {
    let mut decoder = Decoder::new(py, data);
    let entries = match decoder.reader.token()? {
        Token::Map(n) => n,
        other => return Err(shape(format!("payload must be a map, got {}", other.kind()))),
    };
    let mut fields = Fields {
        name: None,
        args: None,
        kwargs: None,
        retry: 0,
        meta: None,
    };
    for _ in 0..entries {
        read_field(&mut decoder, &mut fields)?;
    }
    decoder.reader.finish()?;
    let name = fields.name.ok_or_else(|| shape("payload has no 'name'".into()))?;
    let args = fields.args.unwrap_or_else(|| PyList::empty(py));
    let kwargs = fields.kwargs.unwrap_or_else(|| PyDict::new(py));
    Ok((name, args, kwargs, fields.retry, fields.meta))
}

/// Reads one key/value pair of the payload map into `fields`.
fn read_field<'py>(decoder: &mut Decoder<'py, '_>, fields: &mut Fields<'py>) -> Result<(), DecodeFail> {
    let key_at = decoder.reader.pos();
    let Token::Str(key) = decoder.reader.token()? else {
        return Err(DecodeError::BadValue {
            what: "payload key is not a str".into(),
            at: key_at,
        }
        .into());
    };
    let at = decoder.reader.pos();
    match key {
        b"name" => match decoder.reader.token()? {
            Token::Str(bytes) => fields.name = Some(str_value(decoder.py(), bytes, at)?),
            other => return Err(wrong("name", "a str", &other)),
        },
        b"args" => match decoder.reader.token()? {
            Token::Array(n) => fields.args = Some(decoder.array(n)?),
            other => return Err(wrong("args", "an array", &other)),
        },
        b"kwargs" => match decoder.reader.token()? {
            Token::Map(n) => fields.kwargs = Some(decoder.map(n)?),
            other => return Err(wrong("kwargs", "a map", &other)),
        },
        b"retry" => match decoder.reader.token()? {
            Token::Int(v) => fields.retry = v,
            other => return Err(wrong("retry", "an int", &other)),
        },
        b"meta" => match decoder.reader.token()? {
            Token::Map(n) => fields.meta = Some(decoder.map(n)?),
            Token::Nil => fields.meta = None,
            other => return Err(wrong("meta", "a map", &other)),
        },
        _ => decoder.reader.skip(0)?,
    }
    Ok(())
}

fn shape(what: String) -> DecodeFail {
    DecodeFail::Bad(DecodeError::Shape(what))
}

/// `'args' must be an array, got map`.
fn wrong(field: &str, expected: &str, got: &Token<'_>) -> DecodeFail {
    let got = if matches!(got, Token::UInt(_)) {
        "int beyond 64 bits"
    } else {
        got.kind()
    };
    shape(format!("'{field}' must be {expected}, got {got}"))
}

#[cfg(test)]
mod tests {
    use pyo3::types::PyDictMethods;

    use super::*;

    #[test]
    fn rust_api_round_trips_a_task() {
        Python::attach(|py| {
            let args = PyList::new(py, [1_i64, 2, 3]).unwrap();
            let kwargs = PyDict::new(py);
            kwargs.set_item("k", "v").unwrap();
            let mut out = b"prefix".to_vec();
            encode_task_into(py, &mut out, "mytask", args.as_any(), kwargs.as_any(), 2).unwrap();
            assert_eq!(&out[..7], b"prefix\x84");
            let (name, got_args, got_kwargs, retry) = decode_task_bytes(py, &out[6..]).unwrap();
            assert_eq!(name, "mytask");
            assert_eq!(got_args.extract::<Vec<i64>>().unwrap(), [1, 2, 3]);
            assert_eq!(
                got_kwargs.get_item("k").unwrap().unwrap().extract::<String>().unwrap(),
                "v"
            );
            assert_eq!(retry, 2);
        });
    }

    #[test]
    fn failed_encode_leaves_the_buffer_as_it_was() {
        Python::attach(|py| {
            let args = PyList::new(py, [py.None(), py.get_type::<PyDict>().into_any().unbind()]).unwrap();
            let mut out = b"keep".to_vec();
            let err = encode_task_into(py, &mut out, "t", args.as_any(), PyDict::new(py).as_any(), 0).unwrap_err();
            assert_eq!(
                err.to_string(),
                "TypeError: cannot encode args[1]: unsupported type 'type'"
            );
            assert_eq!(out, b"keep");
        });
    }
}
