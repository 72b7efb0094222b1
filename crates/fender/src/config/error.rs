//! [`ConfigError`]: a setting that the layers' builders would refuse.

use std::fmt;

/// A setting a configuration holds that its layer cannot take: the path of the field
/// (`retry.max_attempts`, `breaker.failure_rate.threshold`) and the reason.
///
/// The conversions ([`RetryConfig::layer`](super::RetryConfig::layer) and the others) return
/// it instead of letting a builder panic. Errors of the file format itself (a misspelt key, a
/// duration that does not parse, a string where a number belongs) are the deserializer's, and
/// name the key and its line.
///
/// ```
/// # #[cfg(feature = "retry")] {
/// use fender::config::RetryConfig;
///
/// let mut config = RetryConfig::default();
/// config.max_attempts = Some(0);
/// let err = config.layer().unwrap_err();
/// assert_eq!(err.field(), "max_attempts");
/// assert_eq!(err.to_string(), "max_attempts: must be at least 1 (the first attempt), got 0");
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    field: String,
    reason: String,
}

impl ConfigError {
    /// An error of the field at `field` (a dotted path).
    pub(crate) fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The same error, for the field as it sits in a table named `parent`: for an application
    /// whose own file holds the configuration as a table, `retry.max_attempts` becomes
    /// `client.retry.max_attempts`.
    pub fn within(mut self, parent: &str) -> Self {
        self.field = format!("{parent}.{}", self.field);
        self
    }

    /// The dotted path of the field, from the configuration that was converted
    /// (`retry.base_delay` for a [`ClientConfig`](super::ClientConfig)).
    pub fn field(&self) -> &str {
        &self.field
    }

    /// Why the value was refused, e.g. `must be at least 1 (the first attempt), got 0`.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for ConfigError {}
