//! The parent's log: its own lines in WakaQ's format, and children's lines relayed verbatim.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};

/// Python `logging` level numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug = 10,
    Info = 20,
    Warning = 30,
    Error = 40,
}

impl Level {
    const fn name(self) -> &'static str {
        match self {
            Self::Debug => "DEBUG",
            Self::Info => "INFO",
            Self::Warning => "WARNING",
            Self::Error => "ERROR",
        }
    }
}

enum Sink {
    File(File),
    Stderr,
}

/// Writes whole lines straight to the fd (no userspace buffer), so every line leaves promptly.
pub struct Logger {
    sink: Sink,
    min_level: i64,
}

impl Logger {
    /// `path` None logs to stderr. A log file is opened once, for appending, created if missing.
    pub fn open(path: Option<&str>, min_level: i64) -> std::io::Result<Self> {
        let sink = match path {
            Some(p) => Sink::File(OpenOptions::new().append(true).create(true).open(p)?),
            None => Sink::Stderr,
        };
        Ok(Self { sink, min_level })
    }

    pub fn enabled(&self, level: Level) -> bool {
        level as i64 >= self.min_level
    }

    pub fn log(&mut self, level: Level, msg: &str) {
        if self.enabled(level) {
            let line = format!(
                "[{}] {}: {msg}\n",
                format_utc_millis(super::clock::unix_now()),
                level.name()
            );
            self.write_raw(line.as_bytes());
        }
    }

    pub fn debug(&mut self, msg: &str) {
        self.log(Level::Debug, msg);
    }

    pub fn info(&mut self, msg: &str) {
        self.log(Level::Info, msg);
    }

    pub fn warning(&mut self, msg: &str) {
        self.log(Level::Warning, msg);
    }

    pub fn error(&mut self, msg: &str) {
        self.log(Level::Error, msg);
    }

    /// Write bytes as they are (children's complete lines).
    pub fn write_raw(&mut self, bytes: &[u8]) {
        // NOTE: a failing log destination (disk full, closed stderr) must not stop the supervisor, and
        // there is nowhere left to report it, so write errors are dropped.
        let _ = match &mut self.sink {
            Sink::File(f) => f.write_all(bytes),
            Sink::Stderr => std::io::stderr().write_all(bytes),
        };
    }

    /// The log file's fd, which a child must close (it writes through its pipe instead).
    pub fn file_fd(&self) -> Option<RawFd> {
        match &self.sink {
            Sink::File(f) => Some(f.as_raw_fd()),
            Sink::Stderr => None,
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS,mmm` in UTC, as Python logging's default `asctime` (with a UTC converter).
pub fn format_utc_millis(unix: f64) -> String {
    let millis_total = (unix.max(0.0) * 1000.0) as u64;
    let (secs, millis) = (millis_total / 1000, millis_total % 1000);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02},{millis:03}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar (H. Hinnant's method).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Longest partial line kept while waiting for its newline; longer ones are flushed as they are.
const MAX_PARTIAL: usize = 64 * 1024;

/// Splits a child's output stream into complete lines, keeping a trailing partial line for later.
#[derive(Default)]
pub struct LineBuffer {
    partial: Vec<u8>,
}

impl LineBuffer {
    /// Append `data`; move every complete line (with its `\n`) to `out`.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<u8>) {
        match data.iter().rposition(|&b| b == b'\n') {
            Some(last) => {
                out.append(&mut self.partial);
                out.extend_from_slice(&data[..=last]);
                self.partial.extend_from_slice(&data[last + 1..]);
            }
            None => self.partial.extend_from_slice(data),
        }
        if self.partial.len() > MAX_PARTIAL {
            self.finish(out);
        }
    }

    /// The stream ended (or the line is too long): move the partial line, newline-terminated, to `out`.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.partial.is_empty() {
            out.append(&mut self.partial);
            out.push(b'\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_format() {
        assert_eq!(format_utc_millis(0.0), "1970-01-01 00:00:00,000");
        assert_eq!(format_utc_millis(1_704_164_645.678), "2024-01-02 03:04:05,678");
        assert_eq!(format_utc_millis(951_782_400.0), "2000-02-29 00:00:00,000");
        assert_eq!(format_utc_millis(4_107_542_399.999), "2100-02-28 23:59:59,999");
    }

    #[test]
    fn lines_split_and_partial_kept() {
        let mut lb = LineBuffer::default();
        let mut out = Vec::new();
        lb.push(b"hel", &mut out);
        assert!(out.is_empty());
        lb.push(b"lo\nwor", &mut out);
        assert_eq!(out, b"hello\n");
        out.clear();
        lb.push(b"ld\na\nb\nc", &mut out);
        assert_eq!(out, b"world\na\nb\n");
        out.clear();
        lb.finish(&mut out);
        assert_eq!(out, b"c\n");
        out.clear();
        lb.finish(&mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn overlong_partial_is_flushed() {
        let mut lb = LineBuffer::default();
        let mut out = Vec::new();
        lb.push(&vec![b'x'; MAX_PARTIAL + 1], &mut out);
        assert_eq!(out.len(), MAX_PARTIAL + 2);
        assert_eq!(out.last(), Some(&b'\n'));
    }

    #[test]
    fn levels_filter() {
        let l = Logger::open(None, 20).expect("stderr");
        assert!(!l.enabled(Level::Debug));
        assert!(l.enabled(Level::Info) && l.enabled(Level::Error));
    }
}
