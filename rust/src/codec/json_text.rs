//! JSON text as Python's `json.dumps` writes it with its defaults (`ensure_ascii=True`, separators `", "` and
//! `": "`): the pure-Rust half of the WakaQ JSON encoder (`json_encode.rs` walks the Python objects).
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

/// Why a float cannot be written: JSON has no NaN or Infinity (WakaQ's encoder sets `allow_nan=False`).
#[derive(Debug, PartialEq, Eq)]
pub struct NotFinite(pub &'static str);

/// Appends `v` as Python's `repr(float)` writes it (what `json.dumps` uses): the shortest digits that read back as
/// `v`, in positional notation when the decimal point falls within 16 digits of them (`0.0001`, `1e+16`
/// otherwise: `1e-05`), `.0` added to whole numbers.
pub fn float(out: &mut Vec<u8>, v: f64) -> Result<(), NotFinite> {
    if v.is_nan() {
        return Err(NotFinite("nan"));
    }
    if v.is_infinite() {
        return Err(NotFinite(if v > 0.0 { "inf" } else { "-inf" }));
    }
    if v == 0.0 {
        out.extend_from_slice(if v.is_sign_negative() { b"-0.0" } else { b"0.0" });
        return Ok(());
    }
    // NOTE: Rust's `{:e}` without a precision prints the shortest round-tripping digits, as Python's repr does
    // (both pick the one nearest to the value among equally short candidates): only the layout differs.
    let sci = format!("{:e}", v.abs());
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    if v < 0.0 {
        out.push(b'-');
    }
    // CPython's rule (pystrtod.c, format_float_short, mode 'r'): `decpt` is where the point falls after the digits'
    // start; exponent notation when decpt <= -4 or decpt > 16.
    let decpt = exponent + 1;
    if decpt <= -4 || decpt > 16 {
        exponential(out, &digits, exponent);
    } else {
        positional(out, &digits, decpt);
    }
    Ok(())
}

fn positional(out: &mut Vec<u8>, digits: &[u8], decpt: i32) {
    if decpt <= 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', decpt.unsigned_abs() as usize));
        out.extend_from_slice(digits);
        return;
    }
    let point = decpt as usize;
    if point >= digits.len() {
        out.extend_from_slice(digits);
        out.extend(std::iter::repeat_n(b'0', point - digits.len()));
        out.extend_from_slice(b".0");
    } else {
        out.extend_from_slice(&digits[..point]);
        out.push(b'.');
        out.extend_from_slice(&digits[point..]);
    }
}

fn exponential(out: &mut Vec<u8>, digits: &[u8], exponent: i32) {
    let (first, rest) = digits.split_first().unwrap_or((&b'0', &[]));
    out.push(*first);
    if !rest.is_empty() {
        out.push(b'.');
        out.extend_from_slice(rest);
    }
    out.push(b'e');
    out.push(if exponent < 0 { b'-' } else { b'+' });
    out.extend_from_slice(format!("{:02}", exponent.unsigned_abs()).as_bytes());
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
    fn floats_print_as_python_repr() {
        let cases: [(f64, &str); 16] = [
            (1.0, "1.0"),
            (-1.5, "-1.5"),
            (0.1, "0.1"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (123_456_789.125, "123456789.125"),
            (1e300, "1e+300"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (0.1 + 0.2, "0.30000000000000004"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (1_234_567_890_123_456.7, "1234567890123456.8"),
        ];
        for (v, want) in cases {
            assert_eq!(text(|o| float(o, v).unwrap()), want, "{v:e}");
        }
        assert_eq!(float(&mut Vec::new(), f64::NAN), Err(NotFinite("nan")));
        assert_eq!(float(&mut Vec::new(), f64::NEG_INFINITY), Err(NotFinite("-inf")));
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
