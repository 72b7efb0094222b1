//! [`RetryConfig`] and [`BudgetConfig`], the settings of [`RetryLayer`] and [`RetryBudget`].

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

use super::{ConfigError, HumanDuration, check};
use crate::retry::{Jitter, RetryBudget, RetryLayer};

// The defaults of `RetryLayer::new()` and `RetryBudget::default()`, for the checks that compare
// two settings and for `effective`. The tests compare them with the builders.
const MAX_ATTEMPTS: u32 = 3;
const BASE_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(30);
const RETRY_AFTER_CAP: Duration = Duration::from_secs(60);
const MAX_REPLAY_BODY: usize = 64 * 1024;
const BUDGET_WINDOW: Duration = Duration::from_secs(10);
const BUDGET_FLOOR_PER_SEC: u32 = 10;
const BUDGET_RATIO: f32 = 0.2;

/// The settings of a [`RetryLayer`], as a file holds them; every field is optional, and a
/// missing one keeps the builder's default.
///
/// The keys are the builder's method names. The callback ([`RetryLayer::on_retry`]), the
/// classifier and the wall clock are code, not settings: add them with
/// [`apply_to`](Self::apply_to).
///
/// ```
/// use fender::config::RetryConfig;
///
/// let config: RetryConfig = toml::from_str(r#"
///     max_attempts = 4           # default 3, the first attempt included; 1 disables retries
///     base_delay = "500ms"       # default 1s, doubled for each later retry
///     max_delay = "10s"          # default 30s, at least base_delay
///     jitter = "full"            # none | full | equal | decorrelated | proportional (default)
///     retry_after_cap = "1m"     # default 60s: a longer Retry-After is not waited for
///     retry_non_idempotent = false   # default false
///     attempt_timeout = "2s"     # default none; a client configuration has its own
///     deadline = "20s"           # default none, measured from the call
///     rng_seed = 7               # default: a random seed
///     max_replay_body = 65536    # bytes, default 64 KiB
///     no_budget = false          # default false; true retries without a budget
///
///     [budget]                   # default: 20% of the last 10s of requests plus 10 per second
///     window = "10s"
///     floor_per_sec = 10
///     ratio = 0.2
/// "#).unwrap();
/// let layer = config.layer().unwrap();
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RetryConfig {
    /// Attempts in all, the first one included (default 3); at least 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// The delay before the first retry, doubled for each later one (default 1 s); at most
    /// `max_delay`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_delay: Option<HumanDuration>,
    /// The longest backoff delay (default 30 s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_delay: Option<HumanDuration>,
    /// How delays are randomised (default `"proportional"`); one of `"none"`, `"full"`,
    /// `"equal"`, `"decorrelated"`, `"proportional"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter: Option<Jitter>,
    /// The longest `Retry-After` that is waited for (default 60 s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_cap: Option<HumanDuration>,
    /// The retry budget (default [`RetryBudget::default`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetConfig>,
    /// `true`: no budget, every retryable failure is retried up to the attempt limit (default
    /// `false`). Cannot be combined with `budget`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_budget: Option<bool>,
    /// Retry non-idempotent requests like idempotent ones (default `false`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_non_idempotent: Option<bool>,
    /// A time limit for each attempt (default none); positive. A
    /// [`ClientConfig`](super::ClientConfig) refuses it: the stack has its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt_timeout: Option<HumanDuration>,
    /// An overall deadline per request, from the call (default none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline: Option<HumanDuration>,
    /// Seeds the jitter, for reproducible runs (default: seeded from the thread RNG).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rng_seed: Option<u64>,
    /// The largest request body kept for replay, in bytes (default 65,536).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_replay_body: Option<usize>,
}

impl RetryConfig {
    /// The layer these settings describe: [`RetryLayer::new`] with every field that is set
    /// applied.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first field the builder would refuse.
    pub fn layer(&self) -> Result<RetryLayer, ConfigError> {
        self.apply_to(RetryLayer::new())
    }

    /// Applies every field that is set to `layer`, keeping its callback and classifier, and its
    /// own values for the fields that are not set. `base_delay` and `max_delay` are applied as
    /// a pair: when only one is set, the other is reset to its default (so the pair is checked
    /// here, never by a panic of the builder).
    ///
    /// ```
    /// use fender::RetryLayer;
    /// use fender::config::RetryConfig;
    ///
    /// let config: RetryConfig = toml::from_str(r#"max_attempts = 5"#).unwrap();
    /// let layer = config
    ///     .apply_to(RetryLayer::new().on_retry(|attempt, delay, reason| {
    ///         println!("{reason}: attempt {attempt} in {delay:?}");
    ///     }))
    ///     .unwrap();
    /// # let _ = layer;
    /// ```
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first field the builder would refuse.
    pub fn apply_to<C>(&self, mut layer: RetryLayer<C>) -> Result<RetryLayer<C>, ConfigError> {
        if let Some(n) = self.max_attempts {
            if n == 0 {
                return Err(ConfigError::new(
                    "max_attempts",
                    "must be at least 1 (the first attempt), got 0",
                ));
            }
            layer = layer.max_attempts(n);
        }
        let base = check::duration("base_delay", self.base_delay)?;
        let max = check::duration("max_delay", self.max_delay)?;
        if base.is_some() || max.is_some() {
            let (b, m) = (base.unwrap_or(BASE_DELAY), max.unwrap_or(MAX_DELAY));
            if b > m {
                let (b, m) = (HumanDuration::from(b), HumanDuration::from(m));
                return Err(if base.is_some() {
                    ConfigError::new(
                        "base_delay",
                        format!("must not exceed max_delay ({m}), got {b}"),
                    )
                } else {
                    ConfigError::new(
                        "max_delay",
                        format!("must not be shorter than base_delay ({b}), got {m}"),
                    )
                });
            }
            layer = layer.base_delay(b).max_delay(m);
        }
        if let Some(jitter) = self.jitter {
            layer = layer.jitter(jitter);
        }
        if let Some(cap) = check::duration("retry_after_cap", self.retry_after_cap)? {
            layer = layer.retry_after_cap(cap);
        }
        if check::on(self.no_budget) {
            check::conflict("budget", self.budget.is_some(), "no_budget")?;
            layer = layer.no_budget();
        } else if let Some(budget) = &self.budget {
            layer = layer.budget(budget.budget().map_err(|e| e.within("budget"))?);
        }
        if let Some(on) = self.retry_non_idempotent {
            layer = layer.retry_non_idempotent(on);
        }
        if let Some(timeout) = check::positive("attempt_timeout", self.attempt_timeout)? {
            layer = layer.attempt_timeout(timeout);
        }
        if let Some(deadline) = check::duration("deadline", self.deadline)? {
            layer = layer.deadline(deadline);
        }
        if let Some(seed) = self.rng_seed {
            layer = layer.rng_seed(seed);
        }
        if let Some(bytes) = self.max_replay_body {
            layer = layer.max_replay_body(bytes);
        }
        Ok(layer)
    }

