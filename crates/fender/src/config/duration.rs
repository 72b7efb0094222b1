//! [`HumanDuration`]: a duration written for people, `"1s"`, `"250ms"`, `"1m30s"`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use jiff::{SignedDuration, Span, SpanRelativeTo};
use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::ser::{Serialize, Serializer};

use super::ConfigError;

/// A duration as a configuration file spells it: `"1s"`, `"250ms"`, `"1m30s"`, `"2 minutes"`,
/// `"1.5s"`, `"1 day"`, or ISO 8601 (`"PT1S"`).
///
/// Parsing is [jiff](jiff::fmt::friendly)'s friendly format (or ISO 8601); days and weeks are
/// taken as 24 hours and 7 days, while years and months, which have no fixed length, are
/// refused. A bare number is refused too: `5` could mean seconds or milliseconds. The value is
/// signed, so that a negative duration (`"-1s"`, `"1s ago"`) parses and is then refused by
/// the conversion with the name of its field. It is written back in the same friendly format
/// (`"1m 30s"`).
///
/// ```
/// use std::time::Duration;
/// use fender::config::HumanDuration;
///
/// let d: HumanDuration = "1m30s".parse().unwrap();
/// assert_eq!(d, HumanDuration::from(Duration::from_secs(90)));
/// assert_eq!(d.to_string(), "1m 30s");
/// assert!("5".parse::<HumanDuration>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(SignedDuration);

impl HumanDuration {
    /// No time at all.
    pub const ZERO: HumanDuration = HumanDuration(SignedDuration::ZERO);

    /// The duration as jiff's signed duration.
    pub fn as_signed(self) -> SignedDuration {
        self.0
    }

    /// The duration, or an error naming `field` when it is negative.
    pub(crate) fn non_negative(self, field: &str) -> Result<Duration, ConfigError> {
        Duration::try_from(self.0)
            .map_err(|_| ConfigError::new(field, format!("must not be negative, got {self}")))
    }
}

impl From<Duration> for HumanDuration {
    /// Saturates at jiff's largest duration (about 292 billion years).
    fn from(duration: Duration) -> Self {
        HumanDuration(SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX))
    }
}

impl From<SignedDuration> for HumanDuration {
    fn from(duration: SignedDuration) -> Self {
        HumanDuration(duration)
    }
}

impl FromStr for HumanDuration {
    type Err = ParseDurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let error = |reason: String| ParseDurationError {
            input: s.to_owned(),
            reason,
        };
        match s.parse::<SignedDuration>() {
            Ok(duration) => Ok(HumanDuration(duration)),
            // Days and weeks are calendar units to jiff's durations; a span reads them.
            Err(err) => match s.parse::<Span>() {
                Err(_) => Err(error(err.to_string())),
                Ok(span) => span
                    .to_duration(SpanRelativeTo::days_are_24_hours())
                    .map(HumanDuration)
                    .map_err(|_| {
                        error(
                            "years and months have no fixed length; use weeks, days or \
                             smaller units"
                                .to_owned(),
                        )
                    }),
            },
        }
    }
}

impl fmt::Display for HumanDuration {
    /// The friendly format: `1s`, `250ms`, `1m 30s`, `1s ago` for a negative duration.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl fmt::Debug for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HumanDuration({self})")
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HumanDurationVisitor;

        impl Visitor<'_> for HumanDurationVisitor {
            type Value = HumanDuration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a duration string such as "1s", "250ms", "1m30s" or "2 minutes""#)
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<HumanDuration, E> {
                s.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_str(HumanDurationVisitor)
    }
}

/// A string that is not a duration; see [`HumanDuration`] for what parses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseDurationError {
    input: String,
    reason: String,
}

impl fmt::Display for ParseDurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            r#"invalid duration "{}": {} (write e.g. "1s", "250ms", "1m30s" or "2 minutes")"#,
            self.input, self.reason
        )
    }
}

impl std::error::Error for ParseDurationError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Duration {
        s.parse::<HumanDuration>()
            .unwrap()
            .non_negative("field")
            .unwrap()
    }

    #[test]
    fn parses_the_friendly_format_and_iso_8601() {
        assert_eq!(parse("1s"), Duration::from_secs(1));
        assert_eq!(parse("250ms"), Duration::from_millis(250));
        assert_eq!(parse("1m30s"), Duration::from_secs(90));
        assert_eq!(parse("2 minutes"), Duration::from_secs(120));
        assert_eq!(parse("1.5s"), Duration::from_millis(1500));
        assert_eq!(parse("PT1S"), Duration::from_secs(1));
        assert_eq!(parse("1 day"), Duration::from_secs(86_400));
        assert_eq!(parse("2w"), Duration::from_secs(14 * 86_400));
    }

    #[test]
    fn refuses_bare_numbers_calendar_units_and_garbage() {
        for input in ["5", "", "soon", "1 month", "1y"] {
            let err = input.parse::<HumanDuration>().unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("invalid duration \"{input}\"")),
                "{err}"
            );
        }
        let err = "1 month".parse::<HumanDuration>().unwrap_err().to_string();
        assert!(err.contains("no fixed length"), "{err}");
    }

    #[test]
    fn a_negative_duration_parses_and_is_refused_with_its_field() {
        let d: HumanDuration = "-1s".parse().unwrap();
        let err = d.non_negative("retry.base_delay").unwrap_err();
        assert_eq!(err.field(), "retry.base_delay");
        assert_eq!(err.reason(), "must not be negative, got 1s ago");
    }

    #[test]
    fn prints_what_it_parses() {
        for input in ["1s", "250ms", "1m 30s", "1h 1ms", "0s"] {
            assert_eq!(input.parse::<HumanDuration>().unwrap().to_string(), input);
        }
    }
}
