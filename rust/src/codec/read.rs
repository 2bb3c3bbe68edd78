//! Bounds-checked msgpack reader: turns bytes into tokens without touching Python. Every read goes
//! through `take`, so no input can index out of range, and lengths are never trusted for allocation.

use std::fmt;

use super::marker as m;
use super::MAX_DEPTH;

/// One msgpack item. Containers carry only their declared length; their items follow as tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Token<'a> {
    Nil,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(&'a [u8]),
    Bin(&'a [u8]),
    Array(u32),
    Map(u32),
    Ext(i8, &'a [u8]),
}

impl Token<'_> {
    /// The msgpack type name, for "must be an array, got map" messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Token::Nil => "nil",
            Token::Bool(_) => "bool",
            Token::Int(_) | Token::UInt(_) => "int",
            Token::Float(_) => "float",
            Token::Str(_) => "str",
            Token::Bin(_) => "bin",
            Token::Array(_) => "array",
            Token::Map(_) => "map",
            Token::Ext(..) => "ext",
        }
    }
}

/// Why bytes are not a valid payload. Converted to `PayloadError` at the Python edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    Truncated { need: usize, at: usize },
    Marker { byte: u8, at: usize },
    TooDeep,
    Trailing { at: usize },
    BadUtf8 { at: usize },
    UnknownExt { code: i8, at: usize },
    BadValue { what: String, at: usize },
    Shape(String),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { need, at } => write!(f, "truncated payload: expected {need} bytes at offset {at}"),
            Self::Marker { byte, at } => write!(f, "invalid msgpack marker 0x{byte:02x} at offset {at}"),
            Self::TooDeep => write!(f, "nesting deeper than {MAX_DEPTH}"),
            Self::Trailing { at } => write!(f, "trailing bytes after the payload at offset {at}"),
            Self::BadUtf8 { at } => write!(f, "invalid UTF-8 in string at offset {at}"),
            Self::UnknownExt { code, at } => write!(f, "unknown ext type {code} at offset {at}"),
            Self::BadValue { what, at } => write!(f, "{what} at offset {at}"),
            Self::Shape(what) => f.write_str(what),
        }
    }
}

impl std::error::Error for DecodeError {}

