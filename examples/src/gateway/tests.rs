//! The gateway against real upstreams on 127.0.0.1 (the testkit's), called in process.

use std::net::SocketAddr;

use fender::circuit_breaker::CircuitBreakerLayer;
use fender_testkit::{Plan, Reply, TestServer, refused_addr};
use http::HeaderValue;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tower::ServiceBuilder;

use super::*;

/// A bare client: no retries, no breaker, so each test sees one attempt.
fn bare_client() -> Upstream {
    let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
    BoxCloneSyncService::new(client.map_err(BoxError::from))
}

/// A fender retry layer with one attempt: it stamps the deadline headers.
fn fender_stack() -> Upstream {
    let client = tower::Layer::layer(
        &fender::retry::RetryLayer::new().max_attempts(1),
        Client::builder(TokioExecutor::new()).build_http(),
    );
    BoxCloneSyncService::new(client)
}

fn base(addr: SocketAddr) -> UpstreamBase {
    UpstreamBase::parse(&format!("http://{addr}")).unwrap()
}

async fn upstream(reply: impl Into<Plan>) -> TestServer {
    fender_testkit::Upstream::new(reply).serve().await
}

fn gateway_to(server: &TestServer) -> Router {
    router(bare_client(), base(server.addr()), RelayLimits::default())
}

/// Sends `request` through `app`; the response's parts and its body.
async fn send(app: &Router, request: http::Request<Body>) -> (http::response::Parts, Bytes) {
    let response = app.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    (parts, body.collect().await.unwrap().to_bytes())
}

fn get(path: &str) -> http::Request<Body> {
    http::Request::get(path).body(Body::empty()).unwrap()
}

fn error_of(body: &Bytes) -> Value {
    let json: Value = serde_json::from_slice(body).unwrap();
    json["error"].clone()
}

#[tokio::test]
async fn answers_504_timeout_for_an_upstream_504() {
    let server = upstream(Reply::envelope(504, "TIMEOUT", "request timed out")).await;
    let (parts, body) = send(&gateway_to(&server), get("/slow")).await;
    assert_eq!(parts.status, 504);
    let error = error_of(&body);
    assert_eq!(error["code"], "TIMEOUT");
    assert_eq!(error["details"]["origin"], "upstream");
    assert_eq!(error["details"]["upstream_status"], 504);
    assert_eq!(error["details"]["upstream_code"], "TIMEOUT");
}

#[tokio::test]
async fn answers_503_with_the_upstreams_retry_after_for_an_upstream_503() {
    let server = upstream(Reply::retry_after_secs(503, 7)).await;
    let (parts, body) = send(&gateway_to(&server), get("/users/42")).await;
    assert_eq!(parts.status, 503);
    assert_eq!(parts.headers["retry-after"], "7");
    let error = error_of(&body);
    assert_eq!(error["code"], "SERVICE_UNAVAILABLE");
    assert_eq!(error["details"]["upstream_status"], 503);
}

#[tokio::test]
async fn never_copies_an_upstreams_html_or_content_type_into_its_own_502() {
    let page = "<html><body>nginx/1.22 upstream 10.0.0.7:8080 failed</body></html>";
    let server = upstream(
        Reply::status(500)
            .header("content-type", "text/html")
            .body(page),
    )
    .await;
    let (parts, body) = send(&gateway_to(&server), get("/")).await;
    assert_eq!(parts.status, 502);
    assert_eq!(parts.headers["content-type"], "application/json");
    let text = String::from_utf8_lossy(&body);
    for leak in ["text/html", "nginx", "10.0.0.7", "<html>"] {
        assert!(!text.contains(leak), "{leak} in {text}");
    }
    let error = error_of(&body);
    assert_eq!(error["code"], "BAD_GATEWAY");
    assert_eq!(error["details"]["upstream_status"], 500);
    assert!(error["details"].get("upstream_code").is_none(), "{error}");
}

#[tokio::test]
async fn reports_an_unknown_upstream_code_by_status_only() {
    let server = upstream(Reply::envelope(500, "DATABASE_ON_FIRE", "disk 3 is full")).await;
    let (parts, body) = send(&gateway_to(&server), get("/")).await;
    assert_eq!(parts.status, 502);
    let text = String::from_utf8_lossy(&body);
    assert!(
        !text.contains("DATABASE_ON_FIRE") && !text.contains("disk 3"),
        "{text}"
    );
}

