//! Python objects -> WakaQ 4.0.4's JSON payloads (`WakaQ(payload_format="json")`): the bytes its serializer
//! (`json.dumps` with its `CustomJSONEncoder`) writes for the same task, so a WakaQ worker runs what our producers
//! send and equal eta tasks of either producer dedupe. `json.rs` reads these payloads back.
//!
//! Upstream's class objects: datetime `{"__class__": "datetime", "year", "month", "day", "hour", "minute",
//! "second", "microsecond", "fold"}` (aware ones converted to UTC first), date `{year, month, day}`, timedelta
//! `{"kwargs": {"days", "seconds", "microseconds"}}`, Decimal and bytes (base64) as `value`.
//!
//! NOTE: where WakaQ would write something its reader cannot give back, this encoder raises `TypeError` instead
//! (as the msgpack codec does for unsupported types): other types (WakaQ writes their `str()`), NaN and infinities
//! (WakaQ raises ValueError), dict keys that are not str (`json` turns `1` into `"1"`), and a `"__class__"` key
//! (WakaQ's reader would take the dict for one of its class objects). Sets, frozensets and bytearrays are written
//! as the msgpack codec carries them (an array sorted by encoded bytes, so the output is deterministic; bytes), so
//! a task receives the same values in either format.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDate, PyDateTime, PyDelta, PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PySet,
    PyString, PyTuple, PyTzInfoAccess,
};
use pyo3::{intern, PyTypeInfo};

use super::encode::type_name;
use super::error::{from_py, EncodeError, EncodeResult, Fault};
use super::ext::decimal_type;
use super::fields;
use super::json_text;
use super::MAX_DEPTH;

/// The key WakaQ's reader takes for a class object.
const CLASS_KEY: &str = "__class__";

/// Appends WakaQ's JSON payload of a task to `out`: `{"name": ..., "args": [...], "kwargs": {...}}`, then
/// `"retry": n` when `retry` is given (WakaQ writes it for queue pushes, not for eta tasks and broadcasts).
/// On error `out` is left as it was, and the `TypeError` names the failing value's path (`args[1]['when']`).
pub fn encode_task_json_into(
    out: &mut Vec<u8>,
    name: &str,
    args: &Bound<'_, PyAny>,
    kwargs: &Bound<'_, PyAny>,
    retry: Option<i64>,
) -> PyResult<()> {
    super::task::check_shape(args, kwargs)?;
    let start = out.len();
    let result = write_task(out, name, args, kwargs, retry);
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
    retry: Option<i64>,
) -> PyResult<()> {
    out.extend_from_slice(b"{\"name\": ");
    json_text::string(out, name);
    out.extend_from_slice(b", \"args\": ");
    JsonEncoder::new(out).value(args).map_err(|e| e.into_pyerr("args"))?;
    out.extend_from_slice(b", \"kwargs\": ");
    JsonEncoder::new(out)
        .value(kwargs)
        .map_err(|e| e.into_pyerr("kwargs"))?;
    if let Some(retry) = retry {
        out.extend_from_slice(b", \"retry\": ");
        json_text::int(out, retry);
    }
    out.push(b'}');
    Ok(())
}

/// Appends JSON to `out`; `depth` counts the JSON containers open, class objects included (a timedelta is two),
/// so the payload reader's depth rule (`json.rs`, `check_depth`) accepts whatever this writes.
pub struct JsonEncoder<'a> {
    out: &'a mut Vec<u8>,
    depth: usize,
}

