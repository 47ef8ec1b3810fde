//! Durations written the way operators write them: `90d`, `3m`, `15s`, `1h 30m`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dur(pub Duration);

impl Dur {
    pub const ZERO: Dur = Dur(Duration::ZERO);

    pub fn from_secs(secs: u64) -> Self {
        Dur(Duration::from_secs(secs))
    }

    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }

    /// As a `time` duration, for arithmetic on timestamps.
    pub fn signed(&self) -> time::Duration {
        time::Duration::try_from(self.0).unwrap_or(time::Duration::MAX)
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Whole days, hours, minutes and seconds, as operators write them (humantime's
        // own format turns 90d into months).
        let mut secs = self.0.as_secs();
        if secs == 0 {
            return f.write_str(if self.0.is_zero() { "0s" } else { "1s" });
        }
        for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
            if secs >= size {
                write!(f, "{}{unit}", secs / size)?;
                secs %= size;
            }
        }
        Ok(())
    }
}

/// The units a duration may use: what README documents, nothing more.
const UNITS: &[(&str, u64)] = &[
    ("w", 7 * 86_400_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Calendar units people reach for, refused with their own message.
const CALENDAR: &[&str] = &["mo", "mon", "month", "months", "M", "y", "yr", "year", "years"];
const CALENDAR_ERROR: &str = "months and years have no fixed length; write days (30d, 365d)";

/// The forms, for error messages.
const FORMS: &str = "write a whole number and a unit (ms, s, m, h, d or w), parts together or apart: 90d, 3m, 15s, 1h30m, 1h 30m";

impl std::str::FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        if text == "0" {
            return Ok(Dur::ZERO);
        }
        let not = |why: String| format!("`{text}` is not a duration: {why}");
        let mut millis: u64 = 0;
        let mut rest = text;
        if rest.is_empty() {
            return Err(not(FORMS.into()));
        }
        while !rest.is_empty() {
            let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            if digits == 0 {
                return Err(not(FORMS.into()));
            }
            let number: u64 =
                rest[..digits].parse().map_err(|_| not("the number is too large".into()))?;
            let after = &rest[digits..];
            let unit_len =
                after.len() - after.trim_start_matches(|c: char| c.is_ascii_alphabetic()).len();
            let unit = &after[..unit_len];
            if after[unit_len..].starts_with(|c: char| !c.is_whitespace() && !c.is_ascii_digit()) {
                return Err(not(FORMS.into()));
            }
            let size = match UNITS.iter().find(|(u, _)| *u == unit) {
                Some((_, size)) => *size,
                None if CALENDAR.contains(&unit) => return Err(not(CALENDAR_ERROR.into())),
                None if unit.is_empty() => {
                    // `5 minutes`: name the word that follows as the unit it was meant to be.
                    let word: String =
                        after.trim_start().chars().take_while(char::is_ascii_alphabetic).collect();
                    return Err(not(match word.as_str() {
                        "" => format!("`{number}` has no unit; {FORMS}"),
                        w if UNITS.iter().any(|(u, _)| *u == w) => {
                            format!("write the unit right after the number, `{number}{w}`")
                        }
                        w if CALENDAR.contains(&w) => CALENDAR_ERROR.into(),
                        w => format!("unknown unit `{w}`; {FORMS}"),
                    }));
                }
                None => return Err(not(format!("unknown unit `{unit}`; {FORMS}"))),
            };
            millis = number
                .checked_mul(size)
                .and_then(|m| millis.checked_add(m))
                .ok_or_else(|| not("it is too long".into()))?;
            rest = after[unit_len..].trim_start();
        }
        Ok(Dur(Duration::from_millis(millis)))
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as 90d, 3m or 15s")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dur, E> {
                Ok(Dur::from_secs(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dur, E> {
                u64::try_from(v)
                    .map(Dur::from_secs)
                    .map_err(|_| E::custom("a duration cannot be negative"))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

schema_by_hand!(
    Dur,
    "Duration",
    {
        "description": "A duration: a whole number and a unit (ms, s, m, h, d, w), parts together or apart, e.g. 90d, 3m, 15s, 1h30m, `1h 30m`; a bare number is seconds. Months and years have no fixed length: write days.",
        "anyOf": [
            { "type": "string", "pattern": "^\\s*([0-9]+(ms|s|m|h|d|w)\\s*)+$|^\\s*0\\s*$" },
            { "type": "integer", "minimum": 0 }
        ]
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_operator_units() {
        assert_eq!("90d".parse::<Dur>().unwrap(), Dur::from_secs(90 * 86400));
        assert_eq!("3m".parse::<Dur>().unwrap(), Dur::from_secs(180));
        assert_eq!("0s".parse::<Dur>().unwrap(), Dur::ZERO);
        assert_eq!("0".parse::<Dur>().unwrap(), Dur::ZERO);
        assert_eq!("1h 30m".parse::<Dur>().unwrap(), Dur::from_secs(5400));
        assert!("soon".parse::<Dur>().unwrap_err().contains("90d"));
        assert_eq!("1w 2d".parse::<Dur>().unwrap(), Dur::from_secs(9 * 86400));
        assert_eq!("250ms".parse::<Dur>().unwrap(), Dur(Duration::from_millis(250)));
    }

    #[test]
    fn refuses_what_readme_does_not_document() {
        for text in ["5 minutes", "5 min", "30days", "5 minuts", "5", "1.5h", "3m-", ""] {
            let e = text.parse::<Dur>().unwrap_err();
            assert!(e.contains("ms, s, m, h, d or w"), "{text}: {e}");
        }
        for text in ["1 month", "2months", "1y", "1 year"] {
            let e = text.parse::<Dur>().unwrap_err();
            assert!(e.contains("months and years have no fixed length"), "{text}: {e}");
        }
    }

    #[test]
    fn displays_compactly() {
        assert_eq!(Dur::from_secs(180).to_string(), "3m");
        assert_eq!(Dur::ZERO.to_string(), "0s");
        assert_eq!(Dur::from_secs(90 * 86400).to_string(), "90d");
        assert_eq!(Dur::from_secs(5400).to_string(), "1h30m");
        assert_eq!("1h30m".parse::<Dur>().unwrap(), Dur::from_secs(5400));
    }
}
