//! One finish.lua call: settle a claimed task (ack with its result, fail, retry, retry later) together with its
//! result record and uniqueness lock. Shared by the child's Consumer and the parent (a task killed past its hard
//! timeout), so both settle the same way.

use redis::{ConnectionLike, RedisResult};

use super::give_back::FAILED_KEEP;
use super::keys::Keys;
use super::scripts;
use super::settle::Settlement;

/// How the task ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode<'a> {
    /// Succeeded: its in-flight entry goes (and its record says "done").
    Done,
    /// Recorded failed with (reason, traceback).
    Fail(&'a str, &'a str),
    /// Back at the end of its queue as this payload.
    Retry(&'a [u8]),
    /// Into its queue's eta set as this payload, due this many seconds from now on Redis's clock.
    Later(&'a [u8], f64),
}

/// One task of `inflight` (field `<prefix><seq>`) from `queue`, and what its result record gets.
pub struct Finish<'a> {
    pub inflight: &'a str,
    pub field_prefix: &'a str,
    pub seq: u64,
    pub queue: &'a str,
    pub worker: &'a str,
    pub settlement: Option<&'a Settlement>,
    /// The status its result record gets ('' = the record is left alone).
    pub status: &'a str,
    /// Field/value pairs stored with that status (value, error_type, error).
    pub fields: &'a [(&'a str, &'a [u8])],
    /// Other finished seqs acknowledged by the same call.
    pub acks: &'a [u64],
}

impl Finish<'_> {
    /// Runs the script; 1 when settled now, 0 when the task was no longer in flight.
    pub fn run(&self, c: &mut dyn ConnectionLike, keys: &Keys, mode: Mode<'_>) -> RedisResult<i64> {
        let mut inv = scripts::finish().key(self.inflight);
        inv.key(keys.queue(self.queue))
            .key(keys.bell(self.queue))
            .key(keys.failed(self.queue));
        let (name, payload, text): (&str, &[u8], (String, String)) = match mode {
            Mode::Done => ("done", b"", (String::new(), String::new())),
            Mode::Fail(reason, tb) => ("fail", b"", (reason.to_owned(), tb.to_owned())),
            Mode::Retry(p) => ("retry", p, (String::new(), String::new())),
            Mode::Later(p, delay) => {
                inv.key(keys.eta(self.queue));
                ("eta", p, (format!("{:.6}", delay.max(0.0)), keys.eta_channel()))
            }
        };
        inv.arg(self.field_prefix)
            .arg(self.seq)
            .arg(name)
            .arg(self.queue)
            .arg(payload);
        inv.arg(text.0).arg(text.1).arg(self.worker).arg(FAILED_KEEP);
        Settlement::push_args(self.settlement, &mut inv);
        inv.arg(if self.settlement.is_some() { self.status } else { "" });
        inv.arg(self.fields.len() * 2);
        for (k, v) in self.fields {
            inv.arg(*k).arg(*v);
        }
        for a in self.acks {
            inv.arg(*a);
        }
        inv.invoke(c)
    }
}
