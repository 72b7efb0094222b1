//! A request body that can be sent again without a `Clone` bound.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::attempt::Template;
use crate::BoxError;

pin_project! {
    /// The request body the inner service of [`Retry`](super::Retry) receives.
    ///
    /// On the first attempt it streams the caller's body as it arrives, keeping a copy of the
    /// data (cheap [`Bytes`] handles) up to the layer's replay cap. A retry gets a new
    /// `ReplayBody` that first replays exactly those bytes, then, if the first attempt did not
    /// read the body to its end, goes on streaming the rest of the original body. Trailers are
    /// replayed too.
    ///
    /// Once more than the cap has been read the copy is dropped and the request is no longer
    /// retried; the attempt that is streaming it carries on untouched. A body that is known to
    /// be empty is never buffered, and one whose size hint already exceeds the cap is passed
    /// through as is.
    pub struct ReplayBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Empty,
        Passthrough { #[pin] body: B },
        Replay {
            shared: Arc<Held<B>>,
            // Data frames of the original body this body has yielded so far.
            position: usize,
            trailers_sent: bool,
        },
    }
}

/// What a replayable request keeps in one allocation: the head to send again, the body's size
/// hint and the body's shared state. Keeping the head here, not in the response future, keeps
/// the future small (every `.await` moves it) at no extra allocation.
pub(crate) struct Held<B> {
    template: Template,
    hint: SizeHint,
    state: Mutex<Shared<B>>,
}

pub(crate) struct Shared<B> {
    /// The caller's body, until it is first polled: kept in place, so that a body nobody reads
    /// costs no allocation of its own.
    fresh: Option<B>,
    /// The caller's body once polled, until it has ended.
    body: Option<Pin<Box<B>>>,
    /// The data frames read so far, while they fit under the cap.
    chunks: Vec<Bytes>,
    buffered: usize,
    cap: usize,
    /// Data frames read from the original body so far.
    read: usize,
    /// Boxed: few bodies have trailers, and a map inline would make every replayable request's
    /// shared state, copied into place when it is made, 88 bytes larger.
    trailers: Option<Box<HeaderMap>>,
    ended: bool,
    /// The copy was given up (over the cap) or the body failed: no more replays.
    broken: bool,
}

/// The retry future's handle on a request: the head to send again and what makes the body of
/// each new attempt.
pub(crate) enum Source<B> {
    Empty(Box<Template>),
    Shared(Arc<Held<B>>),
}

impl<B> Source<B> {
    /// Whether the body can still be sent again.
    pub(crate) fn is_replayable(&self) -> bool {
        match self {
            Source::Empty(_) => true,
            Source::Shared(held) => !lock(&held.state).broken,
        }
    }

    /// The head of the request, to build each retry from.
    pub(crate) fn template(&self) -> &Template {
        match self {
            Source::Empty(template) => template,
            Source::Shared(held) => &held.template,
        }
    }

    /// The body of the next attempt.
    pub(crate) fn body(&self) -> ReplayBody<B> {
        match self {
            Source::Empty(_) => ReplayBody { kind: Kind::Empty },
            Source::Shared(held) => ReplayBody {
                kind: Kind::Replay {
                    shared: held.clone(),
                    position: 0,
                    trailers_sent: false,
                },
            },
        }
    }
}

fn lock<B>(shared: &Mutex<Shared<B>>) -> std::sync::MutexGuard<'_, Shared<B>> {
    // The lock is never held across a panic-prone user call except `poll_frame`; a poisoned
    // lock still holds consistent bookkeeping.
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<B: Body> ReplayBody<B> {
    /// The first attempt's body and, when the request may be sent again, its source, which
    /// keeps a copy of the head `parts`.
    pub(crate) fn first(
        body: B,
        cap: usize,
        parts: &http::request::Parts,
    ) -> (Self, Option<Source<B>>) {
        if body.is_end_stream() {
            let template = Box::new(Template::new(parts));
            return (
                ReplayBody { kind: Kind::Empty },
                Some(Source::Empty(template)),
            );
        }
        let hint = body.size_hint();
        if hint.lower() > cap as u64 {
            tracing::debug!(
                size = hint.lower(),
                cap,
                "request body exceeds the replay cap: it is sent once and not retried"
            );
            return (ReplayBody::passthrough(body), None);
        }
        // One allocation here, with the head; the body is boxed and its chunk list grown only
        // when it is polled.
        // Made with `new_cyclic` (its weak reference unused) because it allocates first and
        // then builds the value in place; `Arc::new` builds it on the stack and copies all of
        // it into the allocation.
        let held = Arc::new_cyclic(|_| Held {
            template: Template::new(parts),
            hint,
            state: Mutex::new(Shared {
                fresh: Some(body),
                body: None,
                chunks: Vec::new(),
                buffered: 0,
                cap,
                read: 0,
                trailers: None,
                ended: false,
                broken: false,
            }),
        });
        let source = Source::Shared(held);
        (source.body(), Some(source))
    }

    /// A body sent once, untouched.
    pub(crate) fn passthrough(body: B) -> Self {
        ReplayBody {
            kind: Kind::Passthrough { body },
        }
    }
}

