//! A small RESP2 frame parser for the pub/sub socket: complete frames only, bounded, never panics.
//! `parse` either returns one frame and how many bytes it used, says "need more bytes", or rejects garbage.

use std::fmt;

/// Longest bulk string accepted (Redis's own limit for a string value).
pub const MAX_BULK: usize = 512 * 1024 * 1024;
/// Most elements in one array (pub/sub replies have 3 or 4).
pub const MAX_ARRAY: usize = 1024;
/// Longest status/error/length line before we call it garbage.
pub const MAX_LINE: usize = 64 * 1024;
const MAX_DEPTH: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Simple(Vec<u8>),
    Error(Vec<u8>),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Frame>>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RESP protocol error: {}", self.0)
    }
}

type Parsed<T> = Result<Option<(T, usize)>, ProtocolError>;

fn bad<T>(msg: impl Into<String>) -> Result<T, ProtocolError> {
    Err(ProtocolError(msg.into()))
}

/// Parse one frame from the start of `buf`.
pub fn parse(buf: &[u8]) -> Parsed<Frame> {
    parse_at(buf, 0, 0)
}

fn parse_at(buf: &[u8], pos: usize, depth: usize) -> Parsed<Frame> {
    let Some(&kind) = buf.get(pos) else { return Ok(None) };
    let Some((line, next)) = read_line(buf, pos + 1)? else {
        return Ok(None);
    };
    match kind {
        b'+' => Ok(Some((Frame::Simple(line.to_vec()), next))),
        b'-' => Ok(Some((Frame::Error(line.to_vec()), next))),
        b':' => Ok(Some((Frame::Integer(parse_int(line)?), next))),
        b'$' => parse_bulk(buf, parse_int(line)?, next),
        b'*' => parse_array(buf, parse_int(line)?, next, depth),
        other => bad(format!("unexpected type byte 0x{other:02x}")),
    }
}

/// The bytes up to the next CRLF (exclusive) and the position after it.
fn read_line(buf: &[u8], start: usize) -> Parsed<&[u8]> {
    let rest = &buf[start.min(buf.len())..];
    match rest.windows(2).position(|w| w == b"\r\n") {
        Some(i) if i > MAX_LINE => bad("line too long"),
        Some(i) => Ok(Some((&rest[..i], start + i + 2))),
        None if rest.len() > MAX_LINE => bad("line too long"),
        None => Ok(None),
    }
}

fn parse_int(line: &[u8]) -> Result<i64, ProtocolError> {
    let text = std::str::from_utf8(line).or_else(|_| bad("non-ASCII integer"))?;
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return bad(format!("invalid integer {text:?}"));
    }
    text.parse().or_else(|_| bad(format!("integer out of range {text:?}")))
}

fn parse_bulk(buf: &[u8], len: i64, start: usize) -> Parsed<Frame> {
    if len == -1 {
        return Ok(Some((Frame::Bulk(None), start)));
    }
    let len = match usize::try_from(len) {
        Ok(n) if n <= MAX_BULK => n,
        _ => return bad(format!("invalid bulk length {len}")),
    };
    let end = start + len;
    if buf.len() < end + 2 {
        return Ok(None);
    }
    if &buf[end..end + 2] != b"\r\n" {
        return bad("bulk string not followed by CRLF");
    }
    Ok(Some((Frame::Bulk(Some(buf[start..end].to_vec())), end + 2)))
}

fn parse_array(buf: &[u8], len: i64, start: usize, depth: usize) -> Parsed<Frame> {
    if len == -1 {
        return Ok(Some((Frame::Array(None), start)));
    }
    let len = match usize::try_from(len) {
        Ok(n) if n <= MAX_ARRAY => n,
        _ => return bad(format!("invalid array length {len}")),
    };
    if depth >= MAX_DEPTH {
        return bad("arrays nested too deeply");
    }
    let mut items = Vec::with_capacity(len.min(16));
    let mut pos = start;
    for _ in 0..len {
        let Some((item, next)) = parse_at(buf, pos, depth + 1)? else {
            return Ok(None);
        };
        items.push(item);
        pos = next;
    }
    Ok(Some((Frame::Array(Some(items)), pos)))
}

/// Encode a command as a RESP array of bulk strings.
pub fn encode_command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(b: &[u8]) -> Frame {
        Frame::Bulk(Some(b.to_vec()))
    }

    #[test]
    fn scalars() {
        assert_eq!(parse(b"+OK\r\n"), Ok(Some((Frame::Simple(b"OK".to_vec()), 5))));
        assert_eq!(parse(b"-ERR no\r\n"), Ok(Some((Frame::Error(b"ERR no".to_vec()), 9))));
        assert_eq!(parse(b":-12\r\n"), Ok(Some((Frame::Integer(-12), 6))));
        assert_eq!(parse(b"$-1\r\n"), Ok(Some((Frame::Bulk(None), 5))));
        assert_eq!(parse(b"$0\r\n\r\n"), Ok(Some((bulk(b""), 6))));
        assert_eq!(parse(b"*-1\r\n"), Ok(Some((Frame::Array(None), 5))));
    }

    #[test]
    fn pubsub_message_with_binary_payload() {
        let data = b"*3\r\n$7\r\nmessage\r\n$15\r\nwakaq-broadcast\r\n$4\r\n\x00\r\n\xff\r\n";
        let (frame, used) = parse(data).expect("ok").expect("complete");
        assert_eq!(used, data.len());
        assert_eq!(
            frame,
            Frame::Array(Some(vec![
                bulk(b"message"),
                bulk(b"wakaq-broadcast"),
                bulk(b"\x00\r\n\xff")
            ]))
        );
    }

    #[test]
    fn every_prefix_is_incomplete_never_an_error() {
        let data = b"*3\r\n$9\r\nsubscribe\r\n$9\r\nwakaq-eta\r\n:2\r\n";
        for cut in 0..data.len() {
            assert_eq!(parse(&data[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(parse(data).expect("ok").is_some());
    }

    #[test]
    fn several_frames_in_one_buffer() {
        let data = b"+OK\r\n:1\r\n$1\r\nx\r\n";
        let mut pos = 0;
        let mut got = Vec::new();
        while let Some((f, used)) = parse(&data[pos..]).expect("ok") {
            got.push(f);
            pos += used;
        }
        assert_eq!(got, vec![Frame::Simple(b"OK".to_vec()), Frame::Integer(1), bulk(b"x")]);
        assert_eq!(pos, data.len());
    }

    #[test]
    fn garbage_is_rejected() {
        for data in [
            &b"hello\r\n"[..],
            b":12a\r\n",
            b":\r\n",
            b"$-2\r\n",
            b"$3\r\nabcXY",
            b"*-5\r\n",
            b"*99999999\r\n",
            b"$99999999999999999999\r\n",
            b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
        ] {
            assert!(parse(data).is_err(), "{data:?}");
        }
        let long = vec![b'+'; MAX_LINE + 10];
        assert!(parse(&long).is_err());
    }

    #[test]
    fn commands_encode() {
        assert_eq!(encode_command(&[b"AUTH", b"pw"]), b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n");
        let cmd = encode_command(&[b"SUBSCRIBE", b"a", b"b"]);
        assert_eq!(
            parse(&cmd).expect("ok").map(|(f, _)| f),
            Some(Frame::Array(Some(vec![bulk(b"SUBSCRIBE"), bulk(b"a"), bulk(b"b")])))
        );
    }
}
