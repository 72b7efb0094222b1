//! The response body of [`ErrorEnvelope`](super::ErrorEnvelope) and a bounded body reader.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::BoxError;

pin_project! {
    /// Either the inner service's body, untouched, or a rendered envelope.
    ///
    /// Successes stream the inner body as it is: no buffering, no copy.
    #[derive(Debug)]
    pub struct EnvelopeBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<B> {
        Inner {
            #[pin]
            body: B,
        },
        Envelope {
            json: Option<Bytes>,
        },
    }
}

impl<B> EnvelopeBody<B> {
    pub(crate) fn inner(body: B) -> Self {
        EnvelopeBody {
            kind: Kind::Inner { body },
        }
    }

    pub(crate) fn envelope(json: Bytes) -> Self {
        EnvelopeBody {
            kind: Kind::Envelope { json: Some(json) },
        }
    }

    /// Whether this body is an envelope rendered by the layer (rather than the inner body).
    pub fn is_envelope(&self) -> bool {
        matches!(self.kind, Kind::Envelope { .. })
    }
}

impl<B> Body for EnvelopeBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx).map_err(Into::into),
            KindProj::Envelope { json } => Poll::Ready(json.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Envelope { json } => json.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Envelope { json } => {
                SizeHint::with_exact(json.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

/// What [`ReadBounded`] read.
#[derive(Debug)]
pub(crate) struct BoundedRead {
    /// At most `limit` bytes of the body.
    pub(crate) bytes: Bytes,
    /// The body had more than `limit` bytes; the rest was not read.
    pub(crate) truncated: bool,
    /// The body failed before its end.
    pub(crate) failed: Option<BoxError>,
}

impl BoundedRead {
    /// Nothing was read: the body failed (or was given up) with `why`.
    pub(crate) fn failed(why: impl Into<BoxError>) -> Self {
        BoundedRead {
            bytes: Bytes::new(),
            truncated: false,
            failed: Some(why.into()),
        }
    }
}

/// How many frames one poll of [`ReadBounded`] takes before it yields to the runtime, so that
/// a body that is always ready cannot keep a deadline (or any other task) from running.
const FRAMES_PER_POLL: usize = 32;

/// How many frames without a byte of data (empty data frames, trailers, unknown kinds) a body
/// may send before [`ReadBounded`] gives up on it. Frames with data are bounded by the byte
/// limit already.
pub(crate) const MAX_EMPTY_FRAMES: usize = 1024;

pin_project! {
    /// Reads a body up to a limit; what is past the limit is never read (the body is dropped).
    ///
    /// It is bounded in work as well as in bytes: it yields to the runtime after
    /// [`FRAMES_PER_POLL`] frames in one poll, and fails after [`MAX_EMPTY_FRAMES`] frames that
    /// carried no data.
    pub(crate) struct ReadBounded<B> {
        #[pin]
        body: B,
        buf: BytesMut,
        limit: usize,
        empty_frames: usize,
    }
}

impl<B> ReadBounded<B> {
    pub(crate) fn new(body: B, limit: usize) -> Self {
        ReadBounded {
            body,
            buf: BytesMut::new(),
            limit,
            empty_frames: 0,
        }
    }
}

impl<B> Future for ReadBounded<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Output = BoundedRead;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<BoundedRead> {
        let mut this = self.project();
        let done = |buf: &mut BytesMut, truncated, failed| {
            Poll::Ready(BoundedRead {
                bytes: std::mem::take(buf).freeze(),
                truncated,
                failed,
            })
        };
        for _ in 0..FRAMES_PER_POLL {
            match ready!(this.body.as_mut().poll_frame(cx)) {
                None => return done(this.buf, false, None),
                Some(Err(err)) => return done(this.buf, false, Some(err.into())),
                Some(Ok(frame)) => {
                    let mut data = match frame.into_data() {
                        Ok(data) if data.has_remaining() => data,
                        _ => {
                            *this.empty_frames += 1;
                            if *this.empty_frames > MAX_EMPTY_FRAMES {
                                let why = "the body sent too many frames without data";
                                return done(this.buf, false, Some(why.into()));
                            }
                            continue;
                        }
                    };
                    while data.has_remaining() {
                        let room = *this.limit - this.buf.len();
                        if room == 0 {
                            return done(this.buf, true, None);
                        }
                        let chunk = data.chunk();
                        let take = chunk.len().min(room);
                        this.buf.extend_from_slice(&chunk[..take]);
                        data.advance(take);
                    }
                }
            }
        }
        // Always ready so far: let the runtime run timers and other tasks, then go on.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full, StreamBody};

    #[tokio::test]
    async fn reads_up_to_the_limit_and_no_further() {
        let read = ReadBounded::new(Full::new(Bytes::from(vec![b'a'; 100])), 64).await;
        assert_eq!(read.bytes.len(), 64);
        assert!(read.truncated);
        let read = ReadBounded::new(Full::new(Bytes::from_static(b"short")), 64).await;
        assert_eq!(&read.bytes[..], b"short");
        assert!(!read.truncated && read.failed.is_none());
    }

    #[tokio::test]
    async fn a_failing_body_keeps_what_arrived() {
        let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
            Ok(Frame::data(Bytes::from_static(b"{\"err"))),
            Err(std::io::ErrorKind::ConnectionReset.into()),
        ];
        let body = StreamBody::new(futures_util::stream::iter(frames));
        let read = ReadBounded::new(body, 1024).await;
        assert_eq!(&read.bytes[..], b"{\"err");
        assert!(read.failed.is_some());
    }

    /// A body that is always ready with an empty data frame, and counts its polls.
    struct EmptyFrames(usize);

    impl Body for EmptyFrames {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            self.0 += 1;
            Poll::Ready(Some(Ok(Frame::data(Bytes::new()))))
        }
    }

    #[test]
    fn an_always_ready_body_is_yielded_on_then_given_up() {
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut read = std::pin::pin!(ReadBounded::new(EmptyFrames(0), 64));
        assert!(read.as_mut().poll(&mut cx).is_pending(), "it yields");
        assert_eq!(read.body.0, FRAMES_PER_POLL);
        let mut polls = 1;
        let read = loop {
            polls += 1;
            if let Poll::Ready(read) = read.as_mut().poll(&mut cx) {
                break read;
            }
        };
        assert!(read.failed.unwrap().to_string().contains("too many frames"));
        assert!(polls <= MAX_EMPTY_FRAMES / FRAMES_PER_POLL + 1, "{polls}");
    }

    #[tokio::test]
    async fn envelope_bodies_yield_their_json_once() {
        let mut body = EnvelopeBody::<Full<Bytes>>::envelope(Bytes::from_static(b"{}"));
        assert_eq!(body.size_hint().exact(), Some(2));
        let bytes = (&mut body).collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"{}");
        assert!(body.is_end_stream());
    }
}
