//! The payload of a retry: the task's own bytes with a new `retry` and `meta`, its name, args and kwargs copied as
//! they were sent. No decode of the arguments, no encode of them again: a retry sends exactly what the producer did,
//! whatever the task did to its arguments meanwhile (and nothing it left there can fail to encode).

use pyo3::prelude::*;

use super::encode::Encoder;
use super::json_encode::encode_task_json_into;
use super::read::{DecodeError, Reader, Token};
use super::task::{decode_task_meta_object, encode_task_meta_into, meta_dict};
use super::write;

/// `payload` with `retry` and `meta` replaced (`meta` None or empty: none); `retry` None: the payload's own plus one
/// (the next attempt). PayloadError for bytes that are not a task.
///
/// WakaQ's JSON payloads are decoded and encoded again: as JSON with the new `retry` when there is no meta (what
/// WakaQ's own worker sends for a retry), so a plain task stays runnable by WakaQ's workers while a fleet moves;
/// as msgpack when there is meta (JSON cannot carry it) or the arguments have no JSON form.
pub fn retried(
    py: Python<'_>,
    payload: &[u8],
    retry: Option<i64>,
    meta: Option<&Bound<'_, PyAny>>,
) -> PyResult<Vec<u8>> {
    let meta = meta_dict(meta)?;
    if payload.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        let (name, args, kwargs, sent, _) = decode_task_meta_object(py, payload)?;
        let retry = retry.unwrap_or_else(|| sent.saturating_add(1));
        let mut out = Vec::with_capacity(payload.len() + 64);
        if meta.is_none()
            && encode_task_json_into(&mut out, name.to_str()?, args.as_any(), kwargs.as_any(), Some(retry)).is_ok()
        {
            return Ok(out);
        }
        encode_task_meta_into(
            py,
            &mut out,
            name.to_str()?,
            args.as_any(),
            kwargs.as_any(),
            retry,
            meta.map(Bound::as_any),
        )?;
        return Ok(out);
    }
    let (kept, sent) = kept_fields(payload).map_err(|e| crate::errors::payload_error(py, e.to_string()))?;
    let retry = retry.unwrap_or_else(|| sent.saturating_add(1));
    let mut out = Vec::with_capacity(payload.len() + 64);
    let entries = kept.len() + 1 + usize::from(meta.is_some());
    let too_long = |_| crate::errors::payload_error(py, "payload has too many keys".to_owned());
    write::map_len(&mut out, entries).map_err(too_long)?;
    for (start, end) in kept {
        out.extend_from_slice(&payload[start..end]);
    }
    out.push(super::marker::FIXSTR | 5);
    out.extend_from_slice(b"retry");
    write::int(&mut out, retry);
    if let Some(meta) = meta {
        out.push(super::marker::FIXSTR | 4);
        out.extend_from_slice(b"meta");
        Encoder::new(&mut out)
            .value(meta.as_any())
            .map_err(|e| e.into_pyerr("meta"))?;
    }
    Ok(out)
}

/// Byte ranges (key and value) of the payload map's entries other than `retry` and `meta`, in their order, and
/// the payload's `retry` (0 when it has none).
fn kept_fields(payload: &[u8]) -> Result<(Vec<(usize, usize)>, i64), DecodeError> {
    let mut r = Reader::new(payload);
    let entries = match r.token()? {
        Token::Map(n) => n,
        other => {
            return Err(DecodeError::Shape(format!(
                "payload must be a map, got {}",
                other.kind()
            )))
        }
    };
    let mut kept = Vec::with_capacity(entries as usize);
    let mut retry = 0;
    for _ in 0..entries {
        let start = r.pos();
        match r.token()? {
            Token::Str(b"retry") => match r.token()? {
                Token::Int(n) => retry = n,
                other => {
                    return Err(DecodeError::Shape(format!(
                        "'retry' must be an int, got {}",
                        other.kind()
                    )))
                }
            },
            Token::Str(b"meta") => r.skip(1)?,
            _ => {
                r.skip(1)?;
                kept.push((start, r.pos()));
            }
        }
    }
    r.finish()?;
    Ok((kept, retry))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A map of `entries` written as (key, int value).
    fn map(entries: &[(&str, i64)]) -> Vec<u8> {
        let mut out = Vec::new();
        write::map_len(&mut out, entries.len()).expect("small map");
        for (k, v) in entries {
            write::str(&mut out, k.as_bytes()).expect("short key");
            write::int(&mut out, *v);
        }
        out
    }

    #[test]
    fn kept_fields_skip_retry_and_meta_and_read_the_retry() {
        let payload = map(&[("name", 1), ("retry", 4), ("meta", 0), ("args", 2)]);
        let (kept, retry) = kept_fields(&payload).expect("a map");
        assert_eq!(retry, 4);
        let kept: Vec<&[u8]> = kept.iter().map(|&(a, b)| &payload[a..b]).collect();
        assert_eq!(kept, [&map(&[("name", 1)])[1..], &map(&[("args", 2)])[1..]]);
        assert_eq!(kept_fields(&map(&[("name", 1)])).expect("a map").1, 0, "no retry: 0");
    }

    #[test]
    fn kept_fields_refuse_what_is_not_a_task_map() {
        assert!(kept_fields(b"\x92\x01\x02").is_err());
        assert!(kept_fields(b"\x81\xa5retry\xa1x").is_err(), "a retry that is no int");
        assert!(kept_fields(b"\x82\xa4name").is_err(), "truncated");
    }
}