impl<B> Body for ReplayBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Empty => Poll::Ready(None),
            KindProj::Passthrough { body } => match std::task::ready!(body.poll_frame(cx)) {
                None => Poll::Ready(None),
                Some(Err(e)) => Poll::Ready(Some(Err(e.into()))),
                Some(Ok(frame)) => Poll::Ready(Some(Ok(
                    frame.map_data(|mut d| d.copy_to_bytes(d.remaining()))
                ))),
            },
            KindProj::Replay {
                shared,
                position,
                trailers_sent,
            } => {
                let mut s = lock(&shared.state);
                if *position < s.read {
                    if s.broken {
                        return Poll::Ready(Some(Err(NotReplayable.into())));
                    }
                    let chunk = s.chunks[*position].clone();
                    *position += 1;
                    return Poll::Ready(Some(Ok(Frame::data(chunk))));
                }
                if s.ended {
                    if !*trailers_sent {
                        *trailers_sent = true;
                        if let Some(trailers) = &s.trailers {
                            return Poll::Ready(Some(Ok(Frame::trailers((**trailers).clone()))));
                        }
                    }
                    return Poll::Ready(None);
                }
                if let Some(fresh) = s.fresh.take() {
                    s.body = Some(Box::pin(fresh));
                }
                let Some(body) = s.body.as_mut() else {
                    return Poll::Ready(Some(Err(NotReplayable.into())));
                };
                match std::task::ready!(body.as_mut().poll_frame(cx)) {
                    None => {
                        s.ended = true;
                        s.body = None;
                        *trailers_sent = true;
                        Poll::Ready(None)
                    }
                    Some(Err(e)) => {
                        s.broken = true;
                        s.body = None;
                        s.chunks = Vec::new();
                        Poll::Ready(Some(Err(e.into())))
                    }
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(mut data) => {
                            let data = data.copy_to_bytes(data.remaining());
                            s.read += 1;
                            *position += 1;
                            if !s.broken {
                                if s.buffered + data.len() > s.cap {
                                    tracing::debug!(
                                        cap = s.cap,
                                        "request body exceeds the replay cap: it is sent once and not retried"
                                    );
                                    s.broken = true;
                                    s.chunks = Vec::new();
                                } else {
                                    s.buffered += data.len();
                                    s.chunks.push(data.clone());
                                }
                            }
                            Poll::Ready(Some(Ok(Frame::data(data))))
                        }
                        Err(frame) => match frame.into_trailers() {
                            Ok(trailers) => {
                                *trailers_sent = true;
                                s.trailers = Some(Box::new(trailers.clone()));
                                Poll::Ready(Some(Ok(Frame::trailers(trailers))))
                            }
                            // Neither data nor trailers: an unknown frame kind, skip it.
                            Err(_) => {
                                cx.waker().wake_by_ref();
                                Poll::Pending
                            }
                        },
                    },
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Passthrough { body } => body.is_end_stream(),
            Kind::Replay {
                shared,
                position,
                trailers_sent,
                ..
            } => {
                let s = lock(&shared.state);
                s.ended && *position >= s.read && (*trailers_sent || s.trailers.is_none())
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Passthrough { body } => body.size_hint(),
            Kind::Replay {
                shared, position, ..
            } if *position == 0 => shared.hint,
            Kind::Replay { .. } => SizeHint::default(),
        }
    }
}

impl<B> fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Empty => "empty",
            Kind::Passthrough { .. } => "passthrough",
            Kind::Replay { .. } => "replay",
        };
        f.debug_struct("ReplayBody")
            .field("kind", &kind)
            .finish_non_exhaustive()
    }
}