#[tokio::test]
async fn keeps_allow_on_a_relayed_405_and_uses_its_own_request_id() {
    let server = upstream(
        Reply::envelope(405, "INVALID_REQUEST", "method not allowed").header("allow", "GET,HEAD"),
    )
    .await;
    let request = http::Request::delete("/users/42")
        .header("x-request-id", "trace-405")
        .body(Body::empty())
        .unwrap();
    let (parts, body) = send(&gateway_to(&server), request).await;
    assert_eq!(parts.status, 405);
    assert_eq!(parts.headers["allow"], "GET,HEAD");
    assert_eq!(parts.headers["x-request-id"], "trace-405");
    let error = error_of(&body);
    assert_eq!(error["code"], "INVALID_REQUEST");
    assert_eq!(error["message"], "method not allowed");
    assert_eq!(error["request_id"], "trace-405");
    // The upstream was asked with the same id.
    assert_eq!(server.received()[0].headers["x-request-id"], "trace-405");
}

#[tokio::test]
async fn keeps_location_on_a_relayed_302_and_drops_hop_by_hop_headers() {
    let server = upstream(
        Reply::status(302)
            .header("location", "/users/43")
            .header("cache-control", "no-store")
            .header("connection", "x-backend-node")
            .header("x-backend-node", "db-7")
            .header("keep-alive", "timeout=5"),
    )
    .await;
    let (parts, _) = send(&gateway_to(&server), get("/users/me")).await;
    assert_eq!(parts.status, 302);
    assert_eq!(parts.headers["location"], "/users/43");
    assert_eq!(parts.headers["cache-control"], "no-store");
    for dropped in ["connection", "x-backend-node", "keep-alive"] {
        assert!(!parts.headers.contains_key(dropped), "{dropped} relayed");
    }
}

#[tokio::test]
async fn relays_a_success_body_and_the_callers_end_to_end_headers() {
    let server = upstream(Reply::ok()).await;
    let request = http::Request::post("/orders?dry_run=1")
        .header("content-type", "application/json")
        .header("authorization", "Bearer t0ken")
        .header("idempotency-key", "order-1")
        .header("connection", "x-hop")
        .header("x-hop", "1")
        .header("te", "trailers")
        .body(Body::from(r#"{"qty":1}"#))
        .unwrap();
    let (parts, body) = send(&gateway_to(&server), request).await;
    assert_eq!(parts.status, 200);
    assert_eq!(body, r#"{"ok":true}"#);
    let received = &server.received()[0];
    assert_eq!(received.uri, "/orders?dry_run=1");
    assert_eq!(received.body, r#"{"qty":1}"#);
    assert_eq!(received.headers["authorization"], "Bearer t0ken");
    assert_eq!(received.headers["idempotency-key"], "order-1");
    assert_eq!(received.headers["host"], server.addr().to_string().as_str());
    for dropped in ["x-hop", "te", "connection"] {
        assert!(
            !received.headers.contains_key(dropped),
            "{dropped} forwarded"
        );
    }
}

#[tokio::test]
async fn answers_413_for_a_declared_length_over_the_limit_without_calling_upstream() {
    let server = upstream(Reply::ok()).await;
    let limits = RelayLimits {
        max_body: 1024,
        ..RelayLimits::default()
    };
    let app = router(bare_client(), base(server.addr()), limits);
    let request = http::Request::post("/upload")
        .header("content-length", "200000000")
        .body(Body::from(vec![b'x'; 2048]))
        .unwrap();
    let (parts, body) = send(&app, request).await;
    assert_eq!(parts.status, 413);
    let error = error_of(&body);
    assert_eq!(error["code"], "INVALID_REQUEST");
    assert_eq!(error["details"]["limit_bytes"], 1024);
    assert_eq!(server.count(), 0);
}

#[tokio::test]
async fn answers_413_when_a_streamed_body_grows_past_the_limit() {
    let server = upstream(Reply::ok()).await;
    let limits = RelayLimits {
        max_body: 64 * 1024,
        ..RelayLimits::default()
    };
    // The breaker opens on the first failure: the 413 must not count as one.
    let breaker = CircuitBreakerLayer::new().consecutive_failures(1);
    let stack = ServiceBuilder::new()
        .layer(breaker)
        .service(Client::builder(TokioExecutor::new()).build_http::<Body>());
    let app = router(BoxCloneSyncService::new(stack), base(server.addr()), limits);
    let chunks = (0..100).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 4096])));
    let request = http::Request::post("/upload")
        .body(Body::from_stream(futures_util::stream::iter(chunks)))
        .unwrap();
    let (parts, body) = send(&app, request).await;
    assert_eq!(parts.status, 413, "{}", String::from_utf8_lossy(&body));
    assert_eq!(error_of(&body)["code"], "INVALID_REQUEST");
    assert_eq!(
        server.count(),
        0,
        "the upstream never got a complete request"
    );

    let (parts, _) = send(&app, get("/after")).await;
    assert_eq!(parts.status, 200, "the circuit stayed closed");
}

