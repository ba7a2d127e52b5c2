//! HL7 DTM/TS values (`YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]`) and their FHIR renderings.
//!
//! Precision and time zone are kept: `20240131` -> `2024-01-31`; `202401311530-0500` ->
//! `2024-01-31T15:30:00-05:00`. FHIR wants seconds whenever a time is given, so missing minutes
//! and seconds are written as `00`. When the HL7 value has a time but no zone, `to_fhir_datetime`
//! writes the local time without an offset rather than inventing one (the regex in the FHIR spec
//! accepts it); call [`DateTime::with_default_offset`] first to supply the sender's zone, which a
//! FHIR `instant` always needs.

use nom::bytes::complete::take_while_m_n;
use nom::character::complete::{char, digit1, one_of};
use nom::combinator::{cond, eof, map_res, opt};
use nom::multi::fold_many_m_n;
use nom::sequence::preceded;
use nom::{IResult, Parser};
use thiserror::Error;

/// Why a date/time value is invalid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DateTimeError {
    /// The value is empty.
    #[error("empty date/time")]
    Empty,
    /// The value does not have the DTM shape.
    #[error("'{0}' is not an HL7 date/time (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ])")]
    Format(String),
    /// A part is out of range (month 13, 31 February, hour 24, ...).
    #[error("'{value}': {part} out of range")]
    OutOfRange {
        /// The value as given.
        value: String,
        /// Which part.
        part: &'static str,
    },
    /// A FHIR instant needs a full date, a time and a zone.
    #[error("'{0}' cannot be a FHIR instant: it needs a date, a time and a time zone")]
    NotAnInstant(String),
}

/// A parsed HL7 date/time with its precision: later parts are `None` when not given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateTime {
    /// Year (4 digits).
    pub year: u16,
    /// Month 1-12.
    pub month: Option<u8>,
    /// Day of month.
    pub day: Option<u8>,
    /// Hour 0-23.
    pub hour: Option<u8>,
    /// Minute 0-59.
    pub minute: Option<u8>,
    /// Second 0-59 (60 for a leap second).
    pub second: Option<u8>,
    /// Fraction-of-second digits as written (e.g. `"1234"` for `.1234`).
    pub fraction: Option<String>,
    /// UTC offset in minutes, when given.
    pub offset_minutes: Option<i16>,
}

fn days_in_month(year: u16, month: u8) -> u8 {
    let leap = matches!((year % 4, year % 100, year % 400), (_, _, 0) | (0, 1.., _));
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Fixed-width unsigned digits, as in every DTM part.
fn digits<'a, T: std::str::FromStr>(width: usize) -> impl Parser<&'a str, Output = T, Error = ()> {
    map_res(
        take_while_m_n(width, width, |c: char| c.is_ascii_digit()),
        str::parse,
    )
}

/// A `+/-HHMM` zone as written: sign, hours, minutes (range-checked by [`parse`]).
type Zone = (char, u16, u16);

/// The DTM grammar: year, then up to five two-digit parts (month to second), a fraction only
/// after the seconds, and an optional `+/-HHMM` zone; nothing may follow.
fn dtm(i: &str) -> IResult<&str, (DateTime, Option<Zone>), ()> {
    let (i, year) = digits::<u16>(4).parse(i)?;
    // Month, day, hour, minute, second: each present only when all before it are.
    let (i, (parts, given)) = fold_many_m_n(
        0,
        5,
        digits::<u8>(2),
        || ([0u8; 5], 0usize),
        |(mut parts, n), p| {
            if let Some(slot) = parts.get_mut(n) {
                *slot = p;
            }
            (parts, n + 1)
        },
    )
    .parse(i)?;
    let (i, fraction) = cond(given == 5, opt(preceded(char('.'), digit1))).parse(i)?;
    let (i, zone) = opt((one_of("+-"), digits::<u16>(2), digits::<u16>(2))).parse(i)?;
    let (i, _) = eof(i)?;
    let part = |n: usize| (n < given).then(|| parts.get(n).copied()).flatten();
    let dt = DateTime {
        year,
        month: part(0),
        day: part(1),
        hour: part(2),
        minute: part(3),
        second: part(4),
        fraction: fraction.flatten().map(str::to_string),
        offset_minutes: None,
    };
    Ok((i, (dt, zone)))
}

/// Parse an HL7 DTM/TS value. A TS's second component (degree of precision) is ignored.
pub fn parse(value: &str) -> Result<DateTime, DateTimeError> {
    let v = value.split('^').next().unwrap_or_default().trim();
    if v.is_empty() {
        return Err(DateTimeError::Empty);
    }
    let range = |part: &'static str| DateTimeError::OutOfRange {
        value: value.to_string(),
        part,
    };
    let (_, (mut dt, zone)) = dtm(v).map_err(|_| DateTimeError::Format(value.to_string()))?;
    if let Some((sign, h, m)) = zone {
        if h > 14 || m > 59 {
            return Err(range("time zone"));
        }
        let total = i16::try_from(h * 60 + m).map_err(|_| range("time zone"))?;
        dt.offset_minutes = Some(if sign == '-' { -total } else { total });
    }
    let year = dt.year;
    if dt.month.is_some_and(|m| !(1..=12).contains(&m)) {
        return Err(range("month"));
    }
    if let (Some(m), Some(d)) = (dt.month, dt.day) {
        if d == 0 || d > days_in_month(year, m) {
            return Err(range("day"));
        }
    }
    if dt.hour.is_some_and(|h| h > 23) {
        return Err(range("hour"));
    }
    if dt.minute.is_some_and(|m| m > 59) {
        return Err(range("minute"));
    }
    if dt.second.is_some_and(|s| s > 60) {
        return Err(range("second"));
    }
    Ok(dt)
}

