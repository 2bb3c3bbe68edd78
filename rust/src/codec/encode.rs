//! Python objects -> msgpack, walking the objects directly (no intermediate value tree).
//!
//! Dispatch is on exact types in the order they occur in task arguments (str, int, float, None,
//! bool, list, dict, tuple, bytes); everything else, subclasses included, goes to a cold path.
//! Exact checks are pointer comparisons, and they keep `bool` out of the `int` branch.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PySet, PyString, PyTuple,
};

use super::error::{from_py, EncodeError, EncodeResult, Fault};
use super::{ext, write, MAX_DEPTH};

/// Appends msgpack to `out`; `depth` counts the containers currently open.
pub struct Encoder<'a> {
    pub out: &'a mut Vec<u8>,
    depth: usize,
}

impl<'a> Encoder<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Self {
        Self { out, depth: 0 }
    }

    /// Encodes one value of any supported type.
    pub fn value(&mut self, obj: &Bound<'_, PyAny>) -> EncodeResult {
        if let Ok(s) = obj.cast_exact::<PyString>() {
            self.str(s)
        } else if obj.is_exact_instance_of::<PyInt>() {
            self.int(obj)
        } else if let Ok(f) = obj.cast_exact::<PyFloat>() {
            write::float(self.out, f.value());
            Ok(())
        } else if obj.is_none() {
            write::nil(self.out);
            Ok(())
        } else if let Ok(b) = obj.cast_exact::<PyBool>() {
            write::boolean(self.out, b.is_true());
            Ok(())
        } else if let Ok(list) = obj.cast_exact::<PyList>() {
            self.list(list)
        } else if let Ok(dict) = obj.cast_exact::<PyDict>() {
            self.dict(dict)
        } else if let Ok(tuple) = obj.cast_exact::<PyTuple>() {
            self.tuple(tuple)
        } else if let Ok(b) = obj.cast_exact::<PyBytes>() {
            Ok(write::bin(self.out, b.as_bytes())?)
        } else {
            self.cold(obj)
        }
    }

    fn str(&mut self, s: &Bound<'_, PyString>) -> EncodeResult {
        // to_str borrows CPython's cached UTF-8; it fails only for lone surrogates.
        let text = s
            .to_str()
            .map_err(|_| EncodeError::invalid("str holds a lone surrogate (not valid UTF-8)"))?;
        Ok(write::str(self.out, text.as_bytes())?)
    }

    fn int(&mut self, obj: &Bound<'_, PyAny>) -> EncodeResult {
        if let Ok(v) = obj.extract::<i64>() {
            write::int(self.out, v);
        } else if let Ok(v) = obj.extract::<u64>() {
            write::uint(self.out, v);
        } else {
            ext::write_big_int(self.out, obj)?;
        }
        Ok(())
    }

    /// Opens a container; the limit also stops containers that contain themselves.
    fn enter(&mut self) -> EncodeResult {
        if self.depth >= MAX_DEPTH {
            return Err(EncodeError::new(Fault::TooDeep));
        }
        self.depth += 1;
        Ok(())
    }

    fn list(&mut self, list: &Bound<'_, PyList>) -> EncodeResult {
        self.enter()?;
        let len = list.len();
        write::array_len(self.out, len)?;
        // NOTE: index up to the length written in the header: if the list shrinks meanwhile (user code in
        // a tzinfo can run), get_item fails cleanly instead of leaving the header wrong.
        for i in 0..len {
            let item = list
                .get_item(i)
                .map_err(|e| from_py(list.py(), &e).at(format!("[{i}]")))?;
            self.value(&item).map_err(|e| e.at(format!("[{i}]")))?;
        }
        self.depth -= 1;
        Ok(())
    }

    fn tuple(&mut self, tuple: &Bound<'_, PyTuple>) -> EncodeResult {
        self.enter()?;
        write::array_len(self.out, tuple.len())?;
        for (i, item) in tuple.iter().enumerate() {
            self.value(&item).map_err(|e| e.at(format!("[{i}]")))?;
        }
        self.depth -= 1;
        Ok(())
    }

    /// Maps keep the dict's insertion order, which makes the output deterministic.
    fn dict(&mut self, dict: &Bound<'_, PyDict>) -> EncodeResult {
        self.enter()?;
        let len = dict.len();
        write::map_len(self.out, len)?;
        let (mut pos, mut written) = (0, 0);
        while let Some((key, value)) = next_entry(dict, &mut pos) {
            written += 1;
            if written > len {
                break;
            }
            self.value(&key).map_err(|e| e.in_key().at(key_segment(&key)))?;
            self.value(&value).map_err(|e| e.at(key_segment(&key)))?;
        }
        if written != len {
            // User code (a tzinfo's utcoffset) resized the dict: the header we wrote would be a lie.
            return Err(EncodeError::invalid("dict changed size while being encoded"));
        }
        self.depth -= 1;
        Ok(())
    }

    /// Rare types: datetimes, Decimal, sets, bytearray, subclasses of the hot types.
    #[cold]
    #[inline(never)]
    fn cold(&mut self, obj: &Bound<'_, PyAny>) -> EncodeResult {
        if ext::write_ext(self.out, obj)? {
            Ok(())
        } else if obj.is_instance_of::<PySet>() || obj.is_instance_of::<PyFrozenSet>() {
            self.set(obj)
        } else if let Ok(b) = obj.cast::<PyByteArray>() {
            Ok(write::bin(self.out, &b.to_vec())?)
        } else {
            self.subclass(obj)
        }
    }

    /// Subclasses (IntEnum, StrEnum, OrderedDict, namedtuple...) are encoded as their base type.
    fn subclass(&mut self, obj: &Bound<'_, PyAny>) -> EncodeResult {
        // NOTE: bool cannot be subclassed and was caught by its exact check, so `int` here is a real int.
        if let Ok(s) = obj.cast::<PyString>() {
            self.str(s)
        } else if obj.is_instance_of::<PyInt>() {
            self.int(obj)
        } else if let Ok(f) = obj.cast::<PyFloat>() {
            write::float(self.out, f.value());
            Ok(())
        } else if let Ok(list) = obj.cast::<PyList>() {
            self.list(list)
        } else if let Ok(dict) = obj.cast::<PyDict>() {
            self.dict(dict)
        } else if let Ok(tuple) = obj.cast::<PyTuple>() {
            self.tuple(tuple)
        } else if let Ok(b) = obj.cast::<PyBytes>() {
            Ok(write::bin(self.out, b.as_bytes())?)
        } else {
            Err(EncodeError::new(Fault::Unsupported(type_name(obj))))
        }
    }

    /// Sets have no stable order (string hashes are salted per process), so their items are encoded
    /// one by one and written sorted by their bytes: the same set gives the same bytes everywhere.
    fn set(&mut self, set: &Bound<'_, PyAny>) -> EncodeResult {
        self.enter()?;
        let mut items: Vec<Vec<u8>> = Vec::new();
        let iter = set.try_iter().map_err(|e| from_py(set.py(), &e))?;
        for item in iter {
            let item = item.map_err(|e| from_py(set.py(), &e))?;
            let mut buf = Vec::new();
            Encoder {
                out: &mut buf,
                depth: self.depth,
            }
            .value(&item)
            .map_err(|e| e.at("[*]".into()))?;
            items.push(buf);
        }
        items.sort_unstable();
        write::array_len(self.out, items.len())?;
        for item in &items {
            self.out.extend_from_slice(item);
        }
        self.depth -= 1;
        Ok(())
    }
}

