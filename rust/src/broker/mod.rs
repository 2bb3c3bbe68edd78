//! Redis side of wakaq: connections, key names, Lua scripts and the delivery protocol
//! (docs/internals.md describes the protocol; `lua/lib.lua` lists every key).

use pyo3::prelude::*;
use pyo3::types::PyDict;

pub mod admin;
pub mod claimed;
pub mod conc;
pub mod connect;
pub mod consumer;
// NOTE: the connection modules under their old paths (`broker::conn`, ...), for the code that uses them
pub use connect::{cluster, conn, sentinel, tls};
pub mod coordinator;
pub mod durable;
pub mod element;
pub mod finish;
pub mod give_back;
pub mod keys;
pub mod parent;
pub mod parked;
pub mod producer;
pub mod pubsub;
pub mod purge;
pub mod scripts;
pub mod seq_map;
pub mod settle;
pub mod shake;
pub mod workflow;

/// The text of one of the broker's Lua scripts as Redis gets it, by name (`"finish"`), None for an unknown name:
/// tests and tools that load a script or compare its SHA with the worker's.
#[pyfunction]
fn script_text(name: &str) -> Option<String> {
    scripts::text(name)
}

/// Every key and channel name of an app (`cluster`: the Redis Cluster layout), as templates with `{queue}`,
/// `{daemon}`, `{task}`, `{id}`, `{key}`, `{schedule}`, `{slot}` and `{day}` placeholders after the namespace (`namespace`).
/// The one definition of the layout: python/wakaq/keys.py fills these templates, it spells no key itself.
#[pyfunction]
#[pyo3(signature = (prefix, cluster = false))]
fn key_layout<'py>(py: Python<'py>, prefix: &str, cluster: bool) -> PyResult<Bound<'py, PyDict>> {
    let k = keys::Keys::new(prefix, cluster);
    let d = PyDict::new(py);
    d.set_item("namespace", k.namespace())?;
    d.set_item("queue", k.queue("{queue}"))?;
    d.set_item("eta", k.eta("{queue}"))?;
    d.set_item("bell", k.bell("{queue}"))?;
    d.set_item("failed", k.failed("{queue}"))?;
    d.set_item(
        "broadcast_failed",
        k.failed(&keys::Keys::broadcast_queue_name("{daemon}")),
    )?;
    d.set_item(
        "broadcast_queue",
        k.queue(&keys::Keys::broadcast_queue_name("{daemon}")),
    )?;
    d.set_item("inflight", k.inflight("{daemon}"))?;
    d.set_item("heartbeat", k.heartbeat("{daemon}"))?;
    d.set_item("daemons", k.daemons())?;
    d.set_item("paused", k.paused())?;
    d.set_item("daemon_info", k.daemon_info("{daemon}"))?;
    d.set_item("stats", k.stats("{daemon}"))?;
    d.set_item("stats_retired", k.stats_retired())?;
    d.set_item("broadcast_channel", k.broadcast_channel())?;
    d.set_item("eta_channel", k.eta_channel())?;
    d.set_item("control_channel", k.control_channel())?;
    d.set_item("rate_queue", k.rate_queue("{queue}"))?;
    d.set_item("rate_task", k.rate_task("{task}"))?;
    d.set_item("parked", k.parked("{queue}", "{task}"))?;
    d.set_item("parked_registry", k.parked_registry())?;
    d.set_item("parked_member", keys::Keys::parked_member("{queue}", "{task}"))?;
    d.set_item("conc", k.conc("{task}", "{key}"))?;
    d.set_item("conc_wait", k.conc_wait("{task}", "{key}"))?;
    d.set_item("conc_registry", k.conc_registry())?;
    d.set_item("result", k.result("{id}"))?;
    d.set_item("result_ready", k.result_ready("{id}"))?;
    d.set_item("unique", k.unique("{key}"))?;
    d.set_item("workflow", k.workflow("{id}"))?;
    d.set_item("workflow_results", k.workflow_results("{id}"))?;
    d.set_item("workflow_ready", k.workflow_ready("{id}"))?;
    d.set_item("progress", k.progress("{id}"))?;
    d.set_item("debounce", k.debounce("{key}"))?;
    d.set_item("workflows_recent", k.workflows_recent())?;
    d.set_item("schedule_slot", k.schedule_slot("{schedule}", "{slot}"))?;
    d.set_item("history", k.history("{day}"))?;
    Ok(d)
}

/// (delivery count, payload) of a queue element.
#[pyfunction]
fn split_element(element: &[u8]) -> (u8, &[u8]) {
    element::split(element)
}

pub fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<producer::Broker>()?;
    m.add_class::<consumer::Consumer>()?;
    m.add_class::<claimed::ClaimedTask>()?;
    m.add_function(wrap_pyfunction!(key_layout, m)?)?;
    m.add_function(wrap_pyfunction!(script_text, m)?)?;
    m.add_function(wrap_pyfunction!(split_element, m)?)?;
    Ok(())
}
