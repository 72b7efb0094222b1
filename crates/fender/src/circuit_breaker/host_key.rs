//! [`HostKey`]: the key of one upstream host.

use std::fmt;
use std::hash::{Hash, Hasher};

use http::Uri;

/// The key of one upstream host: scheme, host and port, as
/// [`per_host`](super::CircuitBreakerLayer::per_host) keys its breakers.
///
/// The host and scheme are lowercased and a missing port is the scheme's default (80 for
/// `http` and `ws`, 443 for `https` and `wss`). Nothing else of the URI is kept: no
/// credentials (`user:password@`), no path, no query, so keys are safe to log, and
/// `https://alice:s3cret@API.example/a` and `https://api.example:443/b` share a breaker.
/// `Display` and `Debug` both write `scheme://host:port`.
///
/// ```
/// use fender::circuit_breaker::HostKey;
///
/// let uri: http::Uri = "https://alice:s3cret@API.Example/a?token=x".parse().unwrap();
/// let key = HostKey::from_uri(&uri).unwrap();
/// assert_eq!(key.to_string(), "https://api.example:443");
/// assert_eq!(key, HostKey::new("https", "api.example", None));
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct HostKey {
    scheme: Box<str>,
    host: Box<str>,
    port: Option<u16>,
}

/// The default port of a scheme, if it has a well-known one (the scheme in any case).
fn default_port(scheme: &str) -> Option<u16> {
    if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("ws") {
        Some(80)
    } else if scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("wss") {
        Some(443)
    } else {
        None
    }
}

// Written out rather than derived, field by field as the derive would, because the client's
// host map looks keys up by a view borrowed from a URI that must hash the same way.
impl Hash for HostKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.scheme.hash(state);
        self.host.hash(state);
        self.port.hash(state);
    }
}

impl HostKey {
    /// The default port of `scheme` (in any case), if it has a well-known one.
    pub(crate) fn default_port_of(scheme: &str) -> Option<u16> {
        default_port(scheme)
    }

    /// The key of `host` reached over `scheme` on `port` (the scheme's default when `None`).
    pub fn new(scheme: &str, host: &str, port: Option<u16>) -> HostKey {
        let scheme = scheme.to_ascii_lowercase();
        let port = port.or_else(|| default_port(&scheme));
        HostKey {
            host: host.to_ascii_lowercase().into(),
            scheme: scheme.into(),
            port,
        }
    }

    /// The key of a URI's host, or `None` when it has none (an origin-form URI like `/path`).
    /// A URI without a scheme is taken to be `http`.
    pub fn from_uri(uri: &Uri) -> Option<HostKey> {
        let authority = uri.authority()?;
        Some(HostKey::new(
            uri.scheme_str().unwrap_or("http"),
            authority.host(),
            authority.port_u16(),
        ))
    }

    /// The key of a request: its URI's host, or else its `Host` header's, or else the empty
    /// key (shared by every request that names no host).
    pub fn of_request<B>(req: &http::Request<B>) -> HostKey {
        HostKey::of_head(req.uri(), req.headers())
    }

    /// The key of a request's head (for code that holds `http::request::Parts`), by the rule
    /// of [`of_request`](Self::of_request).
    pub fn of_parts(parts: &http::request::Parts) -> HostKey {
        HostKey::of_head(&parts.uri, &parts.headers)
    }

    fn of_head(uri: &Uri, headers: &http::HeaderMap) -> HostKey {
        if let Some(key) = HostKey::from_uri(uri) {
            return key;
        }
        let scheme = uri.scheme_str().unwrap_or("http");
        headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.parse::<http::uri::Authority>().ok())
            .map(|a| HostKey::new(scheme, a.host(), a.port_u16()))
            .unwrap_or_default()
    }

    /// The scheme, lowercased (`http`); empty for the empty key.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The host, lowercased (`api.example`, `127.0.0.1`, `[::1]`); empty for the empty key.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port: the URI's, or the scheme's default; `None` for a scheme without one.
    pub fn port(&self) -> Option<u16> {
        self.port
    }
}

impl fmt::Display for HostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.is_empty() {
            return f.write_str("(no host)");
        }
        write!(f, "{}://{}", self.scheme, self.host)?;
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

impl fmt::Debug for HostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn key(uri: &str) -> String {
        let mut req = http::Request::new(());
        *req.uri_mut() = uri.parse().unwrap();
        HostKey::of_request(&req).to_string()
    }

    #[test]
    fn keys_drop_credentials_paths_and_case_and_fill_in_the_port() {
        assert_eq!(
            key("http://bob:pw@Host.Example/x?y=1"),
            "http://host.example:80"
        );
        assert_eq!(
            key("https://host.example:8443/"),
            "https://host.example:8443"
        );
        assert_eq!(key("wss://[::1]/socket"), "wss://[::1]:443");
        assert_eq!(key("ftp://files.example/"), "ftp://files.example");
    }

    #[test]
    fn an_origin_form_request_is_keyed_by_its_host_header() {
        let req = http::Request::builder()
            .uri("/path")
            .header("host", "Api.Example:8080")
            .body(())
            .unwrap();
        assert_eq!(
            HostKey::of_request(&req).to_string(),
            "http://api.example:8080"
        );
        let bare = http::Request::new(());
        assert_eq!(HostKey::of_request(&bare), HostKey::default());
        assert_eq!(HostKey::default().to_string(), "(no host)");
    }
}
