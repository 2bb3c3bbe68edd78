//! The one reader of a payload's `meta`: what the opt-in features (results, uniqueness, retries) carry, validated
//! once, on the raw bytes, without Python. A worker child checks every claimed payload with it before any Python
//! code sees the task (a malformed meta is recorded failed with the reason given here); the supervisor and the
//! admin calls read the same fields with it to settle a task inside the script that moves it.

use std::fmt;

use super::read::{DecodeError, Reader, Token};

/// Longest task id (bytes); ids made by wakaq are 32 hex digits.
pub const MAX_ID: usize = 128;
/// Longest uniqueness lock key (bytes).
pub const MAX_LOCK: usize = 1024;
/// Longest result TTL (seconds): ten years. NOTE: Redis refuses a PEXPIRE past i64 milliseconds, and a script
/// error after the record was written would leave it without a TTL.
pub const MAX_TTL: i64 = 10 * 365 * 24 * 3600;
/// Longest per-key concurrency key (bytes; lua/conc.lua reads the same bound).
pub const MAX_CONC_KEY: usize = 256;
/// Most entries in `headers` (trace propagation: W3C `traceparent`/`tracestate`, `baggage`, Sentry's `sentry-trace`).
pub const MAX_HEADERS: u32 = 16;
/// Longest header name (bytes).
pub const MAX_HEADER_NAME: usize = 128;
/// Longest header value (bytes): W3C Baggage allows 8192 bytes in all, the largest of these headers.
pub const MAX_HEADER_VALUE: usize = 8192;

/// The meta fields the broker acts on. `errors`, `headers` and unknown keys are checked for shape only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    pub id: Option<String>,
    /// The result record's TTL in seconds, when the task stores results.
    pub results: Option<i64>,
    /// The uniqueness lock's key, when the task holds one.
    pub unique: Option<String>,
    /// The workflow a step belongs to (python/wakaq/workflow.py): its id, for the task (`current_task.workflow_id`)
    /// and for readers. The broker links the step to its workflow through the step's result record (lua/workflow.lua),
    /// not through this field, so a forged one cannot make a script touch a workflow.
    pub wf: Option<String>,
    /// The task's per-key concurrency key (`@app.task(concurrency_key=...)`), computed by the producer: the claim
    /// script (lua/conc.lua) reads it from the same bytes to take a permit; here it is validated, and the child
    /// names the key whose permit it gives up when the task ends.
    pub ck: Option<String>,
}

impl Meta {
    /// The task stores results or holds a lock: something besides its ack has to be settled when it ends.
    pub fn tracked(&self) -> bool {
        self.results.is_some() || self.unique.is_some()
    }
}

/// Why a payload's meta is refused; the failure record's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaError(pub String);

impl fmt::Display for MetaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed meta: {}", self.0)
    }
}

fn refuse<T>(what: String) -> Result<T, Broken> {
    Err(Broken::Meta(MetaError(what)))
}

/// The meta of a task payload: `Ok(None)` when it has none (a plain task, WakaQ's JSON) or the bytes are not valid
/// msgpack (that is the decoder's business: it records the task as undecodable). `lock_prefix`: every uniqueness
/// lock of this app starts with it (`Keys::unique("")`), so a forged meta cannot make a script delete another key.
pub fn check(payload: &[u8], lock_prefix: &str) -> Result<Option<Meta>, MetaError> {
    // NOTE: the hot path: a plain task's payload does not hold the bytes of the key at all, and a byte search is
    // cheaper than walking its arguments token by token
    if !payload.windows(4).any(|w| w == b"meta") {
        return Ok(None);
    }
    match scan(payload, lock_prefix) {
        Err(Broken::Bytes) => Ok(None),
        Err(Broken::Meta(e)) => Err(e),
        Ok(meta) => Ok(meta),
    }
}

