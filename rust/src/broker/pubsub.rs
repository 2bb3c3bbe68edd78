//! The supervisor's pub/sub listener: a minimal RESP2 subscriber on its own socket (TCP, TLS over TCP, or
//! Unix), so its fd can sit in the parent's `poll` set (redis-rs's sync `PubSub` does not expose one).
//! Subscribes to the broadcast, eta and control channels, reads without blocking, reconnects with backoff.
//!
//! TLS (`rediss://`): a rustls `StreamOwned` over the TcpStream; the raw TCP fd is what the parent polls.
//! The handshake, AUTH and SUBSCRIBE are done blocking with a short timeout (like the TCP connect), then the
//! socket turns non-blocking.
//!
//! WARN: rustls decrypts whole records and may hold plaintext that `poll` cannot see (the socket is
//! already drained). So every read drains until `WouldBlock` (which rustls only reports with no plaintext
//! left), never "one read per readable event".
//!
//! WARN: a forked child must never drop a `PubSub` (a drop closes the socket the parent still uses) nor
//! touch its TLS session (shared sequence numbers and keys): children `mem::forget` it and close its fd.

pub mod resp;

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::{ConnectionAddr, IntoConnectionInfo};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use self::resp::{encode_command, parse, Frame};
use super::conn::explain_tls;
use super::keys::Keys;
use super::parent::CoordinatorConfig;
use super::sentinel::{is_sentinel_url, Sentinels};
use crate::supervisor::backoff::Backoff;

/// Largest amount of unparsed input kept; a bigger frame is treated as garbage (reconnect).
const MAX_BUFFERED: usize = 64 * 1024 * 1024;
/// WARN: connecting blocks the single-threaded parent loop (watchdog included), so it is kept short whatever
/// `connect_timeout` says; a slow network only delays the subscription, retried with backoff.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// `(broadcast, eta, control)` channel names for a key prefix (`wakaq` -> `wakaq-broadcast`, `wakaq-eta`,
/// `wakaq-control`).
pub fn channel_names(prefix: &str) -> (String, String, String) {
    let keys = Keys::new(prefix, false);
    (keys.broadcast_channel(), keys.eta_channel(), keys.control_channel())
}

/// What arrived on the subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A broadcast task payload.
    Broadcast(Vec<u8>),
    /// Some eta set got a new earliest task: re-plan promotion.
    Eta,
    /// An admin request on the control channel (e.g. `cancel <daemon> <pid> <seq>`), for the parent to parse.
    Control(Vec<u8>),
    /// (Re)subscribed: messages may have been missed while disconnected.
    Connected,
}

#[derive(Debug, Clone)]
enum Target {
    Tcp(String, u16),
    /// TLS over TCP: the host is also the name the certificate must carry.
    Tls(String, u16),
    Unix(PathBuf),
}

enum Stream {
    Tcp(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
    Unix(UnixStream),
}

fn connect_tcp(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{host}:{port} did not resolve"));
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                s.set_nodelay(true)?;
                s.set_write_timeout(Some(timeout))?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The TLS handshake, blocking, bounded by `timeout` overall.
fn handshake(
    mut tcp: TcpStream,
    config: &Arc<ClientConfig>,
    host: &str,
    timeout: Duration,
) -> Result<StreamOwned<ClientConnection, TcpStream>, String> {
    let failed = |why: String| format!("redis TLS handshake failed: {why}");
    let name = ServerName::try_from(host.to_owned()).map_err(|e| failed(format!("bad server name {host:?}: {e}")))?;
    let mut tls = ClientConnection::new(config.clone(), name).map_err(|e| failed(e.to_string()))?;
    let deadline = Instant::now() + timeout;
    while tls.is_handshaking() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(failed("timed out".to_owned()));
        }
        tcp.set_read_timeout(Some(left)).map_err(|e| failed(e.to_string()))?;
        match tls.complete_io(&mut tcp) {
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err(failed(format!(
                    "no TLS answer within {timeout:?} (is that a plain redis:// port?)"
                )));
            }
            Err(e) => return Err(failed(describe_io(&e))),
            Ok(_) => {}
        }
    }
    tcp.set_read_timeout(None).map_err(|e| failed(e.to_string()))?;
    Ok(StreamOwned::new(tls, tcp))
}

