//! One lazily (re)connected synchronous Redis connection with the configured timeouts: to a single Redis, or to a
//! Redis Cluster (cluster.rs). Callers see one `&mut dyn ConnectionLike` either way.

use std::time::{Duration, Instant};

use redis::cluster::ClusterClient;
use redis::{Client, Connection, ConnectionLike, ErrorKind, RedisError, RedisResult};

use super::cluster::{self, Cluster};
use super::sentinel::{is_sentinel_url, Sentinels};
use super::tls::{is_tls_url, TlsOptions};

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// A call that must not run twice first PINGs a connection idle this long (see `run_once`).
pub const IDLE_PROBE: Duration = Duration::from_secs(1);

/// Where connections come from; chosen by the URL's scheme (`redis+cluster://` and `rediss+cluster://` are a
/// cluster, anything else one server).
enum Source {
    Single(Client),
    Cluster(ClusterClient),
    /// `redis+sentinel://`: the master the sentinels name, resolved on every connect (sentinel.rs).
    Sentinel(Sentinels),
}

enum Live {
    Single(Connection),
    Cluster(Box<Cluster>),
}

impl Live {
    fn as_dyn(&mut self) -> &mut dyn ConnectionLike {
        match self {
            Self::Single(c) => c,
            Self::Cluster(c) => c.as_mut(),
        }
    }

    fn set_timeouts(&self, read: Option<Duration>, write: Option<Duration>) -> RedisResult<()> {
        match self {
            Self::Single(c) => c.set_read_timeout(read).and_then(|()| c.set_write_timeout(write)),
            Self::Cluster(c) => c.set_read_timeout(read).and_then(|()| c.set_write_timeout(write)),
        }
    }

    fn set_read_timeout(&self, read: Option<Duration>) -> RedisResult<()> {
        match self {
            Self::Single(c) => c.set_read_timeout(read),
            Self::Cluster(c) => c.set_read_timeout(read),
        }
    }
}

pub struct Conn {
    source: Source,
    live: Option<Live>,
    socket_timeout: Option<Duration>,
    connect_timeout: Duration,
    /// The connection has answered at least once, so a broken pipe means it went stale.
    proven: bool,
    /// When the connection last answered.
    answered_at: Instant,
    tls: bool,
    last_failure: Stage,
    /// Connections made so far: a change tells a caller that state it wrote may be gone (a failover to a replica
    /// that had not seen its last writes).
    connects: u64,
}

/// Where the last failure happened, for the hints of `explain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// On a connection that had answered (or no failure).
    Answered,
    /// On a connection that never answered: what a TLS-only port does to a plain client.
    Unanswered,
    /// While connecting (TCP, TLS handshake, AUTH/SELECT).
    Connecting,
}

impl Conn {
    pub fn new(
        url: &str,
        tls: &TlsOptions,
        socket_timeout: Option<Duration>,
        connect_timeout: Option<Duration>,
    ) -> RedisResult<Self> {
        let connect_timeout = connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let source = if cluster::is_cluster_url(url) {
            tls.check_url(url)
                .map_err(|e| RedisError::from((ErrorKind::InvalidClientConfig, "invalid url", e)))?;
            Source::Cluster(cluster::client(url, tls, socket_timeout, connect_timeout)?)
        } else if is_sentinel_url(url) {
            sentinel_source(url, tls)?
        } else {
            Source::Single(tls.client(url)?)
        };
        Ok(Self {
            source,
            live: None,
            socket_timeout,
            connect_timeout,
            proven: false,
            answered_at: Instant::now(),
            tls: is_tls_url(url),
            last_failure: Stage::Answered,
            connects: 0,
        })
    }

    /// How many connections were made so far (0 before the first call).
    pub fn connects(&self) -> u64 {
        self.connects
    }

    /// A Redis Cluster connection: keys use the hash-tagged layout (keys.rs).
    pub fn is_cluster(&self) -> bool {
        matches!(self.source, Source::Cluster(_))
    }

