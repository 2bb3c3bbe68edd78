//! Redis Cluster: the `redis+cluster://[user:password@]host:port[,host:port...][/0]` URL (`rediss+cluster://` for
//! TLS) and the redis-rs `ClusterClient` built from it. Scripts route by their first key (every key of an app
//! shares the `{prefix}` hash tag, keys.rs); redis-rs follows MOVED/ASK, TRYAGAIN and CLUSTERDOWN by sending the
//! command again, which is safe: the server did not run it.
//!
//! WARN: redis-rs also resends after an I/O error or a timeout on a node, when the command may have run: a push
//! would be doubled, a claim would reuse its seqs and overwrite in-flight entries. `Node` (the per-node connection
//! handed to redis-rs) turns those failures into an error redis-rs does not retry, and `unwrap` restores the
//! original for `Conn`, whose own resend rules then apply exactly as on a single Redis.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConnection, Connect};
use redis::{Connection, ConnectionLike, ErrorKind, IntoConnectionInfo, RedisError, RedisResult, Value};

use super::tls::TlsOptions;

const SCHEMES: [(&str, &str); 2] = [("redis+cluster", "redis"), ("rediss+cluster", "rediss")];

pub type Cluster = ClusterConnection<Node>;

/// True for a `redis+cluster://` or `rediss+cluster://` URL.
pub fn is_cluster_url(url: &str) -> bool {
    url.split_once("://")
        .is_some_and(|(scheme, _)| SCHEMES.iter().any(|(s, _)| *s == scheme))
}

fn invalid(detail: String) -> RedisError {
    RedisError::from((ErrorKind::InvalidClientConfig, "invalid cluster url", detail))
}

/// One `redis://` (`rediss://`) URL per seed node of a cluster URL, credentials included.
pub fn node_urls(url: &str) -> RedisResult<Vec<String>> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| invalid("no scheme".to_owned()))?;
    let plain = SCHEMES
        .iter()
        .find(|(s, _)| *s == scheme)
        .map(|(_, p)| *p)
        .ok_or_else(|| invalid(format!("{scheme}:// is not a cluster scheme")))?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let path = path.split(['?', '#']).next().unwrap_or("");
    if !matches!(path, "" | "0") {
        return Err(invalid("a Redis Cluster has only db 0".to_owned()));
    }
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((user, hosts)) => (format!("{user}@"), hosts),
        None => (String::new(), authority),
    };
    let mut nodes = Vec::new();
    for host in hosts.split(',').map(str::trim) {
        let ok = host
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
        if !ok {
            return Err(invalid(format!("{host:?} is not host:port")));
        }
        nodes.push(format!("{plain}://{userinfo}{host}"));
    }
    Ok(nodes)
}

/// The cluster client for a cluster URL with the app's TLS options and timeouts.
pub fn client(
    url: &str,
    tls: &TlsOptions,
    socket_timeout: Option<Duration>,
    connect_timeout: Duration,
) -> RedisResult<ClusterClient> {
    let nodes: Vec<String> = node_urls(url)?.iter().map(|n| tls.node_url(n)).collect();
    let mut infos = Vec::with_capacity(nodes.len());
    for n in &nodes {
        infos.push(super::url::connection_info(n.as_str())?);
    }
    let mut builder = ClusterClientBuilder::new(infos).connection_timeout(connect_timeout);
    if let Some(t) = socket_timeout {
        builder = builder.response_timeout(t);
    }
    if super::tls::is_tls_url(url) {
        super::tls::install_crypto_provider();
        if let Some(certs) = tls.certificates()? {
            builder = builder.certs(certs);
        }
    }
    builder.build()
}

/// A failure after a command was (maybe) sent, carried through redis-rs's retry loop without a resend.
#[derive(Debug)]
struct Unresent(RedisError);

impl fmt::Display for Unresent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Unresent {}

/// Server errors are answers (the command ran, or was refused and may be redirected); the rest are ambiguous.
fn shield(e: RedisError) -> RedisError {
    if matches!(e.kind(), ErrorKind::Server(_)) || e.kind() == ErrorKind::InvalidClientConfig {
        return e;
    }
    // NOTE: io::ErrorKind::Unsupported is one of the two I/O kinds redis-rs never retries.
    RedisError::from(std::io::Error::new(std::io::ErrorKind::Unsupported, Unresent(e)))
}

/// The original error of a failure `shield` wrapped, else `e` itself.
pub fn unwrap(e: RedisError) -> RedisError {
    let inner = std::error::Error::source(&e)
        .and_then(|s| {
            s.downcast_ref::<std::io::Error>().or_else(|| {
                s.downcast_ref::<Arc<dyn std::error::Error + Send + Sync>>()?
                    .downcast_ref()
            })
        })
        .and_then(|io| io.get_ref())
        .and_then(|inner| inner.downcast_ref::<Unresent>())
        .map(|u| u.0.clone());
    inner.unwrap_or(e)
}

/// A node connection as redis-rs's cluster sees it: a plain connection whose ambiguous failures are shielded.
pub struct Node(Connection);

impl Connect for Node {
    fn connect<T: IntoConnectionInfo>(info: T, timeout: Option<Duration>) -> RedisResult<Self> {
        <Connection as Connect>::connect(info, timeout).map(Node)
    }

    fn send_packed_command(&mut self, cmd: &[u8]) -> RedisResult<()> {
        self.0.send_packed_command(cmd).map_err(shield)
    }

    fn set_write_timeout(&self, dur: Option<Duration>) -> RedisResult<()> {
        self.0.set_write_timeout(dur)
    }

    fn set_read_timeout(&self, dur: Option<Duration>) -> RedisResult<()> {
        self.0.set_read_timeout(dur)
    }

    fn recv_response(&mut self) -> RedisResult<Value> {
        self.0.recv_response().map_err(shield)
    }
}

impl ConnectionLike for Node {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        self.0.req_packed_command(cmd).map_err(shield)
    }

    fn req_packed_commands(&mut self, cmd: &[u8], offset: usize, count: usize) -> RedisResult<Vec<Value>> {
        self.0.req_packed_commands(cmd, offset, count).map_err(shield)
    }

    fn get_db(&self) -> i64 {
        0
    }

    fn check_connection(&mut self) -> bool {
        self.0.check_connection()
    }

    fn is_open(&self) -> bool {
        self.0.is_open()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_give_node_urls() {
        assert!(is_cluster_url("redis+cluster://a:1"));
        assert!(!is_cluster_url("redis://a:1"));
        let nodes = node_urls("redis+cluster://u:p%40w@127.0.0.1:7000,127.0.0.1:7001/0").unwrap_or_default();
        assert_eq!(
            nodes,
            ["redis://u:p%40w@127.0.0.1:7000", "redis://u:p%40w@127.0.0.1:7001"]
        );
        assert_eq!(node_urls("rediss+cluster://h:1/").unwrap_or_default(), ["rediss://h:1"]);
        assert!(node_urls("redis+cluster://h:1/3").is_err());
        assert!(node_urls("redis+cluster://h/").is_err());
    }

    #[test]
    fn ambiguous_failures_are_shielded_and_restored() {
        let timeout = RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, "slow"));
        let shielded = shield(timeout);
        assert!(matches!(shielded.retry_method(), redis::RetryMethod::NoRetry));
        assert!(unwrap(shielded).is_timeout());
        let moved = RedisError::from((ErrorKind::Server(redis::ServerErrorKind::Moved), "MOVED"));
        assert!(matches!(shield(moved).kind(), ErrorKind::Server(_)));
    }
}
