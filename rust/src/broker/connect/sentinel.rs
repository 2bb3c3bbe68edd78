//! Redis Sentinel: `redis+sentinel://[user:password@]host:port[,host:port...]/<master name>[/<db>]`.
//!
//! Every (re)connect asks the sentinels, in order, for the master's address (`SENTINEL get-master-addr-by-name`)
//! and keeps the first answer whose server says `ROLE` master (a sentinel that has not yet seen a failover may
//! still name the old master). So after a failover the next reconnect lands on the new master. The credentials
//! and db in the URL are the master's; the sentinels are asked without a password.

use std::time::Duration;

use redis::{Client, Connection, ErrorKind, RedisError, RedisResult, Value};

use super::url::connection_info;

pub const SCHEME: &str = "redis+sentinel://";

pub fn is_sentinel_url(url: &str) -> bool {
    url.get(..SCHEME.len()).is_some_and(|s| s.eq_ignore_ascii_case(SCHEME))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sentinels {
    pub addrs: Vec<(String, u16)>,
    pub master: String,
    pub db: i64,
    /// `user:password` or `:password` as written in the URL (still percent-encoded), for the master's URL.
    userinfo: Option<String>,
}

fn bad(msg: String) -> RedisError {
    RedisError::from((ErrorKind::InvalidClientConfig, "invalid sentinel url", msg))
}

impl Sentinels {
    pub fn parse(url: &str) -> RedisResult<Self> {
        let rest = url
            .get(SCHEME.len()..)
            .filter(|_| is_sentinel_url(url))
            .ok_or_else(|| bad(format!("{url:?} does not start with {SCHEME}")))?;
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_owned()), h),
            None => (None, authority),
        };
        let addrs = hosts
            .split(',')
            .map(parse_addr)
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?;
        let mut parts = path.split('/').filter(|p| !p.is_empty());
        let master = parts
            .next()
            .ok_or_else(|| bad("the master name is missing (…/<master name>/<db>)".into()))?;
        let db = match parts.next() {
            None => 0,
            Some(d) => d.parse().map_err(|_| bad(format!("db {d:?} is not a number")))?,
        };
        Ok(Self {
            addrs,
            master: master.to_owned(),
            db,
            userinfo,
        })
    }

    /// The master's `redis://` URL at `host:port`, with the credentials and db of the sentinel URL.
    pub fn master_url(&self, host: &str, port: u16) -> String {
        let auth = self.userinfo.as_ref().map_or(String::new(), |u| format!("{u}@"));
        format!("redis://{auth}{}/{}", host_port(host, port), self.db)
    }

    /// Ask one sentinel for the master's address.
    fn ask(&self, host: &str, port: u16, timeout: Duration) -> RedisResult<(String, u16)> {
        let mut c = Client::open(connection_info(format!("redis://{}/", host_port(host, port)).as_str())?)?
            .get_connection_with_timeout(timeout)?;
        c.set_read_timeout(Some(timeout))?;
        let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(&self.master)
            .query(&mut c)?;
        addr.ok_or_else(|| {
            bad(format!(
                "sentinel {host}:{port} does not know a master named {:?}",
                self.master
            ))
        })
    }

    /// The master's address per the first sentinel that answers (pub/sub: any server of the group relays
    /// the master's messages, so no `ROLE` check).
    pub fn master_addr(&self, timeout: Duration) -> RedisResult<(String, u16)> {
        let mut last: Option<RedisError> = None;
        for (host, port) in &self.addrs {
            match self.ask(host, *port, timeout) {
                Ok(addr) => return Ok(addr),
                Err(e) => last = Some(e),
            }
        }
        Err(unreachable(&self.master, last))
    }

    /// Resolve the master through the sentinels and connect to it (checked with `ROLE`).
    pub fn connect_master(&self, timeout: Duration) -> RedisResult<Connection> {
        let mut last: Option<RedisError> = None;
        for (host, port) in &self.addrs {
            match self
                .ask(host, *port, timeout)
                .and_then(|(h, p)| self.open_master(&h, p, timeout))
            {
                Ok(conn) => return Ok(conn),
                Err(e) => last = Some(e),
            }
        }
        Err(unreachable(&self.master, last))
    }

    fn open_master(&self, host: &str, port: u16, timeout: Duration) -> RedisResult<Connection> {
        let mut conn = Client::open(connection_info(self.master_url(host, port).as_str())?)?
            .get_connection_with_timeout(timeout)?;
        conn.set_read_timeout(Some(timeout))?;
        let role: Vec<Value> = redis::cmd("ROLE").query(&mut conn)?;
        match role.first() {
            Some(Value::BulkString(b)) if b.as_slice() == b"master" => Ok(conn),
            _ => Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                format!("{host}:{port}, named by a sentinel, is not a master (yet)"),
            ))),
        }
    }
}

/// An I/O-class error (so `Conn` retries with backoff like any outage) naming the last failure.
fn unreachable(master: &str, last: Option<RedisError>) -> RedisError {
    let why = last.map_or_else(|| "no sentinel".to_owned(), |e| e.to_string());
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        format!("no sentinel named a reachable master {master:?}: {why}"),
    ))
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn parse_addr(text: &str) -> Result<(String, u16), String> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("sentinel {text:?} needs host:port"))?;
    let port = port
        .parse()
        .map_err(|_| format!("sentinel port {port:?} is not a number"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("sentinel {text:?} has no host"));
    }
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_master_and_db() {
        let s = Sentinels::parse("redis+sentinel://:pw@127.0.0.1:26379,localhost:26380/mymaster/3").expect("ok");
        assert_eq!(s.addrs, vec![("127.0.0.1".into(), 26379), ("localhost".into(), 26380)]);
        assert_eq!((s.master.as_str(), s.db), ("mymaster", 3));
        assert_eq!(s.master_url("10.0.0.1", 6380), "redis://:pw@10.0.0.1:6380/3");
        let s = Sentinels::parse("REDIS+SENTINEL://[::1]:26379/m").expect("ok");
        assert_eq!((s.addrs[0].0.as_str(), s.db), ("::1", 0));
        assert_eq!(s.master_url("::1", 1), "redis://[::1]:1/0");
    }

    #[test]
    fn bad_urls_say_why() {
        for (url, why) in [
            ("redis+sentinel://h:1", "master name is missing"),
            ("redis+sentinel://h/m", "needs host:port"),
            ("redis+sentinel://h:x/m", "is not a number"),
            ("redis+sentinel://h:1/m/x", "db \"x\""),
            ("redis://h:1/m", "does not start"),
        ] {
            let e = Sentinels::parse(url).expect_err(url).to_string();
            assert!(e.contains(why), "{url}: {e}");
        }
    }
}
