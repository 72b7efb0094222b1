//! A response body that plays a fuzzed script: data frames, pauses on tokio's clock, trailers,
//! an error, or a stall that never ends.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use arbitrary::Arbitrary;
use bytes::Bytes;
use fender::BoxError;
use http_body::{Body, Frame};

/// The longest script that is played; the rest of a longer one is ignored, which bounds the
/// time a body can take (64 pauses of at most 65.5 s: about 70 minutes of tokio's clock).
pub const MAX_STEPS: usize = 64;

/// One step of a body script.
#[derive(Arbitrary, Debug, Clone)]
pub enum Step {
    /// A data frame.
    Data(Vec<u8>),
    /// A data frame holding an error envelope (see [`EnvelopeParts::to_json`]).
    Envelope(EnvelopeParts),
    /// A pause of this many milliseconds before the next step.
    Wait(u16),
    /// A trailers frame; the body ends after it.
    Trailers,
    /// The body fails with an error of this text; nothing follows.
    Fail(String),
    /// The body never yields again and never wakes its reader.
    Stall,
}

/// The parts of an error envelope a [`Step::Envelope`] writes; with it, the fuzzer reaches
/// bodies that parse as envelopes without having to find JSON's syntax by mutation.
#[derive(Arbitrary, Debug, Clone)]
pub struct EnvelopeParts {
    /// `error.code`: one of the eleven (by index) or any string.
    pub code: Result<u8, String>,
    /// `error.message`.
    pub message: String,
    /// `error.details`, as string entries.
    pub details: Vec<(String, String)>,
    /// `error.request_id`, or no such field.
    pub request_id: Option<String>,
    /// `error.timestamp`, or no such field.
    pub timestamp: Option<String>,
    /// Only the first this many bytes of the JSON are sent, if set.
    pub cut: Option<u16>,
}

impl EnvelopeParts {
    /// The envelope's JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        use serde_json::{Map, Value};
        let code = match &self.code {
            Ok(n) => fender::ErrorCode::ALL[usize::from(*n) % 11]
                .as_str()
                .to_owned(),
            Err(other) => other.clone(),
        };
        let details: Map<String, Value> = self
            .details
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let mut error = Map::new();
        error.insert("code".into(), code.into());
        error.insert("message".into(), self.message.clone().into());
        error.insert("details".into(), details.into());
        if let Some(id) = &self.request_id {
            error.insert("request_id".into(), id.clone().into());
        }
        if let Some(ts) = &self.timestamp {
            error.insert("timestamp".into(), ts.clone().into());
        }
        let mut envelope = Map::new();
        envelope.insert("error".into(), error.into());
        let mut json = serde_json::to_vec(&envelope).expect("a JSON map serializes");
        if let Some(cut) = self.cut {
            json.truncate(usize::from(cut));
        }
        json
    }
}

/// How a script ends, once its data has been read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The body ends normally (possibly after trailers).
    Complete,
    /// The body fails.
    Failed,
    /// The body stalls forever.
    Stalled,
}

/// The first [`MAX_STEPS`] steps of `steps`, which is what a [`ScriptedBody`] plays.
pub fn played(steps: &[Step]) -> &[Step] {
    &steps[..steps.len().min(MAX_STEPS)]
}

/// The bytes a reader of the played script receives, and how the body ends after them.
pub fn outcome(steps: &[Step]) -> (Vec<u8>, End) {
    let mut data = Vec::new();
    for step in played(steps) {
        match step {
            Step::Data(bytes) => data.extend_from_slice(bytes),
            Step::Envelope(parts) => data.extend_from_slice(&parts.to_json()),
            Step::Wait(_) => {}
            Step::Trailers => return (data, End::Complete),
            Step::Fail(_) => return (data, End::Failed),
            Step::Stall => return (data, End::Stalled),
        }
    }
    (data, End::Complete)
}

/// The error texts the played script fails with (at most one: nothing follows a failure).
pub fn error_texts(steps: &[Step]) -> Vec<String> {
    played(steps)
        .iter()
        .filter_map(|step| match step {
            Step::Fail(text) => Some(text.clone()),
            _ => None,
        })
        .take(1)
        .collect()
}

/// The error a failing body or service answers with: its text is the fuzzed one, and it has
/// no source.
#[derive(Debug)]
pub struct TextError(pub String);

impl std::fmt::Display for TextError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TextError {}

/// A body that plays a script of [`Step`]s.
#[derive(Debug)]
pub struct ScriptedBody {
    steps: VecDeque<Step>,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl ScriptedBody {
    /// A body that plays the first [`MAX_STEPS`] of `steps`.
    pub fn new(steps: &[Step]) -> Self {
        ScriptedBody {
            steps: played(steps).iter().cloned().collect(),
            pause: None,
        }
    }
}

impl Body for ScriptedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            if let Some(pause) = &mut this.pause {
                ready!(pause.as_mut().poll(cx));
                this.pause = None;
            }
            match this.steps.pop_front() {
                None => return Poll::Ready(None),
                Some(Step::Data(bytes)) => return Poll::Ready(Some(Ok(Frame::data(bytes.into())))),
                Some(Step::Envelope(parts)) => {
                    return Poll::Ready(Some(Ok(Frame::data(parts.to_json().into()))));
                }
                Some(Step::Wait(ms)) => {
                    let pause = tokio::time::sleep(Duration::from_millis(u64::from(ms)));
                    this.pause = Some(Box::pin(pause));
                }
                Some(Step::Trailers) => {
                    this.steps.clear();
                    return Poll::Ready(Some(Ok(Frame::trailers(http::HeaderMap::new()))));
                }
                Some(Step::Fail(text)) => {
                    this.steps.clear();
                    return Poll::Ready(Some(Err(Box::new(TextError(text)))));
                }
                Some(Step::Stall) => {
                    this.steps.push_front(Step::Stall);
                    return Poll::Pending;
                }
            }
        }
    }
}