/// An I/O error from a TLS stream: the rustls error inside it, explained, or the error itself.
fn describe_io(e: &io::Error) -> String {
    if let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        return explain_tls(tls);
    }
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "timed out".to_owned(),
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => {
            format!("{e} (the server closed the connection: is this a TLS port?)")
        }
        _ => e.to_string(),
    }
}

impl Stream {
    fn connect(target: &Target, tls: Option<&Arc<ClientConfig>>, timeout: Duration) -> Result<Self, String> {
        let failed = |e: io::Error| format!("connect failed: {e}");
        match (target, tls) {
            (Target::Tcp(host, port), _) => connect_tcp(host, *port, timeout).map(Self::Tcp).map_err(failed),
            (Target::Tls(host, port), Some(config)) => {
                let tcp = connect_tcp(host, *port, timeout).map_err(failed)?;
                handshake(tcp, config, host, timeout).map(|s| Self::Tls(Box::new(s)))
            }
            (Target::Tls(..), None) => Err("no TLS configuration".to_owned()),
            (Target::Unix(path), _) => {
                let s = UnixStream::connect(path).map_err(failed)?;
                s.set_write_timeout(Some(timeout)).map_err(failed)?;
                Ok(Self::Unix(s))
            }
        }
    }

    fn set_nonblocking(&self) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.set_nonblocking(true),
            Self::Tls(s) => s.get_ref().set_nonblocking(true),
            Self::Unix(s) => s.set_nonblocking(true),
        }
    }

    fn io(&mut self) -> &mut dyn ReadWrite {
        match self {
            Self::Tcp(s) => s,
            Self::Tls(s) => s.as_mut(),
            Self::Unix(s) => s,
        }
    }

    /// The socket to poll: for TLS, the TCP socket under the session.
    fn raw_fd(&self) -> RawFd {
        match self {
            Self::Tcp(s) => s.as_raw_fd(),
            Self::Tls(s) => s.get_ref().as_raw_fd(),
            Self::Unix(s) => s.as_raw_fd(),
        }
    }

    const fn is_tls(&self) -> bool {
        matches!(self, Self::Tls(_))
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

struct Conn {
    stream: Stream,
    buf: Vec<u8>,
    /// Some well-formed reply arrived (tells a refused login from a port that speaks another protocol).
    answered: bool,
}

/// The sentinels of a `redis+sentinel://` URL (None for any other URL).
fn sentinel_of(url: &str) -> Result<Option<Sentinels>, String> {
    if !is_sentinel_url(url) {
        return Ok(None);
    }
    Sentinels::parse(url)
        .map(Some)
        .map_err(|e| format!("invalid redis url: {e}"))
}

/// A subscription that survives disconnects: the parent polls `fd()`, calls `read_events` when readable and
/// `maintain` every tick (which reconnects when the backoff allows).
pub struct PubSub {
    /// One server, or the seed nodes of a cluster: on a cluster, classic SUBSCRIBE on any node receives every
    /// PUBLISH (the cluster bus relays them), so the listener uses one node and moves to the next when it fails.
    targets: Vec<Target>,
    current: usize,
    /// `redis+sentinel://`: the one target is re-resolved through the sentinels before every connect.
    sentinel: Option<Sentinels>,
    username: Option<String>,
    password: Option<String>,
    channels: (String, String, String),
    connect_timeout: Duration,
    tls: Option<Arc<ClientConfig>>,
    conn: Option<Conn>,
    subscribed: bool,
    backoff: Backoff,
    retry_at: Instant,
}

impl PubSub {
    /// Parse the URL and, for `rediss://`, build the TLS config (reads the PEM files); does not connect yet.
    pub fn new(cfg: &CoordinatorConfig) -> Result<Self, String> {
        let sentinel = sentinel_of(&cfg.url)?;
        let urls = if super::cluster::is_cluster_url(&cfg.url) {
            super::cluster::node_urls(&cfg.url)
                .map_err(|e| format!("invalid redis url: {}", super::conn::first_line(&e)))?
        } else if let Some(s) = &sentinel {
            // NOTE: the URL's credentials and db are the master's; the address is a placeholder until connect.
            vec![s.master_url("127.0.0.1", 6379)]
        } else {
            vec![cfg.url.clone()]
        };
        let mut targets = Vec::with_capacity(urls.len());
        let mut first = None;
        for url in &urls {
            let info = url
                .as_str()
                .into_connection_info()
                .map_err(|e| format!("invalid redis url: {e}"))?;
            targets.push(match info.addr() {
                ConnectionAddr::Tcp(host, port) => Target::Tcp(host.clone(), *port),
                ConnectionAddr::TcpTls { host, port, .. } => Target::Tls(host.clone(), *port),
                ConnectionAddr::Unix(path) => Target::Unix(path.clone()),
                _ => return Err("unsupported redis address for pub/sub".to_owned()),
            });
            first.get_or_insert(info);
        }
        let info = first.ok_or_else(|| "invalid redis url: no address".to_owned())?;
        let tls = match targets.first() {
            Some(Target::Tls(..)) => Some(
                cfg.tls
                    .rustls_config()
                    .map_err(|e| format!("invalid TLS settings: {e}"))?,
            ),
            _ => None,
        };
        let redis = info.redis_settings();
        Ok(Self {
            targets,
            current: 0,
            sentinel,
            username: redis.username().map(str::to_owned),
            password: redis.password().map(str::to_owned),
            channels: channel_names(&cfg.prefix),
            connect_timeout: cfg
                .connect_timeout
                .filter(|t| !t.is_zero())
                .map_or(MAX_CONNECT_TIMEOUT, |t| t.min(MAX_CONNECT_TIMEOUT)),
            tls,
            conn: None,
            subscribed: false,
            backoff: Backoff::new(Duration::from_millis(500), crate::supervisor::backoff::RECONNECT_MAX),
            retry_at: Instant::now(),
        })
    }

    /// The socket to poll for input, while connected.
    pub fn fd(&self) -> Option<RawFd> {
        self.conn.as_ref().map(|c| c.stream.raw_fd())
    }

    pub const fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// The server confirmed the subscription on the current connection.
    pub const fn is_subscribed(&self) -> bool {
        self.subscribed
    }

    /// When `maintain` will next try to connect (None while connected).
    pub fn next_retry(&self) -> Option<Instant> {
        self.conn.is_none().then_some(self.retry_at)
    }

    /// Connect and subscribe if disconnected and the backoff allows. `Some(Err)` on a failed attempt.
    pub fn maintain(&mut self, now: Instant, events: &mut Vec<Event>) -> Option<Result<(), String>> {
        if self.conn.is_some() || now < self.retry_at {
            return None;
        }
        match self.connect() {
            Ok(conn) => {
                self.conn = Some(conn);
                events.push(Event::Connected);
                Some(Ok(()))
            }
            Err(e) => Some(Err(self.fail(e))),
        }
    }

    fn connect(&mut self) -> Result<Conn, String> {
        if let Some(s) = &self.sentinel {
            let (host, port) = s.master_addr(self.connect_timeout).map_err(|e| e.to_string())?;
            self.targets = vec![Target::Tcp(host, port)];
        }
        let mut stream = Stream::connect(self.target(), self.tls.as_ref(), self.connect_timeout)?;
        let mut out = Vec::new();
        if let Some(pw) = &self.password {
            match &self.username {
                Some(user) => out.extend(encode_command(&[b"AUTH", user.as_bytes(), pw.as_bytes()])),
                None => out.extend(encode_command(&[b"AUTH", pw.as_bytes()])),
            }
        }
        let (bcast, eta, control) = &self.channels;
        out.extend(encode_command(&[
            b"SUBSCRIBE",
            bcast.as_bytes(),
            eta.as_bytes(),
            control.as_bytes(),
        ]));
        // NOTE: written while the socket is still blocking (bounded by the write timeout); the replies are
        // read later by the poll loop like any other frame.
        let sent = stream.io().write_all(&out).and_then(|()| stream.io().flush());
        sent.and_then(|()| stream.set_nonblocking()).map_err(|e| {
            if stream.is_tls() {
                format!("redis TLS handshake failed: {}", describe_io(&e))
            } else {
                format!("connect failed: {e}")
            }
        })?;
        Ok(Conn {
            stream,
            buf: Vec::new(),
            answered: false,
        })
    }

    fn target(&self) -> &Target {
        &self.targets[self.current % self.targets.len()]
    }

    /// Drop the connection and schedule a reconnect (to the next node of a cluster); returns `why` for the caller
    /// to log.
    fn fail(&mut self, why: String) -> String {
        self.current = (self.current + 1) % self.targets.len();
        self.conn = None;
        self.subscribed = false;
        self.retry_at = Instant::now() + self.backoff.next_delay();
        why
    }

    /// Read everything available and append the complete messages to `events`. On EOF, an I/O error, an
    /// error reply or garbage the connection is dropped (reconnect later) and the reason returned.
    pub fn read_events(&mut self, events: &mut Vec<Event>) -> Result<(), String> {
        let plain = matches!(self.target(), Target::Tcp(..));
        let Some(conn) = self.conn.as_mut() else { return Ok(()) };
        let result = fill(conn).and_then(|()| self.drain_frames(events));
        let unanswered = self.conn.as_ref().is_some_and(|c| !c.answered);
        result.map_err(|why| {
            // NOTE: a TLS-only port closes (or answers with a TLS alert) a plaintext client at once.
            let why = if plain && unanswered && !why.starts_with("redis authentication failed") {
                format!("{why} (if that port expects TLS, use a rediss:// url)")
            } else {
                why
            };
            self.fail(why)
        })
    }

    fn drain_frames(&mut self, events: &mut Vec<Event>) -> Result<(), String> {
        let Some(conn) = self.conn.as_mut() else { return Ok(()) };
        let mut used = 0;
        let mut subscribed = false;
        let outcome = loop {
            match parse(&conn.buf[used..]) {
                Ok(Some((frame, n))) => {
                    used += n;
                    conn.answered = true;
                    match handle_frame(frame, &self.channels, events) {
                        Ok(confirmed) => subscribed |= confirmed,
                        Err(e) => break Err(e),
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e.to_string()),
            }
        };
        conn.buf.drain(..used);
        // NOTE: only a confirmed subscription ends the backoff, so a server that accepts the connection and
        // then refuses us (wrong password) keeps being retried ever more slowly.
        if subscribed {
            self.backoff.reset();
            self.subscribed = true;
        }
        outcome
    }
}

/// Read until the stream would block (for TLS: no plaintext buffered in rustls either). Errors on EOF, I/O
/// errors and an oversized backlog.
fn fill(conn: &mut Conn) -> Result<(), String> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match conn.stream.io().read(&mut chunk) {
            Ok(0) => return Err("connection closed by the server".to_owned()),
            Ok(n) => conn.buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if conn.stream.is_tls() => return Err(format!("read failed: {}", describe_io(&e))),
            Err(e) => return Err(format!("read failed: {e}")),
        }
        if conn.buf.len() > MAX_BUFFERED {
            return Err("frame too large".to_owned());
        }
    }
}

