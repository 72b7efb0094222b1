//! Both faces in one process: an axum server behind `ErrorEnvelopeLayer` whose handler calls
//! an upstream through the fender client stack. Upstream failures become clean 502/503/504
//! envelopes for the gateway's callers, and request ids are carried across.
//!
//! ```sh
//! cargo run --example server &                       # the upstream on 127.0.0.1:3000
//! cargo run --example gateway &                      # the gateway on 127.0.0.1:3001
//! curl -i localhost:3001/users/42 -H 'x-request-id: trace-1'   # 200, relayed
//! curl -i localhost:3001/users/7                      # 404 from upstream, same code
//! curl -i localhost:3001/slow                         # 504 TIMEOUT after retries
//! ```
//! Stop the upstream and call again: 502, then 503 with `Retry-After` once the circuit opens.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use fender::circuit_breaker::CircuitBreakerLayer;
use fender::classify::Class;
use fender::envelope::{DecodeEnvelopeLayer, ErrorEnvelopeLayer};
use fender::error::Origin;
use fender::request_id::{RequestId, X_REQUEST_ID};
use fender::retry::RetryLayer;
use fender::{ApiError, ErrorCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};

/// The client stack the gateway calls its upstream with.
type Upstream = BoxCloneSyncService<
    http::Request<Full<Bytes>>,
    http::Response<hyper::body::Incoming>,
    ApiError,
>;

#[derive(Clone)]
struct AppState {
    upstream: Upstream,
    base: String,
}

/// What an upstream failure becomes for the gateway's own callers.
///
/// The caller's mistakes (4xx) are relayed as they are; the upstream's failures become the
/// gateway's: 502 when it broke, 503 (with `Retry-After`) when it is down or the circuit is
/// open, 504 when it was too slow. The upstream's code stays in the details.
fn as_gateway_error(err: ApiError) -> ApiError {
    let upstream_code = err.code().as_str().to_owned();
    let mapped = match (err.origin(), err.class()) {
        (Origin::Response, Class::ClientError | Class::RateLimited) => return err,
        (Origin::Local, _) => ApiError::service_unavailable("the upstream service is unavailable"),
        (_, Class::Timeout) => ApiError::timeout("the upstream service did not answer in time"),
        (Origin::Response, _) if err.code() == &ErrorCode::ServiceUnavailable => {
            ApiError::service_unavailable("the upstream service is unavailable")
        }
        _ => ApiError::bad_gateway("the upstream service failed"),
    };
    let mapped = match err.retry_after() {
        Some(delay) => mapped.with_retry_after(delay),
        None => mapped,
    };
    mapped
        .with_detail("upstream_code", upstream_code)
        .with_source(err)
}

async fn relay(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|_| ApiError::invalid_request("the request body could not be read"))?
        .to_bytes();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut upstream_request = http::Request::builder()
        .method(parts.method.clone())
        .uri(format!("{}{path}", state.base));
    // Carry the request id across, so both services log the same id.
    if let Some(id) = parts.extensions.get::<RequestId>() {
        upstream_request = upstream_request.header(X_REQUEST_ID.clone(), id.header_value().clone());
    }
    for name in [
        http::header::CONTENT_TYPE,
        http::header::HeaderName::from_static("idempotency-key"),
    ] {
        if let Some(value) = parts.headers.get(&name) {
            upstream_request = upstream_request.header(name, value.clone());
        }
    }
    let upstream_request = upstream_request
        .body(Full::new(body))
        .map_err(|_| ApiError::invalid_request("the request cannot be relayed"))?;

    let response = state
        .upstream
        .oneshot(upstream_request)
        .await
        .map_err(as_gateway_error)?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| as_gateway_error(ApiError::from_error(Box::new(e))))?
        .to_bytes();
    let mut response = http::Response::new(axum::body::Body::from(body));
    *response.status_mut() = parts.status;
    if let Some(ct) = parts.headers.get(http::header::CONTENT_TYPE) {
        response
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, ct.clone());
    }
    Ok(response.into_response())
}

fn upstream_client() -> Upstream {
    let client = ServiceBuilder::new()
        .layer(DecodeEnvelopeLayer::new())
        .layer(
            RetryLayer::new()
                .base_delay(Duration::from_millis(200))
                .max_delay(Duration::from_secs(2)),
        )
        .layer(CircuitBreakerLayer::new().open_duration(Duration::from_secs(10)))
        .timeout(Duration::from_secs(3))
        .service(Client::builder(TokioExecutor::new()).build_http());
    BoxCloneSyncService::new(client)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,fender=debug".into()),
        )
        .init();
    let mut args = std::env::args().skip(1);
    let upstream = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:3000".to_owned());
    let addr: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:3001").parse()?;
    let state = AppState {
        upstream: upstream_client(),
        base: upstream.trim_end_matches('/').to_owned(),
    };
    let app = Router::new()
        .fallback(relay)
        .with_state(state)
        .layer(ErrorEnvelopeLayer::new());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!(
        "gateway on http://{} relaying to {upstream}",
        listener.local_addr()?
    );
    axum::serve(listener, app).await?;
    Ok(())
}