impl<'a> JsonEncoder<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Self { out, depth: 0 }
    }

    /// Encodes one value; exact types first (the common ones), then subclasses and the class objects.
    pub fn value(&mut self, obj: &Bound<'_, PyAny>) -> EncodeResult {
        if let Ok(s) = obj.cast_exact::<PyString>() {
            self.str(s)
        } else if obj.is_exact_instance_of::<PyInt>() {
            self.int(obj)
        } else if let Ok(f) = obj.cast_exact::<PyFloat>() {
            self.float(obj.py(), f.value())
        } else if obj.is_none() {
            self.out.extend_from_slice(b"null");
            Ok(())
        } else if let Ok(b) = obj.cast_exact::<PyBool>() {
            self.out.extend_from_slice(if b.is_true() { b"true" } else { b"false" });
            Ok(())
        } else if let Ok(list) = obj.cast::<PyList>() {
            self.list(list)
        } else if let Ok(dict) = obj.cast::<PyDict>() {
            self.dict(dict)
        } else if let Ok(tuple) = obj.cast::<PyTuple>() {
            self.array(tuple.iter())
        } else {
            self.cold(obj)
        }
    }

    fn str(&mut self, s: &Bound<'_, PyString>) -> EncodeResult {
        let text = s
            .to_str()
            .map_err(|_| EncodeError::invalid("str holds a lone surrogate (not valid UTF-8)"))?;
        json_text::string(self.out, text);
        Ok(())
    }

    /// Ints of any size, in decimal; a subclass (IntEnum) as its int value, as `json.dumps` writes it.
    fn int(&mut self, obj: &Bound<'_, PyAny>) -> EncodeResult {
        if let Ok(v) = obj.extract::<i64>() {
            json_text::int(self.out, v);
        } else if let Ok(v) = obj.extract::<u64>() {
            json_text::int(self.out, v);
        } else {
            let exact = PyInt::type_object(obj.py())
                .call1((obj,))
                .and_then(|i| i.str())
                .map_err(|e| from_py(obj.py(), &e))?;
            let digits = exact.to_str().map_err(|e| from_py(obj.py(), &e))?;
            self.out.extend_from_slice(digits.as_bytes());
        }
        Ok(())
    }

    /// CPython's own `float.__repr__`, which is what `json.dumps` writes.
    ///
    /// NOTE: not Rust's shortest formatting: both find the shortest digits that read back as the same double, but
    /// when two candidates are exactly as near (`1199930164684738.25`) Rust rounds the tie up and CPython to even,
    /// and an eta member must be the same bytes as WakaQ's to dedupe. JSON mode is the migration path, not the hot
    /// one: one small Python call per float is fine.
    fn float(&mut self, py: Python<'_>, v: f64) -> EncodeResult {
        if !v.is_finite() {
            let what = if v.is_nan() {
                "nan"
            } else if v > 0.0 {
                "inf"
            } else {
                "-inf"
            };
            return Err(EncodeError::invalid(format!(
                "{what} has no JSON form (WakaQ's JSON refuses NaN and infinities; payload_format=\"msgpack\" carries them)"
            )));
        }
        let text = PyFloat::new(py, v).repr().map_err(|e| from_py(py, &e))?;
        let text = text.to_str().map_err(|e| from_py(py, &e))?;
        self.out.extend_from_slice(text.as_bytes());
        Ok(())
    }

    /// Opens `levels` JSON containers; the limit also stops containers that contain themselves.
    fn enter(&mut self, levels: usize) -> EncodeResult {
        if self.depth + levels > MAX_DEPTH {
            return Err(EncodeError::new(Fault::TooDeep));
        }
        self.depth += levels;
        Ok(())
    }

    fn list(&mut self, list: &Bound<'_, PyList>) -> EncodeResult {
        // NOTE: by index, as the msgpack encoder does: user code run meanwhile (a tzinfo) cannot break the walk
        let items = (0..list.len()).map(|i| list.get_item(i));
        self.enter(1)?;
        self.out.push(b'[');
        for (i, item) in items.enumerate() {
            if i > 0 {
                self.out.extend_from_slice(b", ");
            }
            let item = item.map_err(|e| from_py(list.py(), &e).at(format!("[{i}]")))?;
            self.value(&item).map_err(|e| e.at(format!("[{i}]")))?;
        }
        self.out.push(b']');
        self.depth -= 1;
        Ok(())
    }

    fn array<'py>(&mut self, items: impl Iterator<Item = Bound<'py, PyAny>>) -> EncodeResult {
        self.enter(1)?;
        self.out.push(b'[');
        for (i, item) in items.enumerate() {
            if i > 0 {
                self.out.extend_from_slice(b", ");
            }
            self.value(&item).map_err(|e| e.at(format!("[{i}]")))?;
        }
        self.out.push(b']');
        self.depth -= 1;
        Ok(())
    }

    /// Objects keep the dict's insertion order (as `json.dumps` without `sort_keys`).
    fn dict(&mut self, dict: &Bound<'_, PyDict>) -> EncodeResult {
        self.enter(1)?;
        self.out.push(b'{');
        let (len, mut pos, mut written) = (dict.len(), 0, 0);
        while let Some((key, value)) = next_entry(dict, &mut pos) {
            if written == len {
                break;
            }
            if written > 0 {
                self.out.extend_from_slice(b", ");
            }
            written += 1;
            self.key(&key).map_err(|e| e.in_key().at(key_segment(&key)))?;
            self.out.extend_from_slice(b": ");
            self.value(&value).map_err(|e| e.at(key_segment(&key)))?;
        }
        if written != len {
            return Err(EncodeError::invalid("dict changed size while being encoded"));
        }
        self.out.push(b'}');
        self.depth -= 1;
        Ok(())
    }

    fn key(&mut self, key: &Bound<'_, PyAny>) -> EncodeResult {
        let Ok(key) = key.cast::<PyString>() else {
            return Err(EncodeError::invalid(format!(
                "'{}' is not a str: WakaQ's JSON has only str keys (json.dumps would turn it into one); use str keys \
                 or payload_format=\"msgpack\"",
                type_name(key)
            )));
        };
        if key.to_str().is_ok_and(|k| k == CLASS_KEY) {
            return Err(EncodeError::invalid(
                "a '__class__' key: WakaQ's JSON reader would take the dict for one of its class objects",
            ));
        }
        self.str(key)
    }

    /// Rare types: WakaQ's class objects, sets, bytearray, subclasses of str/int/float.
    #[cold]
    #[inline(never)]
    fn cold(&mut self, obj: &Bound<'_, PyAny>) -> EncodeResult {
        let py = obj.py();
        if let Ok(dt) = obj.cast::<PyDateTime>() {
            self.datetime(dt)
        } else if let Ok(d) = obj.cast::<PyDate>() {
            let (year, month, day) = fields::date(d).map_err(|e| from_py(py, &e))?;
            self.class_object("date", &[("year", year), ("month", month.into()), ("day", day.into())])
        } else if let Ok(td) = obj.cast::<PyDelta>() {
            self.timedelta(td)
        } else if let Ok(b) = obj.cast::<PyBytes>() {
            self.bytes(b.as_bytes())
        } else if let Ok(b) = obj.cast::<PyByteArray>() {
            self.bytes(&b.to_vec())
        } else if obj.is_instance_of::<PySet>() || obj.is_instance_of::<PyFrozenSet>() {
            self.set(obj)
        } else if is_decimal(obj)? {
            self.decimal(obj)
        } else if let Ok(s) = obj.cast::<PyString>() {
            self.str(s)
        } else if obj.is_instance_of::<PyInt>() {
            self.int(obj)
        } else if let Ok(f) = obj.cast::<PyFloat>() {
            self.float(py, f.value())
        } else {
            Err(EncodeError::new(Fault::Unsupported(type_name(obj))))
        }
    }

    /// `{"__class__": "<class>", "<field>": <int>, ...}`.
    fn class_object(&mut self, class: &str, ints: &[(&str, i32)]) -> EncodeResult {
        self.enter(1)?;
        self.open_class(class);
        for (name, value) in ints {
            self.out.extend_from_slice(b", ");
            json_text::string(self.out, name);
            self.out.extend_from_slice(b": ");
            json_text::int(self.out, value);
        }
        self.out.push(b'}');
        self.depth -= 1;
        Ok(())
    }

    fn open_class(&mut self, class: &str) {
        self.out.extend_from_slice(b"{\"__class__\": ");
        json_text::string(self.out, class);
    }

    /// Aware datetimes converted to UTC (WakaQ keeps the fields, the task receives them naive); naive ones as they
    /// are, `fold` included.
    ///
    /// NOTE: an aware datetime whose `utcoffset()` is None is taken as naive UTC, as the msgpack codec does (WakaQ's
    /// `astimezone` would take it for the host's local time).
    fn datetime(&mut self, dt: &Bound<'_, PyDateTime>) -> EncodeResult {
        let py = dt.py();
        let utc = in_utc(dt).map_err(|e| from_py(py, &e))?;
        let dt = utc.as_ref().unwrap_or(dt);
        let (year, month, day) = fields::datetime_date(dt).map_err(|e| from_py(py, &e))?;
        let (hour, minute, second, micro) = fields::time(dt).map_err(|e| from_py(py, &e))?;
        let fold: i32 = dt
            .getattr(intern!(py, "fold"))
            .and_then(|f| f.extract())
            .map_err(|e| from_py(py, &e))?;
        let fields = [
            ("year", year),
            ("month", month.into()),
            ("day", day.into()),
            ("hour", hour.into()),
            ("minute", minute.into()),
            ("second", second.into()),
            ("microsecond", micro as i32),
            ("fold", fold),
        ];
        self.class_object("datetime", &fields)
    }

    fn timedelta(&mut self, td: &Bound<'_, PyDelta>) -> EncodeResult {
        let (days, seconds, micros) = fields::delta(td).map_err(|e| from_py(td.py(), &e))?;
        self.enter(2)?;
        self.open_class("timedelta");
        self.out.extend_from_slice(b", \"kwargs\": {\"days\": ");
        json_text::int(self.out, days);
        self.out.extend_from_slice(b", \"seconds\": ");
        json_text::int(self.out, seconds);
        self.out.extend_from_slice(b", \"microseconds\": ");
        json_text::int(self.out, micros);
        self.out.extend_from_slice(b"}}");
        self.depth -= 2;
        Ok(())
    }

    fn bytes(&mut self, data: &[u8]) -> EncodeResult {
        self.enter(1)?;
        self.open_class("bytes");
        self.out.extend_from_slice(b", \"value\": \"");
        json_text::base64(self.out, data);
        self.out.extend_from_slice(b"\"}");
        self.depth -= 1;
        Ok(())
    }

    /// `str()` is exact for every Decimal (NaN and Infinity included): `Decimal(str(d))` gives `d` back.
    fn decimal(&mut self, obj: &Bound<'_, PyAny>) -> EncodeResult {
        let text = obj.str().map_err(|e| from_py(obj.py(), &e))?;
        let text = text.to_str().map_err(|e| from_py(obj.py(), &e))?;
        self.enter(1)?;
        self.open_class("Decimal");
        self.out.extend_from_slice(b", \"value\": ");
        json_text::string(self.out, text);
        self.out.push(b'}');
        self.depth -= 1;
        Ok(())
    }

    /// Sets have no stable order (str hashes are salted per process): items encoded one by one, written sorted.
    fn set(&mut self, set: &Bound<'_, PyAny>) -> EncodeResult {
        self.enter(1)?;
        let mut items: Vec<Vec<u8>> = Vec::new();
        let iter = set.try_iter().map_err(|e| from_py(set.py(), &e))?;
        for item in iter {
            let item = item.map_err(|e| from_py(set.py(), &e))?;
            let mut buf = Vec::new();
            JsonEncoder {
                out: &mut buf,
                depth: self.depth,
            }
            .value(&item)
            .map_err(|e| e.at("[*]".into()))?;
            items.push(buf);
        }
        items.sort_unstable();
        self.out.push(b'[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.out.extend_from_slice(b", ");
            }
            self.out.extend_from_slice(item);
        }
        self.out.push(b']');
        self.depth -= 1;
        Ok(())
    }
}

