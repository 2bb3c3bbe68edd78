//! The supervisor's pub/sub listener: a minimal RESP2 subscriber on a plain socket, so its fd can sit in
//! the parent's `poll` set (redis-rs's sync `PubSub` does not expose one). Subscribes to the broadcast and
//! eta channels, reads without blocking, reconnects with backoff.
//!
//! WARN: a forked child must never drop a `PubSub` (a drop closes the socket the parent still uses):
//! children `mem::forget` it and close its fd.

pub mod resp;

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use redis::{ConnectionAddr, IntoConnectionInfo};

use self::resp::{encode_command, parse, Frame};
use super::keys::Keys;
use super::parent::CoordinatorConfig;
use crate::supervisor::backoff::Backoff;

/// Largest amount of unparsed input kept; a bigger frame is treated as garbage (reconnect).
const MAX_BUFFERED: usize = 64 * 1024 * 1024;
/// WARN: connecting blocks the single-threaded parent loop (watchdog included), so it is kept short whatever
/// `connect_timeout` says; a slow network only delays the subscription, retried with backoff.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// `(broadcast, eta)` channel names for a key prefix (`wakaq` -> `wakaq-broadcast`, `wakaq-eta`).
pub fn channel_names(prefix: &str) -> (String, String) {
    let keys = Keys::new(prefix);
    (keys.broadcast_channel(), keys.eta_channel())
}

/// What arrived on the subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A broadcast task payload.
    Broadcast(Vec<u8>),
    /// Some eta set got a new earliest task: re-plan promotion.
    Eta,
    /// (Re)subscribed: messages may have been missed while disconnected.
    Connected,
}

#[derive(Debug, Clone)]
enum Target {
    Tcp(String, u16),
    Unix(PathBuf),
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn connect(target: &Target, timeout: Duration) -> io::Result<Self> {
        match target {
            Target::Tcp(host, port) => {
                let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{host}:{port} did not resolve"));
                for addr in (host.as_str(), *port).to_socket_addrs()? {
                    match TcpStream::connect_timeout(&addr, timeout) {
                        Ok(s) => {
                            s.set_nodelay(true)?;
                            s.set_write_timeout(Some(timeout))?;
                            return Ok(Self::Tcp(s));
                        }
                        Err(e) => last = e,
                    }
                }
                Err(last)
            }
            Target::Unix(path) => {
                let s = UnixStream::connect(path)?;
                s.set_write_timeout(Some(timeout))?;
                Ok(Self::Unix(s))
            }
        }
    }

