//! The fields of Python dates, datetimes and timedeltas, read for the encoder.
//!
//! NOTE: the version-specific build reads them with CPython's datetime C macros (PyO3's `*Access` traits); the
//! stable ABI (feature `abi3`, the wheels) has no such macros, so there they are read as attributes (`d.year`, ...),
//! each name interned once. The cost of that on the codec benchmarks is in CHANGELOG.md (0.1.0).

/// (year, month, day)
pub type DateFields = (i32, u8, u8);
/// (hour, minute, second, microsecond)
pub type TimeFields = (u8, u8, u8, u32);
/// (days, seconds, microseconds)
pub type DeltaFields = (i32, i32, i32);

// NOTE: both builds share one signature (a PyResult), although the C macros cannot fail.
#[cfg(not(feature = "abi3"))]
#[allow(clippy::unnecessary_wraps)]
mod imp {
    use pyo3::prelude::*;
    use pyo3::types::{PyDate, PyDateAccess, PyDateTime, PyDelta, PyDeltaAccess, PyTimeAccess};

    use super::{DateFields, DeltaFields, TimeFields};

    pub fn date(d: &Bound<'_, PyDate>) -> PyResult<DateFields> {
        Ok((d.get_year(), d.get_month(), d.get_day()))
    }

    pub fn datetime_date(dt: &Bound<'_, PyDateTime>) -> PyResult<DateFields> {
        Ok((dt.get_year(), dt.get_month(), dt.get_day()))
    }

    pub fn time(dt: &Bound<'_, PyDateTime>) -> PyResult<TimeFields> {
        Ok((dt.get_hour(), dt.get_minute(), dt.get_second(), dt.get_microsecond()))
    }

    pub fn delta(td: &Bound<'_, PyDelta>) -> PyResult<DeltaFields> {
        Ok((td.get_days(), td.get_seconds(), td.get_microseconds()))
    }
}

#[cfg(feature = "abi3")]
mod imp {
    use pyo3::intern;
    use pyo3::prelude::*;
    use pyo3::types::{PyDate, PyDateTime, PyDelta};

    use super::{DateFields, DeltaFields, TimeFields};

    pub fn date(d: &Bound<'_, PyDate>) -> PyResult<DateFields> {
        ymd(d.as_any())
    }

    pub fn datetime_date(dt: &Bound<'_, PyDateTime>) -> PyResult<DateFields> {
        ymd(dt.as_any())
    }

    fn ymd(obj: &Bound<'_, PyAny>) -> PyResult<DateFields> {
        let py = obj.py();
        Ok((
            obj.getattr(intern!(py, "year"))?.extract()?,
            obj.getattr(intern!(py, "month"))?.extract()?,
            obj.getattr(intern!(py, "day"))?.extract()?,
        ))
    }

    pub fn time(dt: &Bound<'_, PyDateTime>) -> PyResult<TimeFields> {
        let py = dt.py();
        Ok((
            dt.getattr(intern!(py, "hour"))?.extract()?,
            dt.getattr(intern!(py, "minute"))?.extract()?,
            dt.getattr(intern!(py, "second"))?.extract()?,
            dt.getattr(intern!(py, "microsecond"))?.extract()?,
        ))
    }

    pub fn delta(td: &Bound<'_, PyDelta>) -> PyResult<DeltaFields> {
        let py = td.py();
        Ok((
            td.getattr(intern!(py, "days"))?.extract()?,
            td.getattr(intern!(py, "seconds"))?.extract()?,
            td.getattr(intern!(py, "microseconds"))?.extract()?,
        ))
    }
}

pub use imp::{date, datetime_date, delta, time};
