//! The server layer's problem details over real sockets: negotiation, and every guarantee of
//! the envelope path (request ids, headers of the status, the 5xx rule, body limits, panics,
//! inner errors) in the other form.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, header};
use axum::routing::{get, post};
use bytes::Bytes;
use fender::envelope::{ErrorEnvelopeLayer, ProblemDetails};
use fender::{ApiError, ErrorCode};
use http::Request;
use http_body_util::Full;
use tower::ServiceBuilder;

use super::{PROBLEM, assert_problem, fetch_problem, get_accepting};
use crate::server::{assert_envelope, serve_app};
use crate::support::{self, get as get_req, get_with_id, send};

#[tokio::test]
async fn answers_problem_json_when_accept_prefers_it() {
    let server = serve_app().await;
    let client = support::client();
    for accept in [
        PROBLEM,
        "application/problem+json, application/json;q=0.9",
        "application/json;q=0.5, application/problem+json;q=0.8, */*;q=0.1",
    ] {
        let req = get_accepting(server.url("/code/NOT_FOUND"), accept);
        let (parts, body) = send(&client, req).await;
        let v = assert_problem(&parts, &body, 404, "NOT_FOUND");
        assert_eq!(v["title"], "resource not found");
        assert_eq!(v["detail"], "resource not found");
        assert_eq!(parts.headers[header::VARY], "accept", "{accept}");
    }
}

#[tokio::test]
async fn keeps_the_envelope_unless_problem_json_is_strictly_preferred() {
    let server = serve_app().await;
    let client = support::client();
    let (parts, body) = send(&client, get_req(server.url("/code/CONFLICT"))).await;
    assert_envelope(&parts, &body, 409, "CONFLICT");
    assert_eq!(parts.headers[header::VARY], "accept");
    for accept in [
        "*/*",
        "application/json",
        "application/*",
        "application/json, application/problem+json",
        "application/problem+json;q=0.5, application/json;q=0.5",
        "application/problem+json;q=0.4, application/json;q=0.5",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        "application/problem+json;q=7",
        "application/problem+json;q=0",
        "problem+json",
    ] {
        let req = get_accepting(server.url("/code/CONFLICT"), accept);
        let (parts, body) = send(&client, req).await;
        assert_envelope(&parts, &body, 409, "CONFLICT");
        assert_eq!(parts.headers[header::VARY], "accept", "{accept}");
    }
}

#[tokio::test]
async fn successes_are_untouched_whatever_accept_says() {
    let server = serve_app().await;
    let req = get_accepting(server.url("/ok"), PROBLEM);
    let (parts, body) = send(&support::client(), req).await;
    assert_eq!(parts.status, 200);
    assert_eq!(&body[..], b"fine");
    assert!(parts.headers.get(header::VARY).is_none());
    assert!(parts.headers.get("x-request-id").is_some());
}

/// [`app`]'s routes behind a layer answering as `mode` says, with a type base of its own.
fn app_with(mode: ProblemDetails) -> Router {
    Router::new()
        .route(
            "/conflict",
            get(|| async { Err::<(), _>(ApiError::conflict("order 9 has shipped")) }),
        )
        .layer(
            ErrorEnvelopeLayer::new()
                .problem_details(mode)
                .problem_type_base("https://api.example.com/problems/"),
        )
}

#[tokio::test]
async fn always_answers_problem_json_with_the_configured_type_base_and_no_vary() {
    let server = fender_testkit::serve_service(app_with(ProblemDetails::Always)).await;
    let client = support::client();
    for req in [
        get_req(server.url("/conflict")),
        get_accepting(server.url("/conflict"), "application/json"),
    ] {
        let (parts, body) = send(&client, req).await;
        assert_eq!(parts.headers[header::CONTENT_TYPE], PROBLEM);
        assert!(parts.headers.get(header::VARY).is_none());
        let v = support::json(&body);
        assert_eq!(v["type"], "https://api.example.com/problems/conflict");
        assert_eq!(v["code"], "CONFLICT");
        assert_eq!(v["detail"], "order 9 has shipped");
    }
}

#[tokio::test]
async fn never_answers_the_envelope_even_to_a_client_asking_for_problem_json() {
    let server = fender_testkit::serve_service(app_with(ProblemDetails::Never)).await;
    let req = get_accepting(server.url("/conflict"), PROBLEM);
    let (parts, body) = send(&support::client(), req).await;
    assert_envelope(&parts, &body, 409, "CONFLICT");
    assert!(parts.headers.get(header::VARY).is_none());
}