    /// The settings in effect: these settings, checked, with every default filled in (a setting
    /// whose default is "none", such as `deadline`, stays absent). For a tool that prints what
    /// a file amounts to.
    ///
    /// # Errors
    ///
    /// As [`layer`](Self::layer).
    pub fn effective(&self) -> Result<RetryConfig, ConfigError> {
        self.layer().map(drop)?;
        let no_budget = check::on(self.no_budget);
        Ok(RetryConfig {
            max_attempts: Some(self.max_attempts.unwrap_or(MAX_ATTEMPTS)),
            base_delay: Some(self.base_delay.unwrap_or(BASE_DELAY.into())),
            max_delay: Some(self.max_delay.unwrap_or(MAX_DELAY.into())),
            jitter: Some(self.jitter.unwrap_or_default()),
            retry_after_cap: Some(self.retry_after_cap.unwrap_or(RETRY_AFTER_CAP.into())),
            budget: (!no_budget).then(|| self.budget.clone().unwrap_or_default().effective()),
            no_budget: Some(no_budget),
            retry_non_idempotent: Some(self.retry_non_idempotent.unwrap_or(false)),
            attempt_timeout: self.attempt_timeout,
            deadline: self.deadline,
            rng_seed: self.rng_seed,
            max_replay_body: Some(self.max_replay_body.unwrap_or(MAX_REPLAY_BODY)),
        })
    }
}

/// The settings of a [`RetryBudget`] (see there for the accounting); every field is optional,
/// and a missing one keeps the default budget's value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct BudgetConfig {
    /// How long deposits and withdrawals are remembered (default 10 s); 10 ms to one day.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<HumanDuration>,
    /// Retries per second always allowed (default 10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub floor_per_sec: Option<u32>,
    /// Retries each request adds to the budget (default 0.2); 0 to 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f32>,
}

impl BudgetConfig {
    /// The budget these settings describe; wrap it in an `Arc` to share it between layers.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field [`RetryBudget::new`] would refuse.
    pub fn budget(&self) -> Result<RetryBudget, ConfigError> {
        let window = check::duration_in(
            "window",
            self.window,
            Duration::from_millis(10),
            Duration::from_secs(86_400),
        )?
        .unwrap_or(BUDGET_WINDOW);
        let ratio = self.ratio.unwrap_or(BUDGET_RATIO);
        if !(0.0..=1.0).contains(&ratio) {
            return Err(ConfigError::new(
                "ratio",
                format!("must be 0 to 1, got {ratio}"),
            ));
        }
        let floor = self.floor_per_sec.unwrap_or(BUDGET_FLOOR_PER_SEC);
        Ok(RetryBudget::new(window, floor, ratio))
    }

    fn effective(self) -> BudgetConfig {
        BudgetConfig {
            window: Some(self.window.unwrap_or(BUDGET_WINDOW.into())),
            floor_per_sec: Some(self.floor_per_sec.unwrap_or(BUDGET_FLOOR_PER_SEC)),
            ratio: Some(self.ratio.unwrap_or(BUDGET_RATIO)),
        }
    }
}

/// The names of the jitter variants in a file.
const JITTERS: &[&str] = &["none", "full", "equal", "decorrelated", "proportional"];

/// Written as its name in lowercase: `"none"`, `"full"`, `"equal"`, `"decorrelated"`,
/// `"proportional"`.
impl Serialize for Jitter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(match self {
            Jitter::None => "none",
            Jitter::Full => "full",
            Jitter::Equal => "equal",
            Jitter::Decorrelated => "decorrelated",
            Jitter::Proportional => "proportional",
        })
    }
}

/// Read from its name in lowercase (see the `Serialize` impl).
impl<'de> Deserialize<'de> for Jitter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct JitterVisitor;

        impl Visitor<'_> for JitterVisitor {
            type Value = Jitter;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "one of \"none\", \"full\", \"equal\", \"decorrelated\", \"proportional\"",
                )
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Jitter, E> {
                Ok(match s {
                    "none" => Jitter::None,
                    "full" => Jitter::Full,
                    "equal" => Jitter::Equal,
                    "decorrelated" => Jitter::Decorrelated,
                    "proportional" => Jitter::Proportional,
                    _ => return Err(E::unknown_variant(s, JITTERS)),
                })
            }
        }

        deserializer.deserialize_str(JitterVisitor)
    }
}
