//! Native core of wakaq: the payload codec, the Redis broker and the worker supervisor.
//! This file is glue only: each module registers its own Python names.

use pyo3::prelude::*;

pub mod broker;
pub mod codec;
pub mod errors;
pub mod supervisor;

#[pymodule(gil_used = true)]
fn _wakaq(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    codec::init_pymodule(m)?;
    broker::init_pymodule(m)?;
    supervisor::init_pymodule(m)?;
    Ok(())
}
