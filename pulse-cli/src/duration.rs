//! Durations as people write them: `250ms`, `2s`, `1.5s`, `5m`, `1h`.

use std::time::Duration;

/// Parses `N` followed by `ms`, `s`, `m` or `h` (a bare number is seconds).
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (like 250ms, 2s, 5m)"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown unit `{other}` in `{text}` (use ms, s, m or h)")),
    };
    match Duration::try_from_secs_f64(seconds) {
        Ok(d) if d <= LONGEST => Ok(d),
        // Longer fits a Duration but not the sums made with it (three
        // intervals, now plus a timeout): refused here, not a panic later.
        _ => Err(format!("`{text}` is out of range (at most a year)")),
    }
}

/// The longest duration any option takes: far beyond any heartbeat
/// setting, far below what overflows.
const LONGEST: Duration = Duration::from_secs(365 * 24 * 3600);

/// A duration in milliseconds with three decimals, as ping(8) prints.
pub fn millis(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_bare_numbers_parse() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert!(parse("fast").is_err());
        assert!(parse("3 fortnights").is_err());
        assert!(parse("10000000000000000000s").is_err());
        assert!(parse("8761h").is_err());
        assert_eq!(parse("8760h"), Ok(LONGEST));
    }
}
