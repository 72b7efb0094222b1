//! End to end on loopback: requests per second through real sockets, bare against the fender
//! stacks, in one process on 127.0.0.1.
//!
//! - **Server side.** An axum app with one route answering a small JSON body, served twice on
//!   127.0.0.1:0: bare, and behind the server stack of the README (`ErrorEnvelopeLayer` → a 2 s
//!   timeout). A load generator written with hyper's HTTP/1 client connections (over
//!   hyper-util's tokio IO) keeps `connections` connections busy, each sending the next GET as
//!   soon as the previous response body has been read.
//! - **Client side.** One fast upstream (the bare app) and the same load shape, driven through a
//!   bare hyper-util `Client`, then through the composed client stack as the README builds it
//!   (`ServiceBuilder::new().layer(ClientLayer::new())` around the same kind of `Client`),
//!   `connections` tasks sharing the client.
//!
//! Rounds alternate (A B, B A, A B, …) so that drift in the machine's load hits both sides alike;
//! each round runs for a fixed time after a short warm-up. It prints requests per second of every
//! round, the medians and the ratio stacked / bare (the median of the per-round-pair ratios).
//!
//! Settings, from the environment: `LOOPBACK_ROUNDS` (rounds per variant, default 7),
//! `LOOPBACK_SECS` (seconds per round, default 1.5), `LOOPBACK_CONNECTIONS` (default 8),
//! `LOOPBACK_THREADS` (tokio worker threads, default the number of CPUs), `LOOPBACK_SIDE`
//! (`server`, `client` or `both`, the default), and `LOOPBACK_CLIENT`: which `ClientLayer` the
//! client side measures, `new` (the default, as the README builds it), or `new` less one part,
//! to see what that part costs end to end: `no-attempt-timeout`, `no-throttle`, `no-breaker`,
//! `no-request-id`. Two more names measure against the floor any client keeping the contract
//! stands on: the bare `Client` behind tower-http's `SetRequestIdLayer` (a fresh UUID v7 in
//! `x-request-id`) and `SetRequestHeaderLayer` (`x-attempt-count: 1`), the two headers the
//! contract puts on every request, which the server then parses too. `headers-only` runs bare
//! against that floor, `floor-vs-new` the floor against `ClientLayer::new()`. The default run
//! takes about 50 s.
//!
//! For profiling one variant on its own (`perf record` of the whole process sees both),
//! `LOOPBACK_ONLY=bare` or `LOOPBACK_ONLY=fender` runs only that variant of each side, for
//! `LOOPBACK_ROUNDS` rounds, and prints its requests per second.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use fender::ClientLayer;
use fender::envelope::{DecodeEnvelopeLayer, ErrorEnvelopeLayer};
use fender::headers::X_ATTEMPT_COUNT;
use fender::request_id::MakeRequestUuidV7;
use fender_benches::USER_JSON;
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Body;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_http::request_id::SetRequestIdLayer;
use tower_http::set_header::SetRequestHeaderLayer;

struct Settings {
    rounds: usize,
    round: Duration,
    connections: usize,
    threads: usize,
    server: bool,
    client: bool,
    client_layer: String,
    only: Option<Variant>,
}

/// The one variant `LOOPBACK_ONLY` runs, for profiling.
#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Bare,
    Fender,
}

impl Settings {
    fn from_env() -> Self {
        fn var<T: std::str::FromStr>(name: &str, default: T) -> T {
            match std::env::var(name) {
                Ok(v) => v
                    .parse()
                    .unwrap_or_else(|_| panic!("{name} must be a number, got {v:?}")),
                Err(_) => default,
            }
        }
        let side = var("LOOPBACK_SIDE", String::from("both"));
        assert!(
            ["server", "client", "both"].contains(&side.as_str()),
            "LOOPBACK_SIDE must be server, client or both, got {side:?}"
        );
        Settings {
            rounds: var("LOOPBACK_ROUNDS", 7usize).max(1),
            round: Duration::from_secs_f64(var("LOOPBACK_SECS", 1.5f64)),
            connections: var("LOOPBACK_CONNECTIONS", 8usize).max(1),
            threads: var(
                "LOOPBACK_THREADS",
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )
            .max(1),
            server: side != "client",
            client: side != "server",
            client_layer: var("LOOPBACK_CLIENT", String::from("new")),
            only: match std::env::var("LOOPBACK_ONLY").as_deref() {
                Err(_) => None,
                Ok("bare") => Some(Variant::Bare),
                Ok("fender") => Some(Variant::Fender),
                Ok(other) => panic!("LOOPBACK_ONLY must be bare or fender, got {other:?}"),
            },
        }
    }
}

