//! Durations as people write them in scenario files: `500ms`, `10s`, `2m`,
//! `1h`. A number without a unit is refused, so `10` never silently means
//! ten milliseconds or ten minutes.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration read from or written to a scenario file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

impl Dur {
    /// Whole seconds.
    pub fn secs(s: u64) -> Dur {
        Dur(Duration::from_secs(s))
    }

    /// Parses `500ms`, `10s`, `1.5s`, `2m`, `1h`.
    pub fn parse(text: &str) -> Result<Dur, String> {
        let text = text.trim();
        let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let hint = "use a number with a unit: 500ms, 10s, 2m, 1h";
        let value: f64 = number.parse().map_err(|_| format!("bad duration {text:?}: {hint}"))?;
        let scale = match unit.trim() {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("bad duration {text:?}: no unit; {hint}")),
            other => return Err(format!("bad duration {text:?}: unknown unit {other:?}; {hint}")),
        };
        if !value.is_finite() || value < 0.0 || value * scale > 1e9 {
            return Err(format!("bad duration {text:?}: out of range; {hint}"));
        }
        Ok(Dur(Duration::from_secs_f64(value * scale)))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms.is_multiple_of(1_000) {
            write!(f, "{}s", ms / 1_000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Dur, D::Error> {
        let text = String::deserialize(deserializer)?;
        Dur::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_parse_and_print_back() {
        assert_eq!(Dur::parse("500ms").unwrap().0, Duration::from_millis(500));
        assert_eq!(Dur::parse("10s").unwrap().0, Duration::from_secs(10));
        assert_eq!(Dur::parse("1.5s").unwrap().0, Duration::from_millis(1_500));
        assert_eq!(Dur::parse("2m").unwrap().0, Duration::from_secs(120));
        assert_eq!(Dur::parse("1h").unwrap().0, Duration::from_secs(3_600));
        assert_eq!(Dur::parse("1500ms").unwrap().to_string(), "1500ms");
        assert_eq!(Dur::parse("2m").unwrap().to_string(), "120s");
    }

    #[test]
    fn numbers_without_units_and_junk_are_refused_with_a_hint() {
        for bad in ["10", "ten s", "5 parsecs", "-3s", ""] {
            let message = Dur::parse(bad).unwrap_err();
            assert!(message.contains("500ms, 10s"), "{bad}: {message}");
        }
    }
}
