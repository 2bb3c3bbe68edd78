//! msgpack -> Python objects, from untrusted bytes: every read is bounds-checked by `Reader`,
//! nesting is limited, and no allocation is sized by a declared length alone.

use pyo3::exceptions::PyUnicodeDecodeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyList, PyString};
use pyo3::IntoPyObjectExt;

use super::ext::read_ext;
use super::read::{DecodeError, Reader, Token};
use super::MAX_DEPTH;
use crate::errors::payload_error;

/// Array slots reserved before any item is read; more come as items do.
///
/// NOTE: a declared length is not trusted beyond this: with `min(declared, bytes left)` instead, each of up
/// to `MAX_DEPTH` nested headers could reserve a slot per byte left, O(depth * len) for one input.
const PREALLOCATE_MAX: usize = 16;

/// A decode failure: bad bytes (shown to users as `PayloadError`), or a Python error while building
/// objects (MemoryError and the like), passed through unchanged.
#[derive(Debug)]
pub enum DecodeFail {
    Bad(DecodeError),
    Py(PyErr),
}

impl From<DecodeError> for DecodeFail {
    fn from(e: DecodeError) -> Self {
        Self::Bad(e)
    }
}

impl From<PyErr> for DecodeFail {
    fn from(e: PyErr) -> Self {
        Self::Py(e)
    }
}

impl DecodeFail {
    pub fn into_pyerr(self, py: Python<'_>) -> PyErr {
        match self {
            Self::Bad(e) => payload_error(py, e.to_string()),
            Self::Py(e) => e,
        }
    }
}

pub type Decoded<'py> = Result<Bound<'py, PyAny>, DecodeFail>;

/// Builds Python objects from a `Reader`; `depth` counts the containers currently open.
pub struct Decoder<'py, 'a> {
    py: Python<'py>,
    pub reader: Reader<'a>,
    depth: usize,
}

impl<'py, 'a> Decoder<'py, 'a> {
    pub fn new(py: Python<'py>, data: &'a [u8]) -> Self {
        Self {
            py,
            reader: Reader::new(data),
            depth: 0,
        }
    }

    pub fn py(&self) -> Python<'py> {
        self.py
    }

    /// Reads and builds the next value.
    pub fn value(&mut self) -> Decoded<'py> {
        let at = self.reader.pos();
        let token = self.reader.token()?;
        self.build(token, at)
    }

    /// Builds the value that starts with `token` (read at offset `at`).
    pub fn build(&mut self, token: Token<'_>, at: usize) -> Decoded<'py> {
        let py = self.py;
        Ok(match token {
            Token::Nil => py.None().into_bound(py),
            Token::Bool(b) => PyBool::new(py, b).to_owned().into_any(),
            Token::Int(v) => v.into_bound_py_any(py)?,
            Token::UInt(v) => v.into_bound_py_any(py)?,
            Token::Float(v) => PyFloat::new(py, v).into_any(),
            Token::Str(bytes) => str_value(py, bytes, at)?.into_any(),
            Token::Bin(bytes) => PyBytes::new(py, bytes).into_any(),
            Token::Array(n) => self.array(n)?.into_any(),
            Token::Map(n) => self.map(n)?.into_any(),
            Token::Ext(code, data) => read_ext(py, code, data, at)?,
        })
    }

    fn enter(&mut self) -> Result<(), DecodeError> {
        if self.depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        self.depth += 1;
        Ok(())
    }

    /// The items of an array whose header declared `n` of them.
    pub fn array(&mut self, n: u32) -> Result<Bound<'py, PyList>, DecodeFail> {
        self.enter()?;
        let mut items = Vec::with_capacity((n as usize).min(PREALLOCATE_MAX));
        for _ in 0..n {
            items.push(self.value()?);
        }
        self.depth -= 1;
        Ok(PyList::new(self.py, items)?)
    }

    /// The entries of a map whose header declared `n` of them. Keys may be any hashable value.
    pub fn map(&mut self, n: u32) -> Result<Bound<'py, PyDict>, DecodeFail> {
        self.enter()?;
        let dict = PyDict::new(self.py);
        for _ in 0..n {
            let at = self.reader.pos();
            let key = self.value()?;
            let value = self.value()?;
            dict.set_item(&key, value).map_err(|e| DecodeError::BadValue {
                what: format!("unusable map key ({e})"),
                at,
            })?;
        }
        self.depth -= 1;
        Ok(dict)
    }
}

/// A msgpack str: must be valid UTF-8. CPython's decoder validates and builds in one pass.
pub fn str_value<'py>(py: Python<'py>, bytes: &[u8], at: usize) -> Result<Bound<'py, PyString>, DecodeFail> {
    PyString::from_bytes(py, bytes).map_err(|e| {
        if e.is_instance_of::<PyUnicodeDecodeError>(py) {
            DecodeFail::Bad(DecodeError::BadUtf8 { at })
        } else {
            DecodeFail::Py(e)
        }
    })
}

/// Decodes exactly one value from `data` (trailing bytes are an error).
pub fn unpack<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let mut decoder = Decoder::new(py, data);
    let value = decoder.value().map_err(|e| e.into_pyerr(py))?;
    decoder.reader.finish().map_err(|e| payload_error(py, e.to_string()))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::read::tests::{rich_payload, XorShift};
    use crate::codec::task::decode_task_bytes;

    #[test]
    fn every_truncation_of_a_rich_payload_is_an_error() {
        Python::attach(|py| {
            let data = rich_payload();
            assert!(unpack(py, &data).is_ok());
            for cut in 0..data.len() {
                assert!(unpack(py, &data[..cut]).is_err(), "cut at {cut}");
                assert!(decode_task_bytes(py, &data[..cut]).is_err(), "cut at {cut}");
            }
        });
    }

    #[test]
    fn random_bytes_are_errors_or_values_never_panics() {
        Python::attach(|py| {
            let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
            for round in 0..4000 {
                let len = (rng.next_u64() % 48) as usize;
                let mut bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
                if round % 2 == 0 && !bytes.is_empty() {
                    bytes[0] = 0x84; // a map header, so decode_task gets past the first check
                }
                let _ = unpack(py, &bytes);
                let _ = decode_task_bytes(py, &bytes);
            }
        });
    }

    #[test]
    fn deep_nesting_and_huge_lengths_are_errors() {
        Python::attach(|py| {
            let err = unpack(py, &vec![0x91; 100_000]).unwrap_err();
            assert!(err.to_string().contains("nesting deeper than 128"), "{err}");
            let err = unpack(py, &[0xdd, 0xff, 0xff, 0xff, 0xff, 0x01]).unwrap_err();
            assert!(
                err.to_string()
                    .contains("truncated payload: expected 1 bytes at offset 6"),
                "{err}"
            );
            let err = unpack(py, &[0xdf, 0xff, 0xff, 0xff, 0xff]).unwrap_err();
            assert!(err.to_string().contains("truncated payload"), "{err}");
        });
    }

    #[test]
    fn ext_errors_name_the_problem() {
        Python::attach(|py| {
            let err = unpack(py, &[0xd4, 0x09, 0x00]).unwrap_err();
            assert!(err.to_string().contains("unknown ext type 9 at offset 0"), "{err}");
            let err = unpack(py, &[0xd6, 0x01, 0x07, 0xe8, 13, 1]).unwrap_err();
            assert!(err.to_string().contains("invalid date"), "{err}");
            let err = unpack(py, &[0xc7, 2, 0x04, b'1', b'x']).unwrap_err();
            assert!(
                err.to_string().contains("big int ext is not a decimal integer"),
                "{err}"
            );
        });
    }
}
