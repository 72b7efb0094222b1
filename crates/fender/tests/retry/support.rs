//! An in-process scripted upstream and request helpers for the retry tests.

use std::io;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use fender::BoxError;
use futures_util::future::BoxFuture;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full, StreamBody};
use tokio::time::Instant;
use tower::Service;

/// What the upstream does with one request.
#[derive(Clone)]
pub(crate) enum Reply {
    /// A response with this status and headers; the body says which call it was.
    Status(u16, Vec<(&'static str, String)>),
    /// Fails with an io error of this kind (refused, reset, …).
    Io(io::ErrorKind),
    /// Fails with this error.
    Error(Arc<dyn Fn() -> BoxError + Send + Sync>),
    /// Waits, then replies.
    Slow(Duration, Box<Reply>),
}

impl Reply {
    pub(crate) fn status(status: u16) -> Reply {
        Reply::Status(status, Vec::new())
    }

    pub(crate) fn with_header(status: u16, name: &'static str, value: impl Into<String>) -> Reply {
        Reply::Status(status, vec![(name, value.into())])
    }

    pub(crate) fn error(make: impl Fn() -> BoxError + Send + Sync + 'static) -> Reply {
        Reply::Error(Arc::new(make))
    }
}

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) method: Method,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) at: Instant,
}

/// A scripted upstream: the n-th call gets the n-th reply, the last one repeats.
#[derive(Clone)]
pub(crate) struct Script {
    replies: Arc<Vec<Reply>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Script {
    pub(crate) fn new(replies: impl IntoIterator<Item = Reply>) -> Script {
        let replies: Vec<Reply> = replies.into_iter().collect();
        assert!(!replies.is_empty());
        Script {
            replies: Arc::new(replies),
            seen: Arc::default(),
        }
    }

    pub(crate) fn always(reply: Reply) -> Script {
        Script::new([reply])
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub(crate) fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Time between consecutive calls.
    pub(crate) fn gaps(&self) -> Vec<Duration> {
        let seen = self.seen();
        seen.windows(2).map(|w| w[1].at - w[0].at).collect()
    }
}

impl<B> Service<Request<B>> for Script
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<Full<Bytes>>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let at = Instant::now();
            let (parts, body) = req.into_parts();
            let body = body.collect().await.map_err(Into::into)?.to_bytes();
            let n = {
                let mut seen = this.seen.lock().unwrap();
                seen.push(Seen {
                    method: parts.method,
                    headers: parts.headers,
                    body,
                    at,
                });
                seen.len()
            };
            let reply = this.replies[(n - 1).min(this.replies.len() - 1)].clone();
            respond(reply, n).await
        })
    }
}

async fn respond(mut reply: Reply, n: usize) -> Result<Response<Full<Bytes>>, BoxError> {
    loop {
        return match reply {
            Reply::Status(status, headers) => {
                let mut res = Response::new(Full::new(Bytes::from(format!("call {n}"))));
                *res.status_mut() = StatusCode::from_u16(status).unwrap();
                for (name, value) in headers {
                    res.headers_mut().insert(name, value.parse().unwrap());
                }
                Ok(res)
            }
            Reply::Io(kind) => Err(io::Error::from(kind).into()),
            Reply::Error(make) => Err(make()),
            Reply::Slow(delay, next) => {
                tokio::time::sleep(delay).await;
                reply = *next;
                continue;
            }
        };
    }
}

pub(crate) fn get(uri: &str) -> Request<Full<Bytes>> {
    request(Method::GET, uri)
}

pub(crate) fn request(method: Method, uri: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(uri)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// A body streamed in chunks, with no size hint and no `Clone`.
pub(crate) fn streamed(
    data: &Bytes,
    chunk: usize,
) -> StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, BoxError>>>> {
    let frames: Vec<Result<Frame<Bytes>, BoxError>> = data
        .chunks(chunk)
        .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    StreamBody::new(futures_util::stream::iter(frames))
}

/// Deterministic test data.
pub(crate) fn pattern(len: usize) -> Bytes {
    (0..len)
        .map(|i| (i * 31 % 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}

pub(crate) async fn body_text<B>(res: Response<B>) -> String
where
    B: Body,
    B::Error: std::fmt::Debug,
{
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}
