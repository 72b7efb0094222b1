//! The checks every conversion shares: each refuses, with the field's name, a value that a
//! builder would panic on.

// Each configuration uses some of them; with only some of the layers built, some go unused.
#![cfg_attr(
    not(all(feature = "retry", feature = "circuit-breaker", feature = "envelope")),
    allow(dead_code)
)]

use std::time::Duration;

use super::{ConfigError, HumanDuration};

/// A duration that must not be negative.
pub(crate) fn duration(
    field: &str,
    value: Option<HumanDuration>,
) -> Result<Option<Duration>, ConfigError> {
    value.map(|d| d.non_negative(field)).transpose()
}

/// A duration within `min..=max`; `min` of zero means "positive".
pub(crate) fn duration_in(
    field: &str,
    value: Option<HumanDuration>,
    min: Duration,
    max: Duration,
) -> Result<Option<Duration>, ConfigError> {
    let Some(d) = duration(field, value)? else {
        return Ok(None);
    };
    let shown = HumanDuration::from(d);
    if min.is_zero() && d.is_zero() {
        return Err(ConfigError::new(field, "must be positive, got 0s"));
    }
    if d < min {
        let min = HumanDuration::from(min);
        return Err(ConfigError::new(
            field,
            format!("must be at least {min}, got {shown}"),
        ));
    }
    if d > max {
        let max = HumanDuration::from(max);
        return Err(ConfigError::new(
            field,
            format!("must be at most {max}, got {shown}"),
        ));
    }
    Ok(Some(d))
}

/// A positive duration with no upper bound.
pub(crate) fn positive(
    field: &str,
    value: Option<HumanDuration>,
) -> Result<Option<Duration>, ConfigError> {
    duration_in(field, value, Duration::ZERO, Duration::MAX)
}

/// A count within `min..=max`.
pub(crate) fn count<T>(
    field: &str,
    value: Option<T>,
    min: T,
    max: T,
) -> Result<Option<T>, ConfigError>
where
    T: PartialOrd + std::fmt::Display + Copy,
{
    match value {
        Some(n) if n < min || n > max => Err(ConfigError::new(
            field,
            format!("must be {min} to {max}, got {n}"),
        )),
        other => Ok(other),
    }
}

/// A share in `(0, 1]`.
pub(crate) fn share(field: &str, value: Option<f64>) -> Result<Option<f64>, ConfigError> {
    match value {
        Some(x) if !(x > 0.0 && x <= 1.0) => Err(ConfigError::new(
            field,
            format!("must be more than 0 and at most 1, got {x}"),
        )),
        other => Ok(other),
    }
}

/// `true` when the switch is on.
pub(crate) fn on(switch: Option<bool>) -> bool {
    switch == Some(true)
}

/// Refuses a setting that has no effect, or no meaning, next to a switch that is on.
pub(crate) fn conflict(field: &str, given: bool, switch: &str) -> Result<(), ConfigError> {
    if given {
        Err(ConfigError::new(
            field,
            format!("cannot be set together with {switch} = true"),
        ))
    } else {
        Ok(())
    }
}

/// Refuses two settings that would override each other.
pub(crate) fn conflict_with(field: &str, given: bool, other: &str) -> Result<(), ConfigError> {
    if given {
        Err(ConfigError::new(
            field,
            format!("cannot be set together with {other}: set one of the two"),
        ))
    } else {
        Ok(())
    }
}
