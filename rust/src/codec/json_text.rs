//! JSON text as Python's `json.dumps` writes it with its defaults (`ensure_ascii=True`, separators `", "` and
//! `": "`): the pure-Rust half of the WakaQ JSON encoder (`json_encode.rs` walks the Python objects; floats are
//! CPython's own `repr`, see there).
//!
//! Byte-identical output matters: an eta task is a zset member, so the same task sent by a WakaQ producer and by
//! ours must be the same bytes to dedupe (`ZADD NX`).

/// Appends `s` as a JSON string, every character outside printable ASCII escaped as `json.dumps` does: `\"`, `\\`,
/// `\b`, `\f`, `\n`, `\r`, `\t`, else `\uXXXX` (lower-case hex; UTF-16 surrogate pairs beyond the BMP).
pub fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    // NOTE: the common case (plain ASCII, nothing to escape) is one copy
    if s.bytes().all(is_plain) {
        out.extend_from_slice(s.as_bytes());
    } else {
        for c in s.chars() {
            escaped_char(out, c);
        }
    }
    out.push(b'"');
}

/// Printable ASCII apart from the quote and the backslash: written as is (DEL, 0x7f, is escaped, as in CPython).
fn is_plain(b: u8) -> bool {
    (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\'
}

fn escaped_char(out: &mut Vec<u8>, c: char) {
    let short: &[u8] = match c {
        '"' => b"\\\"",
        '\\' => b"\\\\",
        '\n' => b"\\n",
        '\r' => b"\\r",
        '\t' => b"\\t",
        '\u{8}' => b"\\b",
        '\u{c}' => b"\\f",
        _ if c.is_ascii() && is_plain(c as u8) => {
            out.push(c as u8);
            return;
        }
        _ => {
            let mut units = [0_u16; 2];
            for unit in c.encode_utf16(&mut units) {
                hex_escape(out, *unit);
            }
            return;
        }
    };
    out.extend_from_slice(short);
}

fn hex_escape(out: &mut Vec<u8>, unit: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        out.push(HEX[usize::from((unit >> shift) & 0xf)]);
    }
}

/// Appends an int in decimal.
pub fn int(out: &mut Vec<u8>, v: impl std::fmt::Display) {
    out.extend_from_slice(v.to_string().as_bytes());
}

/// Standard base64 with padding (`base64.b64encode`), how WakaQ writes bytes.
pub fn base64(out: &mut Vec<u8>, data: &[u8]) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 0x3f) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_escape_as_json_dumps_does() {
        assert_eq!(text(|o| string(o, "plain text")), r#""plain text""#);
        assert_eq!(text(|o| string(o, "q\"b\\/")), r#""q\"b\\/""#);
        assert_eq!(
            text(|o| string(o, "\n\r\t\u{8}\u{c}\u{1}\u{7f}")),
            r#""\n\r\t\b\f\u0001\u007f""#
        );
        assert_eq!(text(|o| string(o, "é€")), r#""\u00e9\u20ac""#);
        assert_eq!(text(|o| string(o, "😀")), r#""\ud83d\ude00""#);
    }

    #[test]
    fn base64_matches_the_standard_alphabet_with_padding() {
        assert_eq!(text(|o| base64(o, b"")), "");
        assert_eq!(text(|o| base64(o, b"f")), "Zg==");
        assert_eq!(text(|o| base64(o, b"fo")), "Zm8=");
        assert_eq!(text(|o| base64(o, b"foo")), "Zm9v");
        assert_eq!(text(|o| base64(o, b"\xff\xfe\xfd\x00")), "//79AA==");
    }
}
