//! Shared helpers: an upstream that answers what each request asks for, and a wrapper that
//! counts how often the inner service is polled and called.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use fender::BoxError;
use http::{Request, Response, StatusCode};
use tower::{Service, ServiceExt};

pub(crate) const SEQ: Ordering = Ordering::SeqCst;

/// What the upstream should do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reply {
    Status(u16),
    /// The connection is reset: an io error.
    Reset,
    /// Answers the status after a delay.
    Slow(u64, u16),
    /// Never answers.
    Hang,
    /// Panics inside the upstream's `call`, before any future exists.
    PanicInCall,
}

pub(crate) fn req(reply: Reply) -> Request<Reply> {
    Request::new(reply)
}

pub(crate) fn host_req(host: &str, reply: Reply) -> Request<Reply> {
    let mut req = Request::new(reply);
    *req.uri_mut() = format!("http://{host}/").parse().unwrap();
    req
}

/// An upstream that answers each request as its body says, and counts its calls.
#[derive(Debug, Clone, Default)]
pub(crate) struct Echo {
    pub(crate) calls: Arc<AtomicUsize>,
}

impl Echo {
    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Service<Request<Reply>> for Echo {
    type Response = Response<()>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<()>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Reply>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let reply = *req.body();
        if reply == Reply::PanicInCall {
            panic!("the upstream panicked in call");
        }
        Box::pin(async move {
            match reply {
                Reply::Status(s) => Ok(status(s)),
                Reply::Reset => {
                    Err(std::io::Error::from(std::io::ErrorKind::ConnectionReset).into())
                }
                Reply::Slow(ms, s) => {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Ok(status(s))
                }
                Reply::Hang | Reply::PanicInCall => std::future::pending().await,
            }
        })
    }
}

pub(crate) fn status(s: u16) -> Response<()> {
    let mut res = Response::new(());
    *res.status_mut() = StatusCode::from_u16(s).unwrap();
    res
}

/// Counts `poll_ready` and `call` on the wrapped service.
#[derive(Debug, Clone)]
pub(crate) struct Counting<S> {
    pub(crate) inner: S,
    pub(crate) polls: Arc<AtomicUsize>,
    pub(crate) calls: Arc<AtomicUsize>,
}

impl<S> Counting<S> {
    pub(crate) fn new(inner: S) -> Self {
        Counting {
            inner,
            polls: Arc::default(),
            calls: Arc::default(),
        }
    }
}

impl<S: Service<R>, R> Service<R> for Counting<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> S::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.call(req)
    }
}

/// One call through a clone of `svc`.
pub(crate) async fn send<S>(svc: &S, reply: Reply) -> Result<Response<()>, BoxError>
where
    S: Service<Request<Reply>, Response = Response<()>, Error = BoxError> + Clone,
{
    svc.clone().oneshot(req(reply)).await
}

/// The `CircuitOpen` inside an error, panicking with the error if it is something else.
pub(crate) fn open_of(err: &BoxError) -> fender::circuit_breaker::CircuitOpen {
    *err.downcast_ref::<fender::circuit_breaker::CircuitOpen>()
        .unwrap_or_else(|| panic!("expected CircuitOpen, got {err}"))
}

pub(crate) fn ok() -> Reply {
    Reply::Status(200)
}

pub(crate) fn down() -> Reply {
    Reply::Status(503)
}

/// Starts a call (admission happens here) and returns its future unpolled.
pub(crate) async fn start<S>(svc: &S, reply: Reply) -> S::Future
where
    S: Service<Request<Reply>, Error = BoxError> + Clone,
{
    let mut svc = svc.clone();
    svc.ready().await.unwrap();
    svc.call(req(reply))
}

/// Trips a default breaker with five 503s.
pub(crate) async fn trip<S>(svc: &S)
where
    S: Service<Request<Reply>, Response = Response<()>, Error = BoxError> + Clone,
{
    for _ in 0..5 {
        let res = send(svc, down()).await.unwrap();
        assert_eq!(res.status(), 503);
    }
}

/// Trips, waits and closes a default breaker, leaving it at the start of its ramp.
pub(crate) async fn close_into_ramp<S>(svc: &S)
where
    S: Service<Request<Reply>, Response = Response<()>, Error = BoxError> + Clone,
{
    trip(svc).await;
    tokio::time::advance(Duration::from_secs(30)).await;
    for _ in 0..3 {
        send(svc, ok()).await.unwrap();
    }
}

/// Log lines written while a capture is installed on the current thread.
#[derive(Clone, Default)]
pub(crate) struct Logs(Arc<Mutex<Vec<u8>>>);

thread_local! {
    /// The capture of the current thread, if one is installed.
    static CAPTURE: std::cell::RefCell<Option<Logs>> = const { std::cell::RefCell::new(None) };
}

/// Where the test binary's one subscriber writes: the current thread's capture, or nowhere.
#[derive(Clone, Copy)]
struct ToCapture;

impl std::io::Write for ToCapture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| {
            if let Some(logs) = c.borrow_mut().as_mut() {
                logs.0.lock().unwrap().extend_from_slice(bytes);
            }
        });
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Ends a capture when dropped.
pub(crate) struct CaptureGuard(());

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        CAPTURE.with(|c| c.borrow_mut().take());
    }
}

impl Logs {
    /// Captures every tracing event of the current thread until the guard is dropped.
    ///
    /// One global subscriber serves the whole test binary and writes to the capture of the
    /// thread an event happens on. A per-test default subscriber would race with the other
    /// tests: a callsite first hit on a thread without one could be cached as never enabled,
    /// and the capture would see nothing.
    pub(crate) fn capture() -> (Logs, CaptureGuard) {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            let subscriber = tracing_subscriber::fmt()
                .with_writer(|| ToCapture)
                .with_ansi(false)
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber in this test binary");
        });
        let logs = Logs::default();
        CAPTURE.with(|c| *c.borrow_mut() = Some(logs.clone()));
        (logs, CaptureGuard(()))
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// splitmix64: a small seeded generator, so that every seed replays exactly.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    /// The next number in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}
