//! Durations as config files write them: `"90s"`, `"10m"`, `"1h30m"`,
//! `"14d"`, `"250ms"` — parsed with bounds, rendered back the same way.

use super::ConfigError;
use std::time::Duration;

/// Parse a duration such as `"90s"`, `"10m"`, `"14d"`, `"1h30m"` or `"250ms"`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let seconds_per = match unit {
            "ms" => {
                total = total.checked_add(Duration::from_millis(number))?;
                continue;
            }
            "s" => 1,
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            "w" => 604_800,
            _ => return None,
        };
        total = total.checked_add(Duration::from_secs(number.checked_mul(seconds_per)?))?;
    }
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

pub(super) const DURATION_ALLOWED: &str = "expected a duration like \"90s\", \"10m\", \"1h30m\" or \"14d\"";

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
        for bad in ["", "10", "m", "10x", "-5s", "1.5h", "99999999999999999999d"] {
            assert_eq!(parse_duration(bad), None, "{bad:?} must be refused");
        }
        assert_eq!(format_duration(Duration::from_secs(600)), "10m");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
    }
}