impl<B> fmt::Debug for Source<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Source")
    }
}

/// A stale attempt's body was polled after the copy was given up.
#[derive(Debug)]
struct NotReplayable;

impl fmt::Display for NotReplayable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("request body can no longer be replayed")
    }
}

impl std::error::Error for NotReplayable {}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full, StreamBody};

    /// The first attempt's body of a `GET /` with `body`.
    fn first<B: Body>(body: B, cap: usize) -> (ReplayBody<B>, Option<Source<B>>) {
        let (parts, ()) = http::Request::get("/").body(()).unwrap().into_parts();
        ReplayBody::first(body, cap, &parts)
    }

    fn chunked(chunks: &[&'static [u8]]) -> impl Body<Data = Bytes, Error = BoxError> + use<> {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c))))
            .collect();
        StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn a_retry_replays_exactly_the_bytes_of_the_first_attempt() {
        let (first, source) = first(chunked(&[b"ab", b"cd", b"ef"]), 1024);
        let source = source.unwrap();
        assert_eq!(first.collect().await.unwrap().to_bytes(), "abcdef");
        assert!(source.is_replayable());
        assert_eq!(source.body().collect().await.unwrap().to_bytes(), "abcdef");
        assert_eq!(source.body().collect().await.unwrap().to_bytes(), "abcdef");
    }

    #[tokio::test]
    async fn a_partly_read_body_is_replayed_then_continued() {
        let (mut first, source) = first(chunked(&[b"ab", b"cd", b"ef"]), 1024);
        let source = source.unwrap();
        let frame = first.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "ab");
        drop(first);
        assert_eq!(source.body().collect().await.unwrap().to_bytes(), "abcdef");
    }

    #[tokio::test]
    async fn a_body_the_first_attempt_never_read_is_replayed_whole() {
        let (first, source) = first(chunked(&[b"ab", b"cd"]), 1024);
        let source = source.unwrap();
        drop(first);
        assert!(source.is_replayable());
        assert_eq!(source.body().collect().await.unwrap().to_bytes(), "abcd");
    }

    #[tokio::test]
    async fn a_body_over_the_cap_streams_intact_but_is_not_replayable() {
        let (first, source) = first(chunked(&[b"abcd", b"efgh", b"ij"]), 6);
        let source = source.unwrap();
        assert_eq!(first.collect().await.unwrap().to_bytes(), "abcdefghij");
        assert!(!source.is_replayable());
    }

    #[tokio::test]
    async fn trailers_are_replayed_after_the_data() {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-checksum", "abc".parse().unwrap());
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = vec![
            Ok(Frame::data(Bytes::from_static(b"data"))),
            Ok(Frame::trailers(trailers.clone())),
        ];
        let (first, source) = first(StreamBody::new(futures_util::stream::iter(frames)), 1024);
        let source = source.unwrap();
        let collected = first.collect().await.unwrap();
        assert_eq!(collected.trailers(), Some(&trailers));
        assert_eq!(collected.to_bytes(), "data");
        let replayed = source.body().collect().await.unwrap();
        assert_eq!(replayed.trailers(), Some(&trailers));
        assert_eq!(replayed.to_bytes(), "data");
    }

    #[tokio::test]
    async fn a_failing_body_is_not_replayable() {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = vec![
            Ok(Frame::data(Bytes::from_static(b"da"))),
            Err("the caller's stream failed".into()),
        ];
        let (first, source) = first(StreamBody::new(futures_util::stream::iter(frames)), 1024);
        let err = first.collect().await.unwrap_err();
        assert_eq!(err.to_string(), "the caller's stream failed");
        assert!(!source.unwrap().is_replayable());
    }

    #[test]
    fn known_sizes_take_fast_paths() {
        let (empty, source) = first(Full::new(Bytes::new()), 10);
        assert!(empty.is_end_stream());
        assert!(matches!(source, Some(Source::Empty(_))));
        let (big, source) = first(Full::new(Bytes::from(vec![0; 11])), 10);
        assert!(source.is_none());
        assert_eq!(big.size_hint().exact(), Some(11));
        let (small, source) = first(Full::new(Bytes::from_static(b"hello")), 10);
        assert_eq!(small.size_hint().exact(), Some(5));
        assert_eq!(source.unwrap().body().size_hint().exact(), Some(5));
    }
}
