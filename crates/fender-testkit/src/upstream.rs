//! [`Upstream`], its in-process service, and the record of what it received.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri, Version};
use http_body::Body;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::BoxError;
use crate::body::TestBody;
use crate::plan::Plan;
use crate::reply::{Action, Reply};
use crate::server::TestServer;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// One request as the upstream received it, and the reply it got.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Received {
    /// The method.
    pub method: Method,
    /// The URI as it arrived: the path and query for HTTP/1.1 on a socket, whatever the caller
    /// built in process.
    pub uri: Uri,
    /// The HTTP version.
    pub version: Version,
    /// The headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// When the body had been read (`tokio::time`, so it follows a paused clock).
    pub at: Instant,
    /// The label of the reply it got ([`Reply::label`]): `"503"`, `"reset"`, `"hang"`, …
    pub reply: String,
}

/// A scripted upstream: a [`Plan`] and the record of the requests it received.
///
/// It has two faces on the same plan and record: [`service`](Upstream::service), an in-process
/// `tower::Service` without sockets, and [`serve`](Upstream::serve), a real HTTP server on
/// `127.0.0.1`.
///
/// Every request is read in full (the whole body), recorded, and then given the plan's next
/// [`Reply`]. A request whose body fails to arrive (the client went away) is neither recorded
/// nor counted, and takes no reply from the plan.
///
/// ```
/// use fender_testkit::{Plan, Reply, Upstream};
/// use tower::ServiceExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let upstream = Upstream::new(Plan::sequence([Reply::status(503), Reply::ok()]));
/// let svc = upstream.service();
/// let request = || http::Request::post("/orders").body(String::from("{}")).unwrap();
///
/// let first = svc.clone().oneshot(request()).await.unwrap();
/// assert_eq!(first.status(), 503);
/// let second = svc.clone().oneshot(request()).await.unwrap();
/// assert_eq!(second.status(), 200);
///
/// assert_eq!(upstream.count(), 2);
/// let received = upstream.received();
/// assert_eq!(received[0].method, http::Method::POST);
/// assert_eq!(received[0].body, "{}");
/// assert_eq!(received[0].reply, "503");
/// # }
/// ```
///
/// # Clone
///
/// Clones share the plan and the record.
#[derive(Clone, Debug)]
pub struct Upstream {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    plan: Plan,
    record: Mutex<Record>,
}

/// How many requests a record keeps unless told otherwise.
const DEFAULT_RECORD_LIMIT: usize = 100_000;

#[derive(Debug)]
struct Record {
    kept: VecDeque<Received>,
    total: usize,
    limit: usize,
}

impl Record {
    fn push(&mut self, received: Received) {
        self.total += 1;
        if self.limit == 0 {
            return;
        }
        if self.kept.len() == self.limit {
            self.kept.pop_front();
        }
        self.kept.push_back(received);
    }
}

impl Upstream {
    /// An upstream following `plan` (a [`Plan`], or a [`Reply`] to give every request).
    pub fn new(plan: impl Into<Plan>) -> Upstream {
        Upstream {
            shared: Arc::new(Shared {
                plan: plan.into(),
                record: Mutex::new(Record {
                    kept: VecDeque::new(),
                    total: 0,
                    limit: DEFAULT_RECORD_LIMIT,
                }),
            }),
        }
    }

    /// The in-process face: a `tower::Service<http::Request<B>>` for any body `B`, without
    /// sockets. Per request it costs the recording and the response (no tasks, no timers unless
    /// the reply has a delay); in benchmarks use [`record_limit(0)`](Upstream::record_limit).
    ///
    /// Faults have in-process forms: [`Reply::reset`] fails the call with an `io::Error` of kind
    /// `ConnectionReset`, [`Reply::hang`] never completes, [`Reply::close_mid_body`] gives a body
    /// that fails after part of its bytes.
    pub fn service(&self) -> UpstreamService {
        UpstreamService {
            upstream: self.clone(),
        }
    }

    /// The socket face: an HTTP/1.1 and HTTP/2 (prior knowledge) server on `127.0.0.1` with a
    /// port of its own, sharing this upstream's plan and record. It shuts down when dropped.
    ///
    /// # Panics
    ///
    /// When no loopback port can be bound.
    pub async fn serve(&self) -> TestServer {
        TestServer::start(self.clone()).await
    }

    /// Keeps at most the last `limit` requests in the record (100 000 unless set); older ones
    /// are dropped, [`count`](Upstream::count) still counts them. `0` keeps none, which is what a
    /// benchmark wants: no memory grows, nothing but the count is recorded.
    pub fn record_limit(self, limit: usize) -> Upstream {
        {
            let mut record = self.record();
            record.limit = limit;
            while record.kept.len() > limit {
                record.kept.pop_front();
            }
        }
        self
    }

    /// A copy of the record: the requests received so far, in order of arrival (the last
    /// 100 000 unless [`record_limit`](Upstream::record_limit) says otherwise).
    pub fn received(&self) -> Vec<Received> {
        self.record().kept.iter().cloned().collect()
    }

    /// How many requests were received so far.
    pub fn count(&self) -> usize {
        self.record().total
    }

    /// Empties the record and sets the count back to zero (the plan goes on where it was).
    pub fn clear(&self) {
        let mut record = self.record();
        record.kept.clear();
        record.total = 0;
    }

