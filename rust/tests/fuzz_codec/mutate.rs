//! Mutations that turn a valid input into the kinds of broken ones a decoder meets: flipped bits,
//! inserted, deleted and overwritten bytes, truncation, splices, huge declared lengths, nesting past the
//! limit, and well-formed ext values holding impossible dates, durations and numbers.

use _wakaq::codec::MAX_DEPTH;

use crate::rng::Rng;

/// Markers followed by a length field: bin8/16/32, ext8/16/32, str8/16/32, array16/32, map16/32,
/// with the width of that field.
const LENGTH_MARKERS: &[(u8, usize)] = &[
    (0xc4, 1),
    (0xc5, 2),
    (0xc6, 4),
    (0xc7, 1),
    (0xc8, 2),
    (0xc9, 4),
    (0xd9, 1),
    (0xda, 2),
    (0xdb, 4),
    (0xdc, 2),
    (0xdd, 4),
    (0xde, 2),
    (0xdf, 4),
];

const HUGE: &[u32] = &[0xffff_ffff, 0x8000_0000, 0x7fff_ffff, 0x0001_0000, 0xffff, 0x100];

/// Applies one to four mutations; `other` is a second input, for splices.
pub fn mutate(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) {
    for _ in 0..=rng.below(4) {
        match rng.below(12) {
            0 => flip_bit(rng, data),
            1 => overwrite(rng, data),
            2 => insert(rng, data),
            3 => delete(rng, data),
            4 => data.truncate(rng.below(data.len() + 1)),
            5 => splice(rng, data, other),
            6 | 7 => huge_length(rng, data),
            8 => nesting_bomb(rng, data),
            9 => bad_ext(rng, data),
            10 => json_text(rng, data),
            _ => interesting_byte(rng, data),
        }
    }
}

/// Random bytes, sometimes behind a map header so decode_task gets past its first check.
pub fn garbage(rng: &mut Rng) -> Vec<u8> {
    let mut data: Vec<u8> = (0..rng.below(64)).map(|_| rng.byte()).collect();
    if rng.one_in(2) && !data.is_empty() {
        data[0] = 0x80 | rng.below(16) as u8;
    }
    data
}

fn position(rng: &mut Rng, data: &[u8]) -> usize {
    rng.below(data.len() + 1)
}

fn flip_bit(rng: &mut Rng, data: &mut [u8]) {
    if !data.is_empty() {
        let i = rng.below(data.len());
        data[i] ^= 1 << rng.below(8);
    }
}

fn overwrite(rng: &mut Rng, data: &mut [u8]) {
    if !data.is_empty() {
        let i = rng.below(data.len());
        data[i] = rng.byte();
    }
}

/// A marker byte, a boundary value or 0xc1 (never used) at a random place.
fn interesting_byte(rng: &mut Rng, data: &mut [u8]) {
    if !data.is_empty() {
        let i = rng.below(data.len());
        data[i] = rng.pick(&[
            0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xd4, 0xd8, 0xe0, 0xff,
        ]);
    }
}

fn insert(rng: &mut Rng, data: &mut Vec<u8>) {
    let at = position(rng, data);
    let bytes: Vec<u8> = (0..=rng.below(4)).map(|_| rng.byte()).collect();
    data.splice(at..at, bytes);
}

fn delete(rng: &mut Rng, data: &mut Vec<u8>) {
    let start = position(rng, data);
    let end = (start + 1 + rng.below(8)).min(data.len());
    data.drain(start..end.max(start));
}

/// A prefix of `data` followed by a suffix of `other`.
fn splice(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) {
    data.truncate(position(rng, data));
    let from = rng.below(other.len() + 1);
    data.extend_from_slice(&other[from..]);
}

/// Overwrites the length field after a length marker with a huge value; with no such marker, inserts a
/// str32/bin32/array32/map32/ext32 header declaring one.
fn huge_length(rng: &mut Rng, data: &mut Vec<u8>) {
    let value = rng.pick(HUGE);
    let found: Vec<(usize, usize)> = data
        .iter()
        .enumerate()
        .filter_map(|(i, b)| LENGTH_MARKERS.iter().find(|(m, _)| m == b).map(|(_, w)| (i, *w)))
        .filter(|(i, w)| i + w < data.len())
        .collect();
    if found.is_empty() || rng.one_in(4) {
        let at = position(rng, data);
        let mut header = vec![rng.pick(&[0xdb, 0xc6, 0xdd, 0xdf, 0xc9])];
        header.extend_from_slice(&value.to_be_bytes());
        data.splice(at..at, header);
        return;
    }
    let (at, width) = rng.pick(&found);
    data[at + 1..=at + width].copy_from_slice(&value.to_be_bytes()[4 - width..]);
}

