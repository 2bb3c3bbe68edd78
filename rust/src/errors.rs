//! Python exceptions defined in `wakaq/exceptions.py`, looked up once.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

fn exception_type<'py>(py: Python<'py>, cell: &'static PyOnceLock<Py<PyType>>, name: &str) -> Bound<'py, PyType> {
    cell.get_or_init(py, || {
        py.import("wakaq.exceptions")
            .and_then(|m| m.getattr(name))
            .and_then(|t| t.cast_into::<PyType>().map_err(PyErr::from))
            .map_or_else(
                |_| py.get_type::<pyo3::exceptions::PyValueError>().unbind(),
                Bound::unbind,
            )
    })
    .bind(py)
    .clone()
}

/// `wakaq.exceptions.PayloadError` (a `ValueError`): bytes that are not a valid payload.
pub fn payload_error(py: Python<'_>, msg: String) -> PyErr {
    static CELL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    PyErr::from_type(exception_type(py, &CELL, "PayloadError"), msg)
}

/// `wakaq.exceptions.DurabilityError` (a `BrokerError`): fewer replicas than asked confirmed a push in time.
pub fn durability_error(py: Python<'_>, msg: String, confirmed: i64, wanted: u32, timeout: f64) -> PyErr {
    static CELL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    PyErr::from_type(
        exception_type(py, &CELL, "DurabilityError"),
        (msg, confirmed, wanted, timeout),
    )
}

/// `wakaq.exceptions.BrokerError` (a `ConnectionError`): Redis unreachable, timed out or refused a command.
pub fn broker_error(py: Python<'_>, msg: String) -> PyErr {
    static CELL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    PyErr::from_type(exception_type(py, &CELL, "BrokerError"), msg)
}
