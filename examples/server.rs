//! An axum service behind `ErrorEnvelopeLayer`, with a route for each kind of error.
//!
//! ```sh
//! cargo run --example server            # listens on 127.0.0.1:3000
//! cargo run --example server -- 127.0.0.1:8080 --header-read-timeout 5
//! cargo run --example server -- --help
//! curl -i -X POST localhost:3000/users -H 'content-type: application/json' -d '{"email":"nope","name":""}'
//! curl -i localhost:3000/users/7 -H 'accept: application/problem+json'   # RFC 9457 form
//! ```
//!
//! Errors are the contract's JSON envelope, or RFC 9457 problem details for a client whose
//! `Accept` prefers `application/problem+json` to `application/json`; both carry the same code,
//! message, details and request id.
//!
//! Connections are served with a header-read timeout that is also the idle timeout of
//! kept-alive connections, and with limits on the request head (see `src/serve.rs`); request
//! bodies are limited to 1 MiB (413 above) and each request to 2 s (504 above).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Extension, Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Parser;
use fender::ApiError;
use fender::envelope::{ErrorEnvelopeLayer, ProblemDetails};
use fender::request_id::RequestId;
use fender::timeout::RequestTimeoutLayer;
use fender_examples::serve::{ServeOptions, serve};
use serde_json::{Value, json};
use tower::ServiceBuilder;

/// The largest request body a handler reads; larger ones are answered 413.
const MAX_BODY: usize = 1 << 20;
/// How long a request may take, body included; slower ones are answered 504.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Command-line settings.
#[derive(Parser, Debug)]
#[command(
    name = "server",
    about = "An API behind fender's ErrorEnvelopeLayer, with a route for each kind of error"
)]
struct Args {
    /// The address to listen on.
    #[arg(value_name = "ADDR", default_value = "127.0.0.1:3000")]
    addr: SocketAddr,
    #[command(flatten)]
    serve: ServeOptions,
}

/// Builds the example's router; `main` serves it.
fn app() -> Router {
    let searches = Arc::new(AtomicU64::new(0));
    Router::new()
        .route("/users", post(create_user))
        .route("/users/{id}", get(get_user))
        .route("/orders/{id}/cancel", post(cancel_order))
        .route("/search", get(search))
        .route("/panic", get(panic_handler))
        .route("/slow", get(slow))
        .with_state(searches)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        // The envelope outermost, then the timeout: a slow handler becomes 504 TIMEOUT. The
        // timeout is the caller's x-request-timeout-ms when it asks for less, never more.
        // Problem details by negotiation (the default, spelled out): the envelope unless the
        // caller's Accept strictly prefers application/problem+json.
        .layer(
            ServiceBuilder::new()
                .layer(ErrorEnvelopeLayer::new().problem_details(ProblemDetails::Negotiate))
                .layer(RequestTimeoutLayer::new(REQUEST_TIMEOUT)),
        )
}

/// 201, or 422 VALIDATION_ERROR with one message per field.
async fn create_user(
    Extension(id): Extension<RequestId>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let email = body["email"].as_str().unwrap_or_default();
    let name = body["name"].as_str().unwrap_or_default();
    let mut fields = Vec::new();
    if !email.contains('@') {
        fields.push(("email", "must be a valid email address"));
    }
    if name.trim().is_empty() {
        fields.push(("name", "must not be empty"));
    }
    if !fields.is_empty() {
        return Err(ApiError::validation(fields));
    }
    tracing::info!(request_id = ?id.header_value(), email, "user created");
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": 43, "email": email, "name": name})),
    ))
}

/// 200 for user 42, 404 NOT_FOUND for anyone else.
async fn get_user(Path(id): Path<u64>) -> Result<Json<Value>, ApiError> {
    if id == 42 {
        Ok(Json(
            json!({"id": 42, "email": "ada@example.com", "name": "Ada"}),
        ))
    } else {
        Err(ApiError::not_found(format!("user {id} does not exist")).with_detail("user_id", id))
    }
}

/// 409 CONFLICT: the order has shipped.
async fn cancel_order(Path(id): Path<u64>) -> Result<StatusCode, ApiError> {
    Err(ApiError::conflict(format!(
        "order {id} has shipped and can no longer be cancelled"
    ))
    .with_detail("order_id", id)
    .with_detail("state", "shipped"))
}

/// Every other call is 429 RATE_LIMIT_EXCEEDED with `Retry-After: 5`.
async fn search(State(searches): State<Arc<AtomicU64>>) -> Result<Json<Value>, ApiError> {
    if searches.fetch_add(1, Ordering::Relaxed) % 2 == 1 {
        return Err(
            ApiError::rate_limit_exceeded("search is limited to 1 request per 5 seconds")
                .with_retry_after(Duration::from_secs(5)),
        );
    }
    Ok(Json(json!({"results": []})))
}

/// A bug: the envelope layer answers 500 INTERNAL_ERROR and logs the panic with the request id.
async fn panic_handler() -> String {
    let shards: Vec<&str> = Vec::new();
    shards[0].to_owned()
}

/// Slower than the 2 s timeout: 504 TIMEOUT.
async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(10)).await;
    "finally"
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,fender=debug".into()),
        )
        .init();
    let args = Args::parse();
    let listener = match tokio::net::TcpListener::bind(args.addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("error: cannot listen on {}: {err}", args.addr);
            return ExitCode::FAILURE;
        }
    };
    let addr = listener.local_addr().unwrap_or(args.addr);
    println!("listening on http://{addr}");
    println!("  connections: {}", args.serve);
    println!(
        "  requests: bodies up to {MAX_BODY} bytes (else 413), {REQUEST_TIMEOUT:?} each (else 504)"
    );
    println!("try: curl -i http://{addr}/users/7");
    println!("     curl -i http://{addr}/users/7 -H 'accept: application/problem+json'");
    serve(listener, app(), &args.serve).await;
    ExitCode::SUCCESS
}
