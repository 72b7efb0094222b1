//! Allocations per call of every contender of the `overhead` benchmark, in the same shape,
//! counted by a global allocator that counts; plus the envelope layers and the README's stacks
//! around the same inner service.
//!
//! Prints one line per contender: allocations and bytes allocated per call, over 10,000 calls
//! after 1,000 of warm-up, through one long-lived handle on a current-thread runtime, and the
//! size of the response future (what every `.await` on it moves).

mod peers;

use std::alloc::System;
use std::fmt::Debug;
use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use fender::ClientLayer;
use fender::circuit_breaker::CircuitBreakerLayer;
use fender::envelope::{DecodeEnvelopeLayer, ErrorEnvelopeLayer};
use fender::retry::RetryLayer;
use fender_benches::runtime;
use http::{Request, Response};
use http_body_util::Full;
use peers::{
    answer, contract_headers, ping, ping_with, stamped, tower_resilience_retry, tower_retry,
    tower_retry_stamped, with_failsafe, with_recloser, with_tower_resilience_breaker,
};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const WARM_UP: u64 = 1_000;
const CALLS: u64 = 10_000;

/// Allocations and bytes per call of `svc` for requests made by `make`.
fn count<S, B, F>(rt: &tokio::runtime::Runtime, name: &str, mut svc: S, make: F)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: Debug,
    F: Fn() -> Request<Full<Bytes>>,
{
    let (allocations, bytes, size) = rt.block_on(async {
        let future = svc.ready().await.unwrap().call(make());
        let size = std::mem::size_of_val(&future);
        black_box(future.await.unwrap());
        for _ in 0..WARM_UP {
            black_box(svc.ready().await.unwrap().call(make()).await.unwrap());
        }
        let region = Region::new(GLOBAL);
        for _ in 0..CALLS {
            black_box(svc.ready().await.unwrap().call(make()).await.unwrap());
        }
        let stats = region.change();
        (
            (stats.allocations + stats.reallocations) as u64,
            (stats.bytes_allocated + stats.bytes_reallocated.max(0) as usize) as u64,
            size,
        )
    });
    println!(
        "{name:<32} {:>6.2} allocations/call {:>8.1} bytes/call {size:>5} bytes of future",
        allocations as f64 / CALLS as f64,
        bytes as f64 / CALLS as f64
    );
}