async fn user() -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from_static(USER_JSON)));
    res.headers_mut()
        .insert(CONTENT_TYPE, "application/json".parse().unwrap());
    res
}

fn app() -> Router {
    Router::new().route("/users/7", get(user))
}

/// Serves `router` on 127.0.0.1:0 in the background; the address.
async fn serve(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// `connections` connections to `addr`, each sending GETs back to back until the round ends;
/// requests per second.
async fn drive_server(addr: SocketAddr, connections: usize, length: Duration) -> u64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (done, stop) = (done.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            while !stop.load(Ordering::Relaxed) {
                sender.ready().await.unwrap();
                let req = Request::get("/users/7")
                    .header(HOST, "127.0.0.1")
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                let res = sender.send_request(req).await.unwrap();
                assert_eq!(res.status(), StatusCode::OK);
                res.into_body().collect().await.unwrap();
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let rate = measure(&done, length).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    rate
}

/// Waits a short warm-up, then counts what `done` gains over `length`; requests per second.
async fn measure(done: &AtomicU64, length: Duration) -> u64 {
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (start, at) = (done.load(Ordering::Relaxed), Instant::now());
    tokio::time::sleep(length).await;
    let counted = done.load(Ordering::Relaxed) - start;
    let secs = at.elapsed().as_secs_f64();
    (counted as f64 / secs) as u64
}

/// `connections` tasks sending GETs to `uri` through clones of `client` until the round ends;
/// requests per second.
async fn drive_client<S, B>(client: S, uri: Uri, connections: usize, length: Duration) -> u64
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
    B: Body + Send,
    B::Data: Send,
    B::Error: std::fmt::Debug,
{
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (done, stop, client, uri) = (done.clone(), stop.clone(), client.clone(), uri.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let req = Request::get(uri.clone())
                    .body(Full::new(Bytes::new()))
                    .unwrap();
                let res = client.clone().oneshot(req).await.unwrap();
                assert_eq!(res.status(), StatusCode::OK);
                res.into_body().collect().await.unwrap();
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let rate = measure(&done, length).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    rate
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Runs `rounds` alternating rounds of `a` and `b`, prints them and returns the summary line;
/// with `only`, runs that one of the two and returns its line alone.
async fn compare<A, B, FA, FB>(
    title: &str,
    rounds: usize,
    only: Option<Variant>,
    mut a: A,
    mut b: B,
) -> String
where
    A: FnMut() -> FA,
    B: FnMut() -> FB,
    FA: Future<Output = u64>,
    FB: Future<Output = u64>,
{
    if let Some(variant) = only {
        let mut rates = Vec::new();
        for _ in 0..rounds {
            let rate = match variant {
                Variant::Bare => a().await,
                Variant::Fender => b().await,
            } as f64;
            rates.push(rate);
        }
        let name = if variant == Variant::Bare {
            "bare"
        } else {
            "fender"
        };
        let rate = median(&mut rates);
        println!("{title}: {name} only, median of {rounds} rounds: {rate:.0} req/s\n");
        return format!("| {title}, {name} only | {rate:.0} | | |");
    }
    println!("{title}");
    println!("| round | bare req/s | fender req/s | fender / bare |");
    println!("| ---: | ---: | ---: | ---: |");
    let (mut bare, mut stacked, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (x, y) = if round % 2 == 0 {
            let x = a().await;
            (x, b().await)
        } else {
            let y = b().await;
            (a().await, y)
        };
        let ratio = y as f64 / x as f64;
        println!("| {} | {x} | {y} | {:.1}% |", round + 1, ratio * 100.0);
        bare.push(x as f64);
        stacked.push(y as f64);
        ratios.push(ratio);
    }
    let (bare, stacked, ratio) = (
        median(&mut bare),
        median(&mut stacked),
        median(&mut ratios) * 100.0,
    );
    println!("| median | {bare:.0} | {stacked:.0} | {ratio:.1}% |\n");
    format!("| {title} | {bare:.0} | {stacked:.0} | {ratio:.1}% |")
}

/// The client stack `LOOPBACK_CLIENT` names.
fn client_layer_named(name: &str) -> ClientLayer {
    let layer = ClientLayer::new();
    match name {
        "new" => layer,
        "no-attempt-timeout" => layer.no_attempt_timeout(),
        "no-throttle" => layer.no_throttle(),
        "no-breaker" => layer.no_breaker(),
        "no-request-id" => layer.decode(DecodeEnvelopeLayer::new().generate_request_id(false)),
        other => panic!(
            "LOOPBACK_CLIENT must be new, no-attempt-timeout, no-throttle, no-breaker, \
             no-request-id, headers-only or floor-vs-new, got {other:?}"
        ),
    }
}

fn main() {
    let settings = Settings::from_env();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.threads)
        .enable_all()
        .build()
        .unwrap();
    let Settings {
        rounds,
        round,
        connections,
        threads,
        server,
        client,
        client_layer,
        only,
    } = settings;
    // `headers-only` measures no `ClientLayer`, `floor-vs-new` the default one.
    let layer = match client_layer.as_str() {
        "headers-only" => None,
        "floor-vs-new" => Some(ClientLayer::new()),
        name => Some(client_layer_named(name)),
    };
    println!(
        "loopback: {rounds} rounds of {round:?} per variant, {connections} connections, \
         {threads} tokio worker threads\n"
    );
    let summaries = rt.block_on(async move {
        let mut summaries = Vec::new();
        let bare_addr = serve(app()).await;
        if server {
            let stacked_addr = serve(
                app().layer(
                    ServiceBuilder::new()
                        .layer(ErrorEnvelopeLayer::new())
                        .timeout(Duration::from_secs(2)),
                ),
            )
            .await;
            let line = compare(
                "server: bare axum vs axum behind ErrorEnvelope + Timeout",
                rounds,
                only,
                || drive_server(bare_addr, connections, round),
                || drive_server(stacked_addr, connections, round),
            )
            .await;
            summaries.push(line);
        }
        if client {
            let uri: Uri = format!("http://{bare_addr}/users/7").parse().unwrap();
            let bare: Client<HttpConnector, Full<Bytes>> =
                Client::builder(TokioExecutor::new()).build_http();
            let floor = ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuidV7))
                .layer(SetRequestHeaderLayer::overriding(
                    X_ATTEMPT_COUNT,
                    HeaderValue::from_static("1"),
                ))
                .service(Client::builder(TokioExecutor::new()).build_http());
            let line = match layer {
                None => compare(
                    "client: bare hyper-util Client vs the same with the contract's two headers",
                    rounds,
                    only,
                    || drive_client(bare.clone(), uri.clone(), connections, round),
                    || drive_client(floor.clone(), uri.clone(), connections, round),
                )
                .await,
                Some(layer) => {
                    // As the README builds it.
                    let stacked = ServiceBuilder::new()
                        .layer(layer)
                        .service(Client::builder(TokioExecutor::new()).build_http());
                    if client_layer == "floor-vs-new" {
                        compare(
                            "client: the contract's two headers on a bare Client vs ClientLayer",
                            rounds,
                            only,
                            || drive_client(floor.clone(), uri.clone(), connections, round),
                            || drive_client(stacked.clone(), uri.clone(), connections, round),
                        )
                        .await
                    } else {
                        let title = if client_layer == "new" {
                            String::from("client: bare hyper-util Client vs ClientLayer")
                        } else {
                            format!("client: bare hyper-util Client vs ClientLayer, {client_layer}")
                        };
                        compare(
                            &title,
                            rounds,
                            only,
                            || drive_client(bare.clone(), uri.clone(), connections, round),
                            || drive_client(stacked.clone(), uri.clone(), connections, round),
                        )
                        .await
                    }
                }
            };
            summaries.push(line);
        }
        summaries
    });
    println!("| side | bare req/s (median) | fender req/s (median) | fender / bare |");
    println!("| --- | ---: | ---: | ---: |");
    for line in summaries {
        println!("{line}");
    }
}
