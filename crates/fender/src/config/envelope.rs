//! [`EnvelopeConfig`] and [`DecodeConfig`], the limits of [`ErrorEnvelopeLayer`] (servers) and
//! [`DecodeEnvelopeLayer`] (clients).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, HumanDuration, check};
use crate::envelope::{DEFAULT_BODY_LIMIT, DecodeEnvelopeLayer, ErrorEnvelopeLayer};

// The defaults of `ErrorEnvelopeLayer::new()` and `DecodeEnvelopeLayer::new()`, for
// `effective`; the tests compare them with the builders.
const SERVER_BODY_LIMIT: usize = 64 * 1024;
const SERVER_BODY_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_MESSAGE_LEN: usize = 256;
const CLIENT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The limits of an [`ErrorEnvelopeLayer`], as a file holds them; every field is optional, and
/// a missing one keeps the builder's default. The error mapping (`map_error`) is code: add it
/// with [`apply_to`](Self::apply_to).
///
/// ```
/// use fender::config::EnvelopeConfig;
///
/// let config: EnvelopeConfig = toml::from_str(r#"
///     body_limit = 65536       # bytes of a non-envelope error body read (default 64 KiB), at least 1
///     body_timeout = "2s"      # how long that read may take (default 2s); 0s reads what is ready
///     max_message_len = 256    # longest plain-text 4xx body kept as the message (default 256)
/// "#).unwrap();
/// let layer = config.layer().unwrap();
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct EnvelopeConfig {
    /// Bytes of a non-envelope error body that are read (default 65,536); at least 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_limit: Option<usize>,
    /// How long the layer waits for an inner error body (default 2 s); `0s` reads only what is
    /// ready at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_timeout: Option<HumanDuration>,
    /// The longest plain-text 4xx body kept as the envelope's message, in bytes (default 256);
    /// 0 never keeps one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_message_len: Option<usize>,
}

impl EnvelopeConfig {
    /// The layer these settings describe: [`ErrorEnvelopeLayer::new`] with every field that is
    /// set applied.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first field the builder would refuse.
    pub fn layer(&self) -> Result<ErrorEnvelopeLayer, ConfigError> {
        self.apply_to(ErrorEnvelopeLayer::new())
    }

    /// Applies every field that is set to `layer`, keeping its error mapping.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first field the builder would refuse.
    pub fn apply_to(
        &self,
        mut layer: ErrorEnvelopeLayer,
    ) -> Result<ErrorEnvelopeLayer, ConfigError> {
        if let Some(limit) = check::count("body_limit", self.body_limit, 1, usize::MAX)? {
            layer = layer.body_limit(limit);
        }
        if let Some(timeout) = check::duration("body_timeout", self.body_timeout)? {
            layer = layer.body_timeout(timeout);
        }
        if let Some(len) = self.max_message_len {
            layer = layer.max_message_len(len);
        }
        Ok(layer)
    }

    /// The settings in effect: these settings, checked, with every default filled in.
    ///
    /// # Errors
    ///
    /// As [`layer`](Self::layer).
    pub fn effective(&self) -> Result<EnvelopeConfig, ConfigError> {
        self.layer().map(drop)?;
        Ok(EnvelopeConfig {
            body_limit: Some(self.body_limit.unwrap_or(SERVER_BODY_LIMIT)),
            body_timeout: Some(self.body_timeout.unwrap_or(SERVER_BODY_TIMEOUT.into())),
            max_message_len: Some(self.max_message_len.unwrap_or(MAX_MESSAGE_LEN)),
        })
    }
}

/// The limits of a [`DecodeEnvelopeLayer`]; every field is optional, and a missing one keeps
/// the builder's default. In a [`ClientConfig`](super::ClientConfig) this is the `[decode]`
/// table.
///
/// ```
/// use fender::config::DecodeConfig;
///
/// let config: DecodeConfig = toml::from_str(r#"
///     body_limit = 65536           # bytes of an error body read (default 64 KiB), at least 1
///     body_timeout = "10s"         # how long an error body may take (default 10s)
///     generate_request_id = true   # give requests without x-request-id one (default true)
/// "#).unwrap();
/// let layer = config.layer().unwrap();
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct DecodeConfig {
    /// Bytes of an error body that are read (default 65,536); at least 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_limit: Option<usize>,
    /// How long an error body may take to arrive (default 10 s); after that the error is
    /// decoded from what arrived.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_timeout: Option<HumanDuration>,
    /// Whether requests without an `x-request-id` get a new one (default `true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generate_request_id: Option<bool>,
}

impl DecodeConfig {
    /// The layer these settings describe: [`DecodeEnvelopeLayer::new`] with every field that
    /// is set applied.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first field the builder would refuse.
    pub fn layer(&self) -> Result<DecodeEnvelopeLayer, ConfigError> {
        let mut layer = DecodeEnvelopeLayer::new();
        if let Some(limit) = check::count("body_limit", self.body_limit, 1, usize::MAX)? {
            layer = layer.body_limit(limit);
        }
        if let Some(timeout) = check::duration("body_timeout", self.body_timeout)? {
            layer = layer.body_timeout(timeout);
        }
        if let Some(on) = self.generate_request_id {
            layer = layer.generate_request_id(on);
        }
        Ok(layer)
    }

    /// The settings in effect: these settings, checked, with every default filled in.
    ///
    /// # Errors
    ///
    /// As [`layer`](Self::layer).
    pub fn effective(&self) -> Result<DecodeConfig, ConfigError> {
        self.layer().map(drop)?;
        Ok(DecodeConfig {
            body_limit: Some(self.body_limit.unwrap_or(DEFAULT_BODY_LIMIT)),
            body_timeout: Some(self.body_timeout.unwrap_or(CLIENT_BODY_TIMEOUT.into())),
            generate_request_id: Some(self.generate_request_id.unwrap_or(true)),
        })
    }
}
