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
    } else if v <= u64::from(u8::MAX) {
        out.extend_from_slice(&[m::UINT8, v as u8]);
    } else if v <= u64::from(u16::MAX) {
        out.push(m::UINT16);
        out.extend_from_slice(&(v as u16).to_be_bytes());
    } else if v <= u64::from(u32::MAX) {
        out.push(m::UINT32);
        out.extend_from_slice(&(v as u32).to_be_bytes());
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
    } else if v >= i64::from(i8::MIN) {
        out.extend_from_slice(&[m::INT8, v as u8]);
    } else if v >= i64::from(i16::MIN) {
        out.push(m::INT16);
        out.extend_from_slice(&(v as i16).to_be_bytes());
    } else if v >= i64::from(i32::MIN) {
        out.push(m::INT32);
        out.extend_from_slice(&(v as i32).to_be_bytes());
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

/// Header of a family with 8/16/32-bit length forms; `fix` is `Some((base, max_len))` when the
/// family also has a form with the length inside the marker.
fn sized_header(out: &mut Vec<u8>, len: usize, fix: Option<(u8, u32)>, wide: [u8; 3]) -> Result<(), TooLong> {
    let n = len32(len)?;
    match fix {
        Some((base, max)) if n <= max => out.push(base | n as u8),
        _ if n <= u32::from(u8::MAX) && wide[0] != 0 => out.extend_from_slice(&[wide[0], n as u8]),
        _ if n <= u32::from(u16::MAX) => {
            out.push(wide[1]);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        _ => {
            out.push(wide[2]);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
    Ok(())
}

pub fn str(out: &mut Vec<u8>, s: &[u8]) -> Result<(), TooLong> {
    sized_header(out, s.len(), Some((m::FIXSTR, 31)), [m::STR8, m::STR16, m::STR32])?;
    out.extend_from_slice(s);
    Ok(())
}

pub fn bin(out: &mut Vec<u8>, b: &[u8]) -> Result<(), TooLong> {
    sized_header(out, b.len(), None, [m::BIN8, m::BIN16, m::BIN32])?;
    out.extend_from_slice(b);
    Ok(())
}

/// Arrays and maps have no 8-bit length form (a 0 in `wide[0]` skips it).
pub fn array_len(out: &mut Vec<u8>, len: usize) -> Result<(), TooLong> {
    sized_header(out, len, Some((m::FIXARRAY, 15)), [0, m::ARRAY16, m::ARRAY32])
}

pub fn map_len(out: &mut Vec<u8>, len: usize) -> Result<(), TooLong> {
    sized_header(out, len, Some((m::FIXMAP, 15)), [0, m::MAP16, m::MAP32])
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
        None => sized_header(out, data.len(), None, [m::EXT8, m::EXT16, m::EXT32])?,
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