#[tokio::test]
async fn answers_503_from_the_transport_when_the_upstream_refuses_connections() {
    let app = router(bare_client(), base(refused_addr()), RelayLimits::default());
    let (parts, body) = send(&app, get("/users/42")).await;
    assert_eq!(parts.status, 503);
    let error = error_of(&body);
    assert_eq!(error["code"], "SERVICE_UNAVAILABLE");
    assert_eq!(error["details"]["origin"], "transport");
    assert!(error["details"].get("upstream_code").is_none(), "{error}");
}

#[tokio::test]
async fn says_an_open_circuit_refusal_is_local_with_retry_after_and_no_upstream_code() {
    let server = upstream(Reply::status(503)).await;
    let stack = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new().consecutive_failures(1))
        .service(Client::builder(TokioExecutor::new()).build_http::<Body>());
    let app = router(
        BoxCloneSyncService::new(stack),
        base(server.addr()),
        RelayLimits::default(),
    );
    let (first, _) = send(&app, get("/users/42")).await;
    assert_eq!(first.status, 503);

    let (parts, body) = send(&app, get("/users/42")).await;
    assert_eq!(parts.status, 503);
    let retry_after: u64 = parts.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let error = error_of(&body);
    assert_eq!(error["code"], "SERVICE_UNAVAILABLE");
    assert_eq!(error["details"]["origin"], "local");
    assert_eq!(error["details"]["reason"], "open");
    assert!(error["details"].get("upstream_code").is_none(), "{error}");
    assert_eq!(
        server.count(),
        1,
        "the refused call never reached the upstream"
    );
}

#[test]
fn maps_decoded_and_transport_errors_per_the_contract() {
    let decoded_504 = ApiError::timeout("slow");
    assert_eq!(gateway_error(decoded_504).status(), 504);
    let decoded_500 = ApiError::internal();
    let mapped = gateway_error(decoded_500);
    assert_eq!(mapped.status(), 502);
    assert_eq!(mapped.details()["upstream_code"], "INTERNAL_ERROR");
    let not_found = ApiError::not_found("user 7 does not exist");
    assert_eq!(gateway_error(not_found).message(), "user 7 does not exist");

    let timeout = ApiError::from_error(Box::new(tower::timeout::error::Elapsed::new()));
    let mapped = gateway_error(timeout);
    assert_eq!(mapped.status(), 504);
    assert_eq!(mapped.details()["origin"], "transport");
    let reset = ApiError::from_error(Box::new(std::io::Error::from(
        std::io::ErrorKind::ConnectionReset,
    )));
    assert_eq!(gateway_error(reset).status(), 502);
    let unknown = ApiError::from_error("a hyper parse error".into());
    let mapped = gateway_error(unknown);
    assert_eq!(mapped.status(), 502);
    assert_eq!(
        mapped.message(),
        "the connection to the upstream service failed"
    );
    let shed = ApiError::from_error(Box::new(tower::load_shed::error::Overloaded::new()));
    let mapped = gateway_error(shed);
    assert_eq!(mapped.status(), 503);
    assert_eq!(mapped.details()["origin"], "local");
    assert_eq!(mapped.retry_after(), Some(Duration::from_secs(1)));
}

#[test]
fn upstream_base_urls_are_http_without_query_and_keep_a_path_prefix() {
    let plain = UpstreamBase::parse("http://127.0.0.1:3000").unwrap();
    assert_eq!(
        plain.uri("/users/42?x=1").unwrap(),
        "http://127.0.0.1:3000/users/42?x=1"
    );
    let slash = UpstreamBase::parse("http://127.0.0.1:3000/").unwrap();
    assert_eq!(slash, plain);
    let prefixed = UpstreamBase::parse("http://localhost:8080/api/").unwrap();
    assert_eq!(prefixed.to_string(), "http://localhost:8080/api");
    assert_eq!(
        prefixed.uri("/users").unwrap(),
        "http://localhost:8080/api/users"
    );
    assert!(
        UpstreamBase::parse("https://example.com")
            .unwrap_err()
            .contains("TLS")
    );
    assert!(
        UpstreamBase::parse("http://a/?x=1")
            .unwrap_err()
            .contains("query")
    );
    assert!(UpstreamBase::parse("--help").is_err());
}

