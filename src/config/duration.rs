//! Durations as config files write them — `"90s"`, `"10m"`, `"10 minutes"`,
//! `"1h 30m"`, `"1h30m"`, `"14d"`, `"250ms"` — parsed by `humantime` with
//! bounds, rendered back in the short form.
//!
//! Months and years are refused: humantime counts them as 30.44 and 365.25
//! days, and `"1M"` (a month) is one shift-key away from `"1m"` (a minute).

use super::ConfigError;
use std::time::Duration;

/// Parse a duration such as `"90s"`, `"10 minutes"`, `"1h 30m"` or `"14d"`.
/// A bare number other than `"0"` is refused: its unit would be a guess.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let calendar = |unit: &str| matches!(unit, "M" | "month" | "months" | "y" | "yr" | "yrs" | "year" | "years");
    if text.split(|c: char| !c.is_alphabetic()).any(calendar) {
        return None;
    }
    let total = humantime::parse_duration(text).ok()?;
    // Keep every duration within what a JWT NumericDate can carry comfortably.
    (total <= Duration::from_secs(100 * 365 * 86_400)).then_some(total)
}

/// Render a duration the way config files write it (`"10m"`, `"14d"`).
pub fn format_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    if duration.subsec_millis() != 0 || secs == 0 && !duration.is_zero() {
        return format!("{}ms", duration.as_millis());
    }
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs >= size && secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

pub(super) const DURATION_ALLOWED: &str = "expected a duration like \"90s\", \"10m\", \"10 minutes\", \"1h 30m\" or \"14d\"";

pub(super) fn duration(key: &str, value: Option<String>, default: &str, min: Duration, max: Duration) -> Result<Duration, ConfigError> {
    let text = value.unwrap_or_else(|| default.to_string());
    let parsed = parse_duration(&text).ok_or_else(|| ConfigError::invalid(key, &text, DURATION_ALLOWED))?;
    if parsed < min || parsed > max {
        return Err(ConfigError::invalid(
            key,
            &text,
            format!("expected a duration between {} and {}", format_duration(min), format_duration(max)),
        ));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_config_notation() {
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("14d"), Some(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("10 minutes"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h 30m"), Some(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("2 days"), Some(Duration::from_secs(2 * 86_400)));
        for bad in ["", "10", "m", "10x", "-5s", "1M", "1y", "2 months", "99999999999999999999d", "10 parsecs"] {
            assert_eq!(parse_duration(bad), None, "{bad:?} must be refused");
        }
        assert_eq!(format_duration(Duration::from_secs(600)), "10m");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
    }
}
