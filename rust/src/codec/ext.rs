//! wakaq's msgpack ext types, both directions: -1 Timestamp (datetime, spec format), 1 date,
//! 2 timedelta, 3 Decimal, 4 int beyond 64 bits. Codes are listed in docs/internals.md.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDate, PyDateTime, PyDelta, PyInt, PyType, PyTzInfoAccess};

use super::decode::{DecodeFail, Decoded};
use super::error::{from_py, EncodeError};
use super::fields;
use super::read::DecodeError;
use super::timestamp::{self, civil_from_seconds, days_from_civil, read_timestamp, write_timestamp};
use super::write;

pub const EXT_TIMESTAMP: i8 = -1;
pub const EXT_DATE: i8 = 1;
pub const EXT_TIMEDELTA: i8 = 2;
pub const EXT_DECIMAL: i8 = 3;
pub const EXT_BIG_INT: i8 = 4;

const MICROS_PER_SECOND: i64 = 1_000_000;

/// `decimal.Decimal`, imported once.
pub fn decimal_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    static DECIMAL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    DECIMAL.import(py, "decimal", "Decimal")
}

/// Writes `obj` as an ext value when it is a datetime, date, timedelta or Decimal (subclasses too);
/// `Ok(false)` means it is none of them.
pub fn write_ext(out: &mut Vec<u8>, obj: &Bound<'_, PyAny>) -> Result<bool, Box<EncodeError>> {
    // NOTE: datetime before date: datetime is a subclass of date.
    if let Ok(dt) = obj.cast::<PyDateTime>() {
        write_datetime(out, dt)?;
    } else if let Ok(d) = obj.cast::<PyDate>() {
        let (year, month, day) = fields::date(d).map_err(|e| from_py(obj.py(), &e))?;
        let year = u16::try_from(year).map_err(|_| EncodeError::invalid("date year out of range"))?;
        let [hi, lo] = year.to_be_bytes();
        write::ext(out, EXT_DATE, &[hi, lo, month, day])?;
    } else if let Ok(td) = obj.cast::<PyDelta>() {
        let (days, seconds, micros) = fields::delta(td).map_err(|e| from_py(obj.py(), &e))?;
        let mut data = [0_u8; 12];
        data[..4].copy_from_slice(&days.to_be_bytes());
        data[4..8].copy_from_slice(&seconds.to_be_bytes());
        data[8..].copy_from_slice(&micros.to_be_bytes());
        write::ext(out, EXT_TIMEDELTA, &data)?;
    } else if obj
        .is_instance(decimal_type(obj.py()).map_err(|e| from_py(obj.py(), &e))?.as_any())
        .unwrap_or(false)
    {
        // NOTE: str() is exact for every Decimal, NaN and Infinity included; Decimal(str(d)) gives d back.
        write_text_ext(out, EXT_DECIMAL, obj)?;
    } else {
        return Ok(false);
    }
    Ok(true)
}

/// Ints beyond 64 bits as their decimal string: exact, and readable by any msgpack client.
pub fn write_big_int(out: &mut Vec<u8>, obj: &Bound<'_, PyAny>) -> Result<(), Box<EncodeError>> {
    write_text_ext(out, EXT_BIG_INT, obj)
}

fn write_text_ext(out: &mut Vec<u8>, code: i8, obj: &Bound<'_, PyAny>) -> Result<(), Box<EncodeError>> {
    let text = obj.str().map_err(|e| from_py(obj.py(), &e))?;
    let text = text.to_str().map_err(|e| from_py(obj.py(), &e))?;
    Ok(write::ext(out, code, text.as_bytes())?)
}

/// Aware datetimes are converted to UTC; naive ones are taken to be UTC already (as WakaQ does).
fn write_datetime(out: &mut Vec<u8>, dt: &Bound<'_, PyDateTime>) -> Result<(), Box<EncodeError>> {
    let (year, month, day) = fields::datetime_date(dt).map_err(|e| from_py(dt.py(), &e))?;
    let (hour, minute, second, micro) = fields::time(dt).map_err(|e| from_py(dt.py(), &e))?;
    let days = days_from_civil(i64::from(year), u32::from(month), u32::from(day));
    let second_of_day = i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
    let local_micros = (days * 86_400 + second_of_day) * MICROS_PER_SECOND + i64::from(micro);
    let micros = local_micros - utc_offset_micros(dt)?;
    let seconds = micros.div_euclid(MICROS_PER_SECOND);
    if !(timestamp::MIN_SECONDS..=timestamp::MAX_SECONDS).contains(&seconds) {
        return Err(EncodeError::invalid("datetime is out of range once converted to UTC"));
    }
    let nanos = (micros.rem_euclid(MICROS_PER_SECOND) * 1000) as u32;
    write_timestamp(out, seconds, nanos);
    Ok(())
}

