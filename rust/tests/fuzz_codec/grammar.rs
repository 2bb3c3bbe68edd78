//! Valid inputs from a small grammar, written byte by byte the way wakaq's encoder writes them (an
//! independent re-statement of `codec/write.rs`), so a canonical sample must come back unchanged from
//! decode + encode. Now and then a wider format than needed is chosen on purpose: still valid, but no
//! longer canonical, and the sample says so.

use _wakaq::codec::MAX_DEPTH;

use crate::rng::Rng;

/// A generated input: its bytes, and whether they are exactly what wakaq's encoder writes for the value
/// they decode to.
pub struct Sample {
    pub bytes: Vec<u8>,
    pub canonical: bool,
}

/// The length-carrying forms of a msgpack family, smallest first: (marker, length bytes); 0 length
/// bytes means the length sits in the marker's low bits, up to the given maximum.
type Forms = &'static [(u8, usize, u64)];
const STR: Forms = &[
    (0xa0, 0, 31),
    (0xd9, 1, 0xff),
    (0xda, 2, 0xffff),
    (0xdb, 4, 0xffff_ffff),
];
const BIN: Forms = &[(0xc4, 1, 0xff), (0xc5, 2, 0xffff), (0xc6, 4, 0xffff_ffff)];
const ARRAY: Forms = &[(0x90, 0, 15), (0xdc, 2, 0xffff), (0xdd, 4, 0xffff_ffff)];
const MAP: Forms = &[(0x80, 0, 15), (0xde, 2, 0xffff), (0xdf, 4, 0xffff_ffff)];
const EXT: Forms = &[(0xc7, 1, 0xff), (0xc8, 2, 0xffff), (0xc9, 4, 0xffff_ffff)];

/// Lengths at and around every header boundary, plus small ones.
const LENGTHS: &[usize] = &[0, 1, 2, 15, 16, 31, 32, 255, 256, 65_535, 65_536];

/// Seconds of 0001-01-01 and 9999-12-31T23:59:59 since the epoch.
pub const MIN_SECONDS: i64 = -62_135_596_800;
pub const MAX_SECONDS: i64 = 253_402_300_799;

pub struct Gen<'r> {
    pub rng: &'r mut Rng,
    pub out: Vec<u8>,
    pub canonical: bool,
    /// Values still allowed in this sample: keeps inputs small and the fuzzer fast.
    budget: usize,
}

impl<'r> Gen<'r> {
    pub fn new(rng: &'r mut Rng) -> Self {
        let budget = 1 + rng.below(40);
        Self {
            rng,
            out: Vec::new(),
            canonical: true,
            budget,
        }
    }

    pub fn finish(self) -> Sample {
        Sample {
            bytes: self.out,
            canonical: self.canonical,
        }
    }

    /// One in `n` times: take a non-canonical route.
    fn widen(&mut self, n: usize) -> bool {
        self.rng.one_in(n)
    }

    /// A header for `len`: the smallest form, or sometimes any form that holds it.
    fn header(&mut self, forms: Forms, len: usize) {
        let fitting: Vec<_> = forms.iter().filter(|f| len as u64 <= f.2).collect();
        let index = if self.widen(16) {
            self.rng.below(fitting.len())
        } else {
            0
        };
        self.canonical &= index == 0;
        let (marker, width, _) = *fitting[index];
        if width == 0 {
            self.out.push(marker | len as u8);
        } else {
            self.out.push(marker);
            self.out.extend_from_slice(&(len as u64).to_be_bytes()[8 - width..]);
        }
    }

    /// Any value that fits `depth` containers already open.
    pub fn value(&mut self, depth: usize) {
        self.budget = self.budget.saturating_sub(1);
        let containers = self.budget > 0 && depth < MAX_DEPTH;
        match self.rng.below(if containers { 14 } else { 10 }) {
            0 => self.out.push(self.rng.pick(&[0xc0, 0xc2, 0xc3])),
            1 | 2 => self.int(),
            3 => self.float(),
            4 | 5 => self.str_value(),
            6 => self.bin(),
            7 | 8 => self.ext(),
            9 => self.big_int(),
            10 if self.rng.one_in(8) => self.chain(depth),
            10 | 11 => self.array(depth),
            _ => self.map(depth),
        }
    }

    pub fn array(&mut self, depth: usize) {
        let len = self.count();
        self.header(ARRAY, len);
        for _ in 0..len {
            self.value(depth + 1);
        }
    }