/// The next (key, value) of a dict walk, as owned references.
///
/// NOTE: not PyO3's dict iterator: it panics when the dict changes size mid-walk, which user code run
/// during encoding (a tzinfo) could cause. `PyDict_Next` stays memory-safe under mutation and the caller
/// counts entries instead.
fn next_entry<'py>(
    dict: &Bound<'py, PyDict>,
    pos: &mut ffi::Py_ssize_t,
) -> Option<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let (mut key, mut value) = (std::ptr::null_mut(), std::ptr::null_mut());
    // SAFETY: we are attached (we hold a Bound), `dict` is a dict, and the out-pointers are valid locals.
    // PyDict_Next only reads the table within its current bounds, even if the dict was resized.
    if unsafe { ffi::PyDict_Next(dict.as_ptr(), pos, &raw mut key, &raw mut value) } == 0 {
        return None;
    }
    // SAFETY: PyDict_Next returned non-null borrowed references to live objects; from_borrowed_ptr takes
    // a new strong reference before any Python code can run and drop the dict's own.
    unsafe {
        Some((
            Bound::from_borrowed_ptr(dict.py(), key),
            Bound::from_borrowed_ptr(dict.py(), value),
        ))
    }
}

/// The Python type name, for error messages.
pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map_or_else(|_| "?".to_owned(), |n| n.to_string())
}

/// `['when']` for a key, using its repr as Python would show it.
fn key_segment(key: &Bound<'_, PyAny>) -> String {
    key.repr().map_or_else(|_| "[?]".to_owned(), |r| format!("[{r}]"))
}