    /// `describe(e)`, plus a hint when a plain connection was dropped before its first answer: that is what a
    /// TLS-only port does to a `redis://` client.
    ///
    /// A `rediss://` client on a plain port gets no answer at all (the server waits for the rest of what it
    /// takes for an inline command), so a read timeout while connecting over TLS is reported as a handshake
    /// failure.
    pub fn explain(&self, e: &RedisError) -> String {
        let text = describe(e);
        let unanswered = self.last_failure != Stage::Answered;
        if unanswered && !self.tls && text.starts_with("redis unavailable") && !e.is_connection_refusal() {
            format!("{text} (if that port expects TLS, use a rediss:// url)")
        } else if self.tls
            && self.last_failure == Stage::Connecting
            && io_kind(e) == Some(std::io::ErrorKind::WouldBlock)
        {
            "redis TLS handshake failed: no TLS answer within the connect timeout (is that a plain redis:// \
             port?)"
                .to_owned()
        } else {
            text
        }
    }

    fn connection(&mut self) -> RedisResult<&mut Live> {
        if self.live.is_none() {
            let live = match &self.source {
                Source::Single(client) => client
                    .get_connection_with_timeout(self.connect_timeout)
                    .map(Live::Single),
                Source::Cluster(client) => client.get_generic_connection().map(|c| Live::Cluster(Box::new(c))),
                Source::Sentinel(s) => s.connect_master(self.connect_timeout).map(Live::Single),
            };
            let live = live.inspect_err(|_| self.last_failure = Stage::Connecting)?;
            live.set_timeouts(self.socket_timeout, self.socket_timeout)?;
            self.live = Some(live);
            self.proven = false;
            self.connects += 1;
        }
        self.live
            .as_mut()
            .ok_or_else(|| RedisError::from(std::io::Error::other("no connection")))
    }

    /// `f` on the live connection; a cluster failure that redis-rs was kept from resending (cluster.rs) comes back
    /// as the original error.
    fn call<T>(&mut self, f: &mut impl FnMut(&mut dyn ConnectionLike) -> RedisResult<T>) -> RedisResult<T> {
        let conn = self.connection()?;
        f(conn.as_dyn()).map_err(cluster::unwrap)
    }

    /// Run `f` on the connection. A connection that broke since its last use (Redis restarted, idle
    /// timeout) is replaced and `f` retried once; any other failure drops the connection so the next call
    /// starts clean (a timed-out reply may still arrive and must not be read as the next answer).
    pub fn run<T>(&mut self, mut f: impl FnMut(&mut dyn ConnectionLike) -> RedisResult<T>) -> RedisResult<T> {
        // NOTE: a failure to connect returns at once, so `explain` still knows it happened while connecting.
        self.connection()?;
        let result = self.call(&mut f);
        match result {
            Err(e) if self.proven && is_stale(&e) => {
                self.live = None;
                self.connection()?;
                let retried = self.call(&mut f);
                self.settle(retried)
            }
            other => self.settle(other),
        }
    }

    /// Run `f`, a call that must not run twice (a push, a PUBLISH, a broadcast relay), at most once: a connection
    /// that fails after the request was written may have lost the reply of a call Redis already ran, so it is
    /// never sent again; the error goes to the caller. A connection idle for `IDLE_PROBE` or longer is checked
    /// with a PING first (resent like any idempotent call), so one that went stale while idle (Redis restarted,
    /// an idle timeout) is replaced before `f` is sent, and only a connection that breaks during the call fails.
    pub fn run_once<T>(&mut self, f: impl FnOnce(&mut dyn ConnectionLike) -> RedisResult<T>) -> RedisResult<T> {
        if self.proven && self.live.is_some() && self.answered_at.elapsed() >= IDLE_PROBE {
            self.run(|c| redis::cmd("PING").query::<()>(c))?;
        }
        let result = f(self.connection()?.as_dyn()).map_err(cluster::unwrap);
        self.settle(result)
    }

    /// Run a blocking command whose server-side timeout is `block`: the read timeout must exceed it.
    pub fn run_blocking<T>(
        &mut self,
        block: Duration,
        mut f: impl FnMut(&mut dyn ConnectionLike) -> RedisResult<T>,
    ) -> RedisResult<T> {
        let margin = self.socket_timeout.unwrap_or(Duration::from_secs(5));
        self.connection()?.set_read_timeout(Some(block + margin))?;
        let result = self.call(&mut f);
        let result = self.settle(result);
        if let Some(conn) = self.live.as_mut() {
            conn.set_read_timeout(self.socket_timeout)?;
        }
        result
    }

