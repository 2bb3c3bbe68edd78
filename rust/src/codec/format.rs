//! The payload format a producer writes: msgpack (ours, the default) or WakaQ 4.0.4's JSON
//! (`WakaQ(payload_format="json")`, for a fleet still running WakaQ's workers). Workers read both either way.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyDictMethods};

use super::json_encode::encode_task_json_into;
use super::task::{encode_task_meta_into, meta_dict};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadFormat {
    Msgpack,
    Json,
}

impl PayloadFormat {
    pub fn parse(name: &str) -> PyResult<Self> {
        match name {
            "msgpack" => Ok(Self::Msgpack),
            "json" => Ok(Self::Json),
            other => Err(PyValueError::new_err(format!(
                "payload_format must be \"msgpack\" or \"json\", got {other:?}"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Msgpack => "msgpack",
            Self::Json => "json",
        }
    }

    /// Appends a task's payload to `out`. `retry`: None for an eta task or a broadcast, which WakaQ writes without
    /// one (msgpack writes 0 there). JSON has no `meta`: a payload that needs one is a `TypeError` naming its keys.
    #[allow(clippy::too_many_arguments)]
    pub fn encode_into(
        self,
        py: Python<'_>,
        out: &mut Vec<u8>,
        name: &str,
        args: &Bound<'_, PyAny>,
        kwargs: &Bound<'_, PyAny>,
        retry: Option<i64>,
        meta: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        match self {
            Self::Msgpack => encode_task_meta_into(py, out, name, args, kwargs, retry.unwrap_or(0), meta),
            Self::Json => match meta_dict(meta)? {
                Some(meta) => Err(no_meta_in_json(meta)),
                None => encode_task_json_into(out, name, args, kwargs, retry),
            },
        }
    }
}

/// NOTE: the Python side refuses the features that need meta earlier, naming them (wakaq.formats); this is the
/// backstop for a caller that gets past it.
fn no_meta_in_json(meta: &Bound<'_, PyDict>) -> PyErr {
    let keys: Vec<String> = meta.keys().iter().map(|k| k.to_string()).collect();
    PyTypeError::new_err(format!(
        "payload_format=\"json\" (WakaQ's payloads) cannot carry meta ({}): results, unique tasks and retries with \
         errors need payload_format=\"msgpack\"",
        keys.join(", ")
    ))
}
