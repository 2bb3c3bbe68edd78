//! WakaQ JSON task payloads (what upstream WakaQ producers queue): objects with `name`, `args`,
//! `kwargs`, `retry`, and upstream's `{"__class__": ...}` objects for datetimes, Decimal and bytes.

use crate::rng::Rng;

/// A valid JSON payload that must decode as a task.
pub fn task(rng: &mut Rng) -> Vec<u8> {
    let mut out = String::from("{\"name\": ");
    string(rng, &mut out);
    if !rng.one_in(4) {
        out.push_str(", \"args\": [");
        items(rng, &mut out, |rng, out| value(rng, out, 1));
        out.push(']');
    }
    if !rng.one_in(4) {
        out.push_str(", \"kwargs\": {");
        items(rng, &mut out, |rng, out| {
            string(rng, out);
            out.push_str(": ");
            value(rng, out, 1);
        });
        out.push('}');
    }
    if rng.one_in(2) {
        let retry = rng.next_u64() as i64 >> rng.below(64);
        out.push_str(", \"queue\": \"q\", \"retry\": ");
        out.push_str(&retry.to_string());
    }
    out.push('}');
    out.into_bytes()
}

/// Up to four comma-separated items.
fn items(rng: &mut Rng, out: &mut String, mut item: impl FnMut(&mut Rng, &mut String)) {
    for i in 0..rng.below(5) {
        if i > 0 {
            out.push_str(", ");
        }
        item(rng, out);
    }
}

fn value(rng: &mut Rng, out: &mut String, depth: usize) {
    let nested = depth < 6;
    match rng.below(if nested { 10 } else { 7 }) {
        0 => out.push_str(rng.pick(&[
            "null",
            "true",
            "false",
            "-0",
            "1e308",
            "-1.5",
            "12345678901234567890123",
        ])),
        1 => out.push_str(&(rng.next_u64() as i64 >> rng.below(64)).to_string()),
        2 | 3 => string(rng, out),
        4..=6 => class_object(rng, out),
        7 => {
            out.push('[');
            items(rng, out, |rng, out| value(rng, out, depth + 1));
            out.push(']');
        }
        _ => {
            out.push('{');
            items(rng, out, |rng, out| {
                string(rng, out);
                out.push_str(": ");
                value(rng, out, depth + 1);
            });
            out.push('}');
        }
    }
}

/// A JSON string with escapes, including a valid surrogate pair.
fn string(rng: &mut Rng, out: &mut String) {
    out.push('"');
    for _ in 0..rng.below(12) {
        match rng.below(10) {
            0 => out.push_str(rng.pick(&["\\\"", "\\\\", "\\n", "\\u00e9", "\\ud834\\udd1e", "\\/"])),
            1 => out.push('✓'),
            _ => out.push(char::from(b'a' + rng.below(26) as u8)),
        }
    }
    out.push('"');
}

/// One of upstream's `__class__` objects (all valid), in field form or value form.
fn class_object(rng: &mut Rng, out: &mut String) {
    let (year, month, day) = (1 + rng.below(9999), 1 + rng.below(12), 1 + rng.below(28));
    let text = match rng.below(7) {
        0 => format!(
            "{{\"__class__\": \"datetime\", \"year\": {year}, \"month\": {month}, \"day\": {day}, \"hour\": {}, \
             \"minute\": {}, \"second\": {}, \"microsecond\": {}, \"fold\": 0}}",
            rng.below(24),
            rng.below(60),
            rng.below(60),
            rng.below(1_000_000)
        ),
        1 => format!("{{\"__class__\": \"date\", \"year\": {year}, \"month\": {month}, \"day\": {day}}}"),
        2 => format!(
            "{{\"__class__\": \"timedelta\", \"kwargs\": {{\"days\": {}, \"seconds\": {}, \"microseconds\": {}}}}}",
            rng.below(1000),
            rng.below(86_400),
            rng.below(1_000_000)
        ),
        3 => format!(
            "{{\"__class__\": \"Decimal\", \"value\": \"-{}.{}\"}}",
            rng.next_u64(),
            rng.below(100)
        ),
        4 => format!("{{\"__class__\": \"bytes\", \"value\": \"{}\"}}", base64(rng)),
        5 => format!(
            "{{\"__class__\": \"datetime\", \"value\": \"2024-01-0{}T03:04:05+05:30\"}}",
            1 + rng.below(9)
        ),
        _ => format!(
            "{{\"__class__\": \"timedelta\", \"value\": {}.5}}",
            rng.below(1_000_000)
        ),
    };
    out.push_str(&text);
}

/// Standard base64 (with padding) of a few random bytes.
fn base64(rng: &mut Rng) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let data: Vec<u8> = (0..rng.below(20)).map(|_| rng.byte()).collect();
    let mut text = String::new();
    for chunk in data.chunks(3) {
        let bits = chunk
            .iter()
            .enumerate()
            .fold(0_u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                text.push(char::from(ALPHABET[(bits >> (18 - 6 * i) & 63) as usize]));
            } else {
                text.push('=');
            }
        }
    }
    text
}