fn main() {
    // `cargo bench` passes `--bench`; a filter, when given, selects rows by name.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let rt = runtime();
    let run = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    macro_rules! rows {
        ($($name:expr => $svc:expr, $make:expr;)*) => {
            $( if run($name) { count(&rt, $name, $svc, $make); } )*
        };
    }
    let body = |size: usize| {
        let bytes = Bytes::from(vec![7u8; size]);
        move || ping_with(bytes.clone())
    };
    rows! {
        "retry/bare" => answer(), ping;
        "retry/fender" => RetryLayer::new().layer(answer()), ping;
        "retry/tower" => tower_retry(answer()), ping;
        "retry/tower, x-attempt-count" => tower_retry_stamped(answer()), ping;
        "retry/tower-resilience" => tower_resilience_retry().layer(answer()), ping;
        "retry/x-attempt-count only" => stamped(answer()), ping;
        "retry body/fender/empty" => RetryLayer::new().layer(answer()), body(0);
        "retry body/tower/empty" => tower_retry(answer()), body(0);
        "retry body/fender/64 KiB" => RetryLayer::new().layer(answer()), body(64 * 1024);
        "retry body/tower/64 KiB" => tower_retry(answer()), body(64 * 1024);
        "breaker/bare" => answer(), ping;
        "breaker/fender" => CircuitBreakerLayer::new().layer(answer()), ping;
        "breaker/failsafe" => with_failsafe(answer()), ping;
        "breaker/recloser" => with_recloser(answer()), ping;
        "breaker/tower-resilience" => with_tower_resilience_breaker(answer()), ping;
        "envelope/server" => ErrorEnvelopeLayer::new().layer(answer()), ping;
        "envelope/client" => DecodeEnvelopeLayer::new().layer(answer()), ping;
        "stack/client" => ServiceBuilder::new()
            .layer(DecodeEnvelopeLayer::new())
            .layer(RetryLayer::new())
            .layer(CircuitBreakerLayer::new())
            .timeout(Duration::from_secs(5))
            .service(answer()), ping;
        "stack/server" => ServiceBuilder::new()
            .layer(ErrorEnvelopeLayer::new())
            .timeout(Duration::from_secs(2))
            .service(answer()), ping;
        "client/fender" => ClientLayer::new().layer(answer()), ping;
        "client/contract headers only" => contract_headers(answer()), ping;
        "client/fender, absolute URI" => ClientLayer::new().layer(answer()), || {
            let mut req = ping();
            *req.uri_mut() = http::Uri::from_static("http://127.0.0.1/");
            req
        };
        // What the per-attempt timer costs a call that is answered at once.
        "client no attempt timeout/fender" => ClientLayer::new().no_attempt_timeout()
            .layer(answer()), ping;
        // A request naming its host only in a `Host` header, as a proxy's or a test's may.
        "client via Host header/fender" => ClientLayer::new().layer(answer()), || {
            let mut req = ping();
            req.headers_mut()
                .insert(http::header::HOST, http::HeaderValue::from_static("127.0.0.1"));
            req
        };
        // The `envelope` benchmark's shape: the handler that reads the body and answers JSON,
        // a `GET` of a parsed absolute URI; with and without a browser's `Accept`.
        "envelope handler/bare" => tower::service_fn(fender_benches::handler::<Full<Bytes>>),
            || fender_benches::request(&Bytes::new());
        "envelope handler/server" => ErrorEnvelopeLayer::new()
            .layer(tower::service_fn(fender_benches::handler::<Full<Bytes>>)),
            || fender_benches::request(&Bytes::new());
        // Only the request id's part of the job, by tower-http, with the same UUID v7 generator.
        "envelope handler/tower-http request id" => ServiceBuilder::new()
            .layer(tower_http::request_id::SetRequestIdLayer::x_request_id(
                fender::request_id::MakeRequestUuidV7,
            ))
            .layer(tower_http::request_id::PropagateRequestIdLayer::x_request_id())
            .service(tower::service_fn(fender_benches::handler::<Full<Bytes>>)),
            || fender_benches::request(&Bytes::new());
        "envelope handler/bare, Accept" => tower::service_fn(fender_benches::handler::<Full<Bytes>>),
            browser_get;
        "envelope handler/server, Accept" => ErrorEnvelopeLayer::new()
            .layer(tower::service_fn(fender_benches::handler::<Full<Bytes>>)),
            browser_get;
        // The same with the headers curl sends, as a request off the wire has: the id's insert
        // finds a header map that is already allocated.
        "envelope wire headers/bare" => tower::service_fn(fender_benches::handler::<Full<Bytes>>),
            curl_get;
        "envelope wire headers/server" => ErrorEnvelopeLayer::new()
            .layer(tower::service_fn(fender_benches::handler::<Full<Bytes>>)),
            curl_get;
    }
}

/// The handler's `GET` with the `Accept` a browser sends.
fn browser_get() -> Request<Full<Bytes>> {
    let mut req = fender_benches::request(&Bytes::new());
    req.headers_mut().insert(
        http::header::ACCEPT,
        http::HeaderValue::from_static(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
    );
    req
}

/// The handler's `GET` with the headers curl sends: `host`, `user-agent`, `accept: */*`.
fn curl_get() -> Request<Full<Bytes>> {
    let mut req = fender_benches::request(&Bytes::new());
    let headers = req.headers_mut();
    headers.insert(
        http::header::HOST,
        http::HeaderValue::from_static("upstream.test"),
    );
    headers.insert(
        http::header::USER_AGENT,
        http::HeaderValue::from_static("curl/8.5.0"),
    );
    headers.insert(http::header::ACCEPT, http::HeaderValue::from_static("*/*"));
    req
}