/// Containers nested past the limit (or right at it): one-item arrays, maps with a one-char key,
/// array16/array32 headers declaring one item or a huge number of them, repeated.
fn nesting_bomb(rng: &mut Rng, data: &mut Vec<u8>) {
    let units: [&[u8]; 7] = [
        &[0x91],
        &[0x81, 0xa1, b'k'],
        &[0xdc, 0, 1],
        &[0xdd, 0, 0, 0, 1],
        &[0x81, 0x91],
        &[0xdc, 0xff, 0xff],
        &[0xdd, 0xff, 0xff, 0xff, 0xff],
    ];
    let unit = rng.pick(&units);
    let count = match rng.below(3) {
        0 => MAX_DEPTH - 1 + rng.below(4),
        1 => MAX_DEPTH + rng.below(1000),
        _ => 20_000,
    };
    let at = position(rng, data);
    let bomb: Vec<u8> = unit.iter().copied().cycle().take(unit.len() * count).collect();
    data.splice(at..at, bomb);
}

/// A well-formed ext whose content is wrong: impossible dates, out-of-range timestamps and
/// durations, nanoseconds past a second, Decimal and big-int text that is not a number, unknown codes.
fn bad_ext(rng: &mut Rng, data: &mut Vec<u8>) {
    let options: [&[u8]; 16] = [
        &[0xd6, 0x01, 0x00, 0x00, 0x01, 0x01],                         // date year 0
        &[0xd6, 0x01, 0x07, 0xe8, 0x02, 0x1e],                         // 2024-02-30
        &[0xd6, 0x01, 0xff, 0xff, 0x0d, 0x20],                         // year 65535, month 13
        &[0xd7, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // nanos >= 10^9
        &[
            0xc7, 0x0c, 0xff, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ], // year > 9999
        &[0xc7, 0x0c, 0xff, 0, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0],    // i64::MIN seconds
        &[
            0xc7, 0x0c, 0x02, 0x7f, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff,
        ],
        &[0xc7, 0x0c, 0x02, 0x80, 0, 0, 0, 0x80, 0, 0, 0, 0x80, 0, 0, 0],
        &[0xc7, 0x03, 0x03, b'a', b'b', b'c'],
        &[0xc7, 0x08, 0x03, b'1', b'E', b'9', b'9', b'9', b'9', b'9', b'9'],
        &[0xc7, 0x05, 0x03, b'1', 0xff, b'.', b'2', b'3'],
        &[0xc7, 0x02, 0x04, b'-', b'-'],
        &[0xc7, 0x01, 0x04, b'-'],
        &[0xc7, 0x03, 0x04, b'1', b'_', b'0'],
        &[0xd4, 0x7f, 0x00],
        &[0xc7, 0x00, 0xfe],
    ];
    let at = position(rng, data);
    if rng.one_in(8) {
        // a big int of more digits than Python converts by default (4300)
        let mut digits = vec![0xc8, 0x13, 0x88, 0x04];
        digits.extend(std::iter::repeat_n(b'7', 5000));
        data.splice(at..at, digits);
    } else {
        data.splice(at..at, rng.pick(&options).iter().copied());
    }
}

/// JSON-looking text: a leading `{`, lone surrogates, deep brackets, huge numbers, broken classes.
fn json_text(rng: &mut Rng, data: &mut Vec<u8>) {
    let pieces: [&[u8]; 12] = [
        b"{",
        b"\"\\ud800\"",
        b"\"name\": \"\\udfff\"",
        b"\"retry\": 1e999",
        b"\"retry\": 123456789012345678901234567890",
        b"{\"__class__\": \"datetime\", \"year\": 0}",
        b"{\"__class__\": \"timedelta\", \"kwargs\": {\"days\": 1e300}}",
        b"{\"__class__\": \"timedelta\", \"kwargs\": []}",
        b"{\"__class__\": \"bytes\", \"value\": \"!!\"}",
        b"{\"__class__\": \"Decimal\", \"value\": [1]}",
        b"{\"__class__\": \"date\", \"value\": 5}",
        b"\"args\": \"x\"",
    ];
    let at = if rng.one_in(2) { 0 } else { position(rng, data) };
    if rng.one_in(6) {
        let depth = rng.pick(&[MAX_DEPTH, MAX_DEPTH + 1, 1000, 100_000]);
        let open = if rng.one_in(2) { b'[' } else { b'{' };
        let bomb = if open == b'[' {
            vec![b'['; depth]
        } else {
            b"{\"a\":".repeat(depth)
        };
        data.splice(at..at, bomb);
    } else if rng.one_in(8) {
        let digits = vec![b'9'; 5000];
        data.splice(at..at, digits);
    } else {
        data.splice(at..at, rng.pick(&pieces).iter().copied());
    }
}
