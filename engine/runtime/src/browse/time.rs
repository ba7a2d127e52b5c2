//! UTC timestamps for people: RFC 3339 in and out, and relative ages like `1h`. Only the proleptic
//! Gregorian arithmetic the browser needs, so no date crate is pulled in.

const SECOND: i64 = 1_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// Days since 1970-01-01 of a civil date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

use junction_hl7::datetime::civil_from_days;

/// `2026-01-31T08:05:09.042Z` for a time in milliseconds since the Unix epoch.
pub fn format(millis: u64) -> String {
    let millis = i64::try_from(millis).unwrap_or(i64::MAX);
    let (days, rest) = (millis.div_euclid(DAY), millis.rem_euclid(DAY));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / HOUR,
        rest % HOUR / MINUTE,
        rest % MINUTE / SECOND,
        rest % SECOND
    )
}

fn number(s: &str, what: &str) -> Result<i64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what} {s:?} is not a number"));
    }
    s.parse()
        .map_err(|_| format!("{what} {s:?} is out of range"))
}

/// Milliseconds since the epoch of an RFC 3339 time (`2026-01-31T08:05:09Z`, fraction and offset
/// optional) or a date (`2026-01-31`, midnight UTC).
fn parse_rfc3339(s: &str) -> Result<i64, String> {
    let (date, time) = s.split_once(['T', 't', ' ']).unwrap_or((s, ""));
    let mut parts = date.splitn(3, '-');
    let (Some(y), Some(m), Some(d)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("{s:?} is not a date (expected YYYY-MM-DD)"));
    };
    let (year, month, day) = (number(y, "year")?, number(m, "month")?, number(d, "day")?);
    // Bounded so that the arithmetic below cannot overflow, whatever a request sends.
    if !(0..=9999).contains(&year) || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err(format!("{s:?} is not a valid date"));
    }
    let mut millis = days_from_civil(year, month, day) * DAY;
    if time.is_empty() {
        return Ok(millis);
    }
    let zone_at = time
        .find(['Z', 'z', '+', '-'])
        .ok_or_else(|| format!("{s:?} has no time zone (add Z or an offset like +02:00)"))?;
    let (clock, zone) = time.split_at(zone_at);
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let mut hms = hms.splitn(3, ':');
    let (Some(h), Some(mi), Some(sec)) = (hms.next(), hms.next(), hms.next()) else {
        return Err(format!("{s:?} is not a time (expected HH:MM:SS)"));
    };
    let (h, mi, sec) = (
        number(h, "hour")?,
        number(mi, "minute")?,
        number(sec, "second")?,
    );
    if h > 23 || mi > 59 || sec > 60 {
        return Err(format!("{s:?} is not a valid time of day"));
    }
    millis += h * HOUR + mi * MINUTE + sec * SECOND;
    if !fraction.is_empty() {
        let digits: String = fraction.chars().chain("000".chars()).take(3).collect();
        millis += number(&digits, "fraction of a second")?;
    }
    if !zone.eq_ignore_ascii_case("z") {
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (oh, om) = zone
            .get(1..)
            .and_then(|o| o.split_once(':'))
            .ok_or_else(|| format!("{s:?} has an unreadable offset (expected +HH:MM)"))?;
        let (oh, om) = (number(oh, "offset hours")?, number(om, "offset minutes")?);
        if oh > 23 || om > 59 {
            return Err(format!(
                "{s:?} has an offset out of range (expected +HH:MM)"
            ));
        }
        millis -= sign * (oh * HOUR + om * MINUTE);
    }
    Ok(millis)
}

/// A point in time from `1h`, `30m`, `45s`, `7d`, `2w` (that long before `now`) or an RFC 3339 time.
pub fn parse_since(s: &str, now: u64) -> Result<u64, String> {
    let s = s.trim();
    let unit = match s.chars().last() {
        Some('s') => Some(SECOND),
        Some('m') => Some(MINUTE),
        Some('h') => Some(HOUR),
        Some('d') => Some(DAY),
        Some('w') => Some(7 * DAY),
        _ => None,
    };
    let relative = s
        .get(..s.len().saturating_sub(1))
        .filter(|n| unit.is_some() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    let at = match (relative, unit) {
        (Some(n), Some(unit)) => {
            let ago = number(n, "amount")?.saturating_mul(unit);
            i64::try_from(now).unwrap_or(i64::MAX).saturating_sub(ago)
        }
        _ => parse_rfc3339(s).map_err(|e| {
            format!("{e}; --since takes an RFC 3339 time or an age like 90s, 15m, 1h, 7d, 2w")
        })?,
    };
    Ok(u64::try_from(at).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_dates_and_offsets_are_refused_not_wrapped() {
        for s in [
            "99999999999999999-01-01",
            "10000-01-01",
            "2026-01-01T00:00:00+99999999999999:00",
            "2026-01-01T00:00:00+24:00",
        ] {
            assert!(parse_since(s, 0).is_err(), "{s}");
        }
        assert!(parse_since("9999-12-31T23:59:59+23:59", 0).is_ok());
    }

    #[test]
    fn formats_and_parses_the_same_instant() {
        assert_eq!(format(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format(1_709_210_096_042), "2024-02-29T12:34:56.042Z");
        assert_eq!(
            parse_since("2024-02-29T12:34:56.042Z", 0),
            Ok(1_709_210_096_042)
        );
        assert_eq!(
            parse_since("2024-02-29T14:34:56.042+02:00", 0),
            Ok(1_709_210_096_042)
        );
        assert_eq!(parse_since("2024-02-29", 0), Ok(1_709_164_800_000));
    }

    #[test]
    fn relative_ages_count_back_from_now() {
        let now = 10 * DAY as u64;
        assert_eq!(parse_since("1h", now), Ok(now - HOUR as u64));
        assert_eq!(parse_since("2d", now), Ok(now - 2 * DAY as u64));
        assert_eq!(parse_since("90s", now), Ok(now - 90_000));
        assert_eq!(parse_since("30d", now), Ok(0), "never before the epoch");
    }

    #[test]
    fn nonsense_is_an_error_that_says_what_is_accepted() {
        for bad in [
            "",
            "h",
            "1y",
            "yesterday",
            "2024-13-01",
            "2024-02-29T12:00:00",
            "-1h",
        ] {
            let err = parse_since(bad, 0).unwrap_err();
            assert!(!err.is_empty(), "{bad}");
        }
        assert!(parse_since("soon", 0).unwrap_err().contains("1h"));
    }
}