/// `dt.utcoffset()` in microseconds; 0 for naive datetimes (no tzinfo, or a tzinfo returning None).
fn utc_offset_micros(dt: &Bound<'_, PyDateTime>) -> Result<i64, Box<EncodeError>> {
    if dt.get_tzinfo().is_none() {
        return Ok(0);
    }
    let offset = dt.call_method0("utcoffset").map_err(|e| from_py(dt.py(), &e))?;
    if offset.is_none() {
        return Ok(0);
    }
    let offset = offset
        .cast::<PyDelta>()
        .map_err(|_| EncodeError::invalid("utcoffset() did not return a timedelta"))?;
    let (days, seconds, micros) = fields::delta(offset).map_err(|e| from_py(dt.py(), &e))?;
    let seconds = i64::from(days) * 86_400 + i64::from(seconds);
    Ok(seconds * MICROS_PER_SECOND + i64::from(micros))
}

/// Builds the Python value of an ext item; `at` is its offset, for messages.
pub fn read_ext<'py>(py: Python<'py>, code: i8, data: &[u8], at: usize) -> Decoded<'py> {
    let bad = |what: String| Err(DecodeError::BadValue { what, at }.into());
    match code {
        EXT_TIMESTAMP => match read_timestamp(data) {
            Ok((seconds, nanos)) => read_datetime(py, seconds, nanos, at),
            Err(what) => bad(what),
        },
        EXT_DATE => match *data {
            [hi, lo, month, day] => py_value(
                PyDate::new(py, i32::from(u16::from_be_bytes([hi, lo])), month, day),
                "date",
                at,
            ),
            _ => bad(format!("date ext of {} bytes (expected 4)", data.len())),
        },
        EXT_TIMEDELTA => match read_i32s(data) {
            Some([days, seconds, micros]) => py_value(PyDelta::new(py, days, seconds, micros, true), "timedelta", at),
            None => bad(format!("timedelta ext of {} bytes (expected 12)", data.len())),
        },
        EXT_DECIMAL => read_decimal(py, data, at),
        EXT_BIG_INT => read_big_int(py, data, at),
        _ => Err(DecodeError::UnknownExt { code, at }.into()),
    }
}

/// A Python constructor's ValueError/OverflowError becomes a payload error; the payload was wrong.
fn py_value<'py, T>(made: PyResult<Bound<'py, T>>, what: &str, at: usize) -> Decoded<'py> {
    made.map(Bound::into_any).map_err(|e| {
        DecodeFail::Bad(DecodeError::BadValue {
            what: format!("invalid {what} ({e})"),
            at,
        })
    })
}

fn read_i32s(data: &[u8]) -> Option<[i32; 3]> {
    let mut values = [0_i32; 3];
    if data.len() != 12 {
        return None;
    }
    for (value, chunk) in values.iter_mut().zip(data.chunks_exact(4)) {
        *value = i32::from_be_bytes(chunk.try_into().ok()?);
    }
    Some(values)
}

/// Datetimes decode as naive UTC. Sub-microsecond nanoseconds (other writers) are truncated.
fn read_datetime(py: Python<'_>, seconds: i64, nanos: u32, at: usize) -> Decoded<'_> {
    if !(timestamp::MIN_SECONDS..=timestamp::MAX_SECONDS).contains(&seconds) {
        let what = format!("timestamp {seconds} is outside the datetime range");
        return Err(DecodeError::BadValue { what, at }.into());
    }
    let c = civil_from_seconds(seconds);
    let (hour, minute, second) = (
        (c.second_of_day / 3600) as u8,
        (c.second_of_day / 60 % 60) as u8,
        (c.second_of_day % 60) as u8,
    );
    let made = PyDateTime::new(
        py,
        c.year as i32,
        c.month as u8,
        c.day as u8,
        hour,
        minute,
        second,
        nanos / 1000,
        None,
    );
    py_value(made, "datetime", at)
}

fn read_decimal<'py>(py: Python<'py>, data: &[u8], at: usize) -> Decoded<'py> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Err(DecodeError::BadUtf8 { at }.into());
    };
    py_value(decimal_type(py)?.call1((text,)), "Decimal", at)
}

/// Only an optional '-' and ASCII digits: `int()` would also accept spaces and underscores.
fn read_big_int<'py>(py: Python<'py>, data: &[u8], at: usize) -> Decoded<'py> {
    let digits = data.strip_prefix(b"-").unwrap_or(data);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(DecodeError::BadValue {
            what: "big int ext is not a decimal integer".into(),
            at,
        }
        .into());
    }
    let text = String::from_utf8_lossy(data);
    py_value(py.get_type::<PyInt>().call1((text.as_ref(),)), "int", at)
}
