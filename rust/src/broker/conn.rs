//! One lazily (re)connected synchronous Redis connection with the configured timeouts.

use std::time::Duration;

use redis::{Client, Connection, RedisError, RedisResult};

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

pub struct Conn {
    client: Client,
    live: Option<Connection>,
    socket_timeout: Option<Duration>,
    connect_timeout: Duration,
    /// The connection has answered at least once, so a broken pipe means it went stale.
    proven: bool,
}

impl Conn {
    pub fn new(url: &str, socket_timeout: Option<Duration>, connect_timeout: Option<Duration>) -> RedisResult<Self> {
        Ok(Self {
            client: Client::open(url)?,
            live: None,
            socket_timeout,
            connect_timeout: connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            proven: false,
        })
    }

    fn connection(&mut self) -> RedisResult<&mut Connection> {
        if self.live.is_none() {
            let conn = self.client.get_connection_with_timeout(self.connect_timeout)?;
            conn.set_read_timeout(self.socket_timeout)?;
            conn.set_write_timeout(self.socket_timeout)?;
            self.live = Some(conn);
            self.proven = false;
        }
        self.live
            .as_mut()
            .ok_or_else(|| RedisError::from(std::io::Error::other("no connection")))
    }

    /// Run `f` on the connection. A connection that broke since its last use (Redis restarted, idle
    /// timeout) is replaced and `f` retried once; any other failure drops the connection so the next call
    /// starts clean (a timed-out reply may still arrive and must not be read as the next answer).
    pub fn run<T>(&mut self, mut f: impl FnMut(&mut Connection) -> RedisResult<T>) -> RedisResult<T> {
        let result = f(self.connection()?);
        match result {
            Err(e) if self.proven && is_stale(&e) => {
                self.live = None;
                let retried = f(self.connection()?);
                self.settle(retried)
            }
            other => self.settle(other),
        }
    }

    /// Run a blocking command whose server-side timeout is `block`: the read timeout must exceed it.
    pub fn run_blocking<T>(
        &mut self,
        block: Duration,
        mut f: impl FnMut(&mut Connection) -> RedisResult<T>,
    ) -> RedisResult<T> {
        let margin = self.socket_timeout.unwrap_or(Duration::from_secs(5));
        let conn = self.connection()?;
        conn.set_read_timeout(Some(block + margin))?;
        let result = f(conn);
        let result = self.settle(result);
        if let Some(conn) = self.live.as_mut() {
            conn.set_read_timeout(self.socket_timeout)?;
        }
        result
    }

    fn settle<T>(&mut self, result: RedisResult<T>) -> RedisResult<T> {
        match &result {
            Ok(_) => self.proven = true,
            Err(e) if is_connection_problem(e) => self.live = None,
            Err(_) => {}
        }
        result
    }
}

fn is_stale(e: &RedisError) -> bool {
    (e.is_connection_dropped() || e.is_io_error()) && !e.is_timeout()
}

fn is_connection_problem(e: &RedisError) -> bool {
    e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_unrecoverable_error()
}

/// A system call inside the Redis client returned EINTR: a signal arrived (SIGTERM, SIGQUIT), Redis is fine.
pub fn is_interrupted(e: &RedisError) -> bool {
    // WARN: redis-rs keeps the io::Error behind an Arc that `source()` cannot downcast, so match its text.
    e.is_io_error() && e.to_string().contains(&format!("os error {}", libc::EINTR))
}

/// A short, single-line description of a Redis error for logs and exceptions.
pub fn describe(e: &RedisError) -> String {
    let text = e.to_string();
    let line = text.lines().next().unwrap_or("redis error");
    if is_interrupted(e) {
        format!("redis call interrupted by a signal: {line}")
    } else if e.is_timeout() {
        format!("redis timed out: {line}")
    } else if e.is_connection_refusal() || e.is_io_error() || e.is_connection_dropped() {
        format!("redis unavailable: {line}")
    } else {
        format!("redis error: {line}")
    }
}