/// `dt` converted to UTC when it is aware (its `utcoffset()` is not None); None when it is naive.
fn in_utc<'py>(dt: &Bound<'py, PyDateTime>) -> PyResult<Option<Bound<'py, PyDateTime>>> {
    static UTC: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let py = dt.py();
    if dt.get_tzinfo().is_none() || dt.call_method0(intern!(py, "utcoffset"))?.is_none() {
        return Ok(None);
    }
    let utc = UTC.import(py, "datetime", "timezone")?.getattr(intern!(py, "utc"))?;
    let converted = dt.call_method1(intern!(py, "astimezone"), (utc,))?;
    Ok(Some(converted.cast_into::<PyDateTime>()?))
}

fn is_decimal(obj: &Bound<'_, PyAny>) -> Result<bool, Box<EncodeError>> {
    let decimal = decimal_type(obj.py()).map_err(|e| from_py(obj.py(), &e))?;
    Ok(obj.is_instance(decimal.as_any()).unwrap_or(false))
}

/// The next (key, value) of a dict walk (`PyDict_Next`: memory-safe if user code resizes the dict meanwhile).
fn next_entry<'py>(
    dict: &Bound<'py, PyDict>,
    pos: &mut ffi::Py_ssize_t,
) -> Option<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let (mut key, mut value) = (std::ptr::null_mut(), std::ptr::null_mut());
    // SAFETY: we are attached (we hold a Bound), `dict` is a dict, and the out-pointers are valid locals.
    if unsafe { ffi::PyDict_Next(dict.as_ptr(), pos, &raw mut key, &raw mut value) } == 0 {
        return None;
    }
    // SAFETY: PyDict_Next returned non-null borrowed references to live objects; from_borrowed_ptr takes a new
    // strong reference before any Python code can run and drop the dict's own.
    unsafe {
        Some((
            Bound::from_borrowed_ptr(dict.py(), key),
            Bound::from_borrowed_ptr(dict.py(), value),
        ))
    }
}

