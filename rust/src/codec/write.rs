//! msgpack writers: each picks the smallest format that holds the value, as msgpack-python does,
//! so our bytes equal `msgpack.packb(x, use_bin_type=True)` for plain values (the tests check it).

use super::marker as m;

/// A str, bin, array, map or ext longer than msgpack's 32-bit length fields can describe.
#[derive(Debug, PartialEq, Eq)]
pub struct TooLong(pub usize);

pub fn nil(out: &mut Vec<u8>) {
    out.push(m::NIL);
}

pub fn boolean(out: &mut Vec<u8>, v: bool) {
    out.push(if v { m::TRUE } else { m::FALSE });
}

/// Unsigned ints use the uint family, as msgpack-python does for every non-negative value.
pub fn uint(out: &mut Vec<u8>, v: u64) {
    if v <= u64::from(m::POS_FIXINT_MAX) {
        out.push(v as u8);
    } else if let Ok(b) = u8::try_from(v) {
        out.extend_from_slice(&[m::UINT8, b]);
    } else if let Ok(h) = u16::try_from(v) {
        out.push(m::UINT16);
        out.extend_from_slice(&h.to_be_bytes());
    } else if let Ok(w) = u32::try_from(v) {
        out.push(m::UINT32);
        out.extend_from_slice(&w.to_be_bytes());
    } else {
        out.push(m::UINT64);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// Signed ints: non-negative ones go through `uint`, negative ones take the smallest int format.
pub fn int(out: &mut Vec<u8>, v: i64) {
    if v >= 0 {
        uint(out, v as u64);
    } else if v >= -32 {
        out.push(v as u8);
    } else if let Ok(b) = i8::try_from(v) {
        out.extend_from_slice(&[m::INT8, b as u8]);
    } else if let Ok(h) = i16::try_from(v) {
        out.push(m::INT16);
        out.extend_from_slice(&h.to_be_bytes());
    } else if let Ok(w) = i32::try_from(v) {
        out.push(m::INT32);
        out.extend_from_slice(&w.to_be_bytes());
    } else {
        out.push(m::INT64);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// Always float64: Python floats are doubles and narrowing would lose precision.
pub fn float(out: &mut Vec<u8>, v: f64) {
    out.push(m::FLOAT64);
    out.extend_from_slice(&v.to_be_bytes());
}

fn len32(len: usize) -> Result<u32, TooLong> {
    u32::try_from(len).map_err(|_| TooLong(len))
}

/// The length forms of a str/bin/array/map/ext family: a form with the length inside the marker
/// (base marker, largest length) if it has one, an 8-bit length form if it has one, then 16 and 32.
struct Family {
    fix: Option<(u8, usize)>,
    w8: Option<u8>,
    w16: u8,
    w32: u8,
}

const STR: Family = Family {
    fix: Some((m::FIXSTR, 31)),
    w8: Some(m::STR8),
    w16: m::STR16,
    w32: m::STR32,
};
const BIN: Family = Family {
    fix: None,
    w8: Some(m::BIN8),
    w16: m::BIN16,
    w32: m::BIN32,
};
const ARRAY: Family = Family {
    fix: Some((m::FIXARRAY, 15)),
    w8: None,
    w16: m::ARRAY16,
    w32: m::ARRAY32,
};
const MAP: Family = Family {
    fix: Some((m::FIXMAP, 15)),
    w8: None,
    w16: m::MAP16,
    w32: m::MAP32,
};
const EXT: Family = Family {
    fix: None,
    w8: Some(m::EXT8),
    w16: m::EXT16,
    w32: m::EXT32,
};

fn sized_header(out: &mut Vec<u8>, len: usize, family: &Family) -> Result<(), TooLong> {
    let n = len32(len)?;
    match family.fix {
        Some((base, max)) if len <= max => out.push(base | len as u8),
        _ => match (family.w8, u8::try_from(n), u16::try_from(n)) {
            (Some(marker), Ok(short), _) => out.extend_from_slice(&[marker, short]),
            (_, _, Ok(medium)) => {
                out.push(family.w16);
                out.extend_from_slice(&medium.to_be_bytes());
            }
            _ => {
                out.push(family.w32);
                out.extend_from_slice(&n.to_be_bytes());
            }
        },
    }
    Ok(())
}

pub fn str(out: &mut Vec<u8>, s: &[u8]) -> Result<(), TooLong> {
    sized_header(out, s.len(), &STR)?;
    out.extend_from_slice(s);
    Ok(())
}

pub fn bin(out: &mut Vec<u8>, b: &[u8]) -> Result<(), TooLong> {
    sized_header(out, b.len(), &BIN)?;
    out.extend_from_slice(b);
    Ok(())
}

pub fn array_len(out: &mut Vec<u8>, len: usize) -> Result<(), TooLong> {
    sized_header(out, len, &ARRAY)
}

pub fn map_len(out: &mut Vec<u8>, len: usize) -> Result<(), TooLong> {
    sized_header(out, len, &MAP)
}

/// An ext value: fixext for payloads of 1, 2, 4, 8 or 16 bytes, else ext8/16/32.
pub fn ext(out: &mut Vec<u8>, code: i8, data: &[u8]) -> Result<(), TooLong> {
    let fixed = match data.len() {
        1 => Some(m::FIXEXT1),
        2 => Some(m::FIXEXT2),
        4 => Some(m::FIXEXT4),
        8 => Some(m::FIXEXT8),
        16 => Some(m::FIXEXT16),
        _ => None,
    };
    match fixed {
        Some(marker) => out.push(marker),
        None => sized_header(out, data.len(), &EXT)?,
    }
    out.push(code as u8);
    out.extend_from_slice(data);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut out = Vec::new();
        f(&mut out);
        out
    }

    #[test]
    fn ints_take_the_smallest_format() {
        let cases: &[(i64, &[u8])] = &[
            (0, &[0x00]),
            (127, &[0x7f]),
            (128, &[0xcc, 0x80]),
            (255, &[0xcc, 0xff]),
            (256, &[0xcd, 0x01, 0x00]),
            (65_535, &[0xcd, 0xff, 0xff]),
            (65_536, &[0xce, 0, 1, 0, 0]),
            (4_294_967_296, &[0xcf, 0, 0, 0, 1, 0, 0, 0, 0]),
            (-1, &[0xff]),
            (-32, &[0xe0]),
            (-33, &[0xd0, 0xdf]),
            (-128, &[0xd0, 0x80]),
            (-129, &[0xd1, 0xff, 0x7f]),
            (-32_769, &[0xd2, 0xff, 0xff, 0x7f, 0xff]),
            (i64::MIN, &[0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0]),
        ];
        for (v, want) in cases {
            assert_eq!(with(|o| int(o, *v)), *want, "{v}");
        }
        assert_eq!(
            with(|o| uint(o, u64::MAX)),
            [0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
    }

    #[test]
    fn length_headers_switch_at_the_spec_boundaries() {
        assert_eq!(with(|o| str(o, &[b'a'; 31]).unwrap())[0], 0xbf);
        assert_eq!(with(|o| str(o, &[b'a'; 32]).unwrap())[..2], [0xd9, 32]);
        assert_eq!(with(|o| str(o, &[b'a'; 256]).unwrap())[..3], [0xda, 1, 0]);
        assert_eq!(with(|o| str(o, &vec![b'a'; 65_536]).unwrap())[..5], [0xdb, 0, 1, 0, 0]);
        assert_eq!(with(|o| bin(o, &[]).unwrap()), [0xc4, 0]);
        assert_eq!(with(|o| bin(o, &[0; 256]).unwrap())[..3], [0xc5, 1, 0]);
        assert_eq!(with(|o| array_len(o, 15).unwrap()), [0x9f]);
        assert_eq!(with(|o| array_len(o, 16).unwrap()), [0xdc, 0, 16]);
        assert_eq!(with(|o| map_len(o, 0).unwrap()), [0x80]);
        assert_eq!(with(|o| map_len(o, 65_536).unwrap()), [0xdf, 0, 1, 0, 0]);
    }

    #[test]
    fn ext_uses_fixext_when_the_size_allows() {
        assert_eq!(with(|o| ext(o, 1, &[9; 4]).unwrap())[..2], [0xd6, 1]);
        assert_eq!(with(|o| ext(o, -1, &[9; 8]).unwrap())[..2], [0xd7, 0xff]);
        assert_eq!(with(|o| ext(o, 2, &[9; 12]).unwrap())[..3], [0xc7, 12, 2]);
        assert_eq!(with(|o| ext(o, 3, &[9; 3]).unwrap())[..3], [0xc7, 3, 3]);
    }

    #[test]
    fn floats_and_constants() {
        assert_eq!(with(|o| float(o, 1.5)), [0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]);
        assert_eq!(with(nil), [0xc0]);
        assert_eq!(with(|o| boolean(o, true)), [0xc3]);
        assert_eq!(with(|o| boolean(o, false)), [0xc2]);
    }
}
