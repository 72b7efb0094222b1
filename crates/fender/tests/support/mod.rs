//! Shared by the envelope tests: a real hyper-util client, request and body helpers, and the one
//! log capture. Servers come from `fender-testkit` (`serve_service`, `Upstream`).
#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A plain HTTP/1.1 client, without any fender layer.
pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A `GET` of `uri` with an empty body.
pub fn get<U>(uri: U) -> Request<Full<Bytes>>
where
    Uri: TryFrom<U>,
    <Uri as TryFrom<U>>::Error: Into<http::Error>,
{
    Request::get(uri).body(Full::new(Bytes::new())).unwrap()
}

/// A `GET` of `uri` carrying `x-request-id: id`.
pub fn get_with_id<U>(uri: U, id: &str) -> Request<Full<Bytes>>
where
    Uri: TryFrom<U>,
    <Uri as TryFrom<U>>::Error: Into<http::Error>,
{
    Request::get(uri)
        .header("x-request-id", id)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// Sends a request and reads the whole response.
pub async fn send(
    client: &HttpClient,
    req: Request<Full<Bytes>>,
) -> (http::response::Parts, Bytes) {
    let res = client.request(req).await.unwrap();
    let (parts, body) = res.into_parts();
    (parts, body.collect().await.unwrap().to_bytes())
}

/// The JSON of a body.
pub fn json(bytes: &Bytes) -> serde_json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

/// A capture of the logs of the current thread, for asserting on them.
///
/// One global subscriber (installed on first use) writes each event to the buffer its thread
/// installed, if any: a `#[tokio::test]` runs its servers and clients on its own thread, so it
/// sees its own logs and no other test's. A global subscriber, unlike a per-thread default,
/// cannot lose events to tracing's per-callsite interest cache when tests run in parallel.
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

thread_local! {
    static CAPTURE: std::cell::RefCell<Option<LogBuffer>> = const { std::cell::RefCell::new(None) };
}

/// Stops the capture of its [`LogBuffer`] when dropped.
pub struct Capturing(());

impl Drop for Capturing {
    fn drop(&mut self) {
        CAPTURE.with(|c| c.borrow_mut().take());
    }
}

/// Where the global subscriber writes: the current thread's buffer, or nowhere.
struct ThreadWriter;

impl std::io::Write for ThreadWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| {
            if let Some(logs) = &*c.borrow() {
                logs.0.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    /// Everything logged so far.
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The first line that mentions `needle`, panicking with the whole log if none does.
    pub fn line_with(&self, needle: &str) -> String {
        let log = self.contents();
        log.lines()
            .find(|l| l.contains(needle))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no log line mentions {needle}: {log}"))
    }

    /// Captures the current thread's logs (down to `DEBUG`) until the guard drops.
    pub fn install(&self) -> Capturing {
        static GLOBAL: std::sync::Once = std::sync::Once::new();
        GLOBAL.call_once(|| {
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::DEBUG)
                .with_ansi(false)
                .with_writer(|| ThreadWriter)
                .init();
        });
        CAPTURE.with(|c| *c.borrow_mut() = Some(self.clone()));
        Capturing(())
    }
}

/// A response with this status, `content-type` and body.
pub fn response<B>(status: u16, content_type: &str, body: B) -> Response<B> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header(http::header::CONTENT_TYPE, content_type)
        .body(body)
        .unwrap()
}

/// How a hostile body misbehaves.
#[derive(Debug, Clone, Copy)]
pub enum Hostility {
    /// Never yields a frame and never ends (`Pending` forever).
    Stall,
    /// Yields empty data frames forever, never `Pending`; panics after this many polls, which
    /// no bounded reader gets near.
    EmptyFrames { panic_after: usize },
    /// Panics on the first poll.
    Panic,
}

/// A response body that misbehaves as its [`Hostility`] says, counting its polls.
#[derive(Debug, Clone)]
pub struct HostileBody {
    hostility: Hostility,
    polls: Arc<AtomicUsize>,
}

impl HostileBody {
    pub fn new(hostility: Hostility) -> Self {
        HostileBody {
            hostility,
            polls: Arc::default(),
        }
    }

    /// Empty data frames forever (panicking after a million polls).
    pub fn empty_frames() -> Self {
        HostileBody::new(Hostility::EmptyFrames {
            panic_after: 1_000_000,
        })
    }

    /// How many times the body was polled so far (shared by clones).
    pub fn polls(&self) -> usize {
        self.polls.load(Ordering::Relaxed)
    }
}

impl Body for HostileBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let polls = self.polls.fetch_add(1, Ordering::Relaxed) + 1;
        match self.hostility {
            Hostility::Stall => Poll::Pending,
            Hostility::EmptyFrames { panic_after } => {
                assert!(polls < panic_after, "the reader never gave up on the body");
                Poll::Ready(Some(Ok(Frame::data(Bytes::new()))))
            }
            Hostility::Panic => panic!("the body blew up: secret=42"),
        }
    }
}
