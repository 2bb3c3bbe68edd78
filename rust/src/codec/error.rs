//! Encode errors carry the path to the offending value, built while the recursion unwinds, so the
//! happy path pays nothing for it.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

use super::write::TooLong;
use super::MAX_DEPTH;

#[derive(Debug)]
pub enum Fault {
    /// A type the codec refuses (its Python type name).
    Unsupported(String),
    TooDeep,
    /// A supported type holding a value msgpack or Python cannot carry (lone surrogate, huge length...).
    Invalid(String),
}

/// Why a value could not be encoded, and where (segments innermost first, reversed when shown).
#[derive(Debug)]
pub struct EncodeError {
    fault: Fault,
    in_key: bool,
    path: Vec<String>,
}

pub type EncodeResult = Result<(), Box<EncodeError>>;

#[allow(
    clippy::unnecessary_box_returns,
    reason = "boxed so the hot path's Result stays one word wide"
)]
impl EncodeError {
    pub fn new(fault: Fault) -> Box<Self> {
        Box::new(Self {
            fault,
            in_key: false,
            path: Vec::new(),
        })
    }

    pub fn invalid(what: impl Into<String>) -> Box<Self> {
        Self::new(Fault::Invalid(what.into()))
    }

    /// Adds the segment that leads into the failing child (`[3]`, `['when']`).
    pub fn at(mut self: Box<Self>, segment: String) -> Box<Self> {
        self.path.push(segment);
        self
    }

    /// Marks the failing value as a dict key rather than a value.
    pub fn in_key(mut self: Box<Self>) -> Box<Self> {
        self.in_key = true;
        self
    }

    /// The full path under `root` (`args[1]['when'][0]`).
    pub fn path(&self, root: &str) -> String {
        let mut shown: Vec<&str> = self.path.iter().rev().map(String::as_str).collect();
        if matches!(self.fault, Fault::TooDeep) {
            // NOTE: a recursive container would list 128 segments; the first one locates it well enough.
            shown.truncate(1);
        }
        format!("{root}{}", shown.concat())
    }

    /// The Python exception: always `TypeError`, since the arguments are what cannot be sent.
    pub fn into_pyerr(self, root: &str) -> PyErr {
        let path = self.path(root);
        let place = if self.in_key {
            format!("a dict key in {path}")
        } else {
            path
        };
        let why = match self.fault {
            Fault::Unsupported(type_name) => format!("unsupported type '{type_name}'"),
            Fault::TooDeep => format!("nesting deeper than {MAX_DEPTH} (does a container contain itself?)"),
            Fault::Invalid(why) => why,
        };
        PyTypeError::new_err(format!("cannot encode {place}: {why}"))
    }
}

impl From<TooLong> for Box<EncodeError> {
    fn from(e: TooLong) -> Self {
        EncodeError::invalid(format!("length {} exceeds msgpack's 2^32-1 limit", e.0))
    }
}

#[allow(
    clippy::unnecessary_box_returns,
    reason = "boxed so the hot path's Result stays one word wide"
)]
/// A Python error raised while reading a value (e.g. a failing `utcoffset()`), kept as its message.
pub fn from_py(py: Python<'_>, err: &PyErr) -> Box<EncodeError> {
    EncodeError::invalid(format!(
        "{}: {}",
        err.get_type(py)
            .name()
            .map_or_else(|_| "Error".into(), |n| n.to_string()),
        err.value(py)
    ))
}