/// The task name of a wakaq payload (a msgpack map whose first key is `name`, as wakaq writes it); None otherwise.
pub fn task_name(payload: &[u8]) -> Option<&str> {
    let mut r = Reader::new(payload);
    let Ok(Token::Map(1..)) = r.token() else { return None };
    let Ok(Token::Str(b"name")) = r.token() else {
        return None;
    };
    match r.token() {
        Ok(Token::Str(name)) => std::str::from_utf8(name).ok(),
        _ => None,
    }
}

/// Why `scan` stopped: bytes that are no msgpack, or a meta that breaks the rules.
enum Broken {
    Bytes,
    Meta(MetaError),
}

impl From<DecodeError> for Broken {
    fn from(_: DecodeError) -> Self {
        Self::Bytes
    }
}

impl From<MetaError> for Broken {
    fn from(e: MetaError) -> Self {
        Self::Meta(e)
    }
}

fn scan(payload: &[u8], lock_prefix: &str) -> Result<Option<Meta>, Broken> {
    let mut r = Reader::new(payload);
    let Ok(Token::Map(entries)) = r.token() else {
        return Ok(None);
    };
    for _ in 0..entries {
        match r.token()? {
            Token::Str(b"meta") => return read_meta(&mut r, lock_prefix),
            _ => r.skip(1)?,
        }
    }
    Ok(None)
}

fn read_meta(r: &mut Reader<'_>, lock_prefix: &str) -> Result<Option<Meta>, Broken> {
    let fields = match r.token()? {
        Token::Nil => return Ok(None),
        Token::Map(n) => n,
        other => return Err(MetaError(format!("meta must be a map, got {}", other.kind())).into()),
    };
    let mut meta = Meta::default();
    for _ in 0..fields {
        match r.token()? {
            Token::Str(b"id") => meta.id = Some(text(r, "id", MAX_ID)?),
            Token::Str(b"unique") => meta.unique = Some(lock(r, lock_prefix)?),
            Token::Str(b"results") => meta.results = Some(ttl(r)?),
            Token::Str(b"wf") => meta.wf = Some(text(r, "wf", MAX_ID)?),
            Token::Str(b"ck") => meta.ck = Some(text(r, "ck", MAX_CONC_KEY)?),
            Token::Str(b"errors") => errors(r)?,
            Token::Str(b"headers") => headers(r)?,
            Token::Str(_) => r.skip(2)?,
            other => return Err(MetaError(format!("meta keys must be str, got {}", other.kind())).into()),
        }
    }
    if meta.id.is_none() {
        for (set, name) in [
            (meta.results.is_some(), "results"),
            (meta.unique.is_some(), "unique"),
            (meta.wf.is_some(), "wf"),
        ] {
            if set {
                return Err(MetaError(format!("'{name}' needs a task 'id'")).into());
            }
        }
    }
    if meta.wf.is_some() && meta.results.is_none() {
        return Err(MetaError("'wf' needs 'results' (a workflow step stores its result)".to_owned()).into());
    }
    Ok(Some(meta))
}

fn text(r: &mut Reader<'_>, name: &str, max: usize) -> Result<String, Broken> {
    match r.token()? {
        Token::Str(s) if !s.is_empty() && s.len() <= max => match std::str::from_utf8(s) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => refuse(format!("'{name}' is not valid UTF-8")),
        },
        Token::Str(s) => refuse(format!("'{name}' must be 1 to {max} bytes, got {}", s.len())),
        other => refuse(format!("'{name}' must be a str, got {}", other.kind())),
    }
}

fn lock(r: &mut Reader<'_>, lock_prefix: &str) -> Result<String, Broken> {
    let key = text(r, "unique", MAX_LOCK)?;
    if key.len() <= lock_prefix.len() || !key.starts_with(lock_prefix) {
        return refuse(format!(
            "'unique' must be a lock key of this app ({lock_prefix}...), got {key:?}"
        ));
    }
    Ok(key)
}

fn ttl(r: &mut Reader<'_>) -> Result<i64, Broken> {
    match r.token()? {
        Token::Int(s) if (1..=MAX_TTL).contains(&s) => Ok(s),
        Token::Int(s) => refuse(format!("'results' must be a TTL of 1 to {MAX_TTL} seconds, got {s}")),
        Token::UInt(s) => refuse(format!("'results' must be a TTL of 1 to {MAX_TTL} seconds, got {s}")),
        other => refuse(format!(
            "'results' must be an int (a TTL in seconds), got {}",
            other.kind()
        )),
    }
}