/// `['when']` for a key, using its repr as Python would show it.
fn key_segment(key: &Bound<'_, PyAny>) -> String {
    key.repr().map_or_else(|_| "[?]".to_owned(), |r| format!("[{r}]"))
}

#[cfg(test)]
mod tests {
    use pyo3::types::PyDictMethods;

    use super::*;

    fn encoded(py: Python<'_>, code: &str) -> PyResult<String> {
        let value = py.eval(&std::ffi::CString::new(code).unwrap(), None, None)?;
        let mut out = Vec::new();
        JsonEncoder::new(&mut out)
            .value(&value)
            .map_err(|e| e.into_pyerr("args"))?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn writes_wakaqs_task_payload() {
        Python::attach(|py| {
            let args = PyTuple::new(py, [1_i64, 2]).unwrap();
            let kwargs = PyDict::new(py);
            kwargs.set_item("k", "v").unwrap();
            let mut out = b"keep".to_vec();
            encode_task_json_into(&mut out, "t", args.as_any(), kwargs.as_any(), Some(0)).unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                r#"keep{"name": "t", "args": [1, 2], "kwargs": {"k": "v"}, "retry": 0}"#
            );
            let mut out = Vec::new();
            encode_task_json_into(&mut out, "t", args.as_any(), PyDict::new(py).as_any(), None).unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                r#"{"name": "t", "args": [1, 2], "kwargs": {}}"#
            );
        });
    }

    #[test]
    fn class_objects_are_wakaqs() {
        Python::attach(|py| {
            let dt = "__import__('datetime').datetime(2024, 2, 29, 23, 59, 58, 999999)";
            assert_eq!(
                encoded(py, dt).unwrap(),
                r#"{"__class__": "datetime", "year": 2024, "month": 2, "day": 29, "hour": 23, "minute": 59, "second": 58, "microsecond": 999999, "fold": 0}"#
            );
            let td = "__import__('datetime').timedelta(days=-1, microseconds=5)";
            assert_eq!(
                encoded(py, td).unwrap(),
                r#"{"__class__": "timedelta", "kwargs": {"days": -1, "seconds": 0, "microseconds": 5}}"#
            );
            assert_eq!(
                encoded(py, "[b'hi', bytearray(b'x'), 2**70]").unwrap(),
                r#"[{"__class__": "bytes", "value": "aGk="}, {"__class__": "bytes", "value": "eA=="}, 1180591620717411303424]"#
            );
        });
    }

    #[test]
    fn refuses_what_wakaqs_json_cannot_carry() {
        Python::attach(|py| {
            let message = |code: &str| encoded(py, code).unwrap_err().to_string();
            assert!(message("[float('nan')]").starts_with("TypeError: cannot encode args[0]: nan has no JSON form"));
            assert!(message("{1: 2}").starts_with("TypeError: cannot encode a dict key in args[1]: 'int' is not a str"));
            assert!(message("[{'__class__': 'x'}]").contains("args[0]['__class__']: a '__class__' key"));
            assert_eq!(
                message("[object()]"),
                "TypeError: cannot encode args[0]: unsupported type 'object'"
            );
        });
    }
}
