//! An axum service behind `ErrorEnvelopeLayer`, with a route for each kind of error.
//!
//! ```sh
//! cargo run --example server            # listens on 127.0.0.1:3000
//! cargo run --example server -- 127.0.0.1:8080
//! curl -i -X POST localhost:3000/users -H 'content-type: application/json' -d '{"email":"nope","name":""}'
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use fender::ApiError;
use fender::envelope::ErrorEnvelopeLayer;
use fender::request_id::RequestId;
use serde_json::{Value, json};
use tower::ServiceBuilder;

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
        // The envelope outermost, then a 2 s timeout: a slow handler becomes 504 TIMEOUT.
        .layer(
            ServiceBuilder::new()
                .layer(ErrorEnvelopeLayer::new())
                .timeout(Duration::from_secs(2)),
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
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,fender=debug".into()),
        )
        .init();
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .as_deref()
        .unwrap_or("127.0.0.1:3000")
        .parse()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    println!("try: curl -i http://{}/users/7", listener.local_addr()?);
    axum::serve(listener, app()).await?;
    Ok(())
}