fn errors(r: &mut Reader<'_>) -> Result<(), Broken> {
    let n = match r.token()? {
        Token::Array(n) => n,
        other => return refuse(format!("'errors' must be an array of str, got {}", other.kind())),
    };
    for _ in 0..n {
        match r.token()? {
            Token::Str(_) => {}
            other => return refuse(format!("'errors' must hold str, got {}", other.kind())),
        }
    }
    Ok(())
}

/// `headers`: trace context carried to the worker (wakaq.tracing), a map of str to str, bounded in count and size, so
/// a forged payload cannot hand a tracer megabytes to parse.
fn headers(r: &mut Reader<'_>) -> Result<(), Broken> {
    let n = match r.token()? {
        Token::Map(n) if n <= MAX_HEADERS => n,
        Token::Map(n) => return refuse(format!("'headers' may hold at most {MAX_HEADERS} entries, got {n}")),
        other => return refuse(format!("'headers' must be a map of str to str, got {}", other.kind())),
    };
    for _ in 0..n {
        let name = header_part(r, "name", MAX_HEADER_NAME)?;
        if name.is_empty() {
            return refuse("'headers' names must not be empty".to_owned());
        }
        header_part(r, "value", MAX_HEADER_VALUE)?;
    }
    Ok(())
}

fn header_part<'a>(r: &mut Reader<'a>, what: &str, max: usize) -> Result<&'a [u8], Broken> {
    match r.token()? {
        Token::Str(s) if s.len() > max => refuse(format!(
            "a 'headers' {what} must be at most {max} bytes, got {}",
            s.len()
        )),
        Token::Str(s) if std::str::from_utf8(s).is_err() => refuse(format!("a 'headers' {what} is not valid UTF-8")),
        Token::Str(s) => Ok(s),
        other => refuse(format!(
            "'headers' must be a map of str to str, got a {what} of type {}",
            other.kind()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCKS: &str = "wakaq:unique:";

    /// {"name": "t", "args": [1.5], "kwargs": {"meta": 1}, "retry": 0, "meta": <meta>}: the kwarg named meta must not
    /// be mistaken for the payload's.
    fn payload(meta: &[u8]) -> Vec<u8> {
        let mut p = vec![0x85, 0xa4];
        p.extend(b"name");
        p.extend([0xa1, b't', 0xa4]);
        p.extend(b"args");
        p.extend([0x91, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 0xa6]);
        p.extend(b"kwargs");
        p.extend([0x81, 0xa4]);
        p.extend(b"meta");
        p.extend([0x01, 0xa5]);
        p.extend(b"retry");
        p.extend([0x00, 0xa4]);
        p.extend(b"meta");
        p.extend(meta);
        p
    }

    fn s(text: &str) -> Vec<u8> {
        let mut out = if text.len() < 32 {
            vec![0xa0 | text.len() as u8]
        } else {
            vec![0xd9, u8::try_from(text.len()).expect("test strings are short")]
        };
        out.extend(text.as_bytes());
        out
    }

    /// Each meta is refused with a message that names its problem.
    fn assert_refused(cases: &[(Vec<u8>, &str)]) {
        for (meta, want) in cases {
            let got = check(&payload(meta), LOCKS).expect_err(want).to_string();
            assert!(
                got.starts_with("malformed meta: ") && got.contains(want),
                "{got} / {want}"
            );
        }
    }

    fn map(pairs: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut out = vec![0x80 | pairs.len() as u8];
        for (k, v) in pairs {
            out.extend(s(k));
            out.extend(v);
        }
        out
    }

    #[test]
    fn reads_id_results_and_unique() {
        let meta = map(&[
            ("id", s("abc")),
            ("results", vec![0xcd, 0x0e, 0x10]),
            ("unique", s("wakaq:unique:k")),
            ("errors", vec![0x91, 0xa1, b'e']),
            ("later", vec![0x92, 0x01, 0x02]),
        ]);
        let want = Meta {
            id: Some("abc".into()),
            results: Some(3600),
            unique: Some("wakaq:unique:k".into()),
            wf: None,
            ck: None,
        };
        assert_eq!(check(&payload(&meta), LOCKS), Ok(Some(want)));
    }

    #[test]
    fn reads_a_workflow_step() {
        let meta = map(&[("id", s("w1-3")), ("results", vec![60]), ("wf", s("w1"))]);
        let got = check(&payload(&meta), LOCKS).expect("valid").expect("has meta");
        assert_eq!(got.wf.as_deref(), Some("w1"));
        assert!(got.tracked());
        let cases: [(Vec<u8>, &str); 5] = [
            (map(&[("results", vec![60]), ("wf", s("w1"))]), "needs a task 'id'"),
            (map(&[("id", s("a")), ("wf", s("w1"))]), "'wf' needs 'results'"),
            (
                map(&[("id", s("a")), ("results", vec![60]), ("wf", vec![1])]),
                "'wf' must be a str, got int",
            ),
            (
                map(&[("id", s("a")), ("results", vec![60]), ("wf", s(""))]),
                "'wf' must be 1 to 128 bytes, got 0",
            ),
            (
                map(&[
                    ("id", s("a")),
                    ("results", vec![60]),
                    ("wf", str16(&"w".repeat(MAX_ID + 1))),
                ]),
                "'wf' must be 1 to 128 bytes, got 129",
            ),
        ];
        assert_refused(&cases);
    }

    #[test]
    fn reads_a_concurrency_key() {
        let meta = map(&[("ck", s("acme"))]);
        let got = check(&payload(&meta), LOCKS).expect("valid").expect("has meta");
        assert_eq!(got.ck.as_deref(), Some("acme"));
        assert!(
            !got.tracked(),
            "a key alone settles nothing: plain tasks ack through the claim"
        );
        let longest = map(&[("ck", str16(&"k".repeat(MAX_CONC_KEY)))]);
        assert!(check(&payload(&longest), LOCKS).is_ok());
        let cases: [(Vec<u8>, &str); 4] = [
            (map(&[("ck", vec![7])]), "'ck' must be a str, got int"),
            (map(&[("ck", s(""))]), "'ck' must be 1 to 256 bytes, got 0"),
            (
                map(&[("ck", str16(&"k".repeat(MAX_CONC_KEY + 1)))]),
                "'ck' must be 1 to 256 bytes, got 257",
            ),
            (map(&[("ck", vec![0xa2, 0xc3, 0x28])]), "'ck' is not valid UTF-8"),
        ];
        assert_refused(&cases);
    }

    #[test]
    fn reads_the_task_name() {
        assert_eq!(task_name(&payload(&[0xc0])), Some("t"));
        assert_eq!(task_name(b"{\"name\": \"t\"}"), None);
        assert_eq!(task_name(&[0x81, 0xa4, b'a', b'r', b'g', b's', 0x90]), None);
        assert_eq!(task_name(&[0x80]), None);
        assert_eq!(task_name(&[]), None);
    }

    #[test]
    fn no_meta_is_none() {
        assert_eq!(check(&payload(&[0xc0]), LOCKS), Ok(None));
        let mut plain = payload(&[]);
        plain.truncate(plain.len() - 5);
        plain[0] = 0x84;
        assert_eq!(check(&plain, LOCKS), Ok(None));
        assert_eq!(check(b"{\"name\": \"t\"}", LOCKS), Ok(None));
        assert_eq!(check(&[0x93, 1, 2, 3], LOCKS), Ok(None));
    }

    #[test]
    fn malformed_metas_say_why() {
        let cases: [(Vec<u8>, &str); 9] = [
            (vec![0x92, 1, 2], "meta must be a map, got array"),
            (map(&[("results", vec![60])]), "'results' needs a task 'id'"),
            (map(&[("id", s("a")), ("results", s("60"))]), "'results' must be an int"),
            (
                map(&[
                    ("id", s("a")),
                    ("results", vec![0xcf, 0x0d, 0xe0, 0xb6, 0xb3, 0xa7, 0x64, 0, 0]),
                ]),
                "'results' must be a TTL of 1 to",
            ),
            (
                map(&[("id", s("a")), ("results", vec![0])]),
                "'results' must be a TTL of 1 to",
            ),
            (
                map(&[("id", s("a")), ("unique", vec![5])]),
                "'unique' must be a str, got int",
            ),
            (
                map(&[("id", s("a")), ("unique", s("wakaq:default"))]),
                "'unique' must be a lock key",
            ),
            (
                map(&[("id", vec![7]), ("results", vec![60])]),
                "'id' must be a str, got int",
            ),
            (map(&[("errors", vec![0x91, 1])]), "'errors' must hold str"),
        ];
        assert_refused(&cases);
    }

    fn str16(text: &str) -> Vec<u8> {
        let len = u16::try_from(text.len()).expect("test strings are short");
        let mut out = vec![0xda];
        out.extend(len.to_be_bytes());
        out.extend(text.as_bytes());
        out
    }

    #[test]
    fn headers_are_a_bounded_map_of_str() {
        let traceparent = s("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        let ok = map(&[(
            "headers",
            map(&[("traceparent", traceparent.clone()), ("tracestate", s(""))]),
        )]);
        assert_eq!(check(&payload(&ok), LOCKS), Ok(Some(Meta::default())));
        let empty = map(&[("id", s("a")), ("headers", vec![0x80])]);
        assert!(check(&payload(&empty), LOCKS).is_ok());
        let longest = map(&[("headers", map(&[("baggage", str16(&"x".repeat(MAX_HEADER_VALUE)))]))]);
        assert!(check(&payload(&longest), LOCKS).is_ok());

        let mut many = vec![0xde, 0x00, 0x11];
        for i in 0..=MAX_HEADERS {
            many.extend(s(&format!("h{i}")));
            many.extend(s("v"));
        }
        let cases: [(Vec<u8>, &str); 8] = [
            (
                map(&[("headers", vec![0x91, 0xa1, b'x'])]),
                "'headers' must be a map of str to str, got array",
            ),
            (
                map(&[("headers", s("traceparent"))]),
                "'headers' must be a map of str to str, got str",
            ),
            (
                map(&[("headers", many)]),
                "'headers' may hold at most 16 entries, got 17",
            ),
            (
                map(&[("headers", map(&[("traceparent", vec![1])]))]),
                "got a value of type int",
            ),
            (
                map(&[("headers", vec![0x81, 0x01, 0xa1, b'v'])]),
                "got a name of type int",
            ),
            (
                map(&[("headers", map(&[("", s("v"))]))]),
                "'headers' names must not be empty",
            ),
            (
                map(&[("headers", map(&[("baggage", str16(&"x".repeat(MAX_HEADER_VALUE + 1)))]))]),
                "a 'headers' value must be at most 8192 bytes, got 8193",
            ),
            (
                map(&[("headers", vec![0x81, 0xa1, b'k', 0xa2, 0xc3, 0x28])]),
                "a 'headers' value is not valid UTF-8",
            ),
        ];
        assert_refused(&cases);
        let mut named = vec![0x81];
        named.extend(str16(&"n".repeat(MAX_HEADER_NAME + 1)));
        named.extend(s("v"));
        let got = check(&payload(&map(&[("headers", named)])), LOCKS)
            .expect_err("long name")
            .to_string();
        assert!(
            got.contains("a 'headers' name must be at most 128 bytes, got 129"),
            "{got}"
        );
    }

    #[test]
    fn truncations_never_panic() {
        let meta = map(&[("id", s("abc")), ("results", vec![60]), ("unique", s("wakaq:unique:k"))]);
        let full = payload(&meta);
        for cut in 0..full.len() {
            let _ = check(&full[..cut], LOCKS);
        }
    }
}
