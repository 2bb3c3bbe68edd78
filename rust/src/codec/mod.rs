use pyo3::prelude::*;

pub fn init_pymodule(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}

/// Placeholder until the codec lands (see branch `codec`).
pub fn encode_task_into(
    _py: Python<'_>,
    _out: &mut Vec<u8>,
    _name: &str,
    _args: &Bound<'_, PyAny>,
    _kwargs: &Bound<'_, PyAny>,
    _retry: i64,
) -> PyResult<()> {
    Err(pyo3::exceptions::PyNotImplementedError::new_err("codec not built yet"))
}
