//! Durations as written in options: `"200ms"`, `"2s"`, `"1m"`, `"3h"`.

/// A duration in whole milliseconds, as written in `"200ms"` or `"2s"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Millis(pub(crate) u64);

/// Why a duration string was rejected.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DurationError {
    /// Not an integer followed by one of the units.
    Malformed,
    /// More milliseconds than fit in a `u64`.
    TooLong,
}

/// Parses `"200ms"`, `"2s"`, `"1m"` or `"3h"`: digits immediately followed by a unit.
pub(crate) fn parse_duration(text: &str) -> Result<Millis, DurationError> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    if digits.is_empty() {
        return Err(DurationError::Malformed);
    }
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(DurationError::Malformed),
    };
    // Only digits remain, so the only way to fail is overflow.
    let count: u64 = digits.parse().map_err(|_| DurationError::TooLong)?;
    count
        .checked_mul(millis_per_unit)
        .map(Millis)
        .ok_or(DurationError::TooLong)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_duration_unit() {
        assert_eq!(parse_duration("200ms"), Ok(Millis(200)));
        assert_eq!(parse_duration("2s"), Ok(Millis(2_000)));
        assert_eq!(parse_duration("1m"), Ok(Millis(60_000)));
        assert_eq!(parse_duration("3h"), Ok(Millis(10_800_000)));
        assert_eq!(parse_duration("0s"), Ok(Millis(0)));
        assert_eq!(parse_duration(" 5s "), Ok(Millis(5_000)));
    }

    #[test]
    fn rejects_malformed_durations() {
        for text in [
            "",
            "s",
            "5",
            "2 parsecs",
            "2 s",
            "1.5s",
            "-1s",
            "5sec",
            "5S",
            "ms5",
            "1h30m",
        ] {
            assert_eq!(
                parse_duration(text),
                Err(DurationError::Malformed),
                "{text:?}"
            );
        }
    }

    #[test]
    fn rejects_durations_that_overflow() {
        assert_eq!(
            parse_duration("99999999999999999999ms"),
            Err(DurationError::TooLong)
        );
        assert_eq!(
            parse_duration("18446744073709551615h"),
            Err(DurationError::TooLong)
        );
        assert_eq!(
            parse_duration("18446744073709551615ms"),
            Ok(Millis(u64::MAX))
        );
    }
}
