//! Durations written the way operators write them: `90d`, `3m`, `15s`, `1h 30m`.

use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
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

impl std::str::FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "0" {
            return Ok(Dur::ZERO);
        }
        humantime::parse_duration(s).map(Dur).map_err(|e| {
            format!("`{s}` is not a duration ({e}); write it like 90d, 3m, 15s or 1h 30m")
        })
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

impl JsonSchema for Dur {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A duration: a number and a unit (s, m, h, d, w), e.g. 90d, 3m, 15s, `1h 30m`; a bare number is seconds.",
            "anyOf": [
                { "type": "string", "pattern": "^\\s*([0-9]+\\s*[a-zA-Z]+\\s*)+$|^\\s*0\\s*$" },
                { "type": "integer", "minimum": 0 }
            ]
        })
    }
}

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
