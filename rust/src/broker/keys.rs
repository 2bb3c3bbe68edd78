//! Redis key names: the one definition of the layout. Python reads it through `key_layout` (broker/mod.rs), which
//! `python/wakaq/keys.py` fills in; lib.lua's header documents every key.

pub const DEFAULT_PREFIX: &str = "wakaq";
/// Daemons' broadcast lists are the pseudo queues `bcast:<daemon>`.
const BROADCAST_QUEUE_PREFIX: &str = "bcast:";
/// The pseudo queue whose failed list holds every failed broadcast.
pub const BROADCAST_FAILED: &str = "broadcast";
/// Separator of a parked-registry member's queue and task (no queue name holds control characters).
pub const MEMBER_SEP: char = '\x1f';

/// The key names of one app. `prefix` is the app's key prefix; keys live under the namespace: the prefix itself on
/// a single Redis (WakaQ's names, `wakaq:default`), `{prefix}` on a Redis Cluster, whose hash tag puts every key
/// of the app in one slot (scripts touch many of them at once; different prefixes spread over the shards).
#[derive(Debug, Clone)]
pub struct Keys {
    pub prefix: String,
    ns: String,
}

impl Keys {
    pub fn new(prefix: &str, cluster: bool) -> Self {
        Self {
            prefix: prefix.to_owned(),
            ns: if cluster {
                format!("{{{prefix}}}")
            } else {
                prefix.to_owned()
            },
        }
    }

    /// KEYS for scripts that return in-flight entries to their queues (lib.lua's `targets`): the lists, the bells
    /// and the failed lists of `names`.
    pub fn targets(&self, names: &[String]) -> Vec<String> {
        let mut keys: Vec<String> = names.iter().map(|n| self.queue(n)).collect();
        keys.extend(names.iter().map(|n| self.bell(n)));
        keys.extend(names.iter().map(|n| self.failed(n)));
        keys
    }

    pub fn queue(&self, name: &str) -> String {
        format!("{}:{name}", self.ns)
    }

    pub fn eta(&self, name: &str) -> String {
        format!("{}:eta:{name}", self.ns)
    }

    pub fn bell(&self, name: &str) -> String {
        format!("{}:bell:{name}", self.ns)
    }

    /// A queue's failure records. NOTE: the failed broadcasts of every daemon share the list of the pseudo queue
    /// "broadcast" (`N:failed:broadcast`, as the counters name them): a list per daemon run (`bcast:<daemon>`) was
    /// never shown nor deleted, one per restart. The records still name the daemon's queue.
    pub fn failed(&self, name: &str) -> String {
        if name.starts_with(BROADCAST_QUEUE_PREFIX) {
            return format!("{}:failed:{BROADCAST_FAILED}", self.ns);
        }
        format!("{}:failed:{name}", self.ns)
    }

    /// A results task's record (hash: status, value, error_type, error, at; python/wakaq/results.py).
    pub fn result(&self, id: &str) -> String {
        format!("{}:result:{id}", self.ns)
    }

    /// One token per final write of a result record, for waiters.
    pub fn result_ready(&self, id: &str) -> String {
        format!("{}:result:{id}:ready", self.ns)
    }

    /// A workflow (chain/group, python/wakaq/workflow.py; lua/workflow.lua): hash of its status, outcome and tree of
    /// nodes (kinds, parents, each task step's queue, bell, payload parts and result record key), PX TTL.
    pub fn workflow(&self, id: &str) -> String {
        format!("{}:wf:{id}", self.ns)
    }

    /// A workflow's finished group members: node -> packed result (hash, PX TTL; HSETNX counts each member once).
    pub fn workflow_results(&self, id: &str) -> String {
        format!("{}:wf:{id}:results", self.ns)
    }

    /// One token when a workflow ends (done, failed, cancelled), for waiters (list, PX TTL).
    pub fn workflow_ready(&self, id: &str) -> String {
        format!("{}:wf:{id}:ready", self.ns)
    }

    /// The index of recent workflows (zset: workflow id scored by its start, Redis time in seconds), written by
    /// workflow_start.lua only: trimmed to the newest `workflow::RECENT_KEEP` there, PX TTL of the longest-lived
    /// workflow in it. What the dashboard's Workflows page and `wakaq-info` read (never a SCAN of `wf:*`).
    /// NOTE: a workflow id is "w" and 32 hex digits (python/wakaq/ids.py), so `recent` never names one.
    pub fn workflows_recent(&self) -> String {
        format!("{}:wf:recent", self.ns)
    }

    /// A uniqueness lock (string: the id of the task holding it); `unique("")` is the prefix of every lock of the app.
    pub fn unique(&self, key: &str) -> String {
        format!("{}:unique:{key}", self.ns)
    }