    fn set_nonblocking(&self) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.set_nonblocking(true),
            Self::Unix(s) => s.set_nonblocking(true),
        }
    }

    fn io(&mut self) -> &mut dyn ReadWrite {
        match self {
            Self::Tcp(s) => s,
            Self::Unix(s) => s,
        }
    }

    fn raw_fd(&self) -> RawFd {
        match self {
            Self::Tcp(s) => s.as_raw_fd(),
            Self::Unix(s) => s.as_raw_fd(),
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

struct Conn {
    stream: Stream,
    buf: Vec<u8>,
}

/// A subscription that survives disconnects: the parent polls `fd()`, calls `read_events` when readable and
/// `maintain` every tick (which reconnects when the backoff allows).
pub struct PubSub {
    target: Target,
    username: Option<String>,
    password: Option<String>,
    channels: (String, String),
    connect_timeout: Duration,
    conn: Option<Conn>,
    backoff: Backoff,
    retry_at: Instant,
}

impl PubSub {
    /// Parse the URL; does not connect yet. `rediss://` is refused (TLS is not supported here yet).
    pub fn new(cfg: &CoordinatorConfig) -> Result<Self, String> {
        let scheme = cfg.url.split("://").next().unwrap_or_default();
        if scheme == "rediss" || scheme == "valkeys" {
            return Err("TLS (rediss://) is not supported by the pub/sub listener yet".to_owned());
        }
        let info = cfg
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| format!("invalid redis url: {e}"))?;
        let target = match info.addr() {
            ConnectionAddr::Tcp(host, port) => Target::Tcp(host.clone(), *port),
            ConnectionAddr::Unix(path) => Target::Unix(path.clone()),
            _ => return Err("unsupported redis address for pub/sub".to_owned()),
        };
        let redis = info.redis_settings();
        Ok(Self {
            target,
            username: redis.username().map(str::to_owned),
            password: redis.password().map(str::to_owned),
            channels: channel_names(&cfg.prefix),
            connect_timeout: cfg
                .connect_timeout
                .filter(|t| !t.is_zero())
                .map_or(MAX_CONNECT_TIMEOUT, |t| t.min(MAX_CONNECT_TIMEOUT)),
            conn: None,
            backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(5)),
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
            Err(e) => Some(Err(self.fail(format!("connect failed: {e}")))),
        }
    }

    fn connect(&self) -> io::Result<Conn> {
        let mut stream = Stream::connect(&self.target, self.connect_timeout)?;
        let mut out = Vec::new();
        if let Some(pw) = &self.password {
            match &self.username {
                Some(user) => out.extend(encode_command(&[b"AUTH", user.as_bytes(), pw.as_bytes()])),
                None => out.extend(encode_command(&[b"AUTH", pw.as_bytes()])),
            }
        }
        let (bcast, eta) = &self.channels;
        out.extend(encode_command(&[b"SUBSCRIBE", bcast.as_bytes(), eta.as_bytes()]));
        // NOTE: written while the socket is still blocking (bounded by the write timeout); the replies are
        // read later by the poll loop like any other frame.
        stream.io().write_all(&out)?;
        stream.set_nonblocking()?;
        Ok(Conn {
            stream,
            buf: Vec::new(),
        })
    }

    /// Drop the connection and schedule a reconnect; returns `why` for the caller to log.
    fn fail(&mut self, why: String) -> String {
        self.conn = None;
        self.retry_at = Instant::now() + self.backoff.next_delay();
        why
    }

    /// Read everything available and append the complete messages to `events`. On EOF, an I/O error, an
    /// error reply or garbage the connection is dropped (reconnect later) and the reason returned.
    pub fn read_events(&mut self, events: &mut Vec<Event>) -> Result<(), String> {
        let Some(conn) = self.conn.as_mut() else { return Ok(()) };
        let result = fill(conn).and_then(|()| self.drain_frames(events));
        result.map_err(|why| self.fail(why))
    }

    fn drain_frames(&mut self, events: &mut Vec<Event>) -> Result<(), String> {
        let Some(conn) = self.conn.as_mut() else { return Ok(()) };
        let mut used = 0;
        let mut subscribed = false;
        let outcome = loop {
            match parse(&conn.buf[used..]) {
                Ok(Some((frame, n))) => {
                    used += n;
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
        }
        outcome
    }
}

/// Read until the socket would block. Errors on EOF, I/O errors and an oversized backlog.
fn fill(conn: &mut Conn) -> Result<(), String> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match conn.stream.io().read(&mut chunk) {
            Ok(0) => return Err("connection closed by the server".to_owned()),
            Ok(n) => conn.buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read failed: {e}")),
        }
        if conn.buf.len() > MAX_BUFFERED {
            return Err("frame too large".to_owned());
        }
    }
}

/// Ok(true) when the frame confirms a subscription.
fn handle_frame(frame: Frame, channels: &(String, String), events: &mut Vec<Event>) -> Result<bool, String> {
    match frame {
        Frame::Error(e) => Err(format!("error reply: {}", String::from_utf8_lossy(&e))),
        Frame::Array(Some(items)) => Ok(handle_push(items, channels, events)),
        // NOTE: `+OK` answers AUTH; anything else unexpected but well-formed is ignored rather than fatal.
        _ => Ok(false),
    }
}

/// Ok(true) for a subscribe confirmation; messages on our channels become events.
fn handle_push(items: Vec<Frame>, channels: &(String, String), events: &mut Vec<Event>) -> bool {
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
            heartbeat_timeout: Duration::from_secs(10),
            socket_timeout: None,
            connect_timeout: Some(Duration::from_secs(1)),
        }
    }

    fn msg(channel: &str, payload: &[u8]) -> Vec<u8> {
        encode_command(&[b"message", channel.as_bytes(), payload])
    }

    #[test]
    fn channels_follow_prefix() {
        assert_eq!(
            channel_names("wakaq"),
            ("wakaq-broadcast".to_owned(), "wakaq-eta".to_owned())
        );
        assert_eq!(channel_names("app"), ("app-broadcast".to_owned(), "app-eta".to_owned()));
    }

    #[test]
    fn urls() {
        assert!(PubSub::new(&cfg("rediss://localhost:6380")).is_err_and(|e| e.contains("not supported")));
        assert!(PubSub::new(&cfg("nonsense")).is_err());
        let p = PubSub::new(&cfg("redis://user:pw@127.0.0.1:6390/2")).expect("parsed");
        assert_eq!(
            (p.username.as_deref(), p.password.as_deref()),
            (Some("user"), Some("pw"))
        );
        assert!(matches!(p.target, Target::Tcp(ref h, 6390) if h == "127.0.0.1"));
        let p = PubSub::new(&cfg("unix:///tmp/r.sock")).expect("parsed");
        assert!(matches!(p.target, Target::Unix(_)));
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
            &msg("other", b"z"),
        ] {
            let (frame, _) = parse(f).expect("ok").expect("complete");
            handle_frame(frame, &ch, &mut ev).expect("handled");
        }
        assert_eq!(ev, vec![Event::Broadcast(b"\x81\xa1x".to_vec()), Event::Eta]);
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
        expect.extend(encode_command(&[b"SUBSCRIBE", b"wakaq-broadcast", b"wakaq-eta"]));
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
