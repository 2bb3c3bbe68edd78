//! `ClaimedTask`: one task a child claimed, as it crosses into Python: its seq, queue, delivery count and payload
//! bytes, held in Rust. Python decodes it once (`decode`, which marks the child's slot first) and hands the object
//! back to the Consumer to settle it; a retry's payload is rewritten from the bytes held here (codec/retried.rs),
//! so the payload never goes back to Rust from Python.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use super::element;
use crate::codec::{decode_task_meta_object, PyTaskMeta};
use crate::supervisor::slots;

#[pyclass(frozen, module = "wakaq._wakaq")]
pub struct ClaimedTask {
    seq: u64,
    index: usize,
    /// The queue it settles into: the queue's name, "broadcast" for this daemon's broadcasts (index 0).
    queue: Py<PyString>,
    deliveries: u8,
    payload: Vec<u8>,
}

impl ClaimedTask {
    /// A claimed queue element (a payload, or a redelivered one carrying its delivery count).
    pub fn new(seq: u64, index: usize, queue: Py<PyString>, mut element: Vec<u8>) -> Self {
        let (deliveries, payload_len) = {
            let (count, payload) = element::split(&element);
            (count, payload.len())
        };
        // NOTE: a redelivered element carries a 2-byte prefix; dropped in place, no copy of a plain one
        let prefix = element.len() - payload_len;
        if prefix > 0 {
            element.drain(..prefix);
        }
        Self {
            seq,
            index,
            queue,
            deliveries,
            payload: element,
        }
    }

    pub fn seq_(&self) -> u64 {
        self.seq
    }

    pub fn payload_bytes(&self) -> &[u8] {
        &self.payload
    }

    /// The queue's name as the settling scripts take it.
    pub fn queue_str<'a>(&'a self, py: Python<'a>) -> PyResult<&'a str> {
        self.queue.bind(py).to_str()
    }
}

#[pymethods]
impl ClaimedTask {
    /// This child's sequence number of the task (its in-flight field is `<pid>:<seq>`).
    #[getter]
    fn seq(&self) -> u64 {
        self.seq
    }

    /// Index of its queue in `Consumer.queue_names` (0: this daemon's broadcasts).
    #[getter]
    fn index(&self) -> usize {
        self.index
    }

    /// Its queue's name ("broadcast" for a broadcast relayed by this daemon's parent).
    #[getter]
    fn queue(&self, py: Python<'_>) -> Py<PyString> {
        self.queue.clone_ref(py)
    }

    /// `(seq, index, queue)` in one call: what the child reads of every task (three getters cost three calls).
    fn head(&self, py: Python<'_>) -> (u64, usize, Py<PyString>) {
        (self.seq, self.index, self.queue.clone_ref(py))
    }

    /// Interrupted deliveries before this one (0 on a first delivery).
    #[getter]
    fn deliveries(&self) -> u8 {
        self.deliveries
    }

    /// The payload's bytes (a copy; the child itself never needs them).
    #[getter]
    fn payload<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.payload)
    }

    /// Decode the payload: `(name, args, kwargs, retry, meta or None)`, marking this child's slot first
    /// (`Slot::task_handling`): from here the parent counts this task's delivery if the child dies, so a task that
    /// kills every child before it starts is dead-listed too. The mark stays until the next task's, or until a
    /// sync task finishes. PayloadError for bytes that are not a task.
    fn decode<'py>(&self, py: Python<'py>) -> PyResult<PyTaskMeta<'py>> {
        slots::with_current(|s| s.task_handling(self.seq));
        decode_task_meta_object(py, &self.payload)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let queue = self.queue.bind(py).to_string();
        format!(
            "ClaimedTask(seq={}, queue={queue:?}, deliveries={}, {} bytes)",
            self.seq,
            self.deliveries,
            self.payload.len()
        )
    }
}