    /// A running task's last progress (hash: `v` = msgpack {done, total, info}, `at`; PX TTL): progress.lua, written
    /// only while the task is in flight under the writing child and its result record is not final.
    pub fn progress(&self, id: &str) -> String {
        format!("{}:progress:{id}", self.ns)
    }

    /// A debounce window (hash: the pending call's `payload`, `due` and settlement; PX TTL = what is left of the
    /// window): enqueue_debounce.lua.
    pub fn debounce(&self, key: &str) -> String {
        format!("{}:debounce:{key}", self.ns)
    }

    /// Per-minute counter totals of one UTC day (days since the epoch), written by the dashboard
    /// (python/wakaq/web/minutes.py): a hash of at most 1,440 fields that expires a few days after its day.
    pub fn history(&self, day: &str) -> String {
        format!("{}:history:{day}", self.ns)
    }

    /// A scheduler's claim on one fire slot of a schedule (SET NX EX).
    pub fn schedule_slot(&self, schedule: &str, slot: &str) -> String {
        format!("{}:sched:{schedule}:{slot}", self.ns)
    }

    /// The namespace every key of the app lives under (the prefix, or `{prefix}` on a cluster).
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    /// A rate-limited queue's GCRA bucket (hash: `tat`, `wake`).
    pub fn rate_queue(&self, name: &str) -> String {
        format!("{}:rate:queue:{name}", self.ns)
    }

    /// A rate-limited task's GCRA bucket (hash: `tat`, `wake`), shared by every queue the task runs from.
    pub fn rate_task(&self, task: &str) -> String {
        format!("{}:rate:task:{task}", self.ns)
    }

    /// Elements of a rate-limited task set aside by claim_limited.lua until the task has budget again; part of
    /// `queue` (claimed before the queue's own list).
    pub fn parked(&self, queue: &str, task: &str) -> String {
        format!("{}:parked:{queue}:{task}", self.ns)
    }

    /// The registry of parked lists that may hold elements (set of `parked_member`s): claim_limited.lua adds a list
    /// when it parks there, each daemon adds the lists of its own limits; whoever empties one removes it. Makes
    /// parked tasks findable without the config that parked them (purge, cancel, `wakaq-info`, their release).
    pub fn parked_registry(&self) -> String {
        format!("{}:parked", self.ns)
    }

    /// Per-key concurrency (`@app.task(concurrency_key=..., concurrency_limit=N)`, lua/conc.lua): the permits of
    /// one key of a limited task, a hash whose fields name the holders' in-flight entries ("<in-flight key>\n<pid>:<seq>");
    /// a permit whose entry is gone (settled, requeued, reaped) no longer counts and is dropped when counted.
    /// NOTE: task names are Python identifiers (no ':'), so task and key never run into each other.
    pub fn conc(&self, task: &str, key: &str) -> String {
        format!("{}:conc:{task}:{key}", self.ns)
    }

    /// Elements of a concurrency-limited task parked while its key had no free permit: "<queue>\n<element>", oldest
    /// first; moved back to the front of their queue when a permit of the key frees up (lua/conc.lua `conc_unpark`).
    pub fn conc_wait(&self, task: &str, key: &str) -> String {
        format!("{}:cwait:{task}:{key}", self.ns)
    }

    /// The registry of keys with permits or waiters (set of `conc_member`s): added to when a permit is taken or an
    /// element parked, removed from when both are empty; the parent's heartbeat walks it (bounded) so a waiter whose
    /// holder crashed is never parked forever.
    pub fn conc_registry(&self) -> String {
        format!("{}:conc", self.ns)
    }

    /// A registry member: "<task>\x1f<key>".
    pub fn conc_member(task: &str, key: &str) -> String {
        format!("{task}{MEMBER_SEP}{key}")
    }

    /// Whether `key` is one of this app's keys (in its namespace, so in its hash slot on a cluster).
    pub fn owns(&self, key: &str) -> bool {
        key.strip_prefix(self.ns.as_str())
            .is_some_and(|rest| rest.starts_with(':'))
    }

    /// A parked list's member of the registry: "<queue>\x1f<task>".
    pub fn parked_member(queue: &str, task: &str) -> String {
        format!("{queue}{MEMBER_SEP}{task}")
    }

    /// (queue, task) of a registry member; None for anything else.
    pub fn parse_parked_member(member: &[u8]) -> Option<(String, String)> {
        let text = std::str::from_utf8(member).ok()?;
        let (queue, task) = text.split_once(MEMBER_SEP)?;
        Some((queue.to_owned(), task.to_owned()))
    }

    /// The pseudo queue name under which a daemon's broadcasts sit (`<namespace>:bcast:<daemon>`).
    /// NOTE: broadcast.lua builds a daemon's list, bell and heartbeat keys as the keys of "" plus its id.
    pub fn broadcast_queue_name(daemon: &str) -> String {
        format!("bcast:{daemon}")
    }