impl DateTime {
    /// The same value with `offset_minutes` filled in when it had no zone.
    pub fn with_default_offset(mut self, offset_minutes: i16) -> Self {
        self.offset_minutes = self.offset_minutes.or(Some(offset_minutes));
        self
    }

    /// FHIR `date`: `YYYY`, `YYYY-MM` or `YYYY-MM-DD` (a time part is dropped).
    pub fn to_fhir_date(&self) -> String {
        let mut s = format!("{:04}", self.year);
        if let Some(m) = self.month {
            s.push_str(&format!("-{m:02}"));
            if let Some(d) = self.day {
                s.push_str(&format!("-{d:02}"));
            }
        }
        s
    }

    /// FHIR `dateTime`, keeping precision and zone (see the module notes for values with no zone).
    pub fn to_fhir_datetime(&self) -> String {
        let mut s = self.to_fhir_date();
        let (Some(h), Some(_)) = (self.hour, self.day) else {
            return s;
        };
        s.push_str(&format!(
            "T{h:02}:{:02}:{:02}",
            self.minute.unwrap_or(0),
            self.second.unwrap_or(0)
        ));
        if let Some(f) = &self.fraction {
            s.push('.');
            s.push_str(f);
        }
        if let Some(off) = self.offset_minutes {
            let sign = if off < 0 { '-' } else { '+' };
            let a = off.unsigned_abs();
            s.push_str(&format!("{sign}{:02}:{:02}", a / 60, a % 60));
        }
        s
    }

    /// FHIR `instant`: needs a full date, a time and a zone.
    pub fn to_fhir_instant(&self) -> Result<String, DateTimeError> {
        if self.day.is_none() || self.hour.is_none() || self.offset_minutes.is_none() {
            return Err(DateTimeError::NotAnInstant(self.to_hl7()));
        }
        Ok(self.to_fhir_datetime())
    }

    /// The value written back as HL7 DTM.
    pub fn to_hl7(&self) -> String {
        let mut s = format!("{:04}", self.year);
        for p in [self.month, self.day, self.hour, self.minute, self.second]
            .into_iter()
            .map_while(|p| p)
        {
            s.push_str(&format!("{p:02}"));
        }
        if let Some(f) = &self.fraction {
            s.push('.');
            s.push_str(f);
        }
        if let Some(off) = self.offset_minutes {
            let a = off.unsigned_abs();
            s.push_str(&format!(
                "{}{:02}{:02}",
                if off < 0 { '-' } else { '+' },
                a / 60,
                a % 60
            ));
        }
        s
    }
}

/// Parse an HL7 date/time and render a FHIR `date`.
pub fn to_fhir_date(value: &str) -> Result<String, DateTimeError> {
    parse(value).map(|d| d.to_fhir_date())
}

/// Parse an HL7 date/time and render a FHIR `dateTime`.
pub fn to_fhir_datetime(value: &str) -> Result<String, DateTimeError> {
    parse(value).map(|d| d.to_fhir_datetime())
}

/// Parse an HL7 date/time and render a FHIR `instant`.
pub fn to_fhir_instant(value: &str) -> Result<String, DateTimeError> {
    parse(value)?.to_fhir_instant()
}

/// The current UTC time as HL7 DTM with seconds and `+0000`.
pub fn now_hl7() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    from_unix_seconds(secs)
}