/// A cursor over untrusted bytes.
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// Offset of the next unread byte (for error messages).
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left (0 once the value is complete).
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// Errors unless every byte was consumed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(DecodeError::Trailing { at: self.pos })
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let truncated = DecodeError::Truncated { need: n, at: self.pos };
        let end = self.pos.checked_add(n).ok_or(truncated.clone())?;
        let slice = self.data.get(self.pos..end).ok_or(truncated)?;
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut buf = [0_u8; N];
        buf.copy_from_slice(self.take(N)?);
        Ok(buf)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A length field of 1, 2 or 4 bytes, widened to usize.
    fn len(&mut self, width: u8) -> Result<usize, DecodeError> {
        Ok(match width {
            1 => usize::from(self.u8()?),
            2 => usize::from(self.u16()?),
            _ => self.u32()? as usize,
        })
    }

    fn ext(&mut self, len: usize) -> Result<Token<'a>, DecodeError> {
        let code = self.u8()? as i8;
        Ok(Token::Ext(code, self.take(len)?))
    }

    /// Reads the next token; `Marker` errors point at the offending byte.
    pub fn token(&mut self) -> Result<Token<'a>, DecodeError> {
        let at = self.pos;
        let byte = self.u8()?;
        Ok(match byte {
            0x00..=m::POS_FIXINT_MAX => Token::Int(i64::from(byte)),
            m::FIXMAP..=m::FIXMAP_MAX => Token::Map(u32::from(byte & 0x0f)),
            m::FIXARRAY..=m::FIXARRAY_MAX => Token::Array(u32::from(byte & 0x0f)),
            m::FIXSTR..=m::FIXSTR_MAX => Token::Str(self.take(usize::from(byte & 0x1f))?),
            m::NEG_FIXINT..=0xff => Token::Int(i64::from(byte as i8)),
            m::NIL => Token::Nil,
            m::FALSE => Token::Bool(false),
            m::TRUE => Token::Bool(true),
            _ => self.wide_token(byte, at)?,
        })
    }

    /// Markers followed by a length or a fixed-size value.
    fn wide_token(&mut self, byte: u8, at: usize) -> Result<Token<'a>, DecodeError> {
        Ok(match byte {
            m::BIN8 | m::BIN16 | m::BIN32 => {
                let len = self.len(1 << (byte - m::BIN8))?;
                Token::Bin(self.take(len)?)
            }
            m::EXT8 | m::EXT16 | m::EXT32 => {
                let len = self.len(1 << (byte - m::EXT8))?;
                self.ext(len)?
            }
            m::FIXEXT1..=m::FIXEXT16 => self.ext(1 << (byte - m::FIXEXT1))?,
            m::STR8 | m::STR16 | m::STR32 => {
                let len = self.len(1 << (byte - m::STR8))?;
                Token::Str(self.take(len)?)
            }
            m::ARRAY16 | m::ARRAY32 => Token::Array(self.len(2 << (byte - m::ARRAY16))? as u32),
            m::MAP16 | m::MAP32 => Token::Map(self.len(2 << (byte - m::MAP16))? as u32),
            _ => self.number(byte, at)?,
        })
    }

    fn number(&mut self, byte: u8, at: usize) -> Result<Token<'a>, DecodeError> {
        Ok(match byte {
            m::FLOAT32 => Token::Float(f64::from(f32::from_bits(self.u32()?))),
            m::FLOAT64 => Token::Float(f64::from_bits(self.u64()?)),
            m::UINT8 => Token::Int(i64::from(self.u8()?)),
            m::UINT16 => Token::Int(i64::from(self.u16()?)),
            m::UINT32 => Token::Int(i64::from(self.u32()?)),
            m::UINT64 => {
                let v = self.u64()?;
                i64::try_from(v).map_or(Token::UInt(v), Token::Int)
            }
            m::INT8 => Token::Int(i64::from(self.u8()? as i8)),
            m::INT16 => Token::Int(i64::from(self.u16()? as i16)),
            m::INT32 => Token::Int(i64::from(self.u32()? as i32)),
            m::INT64 => Token::Int(self.u64()? as i64),
            _ => return Err(DecodeError::Marker { byte, at }),
        })
    }

    /// Skips one complete value (validating its structure) at container depth `depth`.
    pub fn skip(&mut self, depth: usize) -> Result<(), DecodeError> {
        let items = match self.token()? {
            Token::Array(n) => n as usize,
            Token::Map(n) => n as usize * 2,
            _ => return Ok(()),
        };
        if depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        for _ in 0..items {
            self.skip(depth + 1)?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// Checks that `data` is exactly one well-formed msgpack value (structure only, no Python objects).
    fn validate(data: &[u8]) -> Result<(), DecodeError> {
        let mut reader = Reader::new(data);
        reader.skip(0)?;
        reader.finish()
    }

    /// A payload using every marker family, for truncation tests.
    pub fn rich_payload() -> Vec<u8> {
        let mut out = vec![0x8a]; // map of 10
        for i in 0..10_u8 {
            out.push(i); // key
            match i {
                0 => out.extend_from_slice(&[0x93, 0xc0, 0xc2, 0xc3]),
                1 => out.extend_from_slice(&[0xd9, 3, b'a', b'b', b'c']),
                2 => out.extend_from_slice(&[0xc5, 0, 2, 1, 2]),
                3 => out.extend_from_slice(&[0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]),
                4 => out.extend_from_slice(&[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
                5 => out.extend_from_slice(&[0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0]),
                6 => out.extend_from_slice(&[0xd7, 0xff, 0xa1, 0xdc, 0xd4, 0x20, 0x65, 0x93, 0x7d, 0x25]),
                7 => out.extend_from_slice(&[0xdc, 0, 2, 0xa1, b'x', 0xde, 0, 1, 0xa0, 0xe0]),
                8 => out.extend_from_slice(&[0xc7, 3, 3, b'1', b'.', b'5']),
                _ => out.extend_from_slice(&[0xca, 0x3f, 0xc0, 0, 0]),
            }
        }
        out
    }

    /// xorshift64: a tiny deterministic generator, good enough to produce garbage bytes.
    pub struct XorShift(pub u64);

    impl XorShift {
        pub fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn rich_payload_is_valid_and_every_truncation_is_an_error() {
        let data = rich_payload();
        assert_eq!(validate(&data), Ok(()));
        for cut in 0..data.len() {
            let err = validate(&data[..cut]).expect_err("a truncated payload must not validate");
            assert!(matches!(err, DecodeError::Truncated { .. }), "cut {cut}: {err}");
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..5000 {
            let len = (rng.next_u64() % 64) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            let _ = validate(&bytes);
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        assert_eq!(validate(&vec![0x91; 100_000]), Err(DecodeError::TooDeep));
        let mut ok = vec![0x91; MAX_DEPTH];
        ok.push(0xc0);
        assert_eq!(validate(&ok), Ok(()));
        let mut too_deep = vec![0x91; MAX_DEPTH + 1];
        too_deep.push(0xc0);
        assert_eq!(validate(&too_deep), Err(DecodeError::TooDeep));
    }

    #[test]
    fn huge_declared_lengths_fail_without_allocating() {
        let err = validate(&[0xdd, 0xff, 0xff, 0xff, 0xff]).unwrap_err();
        assert_eq!(err, DecodeError::Truncated { need: 1, at: 5 });
        let err = validate(&[0xdb, 0xff, 0xff, 0xff, 0xff, b'a']).unwrap_err();
        assert_eq!(
            err.to_string(),
            "truncated payload: expected 4294967295 bytes at offset 5"
        );
    }

    #[test]
    fn error_messages_name_the_offset() {
        assert_eq!(
            validate(&[0xc1]).unwrap_err().to_string(),
            "invalid msgpack marker 0xc1 at offset 0"
        );
        assert_eq!(
            validate(&[0x92, 0x01, 0xc1]).unwrap_err().to_string(),
            "invalid msgpack marker 0xc1 at offset 2"
        );
        assert_eq!(
            validate(&[0x01, 0x02]).unwrap_err().to_string(),
            "trailing bytes after the payload at offset 1"
        );
        assert_eq!(
            validate(&[]).unwrap_err().to_string(),
            "truncated payload: expected 1 bytes at offset 0"
        );
    }

    #[test]
    fn tokens_decode_every_int_width() {
        let cases: &[(&[u8], Token)] = &[
            (&[0xcc, 0xff], Token::Int(255)),
            (&[0xcd, 0xff, 0xff], Token::Int(65_535)),
            (&[0xd0, 0x80], Token::Int(-128)),
            (&[0xd1, 0x80, 0x00], Token::Int(-32_768)),
            (&[0xd2, 0x80, 0, 0, 0], Token::Int(-2_147_483_648)),
            (
                &[0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                Token::Int(i64::MAX),
            ),
            (&[0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0], Token::UInt(1 << 63)),
            (&[0xe0], Token::Int(-32)),
            (&[0xca, 0x3f, 0xc0, 0, 0], Token::Float(1.5)),
        ];
        for (bytes, want) in cases {
            assert_eq!(Reader::new(bytes).token(), Ok(*want), "{bytes:02x?}");
        }
    }
}
