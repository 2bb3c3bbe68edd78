//! Redis key names; `python/wakaq/keys.py` mirrors these and `tests/test_keys.py` checks they agree.

pub const DEFAULT_PREFIX: &str = "wakaq";

#[derive(Debug, Clone)]
pub struct Keys {
    pub prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    pub fn queue(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    pub fn eta(&self, name: &str) -> String {
        format!("{}:eta:{name}", self.prefix)
    }

    pub fn bell(&self, name: &str) -> String {
        format!("{}:bell:{name}", self.prefix)
    }

    pub fn failed(&self, name: &str) -> String {
        format!("{}:failed:{name}", self.prefix)
    }

    /// The pseudo queue name under which a daemon's relayed broadcasts sit (`<prefix>:bcast:<daemon>`).
    pub fn broadcast_queue_name(daemon: &str) -> String {
        format!("bcast:{daemon}")
    }

    pub fn inflight(&self, daemon: &str) -> String {
        format!("{}:inflight:{daemon}", self.prefix)
    }

    pub fn heartbeat(&self, daemon: &str) -> String {
        format!("{}:hb:{daemon}", self.prefix)
    }

    /// A daemon's last published info (hash: info, seen), kept until it deregisters or is reaped.
    pub fn daemon_info(&self, daemon: &str) -> String {
        format!("{}:daemon:{daemon}", self.prefix)
    }

    /// A registered daemon's task counters (hash).
    pub fn stats(&self, daemon: &str) -> String {
        format!("{}:stats:{daemon}", self.prefix)
    }

    pub fn stats_retired(&self) -> String {
        format!("{}:stats:retired", self.prefix)
    }

    pub fn daemons(&self) -> String {
        format!("{}:daemons", self.prefix)
    }

    pub fn broadcast_channel(&self) -> String {
        format!("{}-broadcast", self.prefix)
    }

    pub fn eta_channel(&self) -> String {
        format!("{}-eta", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_wakaq_names() {
        let k = Keys::new(DEFAULT_PREFIX);
        assert_eq!(k.queue("default"), "wakaq:default");
        assert_eq!(k.eta("default"), "wakaq:eta:default");
        assert_eq!(k.broadcast_channel(), "wakaq-broadcast");
        assert_eq!(k.queue(&Keys::broadcast_queue_name("d1")), "wakaq:bcast:d1");
        assert_eq!(k.bell(&Keys::broadcast_queue_name("d1")), "wakaq:bell:bcast:d1");
    }
}