#[tokio::test]
async fn a_vary_the_inner_service_set_is_kept_and_gains_accept() {
    let app = Router::new()
        .route(
            "/teapot",
            get(|| async {
                (
                    StatusCode::IM_A_TEAPOT,
                    [(header::VARY, "accept-encoding")],
                    "",
                )
            }),
        )
        .layer(ErrorEnvelopeLayer::new());
    let (parts, body) = fetch_problem(app, "/teapot").await;
    assert_problem(&parts, &body, 418, "INVALID_REQUEST");
    let vary: Vec<_> = parts.headers.get_all(header::VARY).iter().collect();
    assert_eq!(vary, ["accept-encoding", "accept"]);
}

#[tokio::test]
async fn request_ids_are_the_same_in_header_request_id_and_instance() {
    let server = serve_app().await;
    let client = support::client();
    // A generated id is a UUID v7: `instance` is its URN.
    let (parts, body) = send(&client, get_accepting(server.url("/validation"), PROBLEM)).await;
    let v = assert_problem(&parts, &body, 422, "VALIDATION_ERROR");
    assert!(crate::server::is_uuid_v7(v["request_id"].as_str().unwrap()));
    assert_eq!(v["details"]["fields"][1]["field"], "name");
    assert_eq!(
        v["detail"],
        "email must be a valid email address; name must not be empty"
    );
    // A caller's id that is no UUID is kept, and only in `request_id`.
    let mut req = get_with_id(server.url("/validation"), "checkout-991");
    req.headers_mut()
        .insert(header::ACCEPT, PROBLEM.parse().unwrap());
    let (parts, body) = send(&client, req).await;
    let v = assert_problem(&parts, &body, 422, "VALIDATION_ERROR");
    assert_eq!(v["request_id"], "checkout-991");
}

#[tokio::test]
async fn retry_after_allow_and_www_authenticate_are_kept() {
    let server = serve_app().await;
    let client = support::client();
    let (parts, body) = send(&client, get_accepting(server.url("/throttled"), PROBLEM)).await;
    let v = assert_problem(&parts, &body, 429, "RATE_LIMIT_EXCEEDED");
    assert_eq!(v["detail"], "slow down");
    assert_eq!(parts.headers[header::RETRY_AFTER], "12");

    let (parts, body) = send(
        &client,
        get_accepting(server.url("/code/SERVICE_UNAVAILABLE"), PROBLEM),
    )
    .await;
    assert_problem(&parts, &body, 503, "SERVICE_UNAVAILABLE");
    assert_eq!(parts.headers[header::RETRY_AFTER], "7");

    let (parts, body) = send(&client, get_accepting(server.url("/users"), PROBLEM)).await;
    let v = assert_problem(&parts, &body, 405, "INVALID_REQUEST");
    assert_eq!(v["detail"], "method not allowed");
    assert_eq!(
        v["status"], 405,
        "the status is the response's, not the code's"
    );
    assert_eq!(parts.headers[header::ALLOW], "POST");

    let (parts, body) = send(&client, get_accepting(server.url("/auth"), PROBLEM)).await;
    assert_problem(&parts, &body, 401, "UNAUTHORIZED");
    assert_eq!(
        parts.headers[header::WWW_AUTHENTICATE],
        "Bearer realm=\"api\""
    );
}

#[tokio::test]
async fn a_5xx_problem_never_shows_internal_text() {
    let server = serve_app().await;
    let client = support::client();
    let (parts, body) = send(&client, get_accepting(server.url("/plain-500"), PROBLEM)).await;
    let v = assert_problem(&parts, &body, 500, "INTERNAL_ERROR");
    assert_eq!(v["detail"], "internal server error");
    assert_eq!(v["details"], serde_json::json!({}));
    assert!(!String::from_utf8_lossy(&body).contains("hunter2"));

    let secret = Router::new()
        .route(
            "/db",
            get(|| async {
                Err::<(), _>(
                    ApiError::bad_gateway("pg at 10.0.0.3: password authentication failed")
                        .with_detail("dsn", "postgres://app@10.0.0.3"),
                )
            }),
        )
        .layer(ErrorEnvelopeLayer::new());
    let (parts, body) = fetch_problem(secret, "/db").await;
    let v = assert_problem(&parts, &body, 502, "BAD_GATEWAY");
    assert_eq!(v["detail"], "upstream service error");
    assert!(!String::from_utf8_lossy(&body).contains("10.0.0.3"));
}

#[tokio::test]
async fn a_panicking_handler_gives_a_500_problem_and_the_server_lives_on() {
    let server = serve_app().await;
    let client = support::client();
    let (parts, body) = send(&client, get_accepting(server.url("/panic"), PROBLEM)).await;
    let v = assert_problem(&parts, &body, 500, "INTERNAL_ERROR");
    assert_eq!(v["detail"], "internal server error");
    assert!(!String::from_utf8_lossy(&body).contains("secret"));
    let (parts, _) = send(&client, get_req(server.url("/ok"))).await;
    assert_eq!(parts.status, 200);
}

