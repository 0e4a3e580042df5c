//! Times as the HTTP API and the CLI write and read them: RFC 3339 in UTC
//! with milliseconds, and relative bounds such as `15m` or `2d` (that long
//! before now).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jiff::civil::{Date, DateTime, Time};
use jiff::{SignedDuration, Timestamp};

/// The civil time of the Unix epoch, from which parsed times are counted.
const EPOCH: DateTime = DateTime::constant(1970, 1, 1, 0, 0, 0, 0);

/// Formats `t` as RFC 3339 in UTC with milliseconds:
/// `2025-11-25T18:48:03.120Z`. A time beyond the years -9999 to 9999 is
/// written as the nearest end of that range.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// let t = UNIX_EPOCH + Duration::from_millis(1_764_096_483_120);
/// assert_eq!(replayflow::http::format_time(t), "2025-11-25T18:48:03.120Z");
/// ```
pub fn format_time(t: SystemTime) -> String {
    // Clamped rather than refused so that a wake-up time set absurdly far
    // ahead still shows as valid RFC 3339 (which a five-digit year is not).
    let t = Timestamp::try_from(t).unwrap_or(if t < UNIX_EPOCH {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    });
    // The precision cuts the fraction rather than rounding it, so a time
    // before 1970 goes down to its millisecond as later ones do.
    format!("{t:.3}")
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
    parse_rfc3339(text).ok_or_else(invalid)
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

/// An RFC 3339 time, or a plain date as midnight UTC.
///
/// jiff's parser reads Temporal's wider grammar (`18:00Z`, `+0100`,
/// `20251125`, `[UTC]` annotations, at most nine fractional digits), so the
/// layout is checked here and jiff checks the fields' values (month lengths,
/// leap years, hours) and counts the days.
fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    if !fits(b, 0, b"dddd-dd-dd") {
        return None;
    }
    if b.len() == 10 {
        let date: Date = text.parse().ok()?;
        return from_epoch(date.to_datetime(Time::midnight()).duration_since(EPOCH));
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) || !fits(b, 11, b"dd:dd:dd") {
        return None;
    }
    let datetime: DateTime = text[..19].parse().ok()?;
    // jiff reads a leap second (`:60`) as `:59`; here it counts as the next
    // minute's `:00`, as the Unix time formula has it.
    let leap = SignedDuration::from_secs(i64::from(&b[17..19] == b"60"));
    let mut rest = &text[19..];
    let mut fraction = SignedDuration::ZERO;
    if let Some(after_dot) = rest.strip_prefix('.') {
        let digits = after_dot
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(after_dot.len());
        if digits == 0 {
            return None;
        }
        // Milliseconds: the first three digits, padded.
        let frac = &after_dot[..digits.min(3)];
        let millis = frac.parse::<i64>().ok()? * 10_i64.pow(3 - frac.len() as u32);
        fraction = SignedDuration::from_millis(millis);
        rest = &after_dot[digits..];
    }
    let offset = match rest.as_bytes() {
        [b'Z' | b'z'] => SignedDuration::ZERO,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (two_digits(*h1, *h2)?, two_digits(*m1, *m2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let offset = SignedDuration::from_mins(h * 60 + m);
            if *sign == b'-' { -offset } else { offset }
        }
        _ => return None,
    };
    // Counted from the epoch as a civil difference rather than through a
    // `Timestamp`, whose range ends on 9999-12-30 (so that any offset can
    // still show it) and would refuse `9999-12-31` as a bound.
    let since_epoch = datetime
        .duration_since(EPOCH)
        .checked_sub(offset)?
        .checked_add(leap)?
        .checked_add(fraction)?;
    from_epoch(since_epoch)
}

/// Whether `b[at..]` starts with `layout`, in which `d` stands for any ASCII
/// digit.
fn fits(b: &[u8], at: usize, layout: &[u8]) -> bool {
    b.get(at..at + layout.len()).is_some_and(|part| {
        part.iter().zip(layout).all(|(c, l)| {
            if *l == b'd' {
                c.is_ascii_digit()
            } else {
                c == l
            }
        })
    })
}

fn two_digits(tens: u8, ones: u8) -> Option<i64> {
    (tens.is_ascii_digit() && ones.is_ascii_digit())
        .then(|| i64::from((tens - b'0') * 10 + (ones - b'0')))
}

fn from_epoch(since: SignedDuration) -> Option<SystemTime> {
    let magnitude = since.unsigned_abs();
    if since.is_negative() {
        UNIX_EPOCH.checked_sub(magnitude)
    } else {
        UNIX_EPOCH.checked_add(magnitude)
    }
}

/// Milliseconds from `earlier` to `later`, 0 if `later` is before.
pub(crate) fn millis_between(earlier: SystemTime, later: SystemTime) -> u64 {
    later
        .duration_since(earlier)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> SystemTime {
        if ms >= 0 {
            UNIX_EPOCH + Duration::from_millis(ms.unsigned_abs())
        } else {
            UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
        }
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

    fn ms(text: &str) -> i64 {
        let t = parse_time(text, at(0)).unwrap();
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap(),
            Err(e) => -i64::try_from(e.duration().as_millis()).unwrap(),
        }
    }

    #[test]
    fn leap_days() {
        assert_eq!(ms("2024-02-29"), 1_709_164_800_000);
        assert_eq!(ms("2000-02-29T23:59:59.999Z"), 951_868_799_999);
        assert_eq!(
            format_time(at(1_709_164_800_000)),
            "2024-02-29T00:00:00.000Z"
        );
        assert_eq!(
            format_time(at(1_709_164_800_000 + 86_400_000)),
            "2024-03-01T00:00:00.000Z"
        );
        for bad in [
            "2023-02-29",
            "1900-02-29",
            "2100-02-29T00:00:00Z",
            "2024-02-30",
        ] {
            assert!(parse_time(bad, at(0)).is_err(), "{bad}");
        }
    }

    #[test]
    fn offsets_move_across_days_and_years() {
        assert_eq!(
            parse_time("2024-12-31T23:30:00-01:00", at(0)).unwrap(),
            parse_time("2025-01-01T00:30:00Z", at(0)).unwrap()
        );
        assert_eq!(ms("1969-12-31T23:00:00-01:00"), 0);
        assert_eq!(ms("1970-01-01T00:00:00-00:00"), 0);
        assert_eq!(ms("2025-11-25T00:00:00+23:59"), ms("2025-11-24T00:01:00Z"));
        assert_eq!(ms("2025-11-25T00:00:00-23:59"), ms("2025-11-25T23:59:00Z"));
        for bad in [
            "2025-11-25T00:00:00+24:00",
            "2025-11-25T00:00:00+01:60",
            "2025-11-25T00:00:00+01",
            "2025-11-25T00:00:00+01:00:00",
        ] {
            assert!(parse_time(bad, at(0)).is_err(), "{bad}");
        }
    }

    #[test]
    fn years_before_1970_and_the_ends_of_the_range() {
        assert_eq!(ms("1900-01-01"), -2_208_988_800_000);
        assert_eq!(ms("1969-12-31T23:59:59.9999Z"), -1);
        assert_eq!(ms("0000-01-01T00:00:00Z"), -62_167_219_200_000);
        assert_eq!(ms("9999-12-31"), 253_402_214_400_000);
        assert_eq!(ms("9999-12-31T23:59:59.999Z"), 253_402_300_799_999);
        assert_eq!(
            format_time(at(-2_208_988_800_000)),
            "1900-01-01T00:00:00.000Z"
        );
        assert_eq!(
            format_time(at(-62_167_219_200_000)),
            "0000-01-01T00:00:00.000Z"
        );
        // Further than jiff reaches: the nearest end of its range.
        let far = UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        assert_eq!(format_time(far), "9999-12-30T22:00:00.999Z");
        // Under a millisecond before 1970 goes down to the millisecond.
        assert_eq!(
            format_time(UNIX_EPOCH - Duration::from_micros(1)),
            "1969-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn accepts_rfc3339_details_and_nothing_wider() {
        let base = ms("2025-11-25T18:00:00Z");
        assert_eq!(ms("2025-11-25t18:00:00z"), base);
        assert_eq!(ms("2025-11-25T18:00:00.1239999999999Z"), base + 123);
        // A leap second is the next minute's first, as in Unix time.
        assert_eq!(ms("2016-12-31T23:59:60Z"), ms("2017-01-01T00:00:00Z"));
        assert_eq!(ms("2016-12-31T23:59:60.5Z"), ms("2017-01-01T00:00:00.5Z"));
        for bad in [
            "20251125",
            "20251125T180000Z",
            "2025-1-25",
            "+002025-11-25T18:00:00Z",
            "2025-11-25T18Z",
            "2025-11-25T18:00:00,5Z",
            "2025-11-25T18:00:00Z[UTC]",
            "2025-11-25T18:00:00+01:00[Europe/Paris]",
            "2025-11-25T18:00:00 Z",
            "2025-11-25T18:00:00ZZ",
            "2025-11-25T18:00:00.5",
            "2025-11-25T",
            "2025-11-25X18:00:00Z",
            "2025-11-25T18:00:00\u{e9}",
            "\u{e9}025-11-25",
        ] {
            let err = parse_time(bad, at(0)).unwrap_err();
            assert!(err.contains("invalid time"), "{bad}: {err}");
        }
    }
}