    pub fn map(&mut self, depth: usize) {
        let len = self.count();
        self.header(MAP, len);
        for i in 0..len {
            self.key(i);
            self.value(depth + 1);
        }
    }

    /// Containers per level: mostly small, sometimes at the fixarray/fixmap boundary.
    fn count(&mut self) -> usize {
        if self.rng.one_in(10) {
            self.rng.pick(&[15, 16])
        } else {
            self.rng.below(5)
        }
    }

    /// Distinct keys (duplicates would collapse in the dict): an int, or a str or bin starting with `i:`.
    fn key(&mut self, i: usize) {
        match self.rng.below(4) {
            0 => self.uint(i as u64),
            1 => {
                let key = format!("{i}:").into_bytes();
                self.header(BIN, key.len());
                self.out.extend_from_slice(&key);
            }
            _ => {
                let mut key = format!("{i}:").into_bytes();
                let extra = self.rng.below(12);
                push_text(self.rng, &mut key, extra);
                self.header(STR, key.len());
                self.out.extend_from_slice(&key);
            }
        }
    }

    /// Single-item arrays or maps nested down to the depth limit exactly (or nearly): still valid.
    fn chain(&mut self, depth: usize) {
        let links = MAX_DEPTH - depth - self.rng.below(3).min(MAX_DEPTH - depth - 1);
        for _ in 0..links {
            if self.rng.one_in(2) {
                self.out.push(0x91);
            } else {
                self.out.extend_from_slice(&[0x81, 0xa1, b'k']);
            }
        }
        self.out.push(0xc0);
    }

    fn int(&mut self) {
        let magnitude = self.rng.wide_u64();
        if self.rng.one_in(2) {
            self.uint(magnitude);
        } else {
            self.signed(-((magnitude >> 1) as i64) - 1);
        }
    }

    /// Non-negative ints: the uint family, smallest first; sometimes a wider uint or an int format.
    pub fn uint(&mut self, v: u64) {
        let mut smallest = Vec::with_capacity(9);
        if v <= 0x7f {
            smallest.push(v as u8);
        } else {
            let width = [1, 2, 4, 8].into_iter().find(|w| fits_unsigned(v, *w)).unwrap_or(8);
            put_int(&mut smallest, 0xcc, width, v);
        }
        if !self.widen(16) {
            self.out.extend_from_slice(&smallest);
            return;
        }
        let start = self.out.len();
        let width = self.rng.pick(&[1, 2, 4, 8]);
        match i64::try_from(v) {
            Ok(s) if self.rng.one_in(2) && fits_signed(s, width) => put_int(&mut self.out, 0xd0, width, v),
            _ if fits_unsigned(v, width) => put_int(&mut self.out, 0xcc, width, v),
            _ => put_int(&mut self.out, 0xcc, 8, v),
        }
        self.canonical &= self.out[start..] == smallest[..];
    }

    /// Negative ints: negative fixint from -32, then int8..int64, smallest first.
    pub fn signed(&mut self, v: i64) {
        if v >= -32 {
            self.out.push(v as u8);
            return;
        }
        let smallest = [1, 2, 4, 8].into_iter().find(|w| fits_signed(v, *w)).unwrap_or(8);
        let width = if self.widen(16) { 8 } else { smallest };
        self.canonical &= width == smallest;
        put_int(&mut self.out, 0xd0, width, v as u64);
    }

    fn float(&mut self) {
        let special = [
            0.0,
            -0.0,
            1.5,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            f64::MIN_POSITIVE,
        ];
        let v = if self.rng.one_in(3) {
            self.rng.pick(&special)
        } else {
            f64::from_bits(self.rng.next_u64())
        };
        if self.widen(8) {
            // float32: valid, decoded to a double, encoded back as float64
            self.canonical = false;
            self.out.push(0xca);
            self.out.extend_from_slice(&(v as f32).to_bits().to_be_bytes());
        } else {
            self.out.push(0xcb);
            self.out.extend_from_slice(&v.to_bits().to_be_bytes());
        }
    }

    /// A length: mostly short, sometimes one at a header boundary.
    fn length(&mut self) -> usize {
        if self.rng.one_in(6) {
            let len = self.rng.pick(LENGTHS);
            // NOTE: the 64 KiB ones are slow to push through Python; keep them rare.
            if len > 300 && !self.rng.one_in(20) {
                return len % 300;
            }
            len
        } else {
            self.rng.below(40)
        }
    }