#[tokio::test]
async fn a_body_over_the_limit_gives_a_413_problem() {
    let app = Router::new()
        .route(
            "/upload",
            post(|body: Bytes| async move { body.len().to_string() }),
        )
        .layer(DefaultBodyLimit::max(16))
        .layer(ErrorEnvelopeLayer::new());
    let server = fender_testkit::serve_service(app).await;
    let req = Request::post(server.url("/upload"))
        .header(header::ACCEPT, PROBLEM)
        .body(Full::new(Bytes::from(vec![b'x'; 1024])))
        .unwrap();
    let (parts, body) = send(&support::client(), req).await;
    let v = assert_problem(&parts, &body, 413, "INVALID_REQUEST");
    assert!(!v["detail"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn an_inner_error_becomes_a_problem_with_its_retry_after() {
    let shedding = ServiceBuilder::new()
        .layer(ErrorEnvelopeLayer::new())
        .service_fn(|_req: Request<hyper::body::Incoming>| async {
            Err::<http::Response<Full<Bytes>>, _>(tower::load_shed::error::Overloaded::new())
        });
    let server = fender_testkit::serve_service(shedding).await;
    let (parts, body) = send(&support::client(), get_accepting(server.url("/"), PROBLEM)).await;
    let v = assert_problem(&parts, &body, 503, "SERVICE_UNAVAILABLE");
    assert_eq!(v["detail"], "the service is overloaded");
    assert_eq!(parts.headers[header::RETRY_AFTER], "1");
}

#[tokio::test]
async fn an_inner_problem_body_is_read_like_an_envelope() {
    let inner_problem = r#"{"type":"urn:fender:error:conflict","title":"x","status":409,
        "detail":"version 3 is stale","code":"CONFLICT","details":{"current":4},
        "request_id":"upstream-id","timestamp":"2020-01-01T00:00:00.000Z"}"#;
    let app = Router::new()
        .route(
            "/stale",
            get(move || async move {
                (
                    StatusCode::CONFLICT,
                    [(header::CONTENT_TYPE, PROBLEM)],
                    inner_problem,
                )
            }),
        )
        .layer(ErrorEnvelopeLayer::new());
    let server = fender_testkit::serve_service(app).await;
    let client = support::client();
    // Either form out, from the same inner problem: code, message and details kept; the id
    // and timestamp are this request's and this layer's.
    let (parts, body) = send(&client, get_req(server.url("/stale"))).await;
    let v = assert_envelope(&parts, &body, 409, "CONFLICT");
    assert_eq!(v["error"]["message"], "version 3 is stale");
    assert_eq!(v["error"]["details"]["current"], 4);
    assert_ne!(v["error"]["request_id"], "upstream-id");
    let (parts, body) = send(&client, get_accepting(server.url("/stale"), PROBLEM)).await;
    let v = assert_problem(&parts, &body, 409, "CONFLICT");
    assert_eq!(v["detail"], "version 3 is stale");
    assert_eq!(v["title"], "the resource is in a conflicting state");
    assert_ne!(v["timestamp"], "2020-01-01T00:00:00.000Z");
}

#[tokio::test]
async fn a_readiness_failure_is_answered_as_a_problem_on_the_next_call() {
    #[derive(Clone)]
    struct NeverReady;
    impl tower::Service<Request<hyper::body::Incoming>> for NeverReady {
        type Response = http::Response<Full<Bytes>>;
        type Error = tower::load_shed::error::Overloaded;
        type Future = std::future::Ready<Result<Self::Response, Self::Error>>;
        fn poll_ready(
            &mut self,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Err(tower::load_shed::error::Overloaded::new()))
        }
        fn call(&mut self, _req: Request<hyper::body::Incoming>) -> Self::Future {
            unreachable!("never ready, never called")
        }
    }
    let stack = ErrorEnvelopeLayer::new().problem_details(ProblemDetails::Always);
    let server = fender_testkit::serve_service(tower::Layer::layer(&stack, NeverReady)).await;
    let (parts, body) = send(&support::client(), get_req(server.url("/"))).await;
    assert_problem(&parts, &body, 503, "SERVICE_UNAVAILABLE");
}

#[test]
#[should_panic(expected = "problem_type_base")]
fn a_type_base_with_a_space_is_refused_where_it_is_set() {
    let _ = ErrorEnvelopeLayer::new().problem_type_base("https://example.com/my problems/");
}

#[test]
fn every_code_has_its_own_type_and_a_fixed_title() {
    let mut types = std::collections::HashSet::new();
    for code in ErrorCode::ALL {
        let problem = ApiError::from(code.clone()).to_problem();
        assert!(
            types.insert(problem.problem_type.clone().unwrap()),
            "{code}"
        );
        assert_eq!(problem.title.as_deref(), Some(code.generic_message()));
        let again = ApiError::from(code.clone())
            .with_message("other words")
            .to_problem();
        assert_eq!(
            again.title, problem.title,
            "the title does not follow the message"
        );
    }
}
