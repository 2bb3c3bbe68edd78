//! Redis side of wakaq: connections, key names, Lua scripts and the delivery protocol.

use pyo3::prelude::*;

pub mod parent;
pub mod pubsub;

pub fn init_pymodule(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