    pub fn str_value(&mut self) {
        let len = self.length();
        let mut text = Vec::with_capacity(len);
        push_text(self.rng, &mut text, len);
        self.header(STR, text.len());
        self.out.extend_from_slice(&text);
    }

    fn bin(&mut self) {
        let len = self.length();
        self.header(BIN, len);
        for _ in 0..len {
            let b = self.rng.byte();
            self.out.push(b);
        }
    }

    /// An ext value wakaq's encoder writes: fixext when the size is 1, 2, 4, 8 or 16, else ext8/16/32.
    pub fn ext_bytes(&mut self, code: i8, data: &[u8]) {
        let fixed = [1, 2, 4, 8, 16].iter().position(|n| *n == data.len());
        match fixed {
            Some(i) if !self.widen(16) => self.out.push(0xd4 + i as u8),
            _ => {
                self.canonical &= fixed.is_none();
                self.header(EXT, data.len());
            }
        }
        self.out.push(code as u8);
        self.out.extend_from_slice(data);
    }

    fn ext(&mut self) {
        match self.rng.below(4) {
            0 => self.timestamp(),
            1 => self.date(),
            2 => self.timedelta(),
            _ => self.decimal(),
        }
    }

    /// Timestamp 32/64/96 (ext -1), by the smallest-form rule; nanoseconds whole microseconds (datetime
    /// keeps no more), else the sample is not canonical.
    fn timestamp(&mut self) {
        let seconds = match self.rng.below(4) {
            0 => self.rng.below(1 << 32) as i64,
            1 => self.rng.below(1 << 34) as i64,
            _ => MIN_SECONDS + (self.rng.next_u64() % (MAX_SECONDS - MIN_SECONDS + 1) as u64) as i64,
        };
        let mut nanos = self.rng.below(1_000_000) as u32 * 1000;
        if self.rng.one_in(4) {
            nanos = 0;
        } else if self.widen(16) {
            nanos += 1 + self.rng.below(999) as u32;
            self.canonical = false;
        }
        let small = (0..1_i64 << 34).contains(&seconds);
        let packed = (u64::from(nanos) << 34) | seconds as u64;
        if small && packed >> 32 == 0 && !self.widen(16) {
            self.ext_bytes(-1, &(packed as u32).to_be_bytes());
        } else if small && !self.widen(16) {
            self.canonical &= packed >> 32 != 0;
            self.ext_bytes(-1, &packed.to_be_bytes());
        } else {
            self.canonical &= !small;
            let mut data = nanos.to_be_bytes().to_vec();
            data.extend_from_slice(&seconds.to_be_bytes());
            self.ext_bytes(-1, &data);
        }
    }

    fn date(&mut self) {
        let year = 1 + self.rng.below(9999) as u16;
        let month = 1 + self.rng.below(12) as u8;
        let day = 1 + self.rng.below(usize::from(days_in_month(year, month))) as u8;
        let [hi, lo] = year.to_be_bytes();
        self.ext_bytes(1, &[hi, lo, month, day]);
    }

    /// Normalised (0 <= seconds < 86400, 0 <= micros < 10^6, |days| <= 999999999), unless widened.
    fn timedelta(&mut self) {
        let mut days = self.rng.below(1_999_999_999) as i32 - 999_999_999;
        let mut seconds = self.rng.below(86_400) as i32;
        let micros = self.rng.below(1_000_000) as i32;
        if self.widen(16) {
            // a whole day too many seconds: decodes fine (Python normalises it), but comes back different
            days = days.min(999_999_998);
            seconds += 86_400;
            self.canonical = false;
        }
        let mut data = days.to_be_bytes().to_vec();
        data.extend_from_slice(&seconds.to_be_bytes());
        data.extend_from_slice(&micros.to_be_bytes());
        self.ext_bytes(2, &data);
    }

    /// Decimal text that is its own `str(Decimal(text))`: plain notation with a short fraction, or a
    /// special value.
    fn decimal(&mut self) {
        let mut text = String::new();
        if self.rng.one_in(8) {
            text.push_str(
                self.rng
                    .pick(&["NaN", "Infinity", "-Infinity", "-0", "0", "sNaN", "1E+3", "-1.5E-7"]),
            );
        } else {
            if self.rng.one_in(2) {
                text.push('-');
            }
            let n = 1 + self.rng.below(20);
            text.push_str(&self.digits(false, n));
            if self.rng.one_in(2) {
                text.push('.');
                let places = 1 + self.rng.below(5);
                text.push_str(&self.digits(true, places));
            }
        }
        self.ext_bytes(3, text.as_bytes());
    }

