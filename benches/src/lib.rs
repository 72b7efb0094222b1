//! Benchmarks for fender live under `benches/` and run with `cargo bench`; this library holds
//! the code they share. `BENCHMARKS.md` at the root of the repository says what each one
//! measures and gives the figures of one run.

pub mod sim;

use std::convert::Infallible;
use std::hint::black_box;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Full};

/// The JSON body of the bare handler's answer: one small record.
pub const USER_JSON: &[u8] = br#"{"id":7,"name":"Ada Lovelace","email":"ada@example.com"}"#;

/// The bare service of every overhead benchmark, as a `tower::service_fn` handler: it reads the
/// request body to its end and answers 200 with `content-type: application/json` and
/// [`USER_JSON`], like a minimal real handler.
pub async fn handler<B: Body>(req: Request<B>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = req.into_body().collect().await.ok().map(|c| c.to_bytes());
    black_box(body);
    let mut res = Response::new(Full::new(Bytes::from_static(USER_JSON)));
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(res)
}

/// A GET request with `body` (a cheap clone of the bytes).
pub fn request(body: &Bytes) -> Request<Full<Bytes>> {
    Request::get("http://upstream.test/users/7")
        .body(Full::new(body.clone()))
        .expect("a valid request")
}

/// A current-thread tokio runtime with timers and IO, the one every criterion group runs on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The criterion settings of every overhead benchmark: 1 s of warm-up, 3 s of measurement
/// (criterion's `--warm-up-time` and `--measurement-time` override them).
pub fn criterion_config() -> criterion::Criterion {
    criterion::Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3))
}
