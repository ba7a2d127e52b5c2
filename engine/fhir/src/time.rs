//! HL7 DTM/TM to FHIR date, dateTime, instant and time, on top of `junction_hl7::datetime`.
//!
//! FHIR needs a zone on every dateTime that has a time. A value without one takes the message's zone
//! (the caller passes MSH-7's offset, or the channel's configured zone); with no zone known at all the
//! time is dropped and the date kept: a date that is certain beats a time in an invented zone.

use junction_hl7::datetime::{self, DateTime};

/// FHIR `date` (`YYYY[-MM[-DD]]`); `None` when the text is not an HL7 date.
pub fn date(value: &str) -> Option<String> {
    parse(value).map(|d| d.to_fhir_date())
}

/// Year 0000 is how some senders say "unknown"; FHIR has no year 0, so such a value is no value.
fn parse(value: &str) -> Option<DateTime> {
    datetime::parse(value.trim()).ok().filter(|d| d.year > 0)
}

/// FHIR `dateTime` keeping precision and zone; `zone` (minutes east of UTC) fills a missing zone.
pub fn datetime(value: &str, zone: Option<i16>) -> Option<String> {
    Some(zoned(value, zone)?.to_fhir_datetime())
}

/// FHIR `instant` (full date, time and zone); `None` when any of them is missing.
pub fn instant(value: &str, zone: Option<i16>) -> Option<String> {
    zoned(value, zone)?.to_fhir_instant().ok()
}

fn zoned(value: &str, zone: Option<i16>) -> Option<DateTime> {
    let mut d = parse(value)?;
    if d.offset_minutes.is_none() {
        match zone {
            Some(z) => d = d.with_default_offset(z),
            None => (d.hour, d.minute, d.second, d.fraction) = (None, None, None, None),
        }
    }
    Some(d)
}

/// The zone written in an HL7 DTM (MSH-7), in minutes east of UTC.
pub fn zone_of(value: &str) -> Option<i16> {
    datetime::parse(value.trim()).ok()?.offset_minutes
}

/// A zone written `+hh:mm`, `-hhmm`, `Z` or `UTC`, in minutes east of UTC (a channel's configured zone).
pub fn parse_zone(text: &str) -> Option<i16> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("z") || t.eq_ignore_ascii_case("utc") {
        return Some(0);
    }
    let (sign, rest) = match t.as_bytes().first()? {
        b'+' => (1, t.get(1..)?),
        b'-' => (-1, t.get(1..)?),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i16 = digits.get(..2)?.parse().ok()?;
    let minutes: i16 = digits.get(2..)?.parse().ok()?;
    (hours <= 14 && minutes < 60).then_some(sign * (hours * 60 + minutes))
}

/// HL7 TM (`HH[MM[SS[.S]]][+/-ZZZZ]`) to FHIR `time` (`hh:mm:ss[.s]`); FHIR time has no zone, so it is dropped.
pub fn time(value: &str) -> Option<String> {
    let t = value.trim();
    let t = t.split(['+', '-']).next().unwrap_or(t);
    let (whole, fraction) = t.split_once('.').unwrap_or((t, ""));
    if !whole.bytes().all(|b| b.is_ascii_digit()) || !matches!(whole.len(), 2 | 4 | 6) {
        return None;
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let part =
        |r: std::ops::Range<usize>| whole.get(r).and_then(|s| s.parse::<u8>().ok()).unwrap_or(0);
    let (h, m, s) = (part(0..2), part(2..4), part(4..6));
    if h > 23 || m > 59 || s > 60 {
        return None;
    }
    let mut out = format!("{h:02}:{m:02}:{s:02}");
    if !fraction.is_empty() && whole.len() == 6 {
        out.push('.');
        out.push_str(fraction);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_keep_precision_and_zone() {
        assert_eq!(date("19800615").as_deref(), Some("1980-06-15"));
        assert_eq!(date("198006").as_deref(), Some("1980-06"));
        assert_eq!(date("198006151230").as_deref(), Some("1980-06-15"));
        assert_eq!(
            datetime("202401311530-0500", None).as_deref(),
            Some("2024-01-31T15:30:00-05:00")
        );
        assert_eq!(
            datetime("20240131153012.25+0100", Some(0)).as_deref(),
            Some("2024-01-31T15:30:12.25+01:00")
        );
        assert_eq!(datetime("2024", None).as_deref(), Some("2024"));
        assert_eq!(date("not a date"), None);
        assert_eq!(date("00000000"), None);
        assert_eq!(datetime("", Some(0)), None);
    }

    #[test]
    fn missing_zone_takes_the_message_zone_or_drops_the_time() {
        assert_eq!(
            datetime("202401311530", Some(-300)).as_deref(),
            Some("2024-01-31T15:30:00-05:00")
        );
        assert_eq!(
            datetime("202401311530", None).as_deref(),
            Some("2024-01-31")
        );
        assert_eq!(
            instant("20240131153000", Some(60)).as_deref(),
            Some("2024-01-31T15:30:00+01:00")
        );
        assert_eq!(instant("20240131153000", None), None);
        assert_eq!(instant("20240131", Some(0)), None);
        assert_eq!(zone_of("20240131153000-0430"), Some(-270));
        assert_eq!(zone_of("20240131153000"), None);
    }

    #[test]
    fn configured_zones_parse() {
        assert_eq!(parse_zone("+05:30"), Some(330));
        assert_eq!(parse_zone("-0500"), Some(-300));
        assert_eq!(parse_zone("Z"), Some(0));
        assert_eq!(parse_zone("EST"), None);
        assert_eq!(parse_zone("+25:00"), None);
        assert_eq!(parse_zone(""), None);
    }

    #[test]
    fn tm_becomes_fhir_time() {
        assert_eq!(time("1530").as_deref(), Some("15:30:00"));
        assert_eq!(time("153012.5-0500").as_deref(), Some("15:30:12.5"));
        assert_eq!(time("09").as_deref(), Some("09:00:00"));
        assert_eq!(time("2561"), None);
        assert_eq!(time("1a30"), None);
    }
}
