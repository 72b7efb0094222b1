//! [`TestBody`], the response body of the in-process service and of the test server.

use std::fmt;
use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

use crate::BoxError;

/// The body of every response an [`Upstream`](crate::Upstream) gives.
///
/// Depending on the [`Reply`](crate::Reply) it is a complete body, a body that breaks off after
/// part of its bytes (an `io::ErrorKind::UnexpectedEof` error after the partial data), or a body
/// that drips in chunks at an interval driven by `tokio::time`.
///
/// Collect it with [`http_body_util::BodyExt::collect`].
pub struct TestBody {
    state: State,
}

enum State {
    Full(Option<Bytes>),
    /// Yields its bytes, then `Pending` once (so a server flushes them), then an error.
    Partial(Option<Bytes>, bool),
    Drip {
        chunk: Bytes,
        remaining: usize,
        interval: Duration,
        sleep: Option<Pin<Box<Sleep>>>,
    },
    Done,
}

impl TestBody {
    /// A complete body.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return TestBody::empty();
        }
        TestBody {
            state: State::Full(Some(bytes)),
        }
    }

    /// An empty body.
    pub fn empty() -> Self {
        TestBody { state: State::Done }
    }

    /// A body that yields `bytes` and then fails, as a connection closed mid-body does.
    pub(crate) fn partial(bytes: Bytes) -> Self {
        TestBody {
            state: State::Partial(Some(bytes), false),
        }
    }

    /// A body that yields `count` copies of `chunk`, each after waiting `interval`.
    pub(crate) fn drip(chunk: Bytes, count: usize, interval: Duration) -> Self {
        if count == 0 {
            return TestBody::empty();
        }
        TestBody {
            state: State::Drip {
                chunk,
                remaining: count,
                interval,
                sleep: None,
            },
        }
    }
}

impl Default for TestBody {
    fn default() -> Self {
        TestBody::empty()
    }
}

impl fmt::Debug for TestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.state {
            State::Full(_) => "full",
            State::Partial(..) => "partial",
            State::Drip { .. } => "drip",
            State::Done => "done",
        };
        f.debug_struct("TestBody").field("kind", &kind).finish()
    }
}

impl From<Bytes> for TestBody {
    fn from(bytes: Bytes) -> Self {
        TestBody::full(bytes)
    }
}

impl From<&'static str> for TestBody {
    fn from(s: &'static str) -> Self {
        TestBody::full(Bytes::from_static(s.as_bytes()))
    }
}

impl From<String> for TestBody {
    fn from(s: String) -> Self {
        TestBody::full(Bytes::from(s))
    }
}

impl From<Vec<u8>> for TestBody {
    fn from(v: Vec<u8>) -> Self {
        TestBody::full(Bytes::from(v))
    }
}

impl Body for TestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match &mut this.state {
            State::Full(bytes) => {
                let bytes = bytes.take();
                this.state = State::Done;
                Poll::Ready(bytes.map(|b| Ok(Frame::data(b))))
            }
            State::Partial(bytes, yielded) => match bytes.take() {
                Some(b) if !b.is_empty() => Poll::Ready(Some(Ok(Frame::data(b)))),
                _ if !*yielded => {
                    *yielded = true;
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                _ => {
                    this.state = State::Done;
                    Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed mid-body",
                    )
                    .into())))
                }
            },
            State::Drip {
                chunk,
                remaining,
                interval,
                sleep,
            } => {
                let timer = sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(*interval)));
                ready!(timer.as_mut().poll(cx));
                *sleep = None;
                *remaining -= 1;
                let data = chunk.clone();
                if *remaining == 0 {
                    this.state = State::Done;
                }
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            State::Done => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            State::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            State::Full(None) | State::Done => SizeHint::with_exact(0),
            State::Drip {
                chunk, remaining, ..
            } => SizeHint::with_exact((chunk.len() * *remaining) as u64),
            State::Partial(..) => SizeHint::default(),
        }
    }
}