    /// A big int (ext 4): 21+ digits, so beyond u64 (and, negative, beyond i64); sometimes a small
    /// or zero-padded one, which decodes fine but is written back as a plain int.
    fn big_int(&mut self) {
        let mut text = if self.rng.one_in(2) {
            String::from("-")
        } else {
            String::new()
        };
        if self.widen(8) {
            self.canonical = false;
            let n = 1 + self.rng.below(4);
            text.push_str(&self.digits(true, n));
        } else {
            let n = 21 + self.rng.below(60);
            text.push_str(&self.digits(false, n));
        }
        self.ext_bytes(4, text.as_bytes());
    }

    /// `n` digits; the first non-zero unless `zeros` (or n is 1).
    fn digits(&mut self, zeros: bool, n: usize) -> String {
        (0..n)
            .map(|i| {
                let low = u8::from(i == 0 && !zeros && n > 1);
                char::from(b'0' + low + self.rng.below(10 - usize::from(low)) as u8)
            })
            .collect()
    }

    /// A task payload: the map {name, args, kwargs, retry} as `encode_task` writes it; sometimes with
    /// fields missing, reordered or extra (still valid, no longer canonical).
    pub fn task(&mut self) {
        let mut fields: Vec<u8> = vec![0, 1, 2, 3];
        if self.widen(6) {
            self.canonical = false;
            shuffle_fields(self.rng, &mut fields);
        }
        self.header(MAP, fields.len());
        for field in fields {
            self.task_field(field);
        }
    }

    fn task_field(&mut self, field: u8) {
        let key: &[u8] = [b"name".as_slice(), b"args", b"kwargs", b"retry", b"queue"][usize::from(field)];
        self.out.push(0xa0 | key.len() as u8);
        self.out.extend_from_slice(key);
        match field {
            0 | 4 => self.str_value(),
            1 => self.array(0),
            2 => self.kwargs(),
            _ => self.int_in_i64(),
        }
    }

    /// kwargs: str keys only (they are keyword names).
    fn kwargs(&mut self) {
        let len = self.count();
        self.header(MAP, len);
        for i in 0..len {
            let mut key = format!("k{i}:").into_bytes();
            let extra = self.rng.below(8);
            push_text(self.rng, &mut key, extra);
            self.header(STR, key.len());
            self.out.extend_from_slice(&key);
            self.value(1);
        }
    }

    fn int_in_i64(&mut self) {
        let v = self.rng.wide_u64() >> 1;
        if self.rng.one_in(2) {
            self.uint(v);
        } else {
            self.signed(-(v as i64) - 1);
        }
    }
}

/// Drops, reorders or adds ("queue", which decoders skip) task fields; "name" always stays.
fn shuffle_fields(rng: &mut Rng, fields: &mut Vec<u8>) {
    for _ in 0..rng.below(3) {
        let i = 1 + rng.below(fields.len() - 1);
        fields.remove(i);
        if fields.len() == 1 {
            break;
        }
    }
    if rng.one_in(2) {
        fields.push(4);
    }
    for i in (1..fields.len()).rev() {
        fields.swap(i, rng.below(i + 1));
    }
}

fn fits_unsigned(v: u64, width: usize) -> bool {
    width == 8 || v < 1 << (8 * width)
}

fn fits_signed(v: i64, width: usize) -> bool {
    width == 8 || (-(1_i64 << (8 * width - 1))..1_i64 << (8 * width - 1)).contains(&v)
}

/// `base + log2(width)` marker, then the low `width` bytes of `v`, big-endian.
fn put_int(out: &mut Vec<u8>, base: u8, width: usize, v: u64) {
    out.push(base + width.trailing_zeros() as u8);
    out.extend_from_slice(&v.to_be_bytes()[8 - width..]);
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Appends `len` bytes of valid UTF-8: mostly ASCII, with 2-, 3- and 4-byte characters mixed in.
pub fn push_text(rng: &mut Rng, out: &mut Vec<u8>, len: usize) {
    let end = out.len() + len;
    while out.len() < end {
        let room = end - out.len();
        let c = match rng.below(8) {
            0 if room >= 4 => '𝄞',
            1 if room >= 3 => '✓',
            2 if room >= 2 => 'é',
            _ => char::from(b' ' + rng.below(95) as u8),
        };
        let mut buf = [0; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
}
