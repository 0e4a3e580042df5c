//! Times as the HTTP API and the CLI write and read them: RFC 3339 in UTC
//! with milliseconds, and relative bounds such as `15m` or `2d` (that long
//! before now).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MS_PER_DAY: i64 = 86_400_000;

/// Formats `t` as RFC 3339 in UTC with milliseconds:
/// `2025-11-25T18:48:03.120Z`.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// let t = UNIX_EPOCH + Duration::from_millis(1_764_096_483_120);
/// assert_eq!(replayflow::http::format_time(t), "2025-11-25T18:48:03.120Z");
/// ```
pub fn format_time(t: SystemTime) -> String {
    let ms = unix_millis(t);
    let days = ms.div_euclid(MS_PER_DAY);
    let of_day = ms.rem_euclid(MS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let secs = of_day / 1000;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        of_day % 1000
    )
}

/// Parses a time bound: RFC 3339 (`2025-11-25T18:00:00Z`,
/// `2025-11-25T19:00:00+01:00`, fractions of a second allowed), a date
/// (`2025-11-25`, midnight UTC), `now`, or a duration before `now` (`30s`,
/// `15m`, `1h`, `2d`, `1w`, combined as `1h30m`).
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use replayflow::http::parse_time;
///
/// let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
/// assert_eq!(parse_time("1h30m", now).unwrap(), now - Duration::from_secs(5400));
/// assert_eq!(
///     parse_time("1970-01-01T01:00:00+01:00", now).unwrap(),
///     UNIX_EPOCH,
/// );
/// assert!(parse_time("yesterday", now).is_err());
/// ```
pub fn parse_time(text: &str, now: SystemTime) -> Result<SystemTime, String> {
    let text = text.trim();
    let invalid = || {
        format!(
            "invalid time `{text}`: expected RFC 3339 (2025-11-25T18:00:00Z), a date (2025-11-25) or a duration before now (30s, 15m, 1h, 2d, 1w)"
        )
    };
    if text.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    if let Some(ago) = parse_duration(text) {
        return now.checked_sub(ago).ok_or_else(invalid);
    }
    let ms = parse_rfc3339(text).ok_or_else(invalid)?;
    Ok(from_unix_millis(ms))
}

/// Parses `1h30m`-style durations: integers each followed by `ms`, `s`, `m`,
/// `h`, `d` or `w`.
fn parse_duration(text: &str) -> Option<Duration> {
    if text.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let ms_per_unit: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(ms_per_unit)?)?;
        rest = &rest[unit_len..];
    }
    Some(Duration::from_millis(total))
}

/// Unix milliseconds of an RFC 3339 time or a plain date.
fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let year = num(0, 4)?;
    let month = num(5, 2)?;
    let day = num(8, 2)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    if b.len() == 10 {
        return Some(days * MS_PER_DAY);
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut at = 19;
    let mut millis = 0;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        if at == start {
            return None;
        }
        // Milliseconds: the first three digits, padded.
        let frac = &text[start..at.min(start + 3)];
        millis = frac.parse::<i64>().ok()? * 10_i64.pow(3 - frac.len() as u32);
    }
    let offset_minutes = match b.get(at)? {
        b'Z' | b'z' if at + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if at + 6 == b.len() && b.get(at + 3) == Some(&b':') => {
            let (h, m) = (num(at + 1, 2)?, num(at + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let minutes = h * 60 + m;
            if *sign == b'-' { -minutes } else { minutes }
        }
        _ => return None,
    };
    let seconds = hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(days * MS_PER_DAY + seconds * 1000 + millis)
}

fn unix_millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

fn from_unix_millis(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

/// Milliseconds from `earlier` to `later`, 0 if `later` is before.
pub(crate) fn millis_between(earlier: SystemTime, later: SystemTime) -> u64 {
    later
        .duration_since(earlier)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's days-from-civil and civil-from-days algorithms
// (proleptic Gregorian calendar, day 0 = 1970-01-01).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> SystemTime {
        from_unix_millis(ms)
    }

    #[test]
    fn formats_and_parses_back() {
        for ms in [
            0,
            951_782_400_000,
            1_764_096_483_120,
            -86_400_000,
            4_102_444_799_999,
        ] {
            let text = format_time(at(ms));
            assert_eq!(parse_time(&text, at(0)).unwrap(), at(ms), "{text}");
        }
        assert_eq!(format_time(at(951_782_400_000)), "2000-02-29T00:00:00.000Z");
        assert_eq!(format_time(at(-1)), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn parses_offsets_fractions_and_dates() {
        let base = parse_time("2025-11-25T18:00:00Z", at(0)).unwrap();
        assert_eq!(
            parse_time("2025-11-25T19:30:00+01:30", at(0)).unwrap(),
            base
        );
        assert_eq!(
            parse_time("2025-11-25 13:00:00-05:00", at(0)).unwrap(),
            base
        );
        assert_eq!(
            parse_time("2025-11-25T18:00:00.5Z", at(0)).unwrap(),
            base + Duration::from_millis(500)
        );
        assert_eq!(
            parse_time("2025-11-25T18:00:00.123456789Z", at(0)).unwrap(),
            base + Duration::from_millis(123)
        );
        assert_eq!(
            parse_time("2025-11-25", at(0)).unwrap(),
            base - Duration::from_secs(18 * 3600)
        );
    }

    #[test]
    fn parses_relative_durations() {
        let now = at(10_000_000_000);
        let ago = |ms: u64| now - Duration::from_millis(ms);
        assert_eq!(parse_time("30s", now).unwrap(), ago(30_000));
        assert_eq!(parse_time("15m", now).unwrap(), ago(900_000));
        assert_eq!(parse_time("1h30m", now).unwrap(), ago(5_400_000));
        assert_eq!(parse_time("2d", now).unwrap(), ago(172_800_000));
        assert_eq!(parse_time("1w", now).unwrap(), ago(604_800_000));
        assert_eq!(parse_time("250ms", now).unwrap(), ago(250));
        assert_eq!(parse_time(" now ", now).unwrap(), now);
    }

    #[test]
    fn rejects_nonsense() {
        for bad in [
            "",
            "1",
            "h",
            "1x",
            "1h-",
            "2025-13-01",
            "2025-02-30",
            "2025-11-25T24:00:00Z",
            "2025-11-25T18:00:00",
            "2025-11-25T18:00:00+0100",
            "2025-11-25T18:00Z",
            "2025-11-25T18:00:00.Z",
            "tomorrow",
            "99999999999999999999d",
        ] {
            let err = parse_time(bad, at(0)).unwrap_err();
            assert!(err.contains("invalid time"), "{bad}: {err}");
        }
    }
}