#[test]
fn locations_into_the_upstream_become_relative_to_the_gateway() {
    let base = UpstreamBase::parse("http://127.0.0.1:3000/api").unwrap();
    let relative = |l: &str| base.relative(l);
    assert_eq!(
        relative("http://127.0.0.1:3000/api/users/43").as_deref(),
        Some("/users/43")
    );
    assert_eq!(relative("http://127.0.0.1:3000/api").as_deref(), Some("/"));
    assert_eq!(
        relative("http://127.0.0.1:3000/api?page=2").as_deref(),
        Some("/?page=2")
    );
    assert_eq!(relative("http://127.0.0.1:3000/apis"), None);
    assert_eq!(relative("http://127.0.0.1:30001/api/x"), None);
    assert_eq!(relative("https://login.example.com/"), None);
    assert_eq!(
        relative("/api/users/43"),
        None,
        "already relative: kept as is"
    );
}

#[tokio::test]
async fn rewrites_an_absolute_redirect_into_the_upstream_to_a_gateway_path() {
    // Like nginx: an absolute redirect built from the Host header, the upstream's own authority.
    let server = upstream(Plan::from_fn(|received| {
        let host = received.headers["host"].to_str().unwrap();
        Reply::status(301).header("location", format!("http://{host}/users/43?tab=1").as_str())
    }))
    .await;
    let (parts, _) = send(&gateway_to(&server), get("/users/me")).await;
    assert_eq!(parts.status, 301);
    assert_eq!(parts.headers["location"], "/users/43?tab=1");
}

#[test]
fn response_headers_keep_status_headers_and_drop_hop_by_hop_ones() {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("allow", "GET, HEAD"),
        ("www-authenticate", "Bearer"),
        ("retry-after", "5"),
        ("location", "/x"),
        ("set-cookie", "a=1"),
        ("connection", "close, x-internal"),
        ("x-internal", "node-3"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "h2c"),
        ("proxy-authenticate", "Basic"),
        ("x-request-id", "upstream-id"),
        ("server", "nginx/1.22.1"),
    ] {
        headers.append(name, HeaderValue::from_static(value));
    }
    headers.append("set-cookie", HeaderValue::from_static("b=2"));
    let kept = response_headers(&headers);
    let names: Vec<&str> = kept.keys().map(HeaderName::as_str).collect();
    assert_eq!(
        names,
        [
            "allow",
            "www-authenticate",
            "retry-after",
            "location",
            "set-cookie"
        ]
    );
    assert_eq!(kept.get_all("set-cookie").iter().count(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_stalled_request_body_fails_with_408_after_the_idle_timeout() {
    use futures_util::StreamExt;
    let idle = Duration::from_secs(15);
    let chunks = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"part"))])
        .chain(futures_util::stream::pending());
    let body = GuardedBody::caller(Body::from_stream(chunks), 1024, idle);
    let began = Instant::now();
    let mut body = std::pin::pin!(body);
    let first = body.frame().await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "part");
    let err = body.frame().await.unwrap().unwrap_err();
    assert!(began.elapsed() >= idle);
    let api = err.downcast::<ApiError>().unwrap();
    assert_eq!(api.status(), 408);
    assert_eq!(api.code(), &ErrorCode::Timeout);
    assert_eq!(api.class(), Class::ClientError);
}

#[tokio::test]
async fn forwards_what_is_left_of_the_callers_deadline() {
    let server = upstream(Reply::ok()).await;
    let app = router(fender_stack(), base(server.addr()), RelayLimits::default());
    let request = http::Request::get("/left")
        .header("x-request-timeout-ms", "5000")
        .body(Body::empty())
        .unwrap();
    let (parts, _) = send(&app, request).await;
    assert_eq!(parts.status, 200);
    let received = server.received();
    let left: u64 = received[0].headers["x-request-timeout-ms"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(left <= 5000 && left > 4000, "{left}");
}