    pub fn inflight(&self, daemon: &str) -> String {
        format!("{}:inflight:{daemon}", self.ns)
    }

    pub fn heartbeat(&self, daemon: &str) -> String {
        format!("{}:hb:{daemon}", self.ns)
    }

    /// A daemon's last published info (hash: info, seen), kept until it deregisters or is reaped.
    pub fn daemon_info(&self, daemon: &str) -> String {
        format!("{}:daemon:{daemon}", self.ns)
    }

    /// A registered daemon's task counters (hash).
    pub fn stats(&self, daemon: &str) -> String {
        format!("{}:stats:{daemon}", self.ns)
    }

    pub fn stats_retired(&self) -> String {
        format!("{}:stats:retired", self.ns)
    }

    pub fn daemons(&self) -> String {
        format!("{}:daemons", self.ns)
    }

    /// The paused queues (set of queue names): the claim scripts skip them, on every daemon; pushes and eta
    /// promotion go on (pause.lua changes it).
    pub fn paused(&self) -> String {
        format!("{}:paused", self.ns)
    }

    /// NOTE: channels are not keys (no slot): a PUBLISH on a cluster reaches subscribers on every node, so the
    /// channel names are the same in both layouts.
    pub fn broadcast_channel(&self) -> String {
        format!("{}-broadcast", self.prefix)
    }

    pub fn eta_channel(&self) -> String {
        format!("{}-eta", self.prefix)
    }

    /// Admin requests to the daemons' parents: `cancel <daemon> <pid> <seq>` (python/wakaq/cancel.py).
    pub fn control_channel(&self) -> String {
        format!("{}-control", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_wakaq_names() {
        let k = Keys::new(DEFAULT_PREFIX, false);
        assert_eq!(k.queue("default"), "wakaq:default");
        assert_eq!(k.eta("default"), "wakaq:eta:default");
        assert_eq!(k.broadcast_channel(), "wakaq-broadcast");
        assert_eq!(k.queue(&Keys::broadcast_queue_name("d1")), "wakaq:bcast:d1");
        assert_eq!(k.bell(&Keys::broadcast_queue_name("d1")), "wakaq:bell:bcast:d1");
        // broadcast.lua's prefixes: the keys of "" plus the daemon id
        let empty = Keys::broadcast_queue_name("");
        for k in [Keys::new("wakaq", false), Keys::new("app", true)] {
            assert_eq!(k.queue(&empty) + "d1", k.queue(&Keys::broadcast_queue_name("d1")));
            assert_eq!(k.bell(&empty) + "d1", k.bell(&Keys::broadcast_queue_name("d1")));
            assert_eq!(k.heartbeat("") + "d1", k.heartbeat("d1"));
        }
    }

    #[test]
    fn cluster_layout_has_one_hash_tag() {
        let k = Keys::new("app", true);
        assert_eq!(k.queue("default"), "{app}:default");
        assert_eq!(k.inflight("d1"), "{app}:inflight:d1");
        assert_eq!(k.failed("q"), "{app}:failed:q");
        assert_eq!(k.broadcast_channel(), "app-broadcast");
        assert_eq!(k.rate_queue("q"), "{app}:rate:queue:q");
        assert_eq!(k.rate_task("send"), "{app}:rate:task:send");
        assert_eq!(k.parked("q", "send"), "{app}:parked:q:send");
        assert_eq!(k.parked_registry(), "{app}:parked");
        assert_eq!(k.progress("i"), "{app}:progress:i");
        assert_eq!(k.debounce("k"), "{app}:debounce:k");
        assert_eq!(k.paused(), "{app}:paused");
        assert_eq!(k.failed("bcast:d1"), "{app}:failed:broadcast");
        assert_eq!(k.workflow("w1"), "{app}:wf:w1");
        assert_eq!(k.workflow_results("w1"), "{app}:wf:w1:results");
        assert_eq!(k.workflow_ready("w1"), "{app}:wf:w1:ready");
        assert_eq!(k.workflows_recent(), "{app}:wf:recent");
        assert_eq!(k.conc("send", "acme"), "{app}:conc:send:acme");
        assert_eq!(k.conc_wait("send", "acme"), "{app}:cwait:send:acme");
        assert_eq!(k.conc_registry(), "{app}:conc");
        assert_eq!(Keys::conc_member("send", "acme"), "send\x1facme");
        let member = Keys::parked_member("q", "send");
        assert_eq!(
            Keys::parse_parked_member(member.as_bytes()),
            Some(("q".into(), "send".into()))
        );
        assert_eq!(Keys::parse_parked_member(b"q:send"), None);
        let names = ["a".to_owned(), "b".to_owned()];
        assert_eq!(
            k.targets(&names),
            [
                "{app}:a",
                "{app}:b",
                "{app}:bell:a",
                "{app}:bell:b",
                "{app}:failed:a",
                "{app}:failed:b"
            ]
        );
    }
}
