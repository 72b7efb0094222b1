//! Parsers for the examples' command-line arguments, for clap's `value_parser`.
//!
//! Each one rejects what would otherwise panic or misbehave later (a negative or NaN timeout,
//! an `https` URL the plain-HTTP connector cannot reach, a lowercase method a server would not
//! recognise) with a message that says what is expected.

use std::time::Duration;

use http::{HeaderValue, Method, Uri};

/// The longest timeout any example accepts: 5 minutes.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(300);

/// What the examples say about `https` URLs.
pub const NO_TLS: &str = "https is not supported: the examples use hyper-util's plain-HTTP \
     connector (`build_http`); to reach an https server, build the client with a TLS connector \
     instead, e.g. hyper-rustls's `HttpsConnectorBuilder`, or use an http:// URL";

/// A number of seconds, positive, finite and at most `max`.
///
/// Fractions are allowed (`0.5`); `0`, negative numbers, `nan` and `inf` are not.
pub fn seconds_at_most(s: &str, max: Duration) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!(
            "must be a positive number of seconds, at most {}, not `{s}`",
            max.as_secs_f64()
        ));
    }
    let duration = Duration::from_secs_f64(secs);
    if duration > max {
        return Err(format!(
            "must be at most {} seconds, not {secs}",
            max.as_secs_f64()
        ));
    }
    if duration < Duration::from_millis(1) {
        return Err(format!("must be at least 0.001 seconds, not {secs}"));
    }
    Ok(duration)
}

/// A timeout in seconds: positive, finite, at most [`MAX_TIMEOUT`].
pub fn timeout_secs(s: &str) -> Result<Duration, String> {
    seconds_at_most(s, MAX_TIMEOUT)
}

/// An absolute `http://` URL with a host, e.g. `http://127.0.0.1:3000/users/42`.
///
/// `https://` is rejected with [`NO_TLS`]; a URL without a scheme gets a hint.
pub fn http_url(s: &str) -> Result<Uri, String> {
    if !s.contains("://") {
        return Err(match s.strip_prefix('/') {
            Some(path) => {
                format!("`{s}` has no host: write the whole URL, e.g. http://127.0.0.1:3000/{path}")
            }
            None => format!("`{s}` has no scheme: write it as http://{s}"),
        });
    }
    let uri: Uri = s
        .parse()
        .map_err(|err| format!("`{s}` is not a valid URL ({err})"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => return Err(NO_TLS.to_owned()),
        Some(other) => return Err(format!("the scheme must be http, not `{other}`")),
        None => return Err(format!("`{s}` has no scheme: write it as http://…")),
    }
    match uri.host() {
        Some(host) if !host.is_empty() => Ok(uri),
        _ => Err(format!("`{s}` has no host")),
    }
}

/// A size in bytes: a whole number, optionally with a binary unit: `4096`, `64KiB`, `8MiB`,
/// `1GiB` (also `k`, `m`, `g`, case-insensitive). At least 1 byte, at most 4 GiB.
pub fn byte_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "`{s}` is not a size: write bytes, or a number with KiB, MiB or GiB"
            ));
        }
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a size: it must start with a whole number"))?;
    let bytes = n
        .checked_mul(multiplier)
        .filter(|b| (1..=4 << 30).contains(b))
        .ok_or_else(|| format!("`{s}` is out of range: from 1 byte to 4GiB"))?;
    usize::try_from(bytes).map_err(|_| format!("`{s}` does not fit this platform"))
}

/// [`byte_size`], within `min..=max`.
pub fn byte_size_in(s: &str, min: usize, max: usize) -> Result<usize, String> {
    let n = byte_size(s)?;
    if n < min || n > max {
        return Err(format!(
            "must be from {min} to {max} bytes, not {n} (`{s}`)"
        ));
    }
    Ok(n)
}

/// An HTTP method, uppercased (`post` → `POST`), so that a typo in case does not send an
/// extension method no server knows.
pub fn method(s: &str) -> Result<Method, String> {
    Method::from_bytes(s.trim().to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("`{s}` is not an HTTP method"))
}

/// A header value: visible ASCII and spaces, no control characters.
pub fn header_value(s: &str) -> Result<HeaderValue, String> {
    if s.is_empty() {
        return Err("must not be empty".to_owned());
    }
    HeaderValue::from_str(s).map_err(|_| {
        format!(
            "`{}` cannot be sent in a header: use visible ASCII only",
            s.escape_debug()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_must_be_positive_finite_and_bounded() {
        assert_eq!(timeout_secs("3"), Ok(Duration::from_secs(3)));
        assert_eq!(timeout_secs("0.25"), Ok(Duration::from_millis(250)));
        assert_eq!(timeout_secs("300"), Ok(MAX_TIMEOUT));
        for bad in [
            "-1",
            "0",
            "nan",
            "NaN",
            "inf",
            "-inf",
            "",
            "3s",
            "1e400",
            "301",
            "0.0000001",
        ] {
            assert!(timeout_secs(bad).is_err(), "accepted {bad:?}");
        }
        let message = timeout_secs("nan").unwrap_err();
        assert!(message.contains("positive"), "{message}");
    }

    #[test]
    fn https_urls_are_refused_with_a_hint_about_tls() {
        let message = http_url("https://example.com/").unwrap_err();
        assert!(message.contains("TLS connector"), "{message}");
        assert!(message.contains("http://"), "{message}");
    }

    #[test]
    fn urls_need_the_http_scheme_and_a_host() {
        assert_eq!(
            http_url("http://127.0.0.1:3000/users/42").unwrap().path(),
            "/users/42"
        );
        assert!(http_url("http://[::1]:3000/").is_ok());
        let no_scheme = http_url("127.0.0.1:3000/users/42").unwrap_err();
        assert!(
            no_scheme.contains("http://127.0.0.1:3000/users/42"),
            "{no_scheme}"
        );
        let no_host = http_url("/users/42").unwrap_err();
        assert!(
            no_host.contains("http://127.0.0.1:3000/users/42"),
            "{no_host}"
        );
        assert!(http_url("ftp://example.com/").unwrap_err().contains("ftp"));
        assert!(http_url("--help").is_err());
        assert!(http_url("http://exa mple.com/").is_err());
    }

    #[test]
    fn sizes_take_binary_units_and_refuse_zero_and_overflow() {
        assert_eq!(byte_size("4096"), Ok(4096));
        assert_eq!(byte_size("64KiB"), Ok(64 * 1024));
        assert_eq!(byte_size("8mib"), Ok(8 << 20));
        assert_eq!(byte_size("1 GiB"), Ok(1 << 30));
        assert_eq!(byte_size("2k"), Ok(2048));
        for bad in [
            "0",
            "-1",
            "1.5MiB",
            "MiB",
            "10MB",
            "5GiB",
            "99999999999999999999",
        ] {
            assert!(byte_size(bad).is_err(), "accepted {bad:?}");
        }
        assert!(byte_size_in("1KiB", 8192, 1 << 20).is_err());
        assert_eq!(byte_size_in("16KiB", 8192, 1 << 20), Ok(16384));
    }

    #[test]
    fn methods_are_uppercased_and_must_be_tokens() {
        assert_eq!(method("post"), Ok(Method::POST));
        assert_eq!(method("DELETE"), Ok(Method::DELETE));
        assert!(method("GET /").is_err());
        assert!(method("").is_err());
    }

    #[test]
    fn header_values_refuse_control_characters() {
        assert_eq!(header_value("order-1").unwrap(), "order-1");
        assert!(header_value("a\nb").is_err());
        assert!(header_value("").is_err());
    }
}