    fn record(&self) -> MutexGuard<'_, Record> {
        self.shared.record.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the request, records it and gives the plan's reply.
    pub(crate) fn respond<B>(&self, request: Request<B>) -> Respond<B>
    where
        B: Body,
    {
        let (parts, body) = request.into_parts();
        Respond::Collect {
            body,
            parts: Some(parts),
            first: None,
            rest: BytesMut::new(),
            shared: Some(self.shared.clone()),
        }
    }
}

/// Why [`Respond`] gave no response.
pub(crate) enum Fault {
    Reset,
    Hang,
    Body(BoxError),
}

pin_project! {
    /// Reads and records a request, waits the reply's delay, and gives its response or fault.
    #[project = RespondProj]
    pub(crate) enum Respond<B> {
        Collect {
            #[pin]
            body: B,
            parts: Option<Parts>,
            first: Option<Bytes>,
            rest: BytesMut,
            shared: Option<Arc<Shared>>,
        },
        Delay {
            #[pin]
            sleep: Sleep,
            reply: Option<Reply>,
            request_id: Option<HeaderValue>,
        },
        Done,
    }
}

fn finish(reply: Reply, request_id: Option<HeaderValue>) -> Result<Response<TestBody>, Fault> {
    match reply.action() {
        Action::Respond => Ok(reply.into_response(request_id)),
        Action::Hang => Err(Fault::Hang),
        Action::Reset => Err(Fault::Reset),
    }
}

impl<B> Future for Respond<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<TestBody>, Fault>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project() {
                RespondProj::Collect {
                    mut body,
                    parts,
                    first,
                    rest,
                    shared,
                } => {
                    while let Some(frame) = ready!(body.as_mut().poll_frame(cx)) {
                        let frame = match frame {
                            Ok(frame) => frame,
                            Err(e) => {
                                self.set(Respond::Done);
                                return Poll::Ready(Err(Fault::Body(e.into())));
                            }
                        };
                        if let Ok(mut data) = frame.into_data() {
                            if !data.has_remaining() {
                                continue;
                            }
                            match first.take() {
                                None if rest.is_empty() => {
                                    *first = Some(data.copy_to_bytes(data.remaining()));
                                }
                                earlier => {
                                    if let Some(earlier) = earlier {
                                        rest.extend_from_slice(&earlier);
                                    }
                                    while data.has_remaining() {
                                        let chunk = data.chunk();
                                        let len = chunk.len();
                                        rest.extend_from_slice(chunk);
                                        data.advance(len);
                                    }
                                }
                            }
                        }
                    }
                    let bytes = match first.take() {
                        Some(bytes) => bytes,
                        None => std::mem::take(rest).freeze(),
                    };
                    let parts = parts.take().expect("polled after completion");
                    let shared = shared.take().expect("polled after completion");
                    let request_id = parts.headers.get(X_REQUEST_ID).cloned();
                    let mut received = Received {
                        method: parts.method,
                        uri: parts.uri,
                        version: parts.version,
                        headers: parts.headers,
                        body: bytes,
                        at: Instant::now(),
                        reply: String::new(),
                    };
                    let reply = shared.plan.next(&received);
                    let mut record = shared.record.lock().unwrap_or_else(|e| e.into_inner());
                    if record.limit > 0 {
                        received.reply.push_str(reply.label());
                    }
                    record.push(received);
                    drop(record);
                    match reply.delay_duration() {
                        Some(delay) => self.set(Respond::Delay {
                            sleep: tokio::time::sleep(delay),
                            reply: Some(reply),
                            request_id,
                        }),
                        None => {
                            self.set(Respond::Done);
                            return Poll::Ready(finish(reply, request_id));
                        }
                    }
                }
                RespondProj::Delay {
                    sleep,
                    reply,
                    request_id,
                } => {
                    ready!(sleep.poll(cx));
                    let reply = reply.take().expect("polled after completion");
                    let request_id = request_id.take();
                    self.set(Respond::Done);
                    return Poll::Ready(finish(reply, request_id));
                }
                RespondProj::Done => panic!("Respond polled after completion"),
            }
        }
    }
}

/// The in-process face of an [`Upstream`], from [`Upstream::service`].
///
/// A `tower::Service<http::Request<B>>` for any body `B`, always ready, with
/// `Response = http::Response<TestBody>` and `Error = BoxError`.
///
/// # Clone
///
/// Clones share the upstream's plan and record.
#[derive(Clone, Debug)]
pub struct UpstreamService {
    upstream: Upstream,
}

impl UpstreamService {
    /// The upstream behind this service.
    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }
}

impl<B> Service<Request<B>> for UpstreamService
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Response = Response<TestBody>;
    type Error = BoxError;
    type Future = ResponseFuture<B>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        ResponseFuture {
            inner: self.upstream.respond(request),
            hanging: false,
        }
    }
}

pin_project! {
    /// The response future of [`UpstreamService`].
    pub struct ResponseFuture<B> {
        #[pin]
        inner: Respond<B>,
        hanging: bool,
    }
}

impl<B> fmt::Debug for ResponseFuture<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("hanging", &self.hanging)
            .finish_non_exhaustive()
    }
}

impl<B> Future for ResponseFuture<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<TestBody>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if *this.hanging {
            return Poll::Pending;
        }
        match ready!(this.inner.poll(cx)) {
            Ok(response) => Poll::Ready(Ok(response)),
            Err(Fault::Reset) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "connection reset by the test upstream",
            )
            .into())),
            Err(Fault::Hang) => {
                *this.hanging = true;
                Poll::Pending
            }
            Err(Fault::Body(e)) => Poll::Ready(Err(e)),
        }
    }
}
