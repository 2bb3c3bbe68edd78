//! What a script needs to settle a task's opt-in state (its result record, its uniqueness lock) inside the script
//! that moves the task (lib.lua `settle`): read from the payload's meta by the one meta parser (codec/meta.rs).

use redis::ScriptInvocation;

use super::keys::Keys;
use crate::codec::meta::{self, Meta};

/// The error type of a task whose worker died on it (as Celery names it).
pub const WORKER_LOST: &str = "WorkerLost";
/// The error type of a task killed past its hard timeout.
pub const HARD_TIMEOUT: &str = "HardTimeout";

/// The keys and values lib.lua's `settlement` reads (5 ARGV values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    result: String,
    ready: String,
    ttl_ms: i64,
    lock: String,
    id: String,
}

impl Settlement {
    /// None for a task with nothing to settle (no results, no lock).
    pub fn of(keys: &Keys, meta: &Meta) -> Option<Self> {
        let id = meta.id.as_ref().filter(|_| meta.tracked())?;
        let (result, ready) = match meta.results {
            Some(_) => (keys.result(id), keys.result_ready(id)),
            None => (String::new(), String::new()),
        };
        Some(Self {
            result,
            ready,
            ttl_ms: meta.results.unwrap_or(1).saturating_mul(1000),
            lock: meta.unique.clone().unwrap_or_default(),
            id: id.clone(),
        })
    }

    /// The settlement of a payload; None when it has nothing to settle or its meta is malformed (a malformed meta
    /// names no record nor lock that could be trusted).
    pub fn of_payload(keys: &Keys, payload: &[u8]) -> Option<Self> {
        let meta = meta::check(payload, &keys.unique("")).ok()??;
        Self::of(keys, &meta)
    }

    /// Whether it writes a result record ("running" is worth a round trip only then).
    pub fn stores_results(&self) -> bool {
        !self.result.is_empty()
    }

    /// Append the 5 values to a script invocation; `None` appends the "nothing to settle" values.
    pub fn push_args(this: Option<&Self>, inv: &mut ScriptInvocation<'_>) {
        match this {
            Some(s) => inv.arg(&s.result).arg(&s.ready).arg(s.ttl_ms).arg(&s.lock).arg(&s.id),
            None => inv.arg("").arg("").arg(0).arg("").arg(""),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_and_lock() {
        let keys = Keys::new("wakaq", false);
        let meta = Meta {
            id: Some("i".into()),
            results: Some(60),
            unique: Some("wakaq:unique:k".into()),
            wf: None,
            ck: None,
        };
        let s = Settlement::of(&keys, &meta).expect("tracked");
        assert_eq!(s.result, "wakaq:result:i");
        assert_eq!(s.ttl_ms, 60_000);
        assert!(s.stores_results());
        let plain = Meta {
            id: Some("i".into()),
            ..Meta::default()
        };
        assert_eq!(Settlement::of(&keys, &plain), None, "an id alone settles nothing");
    }
}