    fn settle<T>(&mut self, result: RedisResult<T>) -> RedisResult<T> {
        self.last_failure = Stage::Answered;
        match &result {
            Ok(_) => {
                self.proven = true;
                self.answered_at = Instant::now();
            }
            Err(e) if is_connection_problem(e) => {
                if !self.proven {
                    self.last_failure = Stage::Unanswered;
                }
                self.live = None;
            }
            Err(_) => {}
        }
        result
    }
}

fn is_stale(e: &RedisError) -> bool {
    (e.is_connection_dropped() || e.is_io_error()) && !e.is_timeout()
}

fn is_connection_problem(e: &RedisError) -> bool {
    // NOTE: READONLY = the server became a replica (a failover demoted it): reconnect, which re-resolves the
    // master under Sentinel.
    e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_unrecoverable_error() || is_readonly(e)
}

fn is_readonly(e: &RedisError) -> bool {
    e.code() == Some("READONLY")
}

fn sentinel_source(url: &str, tls: &TlsOptions) -> RedisResult<Source> {
    if tls.is_set() {
        return Err(RedisError::from((
            ErrorKind::InvalidClientConfig,
            "invalid sentinel url",
            "ssl_* options are not supported with redis+sentinel:// (TLS to sentinels is not implemented)".to_owned(),
        )));
    }
    Ok(Source::Sentinel(Sentinels::parse(url)?))
}

/// A system call inside the Redis client returned EINTR: a signal arrived (SIGTERM, SIGQUIT), Redis is fine.
pub fn is_interrupted(e: &RedisError) -> bool {
    io_kind(e) == Some(std::io::ErrorKind::Interrupted)
}

/// A short, single-line description of a Redis error for logs and exceptions. Configuration-class failures
/// get their own prefixes: `redis authentication failed: ...` and `redis TLS handshake failed: ...`.
pub fn describe(e: &RedisError) -> String {
    let text = e.to_string();
    let line = text.lines().next().unwrap_or("redis error");
    if let Some(tls) = tls_failure(e) {
        format!("redis TLS handshake failed: {tls}")
    } else if let Some(auth) = auth_failure(e, line) {
        format!("redis authentication failed: {auth}")
    } else if is_interrupted(e) {
        format!("redis call interrupted by a signal: {line}")
    } else if e.is_timeout() {
        // NOTE: the OS words for a socket timeout ("Resource temporarily unavailable", EAGAIN) mislead.
        "redis timed out: no answer within the socket timeout".to_owned()
    } else if e.is_connection_refusal() || e.is_io_error() || e.is_connection_dropped() {
        format!("redis unavailable: {line}")
    } else {
        format!("redis error: {line}")
    }
}

/// The first line of an error's text (redis-rs sometimes appends details on more lines); for a client
/// configuration error only its detail.
pub fn first_line(e: &RedisError) -> String {
    if e.kind() == ErrorKind::InvalidClientConfig {
        if let Some(detail) = e.detail() {
            return detail.to_owned();
        }
    }
    e.to_string().lines().next().unwrap_or("redis error").to_owned()
}

/// The I/O error inside a redis error. NOTE: redis-rs keeps it as an `Arc<dyn Error>`, and that Arc is what
/// `source()` hands out.
fn io_error(e: &RedisError) -> Option<&std::io::Error> {
    let source = std::error::Error::source(e)?;
    source.downcast_ref::<std::io::Error>().or_else(|| {
        source
            .downcast_ref::<std::sync::Arc<dyn std::error::Error + Send + Sync>>()?
            .downcast_ref()
    })
}

fn io_kind(e: &RedisError) -> Option<std::io::ErrorKind> {
    io_error(e).map(std::io::Error::kind)
}

/// The rustls error inside an I/O error, with a hint for the usual causes.
fn tls_failure(e: &RedisError) -> Option<String> {
    let tls = io_error(e)?.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(explain_tls(tls))
}

/// One line for a rustls error: what happened, then the usual reason.
pub fn explain_tls(e: &rustls::Error) -> String {
    use rustls::{CertificateError, Error};
    let hint = match e {
        Error::InvalidCertificate(CertificateError::UnknownIssuer | CertificateError::BadSignature) => {
            " (the server's certificate is not signed by a trusted CA: set ssl_ca_certs to your CA's PEM file)"
        }
        Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => " (the certificate does not name this host: connect with a name it lists)",
        Error::InvalidMessage(_) | Error::InappropriateMessage { .. } => {
            " (the server did not answer in TLS: is this a plain redis:// port?)"
        }
        _ => "",
    };
    format!("{e}{hint}")
}

