//! The msgpack Timestamp extension (type -1) and the calendar arithmetic behind it. Pure Rust.
//!
//! Spec forms: timestamp32 (4 bytes: u32 seconds, no nanoseconds), timestamp64 (8 bytes: a u64 holding
//! `nanoseconds << 34 | seconds`, seconds < 2^34), timestamp96 (12 bytes: u32 nanoseconds, i64 seconds).

use super::write;

/// Seconds since the epoch of 0001-01-01T00:00:00 and of 9999-12-31T23:59:59: Python's datetime range.
pub const MIN_SECONDS: i64 = -62_135_596_800;
pub const MAX_SECONDS: i64 = 253_402_300_799;
const SECONDS_PER_DAY: i64 = 86_400;
const NANOS_PER_SECOND: u32 = 1_000_000_000;

/// Writes the smallest spec form that holds `(seconds, nanos)`; `nanos` must be below 10^9.
pub fn write_timestamp(out: &mut Vec<u8>, seconds: i64, nanos: u32) {
    debug_assert!(nanos < NANOS_PER_SECOND);
    // NOTE: pack in u64, never i64: nanos >= 2^29 (about 0.537 s) would set the sign bit of an i64 and
    // a signed "fits in 32 bits" test would then pass wrongly and drop the sub-second part.
    let result = if (0..1_i64 << 34).contains(&seconds) {
        let packed = (u64::from(nanos) << 34) | seconds as u64;
        match u32::try_from(packed) {
            Ok(small) => write::ext(out, -1, &small.to_be_bytes()),
            Err(_) => write::ext(out, -1, &packed.to_be_bytes()),
        }
    } else {
        let mut data = [0_u8; 12];
        data[..4].copy_from_slice(&nanos.to_be_bytes());
        data[4..].copy_from_slice(&seconds.to_be_bytes());
        write::ext(out, -1, &data)
    };
    // A 12-byte payload always fits an ext header.
    debug_assert!(result.is_ok());
}

/// Reads any of the three spec forms into `(seconds, nanos)`.
pub fn read_timestamp(data: &[u8]) -> Result<(i64, u32), String> {
    let bad_length = || format!("timestamp ext of {} bytes (expected 4, 8 or 12)", data.len());
    let (seconds, nanos) = match data.len() {
        4 => (
            i64::from(u32::from_be_bytes(data.try_into().map_err(|_| bad_length())?)),
            0,
        ),
        8 => {
            let packed = u64::from_be_bytes(data.try_into().map_err(|_| bad_length())?);
            ((packed & ((1 << 34) - 1)) as i64, (packed >> 34) as u32)
        }
        12 => {
            let (nanos, seconds) = data.split_at(4);
            let nanos = u32::from_be_bytes(nanos.try_into().map_err(|_| bad_length())?);
            (i64::from_be_bytes(seconds.try_into().map_err(|_| bad_length())?), nanos)
        }
        _ => return Err(bad_length()),
    };
    if nanos >= NANOS_PER_SECOND {
        return Err(format!("timestamp nanoseconds {nanos} out of range"));
    }
    Ok((seconds, nanos))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the era arithmetic: 400-year cycles of
/// 146097 days, years counted from March so the leap day falls at the end).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Inverse of `days_from_civil`: (year, month, day).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A point in time broken into calendar fields (UTC).
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub second_of_day: u32,
}

/// Splits epoch seconds into a UTC date and the second of that day.
pub fn civil_from_seconds(seconds: i64) -> Civil {
    let (year, month, day) = civil_from_days(seconds.div_euclid(SECONDS_PER_DAY));
    let second_of_day = seconds.rem_euclid(SECONDS_PER_DAY) as u32;
    Civil {
        year,
        month,
        day,
        second_of_day,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packed(seconds: i64, nanos: u32) -> Vec<u8> {
        let mut out = Vec::new();
        write_timestamp(&mut out, seconds, nanos);
        out
    }

    #[test]
    fn picks_timestamp32_64_96_at_the_boundaries() {
        assert_eq!(packed(0, 0), [0xd6, 0xff, 0, 0, 0, 0]);
        assert_eq!(packed((1 << 32) - 1, 0), [0xd6, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(packed(1 << 32, 0)[0], 0xd7);
        assert_eq!(packed((1 << 34) - 1, 999_999_999)[0], 0xd7);
        assert_eq!(packed(1 << 34, 0)[..3], [0xc7, 12, 0xff]);
        assert_eq!(packed(-1, 0)[..3], [0xc7, 12, 0xff]);
        // Sub-second values above 2^29 ns: the case a signed packing gets wrong.
        assert_eq!(
            packed(1_704_164_645, 678_901_000),
            [0xd7, 0xff, 0xa1, 0xdc, 0xd4, 0x20, 0x65, 0x93, 0x7d, 0x25]
        );
    }

    #[test]
    fn read_inverts_write() {
        let cases = [
            (0, 0),
            (1, 1),
            ((1 << 32) - 1, 0),
            (1 << 32, 0),
            (5, 999_999_999),
            ((1 << 34) - 1, 999_999_999),
            (1 << 34, 500_000_000),
            (-1, 999_999_999),
            (MIN_SECONDS, 0),
            (MAX_SECONDS, 999_999_000),
            (i64::MIN, 0),
        ];
        for (seconds, nanos) in cases {
            let bytes = packed(seconds, nanos);
            let header = if bytes[0] == 0xc7 { 3 } else { 2 };
            assert_eq!(
                read_timestamp(&bytes[header..]),
                Ok((seconds, nanos)),
                "{seconds} {nanos}"
            );
        }
    }

    #[test]
    fn read_rejects_bad_lengths_and_nanos() {
        assert!(read_timestamp(&[0; 5]).is_err());
        assert!(read_timestamp(&[]).is_err());
        assert!(read_timestamp(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(read_timestamp(&[0xff; 8]).is_err());
    }

    #[test]
    fn calendar_round_trips_over_the_whole_datetime_range() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1, 1, 1) * SECONDS_PER_DAY, MIN_SECONDS);
        assert_eq!(days_from_civil(9999, 12, 31) * SECONDS_PER_DAY + 86_399, MAX_SECONDS);
        let first = days_from_civil(1, 1, 1);
        let last = days_from_civil(9999, 12, 31);
        let mut expected = (1, 1, 1);
        for days in first..=last {
            let got = civil_from_days(days);
            assert_eq!(days_from_civil(got.0, got.1, got.2), days);
            assert!(got >= expected, "{got:?} after {expected:?}");
            expected = got;
        }
        assert_eq!(expected, (9999, 12, 31));
    }

    #[test]
    fn seconds_split_into_date_and_time_of_day() {
        let c = civil_from_seconds(-1);
        assert_eq!(
            c,
            Civil {
                year: 1969,
                month: 12,
                day: 31,
                second_of_day: 86_399
            }
        );
        let c = civil_from_seconds(1_704_164_645);
        assert_eq!(
            c,
            Civil {
                year: 2024,
                month: 1,
                day: 2,
                second_of_day: 3 * 3600 + 4 * 60 + 5
            }
        );
    }
}
