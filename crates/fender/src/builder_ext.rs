//! [`ServiceBuilderExt`]: fender's layers as one-liners on `tower::ServiceBuilder`.
//!
//! Each method adds one layer with its defaults, exactly as `.layer(XLayer::new())` would; for
//! any setting, build the layer and pass it to `.layer(..)` instead.
//!
//! ```
//! # #[cfg(all(feature = "retry", feature = "circuit-breaker", feature = "envelope"))] {
//! use std::time::Duration;
//! use fender::ServiceBuilderExt;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use tower::ServiceBuilder;
//!
//! // A client: the whole contract's stack.
//! let client = ServiceBuilder::new()
//!     .fender_client()
//!     .service(Client::builder(TokioExecutor::new()).build_http());
//! # fn is_client<S: tower::Service<http::Request<http_body_util::Full<bytes::Bytes>>, Error = fender::ApiError>>(_: &S) {}
//! # is_client(&client);
//!
//! // A server: envelopes outermost, then the caller's deadline, capped at 10 s.
//! let server = ServiceBuilder::new()
//!     .error_envelope()
//!     .caller_deadline(Duration::from_secs(10))
//!     .service(tower::service_fn(|_req: http::Request<String>| async {
//!         Ok::<_, fender::ApiError>(http::Response::new(String::from("ok")))
//!     }));
//! # let _ = server;
//! # }
//! ```

use tower::ServiceBuilder;
use tower::layer::util::Stack;

#[cfg(feature = "circuit-breaker")]
use crate::circuit_breaker::CircuitBreakerLayer;
#[cfg(all(feature = "retry", feature = "circuit-breaker", feature = "envelope"))]
use crate::client::ClientLayer;
#[cfg(feature = "envelope")]
use crate::envelope::{DecodeEnvelopeLayer, ErrorEnvelopeLayer};
#[cfg(feature = "retry")]
use crate::retry::RetryLayer;
#[cfg(feature = "envelope")]
use crate::timeout::RequestTimeoutLayer;

mod sealed {
    pub trait Sealed {}
    impl<L> Sealed for tower::ServiceBuilder<L> {}
}

/// fender's layers as methods of `tower::ServiceBuilder`, each with its defaults. Layers added
/// first are outermost, as with `.layer(..)`.
///
/// The names differ from `ServiceBuilder`'s own (`retry`, `timeout`) so they never shadow them.
/// The trait is sealed: only `ServiceBuilder` implements it.
pub trait ServiceBuilderExt<L>: sealed::Sealed + Sized {
    /// Adds [`ClientLayer::new()`]: decoding, retries and, per host, the `Retry-After` hold,
    /// adaptive throttling, the circuit breaker and a 10 s per-attempt timeout.
    #[cfg(all(feature = "retry", feature = "circuit-breaker", feature = "envelope"))]
    #[must_use]
    fn fender_client(self) -> ServiceBuilder<Stack<ClientLayer, L>>;

    /// Adds [`RetryLayer::new()`]: the contract's retries on their own.
    #[cfg(feature = "retry")]
    #[must_use]
    fn retry_transient(self) -> ServiceBuilder<Stack<RetryLayer, L>>;

    /// Adds [`CircuitBreakerLayer::new()`]: one breaker for every request of the service.
    #[cfg(feature = "circuit-breaker")]
    #[must_use]
    fn circuit_breaker(self) -> ServiceBuilder<Stack<CircuitBreakerLayer, L>>;

    /// Adds [`DecodeEnvelopeLayer::new()`]: every failure becomes one `ApiError`.
    #[cfg(feature = "envelope")]
    #[must_use]
    fn decode_envelope(self) -> ServiceBuilder<Stack<DecodeEnvelopeLayer, L>>;

    /// Adds [`ErrorEnvelopeLayer::new()`]: every 4xx/5xx leaves as the contract's envelope
    /// (or problem details when the caller's `Accept` prefers them).
    #[cfg(feature = "envelope")]
    #[must_use]
    fn error_envelope(self) -> ServiceBuilder<Stack<ErrorEnvelopeLayer, L>>;

    /// Adds [`RequestTimeoutLayer::new(max)`](RequestTimeoutLayer::new): the caller's
    /// `x-request-timeout-ms`, capped at `max` (and `max` when the caller sends none).
    ///
    /// # Panics
    ///
    /// When `max` is zero.
    #[cfg(feature = "envelope")]
    #[must_use]
    fn caller_deadline(
        self,
        max: std::time::Duration,
    ) -> ServiceBuilder<Stack<RequestTimeoutLayer, L>>;
}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
    #[cfg(all(feature = "retry", feature = "circuit-breaker", feature = "envelope"))]
    fn fender_client(self) -> ServiceBuilder<Stack<ClientLayer, L>> {
        self.layer(ClientLayer::new())
    }

    #[cfg(feature = "retry")]
    fn retry_transient(self) -> ServiceBuilder<Stack<RetryLayer, L>> {
        self.layer(RetryLayer::new())
    }

    #[cfg(feature = "circuit-breaker")]
    fn circuit_breaker(self) -> ServiceBuilder<Stack<CircuitBreakerLayer, L>> {
        self.layer(CircuitBreakerLayer::new())
    }

    #[cfg(feature = "envelope")]
    fn decode_envelope(self) -> ServiceBuilder<Stack<DecodeEnvelopeLayer, L>> {
        self.layer(DecodeEnvelopeLayer::new())
    }

    #[cfg(feature = "envelope")]
    fn error_envelope(self) -> ServiceBuilder<Stack<ErrorEnvelopeLayer, L>> {
        self.layer(ErrorEnvelopeLayer::new())
    }

    #[cfg(feature = "envelope")]
    fn caller_deadline(
        self,
        max: std::time::Duration,
    ) -> ServiceBuilder<Stack<RequestTimeoutLayer, L>> {
        self.layer(RequestTimeoutLayer::new(max))
    }
}

#[cfg(all(
    test,
    feature = "envelope",
    feature = "retry",
    feature = "circuit-breaker"
))]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use tower::{ServiceBuilder, ServiceExt};

    use super::ServiceBuilderExt;
    use crate::ApiError;

    #[tokio::test]
    async fn error_envelope_one_liner_renders_the_contracts_envelope() {
        let svc = ServiceBuilder::new()
            .error_envelope()
            .caller_deadline(Duration::from_secs(5))
            .service(tower::service_fn(
                |_req: http::Request<Full<Bytes>>| async {
                    Ok::<_, ApiError>(
                        http::Response::builder()
                            .status(404)
                            .body(Full::new(Bytes::from_static(b"no such page")))
                            .unwrap(),
                    )
                },
            ));
        let res = svc
            .oneshot(http::Request::new(Full::new(Bytes::new())))
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
        assert!(res.headers().contains_key("x-request-id"));
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"]["code"], "NOT_FOUND");
    }

    #[tokio::test(start_paused = true)]
    async fn fender_client_one_liner_decodes_failures_into_api_error() {
        let client = ServiceBuilder::new()
            .fender_client()
            .service(tower::service_fn(
                |_req: http::Request<crate::retry::ReplayBody<Full<Bytes>>>| async {
                    Ok::<_, std::convert::Infallible>(
                        http::Response::builder()
                            .status(404)
                            .body(Full::new(Bytes::new()))
                            .unwrap(),
                    )
                },
            ));
        let req = http::Request::builder()
            .uri("http://example.test/missing")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let err = client.oneshot(req).await.unwrap_err();
        assert_eq!(err.code(), &crate::ErrorCode::NotFound);
    }
}