/// Ok(true) when the frame confirms a subscription.
fn handle_frame(frame: Frame, channels: &(String, String, String), events: &mut Vec<Event>) -> Result<bool, String> {
    match frame {
        Frame::Error(e) => {
            let text = String::from_utf8_lossy(&e);
            if ["WRONGPASS", "NOAUTH", "ERR AUTH"]
                .iter()
                .any(|code| text.starts_with(code))
            {
                Err(format!("redis authentication failed: {text}"))
            } else {
                Err(format!("error reply: {text}"))
            }
        }
        Frame::Array(Some(items)) => Ok(handle_push(items, channels, events)),
        // NOTE: `+OK` answers AUTH; anything else unexpected but well-formed is ignored rather than fatal.
        _ => Ok(false),
    }
}

/// Ok(true) for a subscribe confirmation; messages on our channels become events.
fn handle_push(items: Vec<Frame>, channels: &(String, String, String), events: &mut Vec<Event>) -> bool {
    let mut it = items.into_iter();
    let (Some(Frame::Bulk(Some(kind))), Some(Frame::Bulk(Some(channel)))) = (it.next(), it.next()) else {
        return false;
    };
    if kind == b"subscribe" {
        return true;
    }
    if kind != b"message" {
        return false;
    }
    if channel == channels.0.as_bytes() {
        if let Some(Frame::Bulk(Some(payload))) = it.next() {
            events.push(Event::Broadcast(payload));
        }
    } else if channel == channels.1.as_bytes() {
        events.push(Event::Eta);
    } else if channel == channels.2.as_bytes() {
        if let Some(Frame::Bulk(Some(payload))) = it.next() {
            events.push(Event::Control(payload));
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn cfg(url: &str) -> CoordinatorConfig {
        CoordinatorConfig {
            url: url.to_owned(),
            prefix: "wakaq".to_owned(),
            daemon_id: "d".to_owned(),
            queues: vec![],
            limited_tasks: vec![],
            task_names: vec![],
            conc_limits: vec![],
            heartbeat_timeout: Duration::from_secs(10),
            socket_timeout: None,
            connect_timeout: Some(Duration::from_secs(1)),
            tls: crate::broker::tls::TlsOptions::default(),
        }
    }

    fn msg(channel: &str, payload: &[u8]) -> Vec<u8> {
        encode_command(&[b"message", channel.as_bytes(), payload])
    }

    #[test]
    fn channels_follow_prefix() {
        assert_eq!(
            channel_names("wakaq"),
            (
                "wakaq-broadcast".to_owned(),
                "wakaq-eta".to_owned(),
                "wakaq-control".to_owned()
            )
        );
        assert_eq!(channel_names("app").2, "app-control");
    }

    #[test]
    fn urls() {
        let mut tls = cfg("rediss://localhost:6380");
        tls.tls.ca_certs = Some("/nonexistent.pem".to_owned());
        assert!(PubSub::new(&tls).is_err_and(|e| e.contains("ssl_ca_certs")));
        tls.tls = crate::broker::tls::TlsOptions {
            insecure: true,
            ..Default::default()
        };
        let p = PubSub::new(&tls).expect("parsed");
        assert!(matches!(p.target(), Target::Tls(ref h, 6380) if h == "localhost") && p.tls.is_some());
        assert!(PubSub::new(&cfg("nonsense")).is_err());
        let p = PubSub::new(&cfg("redis+cluster://u:pw@127.0.0.1:7000,127.0.0.1:7001")).expect("parsed");
        assert_eq!(p.targets.len(), 2);
        assert_eq!(p.password.as_deref(), Some("pw"));
        let p = PubSub::new(&cfg("redis://user:pw@127.0.0.1:6390/2")).expect("parsed");
        assert_eq!(
            (p.username.as_deref(), p.password.as_deref()),
            (Some("user"), Some("pw"))
        );
        assert!(matches!(p.target(), Target::Tcp(ref h, 6390) if h == "127.0.0.1"));
        let p = PubSub::new(&cfg("unix:///tmp/r.sock")).expect("parsed");
        assert!(matches!(p.target(), Target::Unix(_)));
    }

    #[test]
    fn frames_become_events() {
        let ch = channel_names("wakaq");
        let mut ev = Vec::new();
        let sub = encode_command(&[b"subscribe", b"wakaq-eta"]);
        for f in [
            &sub,
            &msg("wakaq-broadcast", b"\x81\xa1x"),
            &msg("wakaq-eta", b"q"),
            &msg("wakaq-control", b"cancel d 1 2"),
            &msg("other", b"z"),
        ] {
            let (frame, _) = parse(f).expect("ok").expect("complete");
            handle_frame(frame, &ch, &mut ev).expect("handled");
        }
        assert_eq!(
            ev,
            vec![
                Event::Broadcast(b"\x81\xa1x".to_vec()),
                Event::Eta,
                Event::Control(b"cancel d 1 2".to_vec())
            ]
        );
        assert!(handle_frame(Frame::Error(b"NOAUTH".to_vec()), &ch, &mut ev).is_err());
    }

    /// A fake server: checks what we send, then streams replies split at awkward places.
    #[test]
    fn subscribes_and_reads_split_frames() {
        let server = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = server.local_addr().expect("addr").port();
        let mut ps = PubSub::new(&cfg(&format!("redis://:secret@127.0.0.1:{port}"))).expect("parsed");
        let mut ev = Vec::new();
        assert_eq!(ps.maintain(Instant::now(), &mut ev), Some(Ok(())));
        assert_eq!(ev, vec![Event::Connected]);
        let (mut peer, _) = server.accept().expect("accept");
        let mut expect = encode_command(&[b"AUTH", b"secret"]);
        expect.extend(encode_command(&[
            b"SUBSCRIBE",
            b"wakaq-broadcast",
            b"wakaq-eta",
            b"wakaq-control",
        ]));
        let mut got = vec![0u8; expect.len()];
        peer.read_exact(&mut got).expect("read");
        assert_eq!(got, expect);

        let mut stream = b"+OK\r\n".to_vec();
        stream.extend(msg("wakaq-broadcast", b"one"));
        stream.extend(msg("wakaq-eta", b""));
        let (a, b) = stream.split_at(17);
        ev.clear();
        peer.write_all(a).expect("write");
        wait_readable(ps.fd().expect("fd"));
        ps.read_events(&mut ev).expect("partial ok");
        peer.write_all(b).expect("write");
        let deadline = Instant::now() + Duration::from_secs(5);
        while ev.len() < 2 && Instant::now() < deadline {
            wait_readable(ps.fd().expect("fd"));
            ps.read_events(&mut ev).expect("read ok");
        }
        assert_eq!(ev, vec![Event::Broadcast(b"one".to_vec()), Event::Eta]);

        peer.write_all(b"!garbage\r\n").expect("write");
        wait_readable(ps.fd().expect("fd"));
        assert!(ps.read_events(&mut ev).is_err());
        assert!(!ps.is_connected() && ps.next_retry().is_some());
    }

    fn tls_server_config() -> Arc<rustls::ServerConfig> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain = CertificateDer::pem_slice_iter(include_bytes!("pubsub/testdata/server.pem"))
            .collect::<Result<Vec<_>, _>>()
            .expect("certificate");
        let key = PrivateKeyDer::from_pem_slice(include_bytes!("pubsub/testdata/server.key")).expect("key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server config");
        Arc::new(config)
    }

    /// Over TLS, one `read_events` after the data arrived must deliver every message, even when they came
    /// as many records holding more plaintext than one read takes: rustls keeps the rest decrypted, where
    /// `poll` cannot see it (the socket is already drained).
    #[test]
    fn tls_subscribes_and_drains_buffered_plaintext() {
        let server = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = server.local_addr().expect("addr").port();
        let mut config = cfg(&format!("rediss://:secret@localhost:{port}"));
        config.tls.ca_certs =
            Some(concat!(env!("CARGO_MANIFEST_DIR"), "/rust/src/broker/pubsub/testdata/ca.pem").into());
        let mut ps = PubSub::new(&config).expect("parsed");
        let server_config = tls_server_config();
        let big = vec![b'x'; 20_000];
        let payload = big.clone();
        let (sent_tx, sent_rx) = std::sync::mpsc::channel();
        let (end_tx, end_rx) = std::sync::mpsc::channel::<()>();
        let peer = std::thread::spawn(move || {
            let (tcp, _) = server.accept().expect("accept");
            let conn = rustls::ServerConnection::new(server_config).expect("server connection");
            let mut tls = StreamOwned::new(conn, tcp);
            let mut expect = encode_command(&[b"AUTH", b"secret"]);
            expect.extend(encode_command(&[
                b"SUBSCRIBE",
                b"wakaq-broadcast",
                b"wakaq-eta",
                b"wakaq-control",
            ]));
            let mut got = vec![0u8; expect.len()];
            tls.read_exact(&mut got).expect("read");
            assert_eq!(got, expect);
            // NOTE: one record per writer() call, all sent to the socket by one flush.
            tls.conn.writer().write_all(b"+OK\r\n").expect("buffer");
            tls.conn
                .writer()
                .write_all(&encode_command(&[b"subscribe", b"wakaq-broadcast", b"1"]))
                .expect("buffer");
            for _ in 0..3 {
                tls.conn
                    .writer()
                    .write_all(&msg("wakaq-broadcast", &payload))
                    .expect("buffer");
            }
            tls.conn.writer().write_all(&msg("wakaq-eta", b"q")).expect("buffer");
            tls.flush().expect("flush");
            sent_tx.send(()).expect("signal");
            let _ = end_rx.recv();
        });
        let mut ev = Vec::new();
        assert_eq!(ps.maintain(Instant::now(), &mut ev), Some(Ok(())));
        sent_rx.recv().expect("server sent");
        std::thread::sleep(Duration::from_millis(200));
        wait_readable(ps.fd().expect("fd"));
        ev.clear();
        ps.read_events(&mut ev).expect("read");
        let expected: Vec<Event> = (0..3)
            .map(|_| Event::Broadcast(big.clone()))
            .chain([Event::Eta])
            .collect();
        assert_eq!(ev, expected);
        assert!(ps.is_subscribed());
        end_tx.send(()).expect("end");
        peer.join().expect("peer");
    }

    #[test]
    fn tls_handshake_errors_are_one_line() {
        let server = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = server.local_addr().expect("addr").port();
        let server_config = tls_server_config();
        let peer = std::thread::spawn(move || {
            let (tcp, _) = server.accept().expect("accept");
            let mut tls = StreamOwned::new(rustls::ServerConnection::new(server_config).expect("conn"), tcp);
            let _ = tls.read(&mut [0u8; 16]);
        });
        // a CA that did not sign the server's certificate
        let mut config = cfg(&format!("rediss://localhost:{port}"));
        config.tls.ca_certs = Some(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/rust/src/broker/pubsub/testdata/other-ca.pem"
            )
            .into(),
        );
        let mut ps = PubSub::new(&config).expect("parsed");
        let mut ev = Vec::new();
        let err = ps
            .maintain(Instant::now(), &mut ev)
            .expect("attempted")
            .expect_err("unknown CA");
        assert!(
            err.starts_with("redis TLS handshake failed: invalid peer certificate"),
            "{err}"
        );
        assert!(err.contains("ssl_ca_certs") && !err.contains('\n'), "{err}");
        peer.join().expect("peer");

        // a plain server that never answers the ClientHello
        let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = silent.local_addr().expect("addr").port();
        let mut config = cfg(&format!("rediss://localhost:{port}"));
        config.connect_timeout = Some(Duration::from_millis(200));
        config.tls.insecure = true;
        let mut ps = PubSub::new(&config).expect("parsed");
        let err = ps
            .maintain(Instant::now(), &mut ev)
            .expect("attempted")
            .expect_err("no answer");
        assert!(err.starts_with("redis TLS handshake failed: no TLS answer"), "{err}");
        drop(silent);
    }

    fn wait_readable(fd: RawFd) {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, bounded timeout.
        unsafe { libc::poll(&raw mut pfd, 1, 5000) };
    }
}
