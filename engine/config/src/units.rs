//! Parsing the humane values an analyst writes: durations, sizes, names and HL7 paths.

use std::time::Duration;

/// What a duration looks like, for error messages.
const DURATION_HINT: &str =
    "expected a number and a unit (ms, s, m, h, d), e.g. 500ms, 30s, 5m, 1h30m";

/// Parse `500ms`, `1s`, `5m`, `1h`, `2d` or combinations such as `1h30m`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err(DURATION_HINT.to_string());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(digits);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let n: u64 = number.parse().map_err(|_| DURATION_HINT.to_string())?;
        let millis_per = match unit.trim() {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err(format!("the number has no unit; {DURATION_HINT}")),
            other => return Err(format!("unknown unit '{other}'; {DURATION_HINT}")),
        };
        let part = n
            .checked_mul(millis_per)
            .map(Duration::from_millis)
            .ok_or_else(|| "too large".to_string())?;
        total = total
            .checked_add(part)
            .ok_or_else(|| "too large".to_string())?;
        rest = next;
    }
    Ok(total)
}

/// Parse a byte size: a plain number, or a number and a unit (B, KB, KiB, MB, MiB, GB, GiB).
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits);
    let hint = "expected a number of bytes, optionally with a unit (KiB, MiB, GiB, KB, MB, GB), e.g. 16MiB";
    let n: u64 = number.parse().map_err(|_| hint.to_string())?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" => 1 << 10,
        "mb" => 1_000_000,
        "mib" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => return Err(format!("unknown unit '{other}'; {hint}")),
    };
    n.checked_mul(factor).ok_or_else(|| "too large".to_string())
}

/// Channel and destination names end up in store keys, file names and logs: keep them plain.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a name cannot be empty".into());
    }
    if name.len() > 64 {
        return Err("a name has at most 64 characters".into());
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        Some(c) => Err(format!(
            "'{c}' is not allowed; use letters, digits, '-', '_' and '.'"
        )),
        None if name.starts_with('.') => Err("a name cannot start with '.'".into()),
        None => Ok(()),
    }
}

/// Check an HL7 path such as `PID-5-1`, `PID.5.1`, `OBX[2]-5` or `PID-3[2]-1`, with the parser's own
/// grammar, so a path `junction validate` accepts is one the engine can use.
pub(crate) fn check_hl7_path(path: &str) -> Result<(), String> {
    const HINT: &str = "expected e.g. PID-5-1, PID.5.1, OBX[2]-5 or PID-3[2]-1";
    path.parse::<junction_hl7::Path>()
        .map(drop)
        .map_err(|e| format!("{e}; {HINT}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert!(parse_duration("10").unwrap_err().contains("no unit"));
        assert!(parse_duration("5 minutes")
            .unwrap_err()
            .contains("unknown unit 'minutes'"));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("99999999999999999999s").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("2 KB"), Ok(2000));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("3 parsecs").is_err());
    }

    #[test]
    fn names() {
        assert!(check_name("adt-to-fhir_2.v1").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name("../x").is_err());
        assert!(check_name(".hidden").is_err());
    }

    #[test]
    fn hl7_paths() {
        for ok in [
            "PID-5-1",
            "PID.5.1",
            "OBX[2]-5",
            "PID-3[2]-1",
            "MSH-10",
            "PID",
        ] {
            assert!(check_hl7_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "PID-",
            "pid5",
            "PID-0",
            "PID-5-x",
            "",
            "PIDX-1",
            "P1D-3",
            "PID-99999999999999999999",
        ] {
            assert!(check_hl7_path(bad).is_err(), "{bad}");
        }
    }
}