/// Wrong password, unknown or disabled ACL user, or a password the server requires and we did not send.
fn auth_failure(e: &RedisError, line: &str) -> Option<String> {
    if e.kind() == ErrorKind::AuthenticationFailed {
        return Some(
            "the server refused the credentials (wrong password, unknown or disabled ACL user, or a password \
             sent to a server that has none)"
                .to_owned(),
        );
    }
    let code = e.code().unwrap_or_default();
    if code == "NOAUTH" || line.contains("NOAUTH") || line.contains("Authentication required") {
        return Some("the server requires a password (NOAUTH): put it in the url or pass password=".to_owned());
    }
    if code == "WRONGPASS" || line.contains("WRONGPASS") {
        return Some(line.to_owned());
    }
    None
}

/// Why a call failed: a signal for this process interrupted the socket call, or Redis did not answer.
pub enum Failure {
    Interrupted,
    Broker(String),
}

impl Failure {
    pub fn message(self) -> String {
        match self {
            Self::Interrupted => "redis call interrupted by a signal".to_owned(),
            Self::Broker(msg) => msg,
        }
    }
}

/// Run `f` on a shared connection with the GIL released (the lock is taken while detached, so a thread
/// waiting for it never holds the GIL). `once`: `f` must not run twice (`Conn::run_once`), else it is an
/// idempotent call, sent again once on a connection that went stale (`Conn::run`). A signal interrupts the call
/// (`Failure::Interrupted`): the consumer's calls must end early for SIGTERM and SIGQUIT.
pub fn call_detached<T: Send>(
    py: pyo3::Python<'_>,
    conn: &std::sync::Mutex<Conn>,
    once: bool,
    f: impl FnMut(&mut dyn ConnectionLike) -> RedisResult<T> + Send,
) -> Result<T, Failure> {
    detached(
        py,
        conn,
        Call {
            once,
            wait: None,
            held: false,
        },
        f,
    )
}

/// `call_detached` for a producer: signals are held off for the length of the call (held.rs), so an interrupted
/// push never leaves its caller with an error for a task that was sent. `wait`: the call ends with a server-side
/// wait of up to that long (WAIT): the read timeout is stretched by it (`Conn::run_blocking`, which never resends:
/// safe for a push).
pub fn call_producing<T: Send>(
    py: pyo3::Python<'_>,
    conn: &std::sync::Mutex<Conn>,
    once: bool,
    wait: Option<Duration>,
    f: impl FnMut(&mut dyn ConnectionLike) -> RedisResult<T> + Send,
) -> Result<T, Failure> {
    detached(py, conn, Call { once, wait, held: true }, f)
}

struct Call {
    once: bool,
    wait: Option<Duration>,
    held: bool,
}

fn detached<T: Send>(
    py: pyo3::Python<'_>,
    conn: &std::sync::Mutex<Conn>,
    call: Call,
    f: impl FnMut(&mut dyn ConnectionLike) -> RedisResult<T> + Send,
) -> Result<T, Failure> {
    py.detach(|| {
        let _held = call.held.then(super::held::hold);
        let mut guard = conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let result = match call.wait {
            Some(w) => guard.run_blocking(w, f),
            None if call.once => guard.run_once(f),
            None => guard.run(f),
        };
        result.map_err(|e| {
            if is_interrupted(&e) {
                Failure::Interrupted
            } else {
                Failure::Broker(guard.explain(&e))
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_errors_are_named() {
        let e = RedisError::from((ErrorKind::AuthenticationFailed, "Password authentication failed"));
        assert!(describe(&e).starts_with("redis authentication failed: the server refused"));
        let e = RedisError::from(std::io::Error::other("x"));
        assert!(describe(&e).starts_with("redis unavailable: "));
    }

    #[test]
    fn tls_errors_are_named() {
        let inner = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let e = RedisError::from(std::io::Error::new(std::io::ErrorKind::InvalidData, inner));
        let text = describe(&e);
        assert!(text.starts_with("redis TLS handshake failed: "), "{text}");
        assert!(text.contains("ssl_ca_certs"), "{text}");
    }
}
