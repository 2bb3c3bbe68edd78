//! The part of a payload's meta the broker itself acts on, read without Python: a task that stores results or
//! holds a uniqueness lock and is dead-listed by a script (its child or daemon died on it too often) has its
//! result record settled and its lock released by the Rust side that ran the script (`broker::give_back`).

use super::read::{Reader, Token};

/// Meta `id`, `results` (the record's TTL in seconds) and `unique` (the lock's key) of a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    pub id: String,
    pub results: Option<i64>,
    pub unique: Option<String>,
}

/// The tracked meta of a msgpack task payload; None for a plain payload, one whose meta has no string `id` or
/// neither `results` nor `unique`, and anything that does not parse (garbage is the dead list's business).
pub fn tracked(payload: &[u8]) -> Option<Tracked> {
    let mut r = Reader::new(payload);
    let Ok(Token::Map(entries)) = r.token() else {
        return None;
    };
    for _ in 0..entries {
        let key = r.token().ok()?;
        if key != Token::Str(b"meta") {
            r.skip(1).ok()?;
            continue;
        }
        let Ok(Token::Map(fields)) = r.token() else { return None };
        let (mut id, mut results, mut unique) = (None, None, None);
        for _ in 0..fields {
            let name = r.token().ok()?;
            match name {
                Token::Str(b"id" | b"unique") => {
                    let Ok(Token::Str(value)) = r.token() else { return None };
                    let value = std::str::from_utf8(value).ok()?.to_owned();
                    if name == Token::Str(b"id") {
                        id = Some(value);
                    } else {
                        unique = Some(value);
                    }
                }
                Token::Str(b"results") => match r.token().ok()? {
                    Token::Int(ttl) if ttl > 0 => results = Some(ttl),
                    _ => {}
                },
                _ => r.skip(2).ok()?,
            }
        }
        return match id {
            Some(id) if results.is_some() || unique.is_some() => Some(Tracked { id, results, unique }),
            _ => None,
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(meta: &[u8]) -> Vec<u8> {
        // {"name": "t", "args": [1.5], "kwargs": {"meta": 1}, "retry": 0, "meta": <meta>}
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

    #[test]
    fn reads_id_results_and_unique() {
        let mut meta = vec![0x83, 0xa2];
        meta.extend(b"id");
        meta.extend([0xa3]);
        meta.extend(b"abc");
        meta.extend([0xa7]);
        meta.extend(b"results");
        meta.extend([0xcd, 0x0e, 0x10]); // 3600
        meta.extend([0xa6]);
        meta.extend(b"unique");
        meta.extend([0xa1, b'k']);
        let got = tracked(&payload(&meta));
        let want = Tracked {
            id: "abc".into(),
            results: Some(3600),
            unique: Some("k".into()),
        };
        assert_eq!(got, Some(want));
    }

    #[test]
    fn plain_untracked_and_garbage_payloads_are_none() {
        let mut plain = payload(&[]);
        plain.truncate(plain.len() - 5);
        plain[0] = 0x84;
        assert_eq!(tracked(&plain), None);
        let mut only_id = vec![0x82, 0xa2];
        only_id.extend(b"id");
        only_id.extend([0xa1, b'x', 0xa6]);
        only_id.extend(b"errors");
        only_id.extend([0x91, 0xa1, b'e']);
        assert_eq!(
            tracked(&payload(&only_id)),
            None,
            "a retried plain task: an id, nothing to settle"
        );
        assert_eq!(tracked(b"{\"name\": \"t\"}"), None);
        assert_eq!(tracked(&[0x85, 0xa4, b'm']), None);
        for cut in 0..payload(&only_id).len() {
            let _ = tracked(&payload(&only_id)[..cut]);
        }
    }
}