/// The proleptic Gregorian (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`); shared by everything in Junction that prints a date from a clock.
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// A UNIX timestamp (seconds, UTC) as HL7 DTM with `+0000`.
pub fn from_unix_seconds(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut out = String::with_capacity(19);
    // Days since 1970 from a u64 give a year from 1970 on, so none of these is negative.
    let [year, month, day] = [year, month, day].map(|v| u64::try_from(v).unwrap_or(0));
    push_digits(&mut out, year, 10, 4);
    for part in [month, day, rem / 3600, (rem % 3600) / 60, rem % 60] {
        push_digits(&mut out, part, 10, 2);
    }
    out.push_str("+0000");
    out
}

/// Appends `value` in `radix` (2 to 16, upper-case letters), zero-padded to at least `width` digits:
/// what `{:0width$}` / `{:0width$X}` print, without the formatting machinery, since every ACK is
/// stamped with the time and a new control id.
pub(crate) fn push_digits(out: &mut String, value: u64, radix: u32, width: u32) {
    let radix = radix.clamp(2, 16);
    let base = u64::from(radix);
    let digits = value.checked_ilog(base).map_or(1, |d| d + 1).max(width);
    for place in (0..digits).rev() {
        let digit = base.checked_pow(place).map_or(0, |p| value / p % base);
        let digit = char::from_digit(u32::try_from(digit).unwrap_or(0), radix).unwrap_or('0');
        out.push(digit.to_ascii_uppercase());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn fhir_renderings() {
        assert_eq!(to_fhir_date("20240131").unwrap(), "2024-01-31");
        assert_eq!(to_fhir_date("202401").unwrap(), "2024-01");
        assert_eq!(to_fhir_date("2024").unwrap(), "2024");
        assert_eq!(to_fhir_date("19800101120000").unwrap(), "1980-01-01");
        assert_eq!(
            to_fhir_datetime("202401311530-0500").unwrap(),
            "2024-01-31T15:30:00-05:00"
        );
        assert_eq!(
            to_fhir_datetime("20240131153045.123+0130").unwrap(),
            "2024-01-31T15:30:45.123+01:30"
        );
        assert_eq!(
            to_fhir_datetime("2024013115").unwrap(),
            "2024-01-31T15:00:00"
        );
        assert_eq!(to_fhir_datetime("20240131").unwrap(), "2024-01-31");
        assert_eq!(to_fhir_datetime("20240131^D").unwrap(), "2024-01-31");
        assert_eq!(
            to_fhir_instant("20240131153045+0000").unwrap(),
            "2024-01-31T15:30:45+00:00"
        );
        assert!(to_fhir_instant("20240131153045").is_err());
        assert_eq!(
            parse("202401311530")
                .unwrap()
                .with_default_offset(60)
                .to_fhir_instant()
                .unwrap(),
            "2024-01-31T15:30:00+01:00"
        );
    }

    #[test]
    fn invalid_dates_are_errors() {
        for bad in [
            "",
            "2024013",
            "20241301",
            "20240230",
            "20240131256000",
            "2024-01-31",
            "2024013115301",
            "20240131+05",
            "20240131.5",
            "abcd",
            "20240131+1500",
            "20240131+0175",
            "20240131Z",
            "20240131 1200",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse("20240229").is_ok());
        assert!(parse("20230229").is_err());
    }

    #[test]
    fn hl7_round_trip_and_now() {
        assert_eq!(
            parse("20240131153045.12-0500").unwrap().to_hl7(),
            "20240131153045.12-0500"
        );
        assert_eq!(from_unix_seconds(0), "19700101000000+0000");
        assert_eq!(from_unix_seconds(1_706_715_045), "20240131153045+0000");
        assert_eq!(now_hl7().len(), 19);
        // Year 10000 needs a fifth digit, as `{:04}` would print it.
        assert_eq!(from_unix_seconds(253_402_300_800), "100000101000000+0000");
    }

    #[test]
    fn digits_match_the_formatter() {
        for v in [
            0,
            7,
            9,
            10,
            99,
            100,
            1_234,
            65_535,
            1_706_715_045_123,
            u64::MAX,
        ] {
            for width in [1, 2, 4] {
                let (mut dec, mut hex) = (String::new(), String::new());
                push_digits(&mut dec, v, 10, width);
                push_digits(&mut hex, v, 16, width);
                let w = width as usize;
                assert_eq!(dec, format!("{v:0w$}"));
                assert_eq!(hex, format!("{v:0w$X}"));
            }
        }
    }
}
