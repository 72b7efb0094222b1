//! Counters, gauges and histograms through the [`metrics`](https://docs.rs/metrics) facade
//! (feature `metrics`).
//!
//! fender records; your exporter (Prometheus, OpenTelemetry, statsd, …) publishes. Install a
//! recorder from any `metrics`-compatible exporter crate, optionally call [`describe`] once so it
//! knows units and help texts, and every layer of this crate reports what happens to it. Without
//! the feature every recording point compiles to nothing.
//!
//! # Metrics
//!
//! | name | type | labels | what |
//! | --- | --- | --- | --- |
//! | `fender_requests_total` | counter | `class` | requests through a [`RetryLayer`](crate::RetryLayer) (also inside [`ClientLayer`](crate::ClientLayer)), by the class of their final outcome |
//! | `fender_attempts_total` | counter | `class` | attempts the retry loop sent, by their class |
//! | `fender_attempt_duration_seconds` | histogram | `class` | how long each attempt took, from its call to its outcome (a timed-out attempt: its timeout) |
//! | `fender_retries_total` | counter | `reason` | retries about to be sent; the reason is the class of the attempt that failed |
//! | `fender_retry_budget_refusals_total` | counter | — | retries the retry budget refused |
//! | `fender_local_rejections_total` | counter | `reason` | calls refused locally, without reaching the upstream |
//! | `fender_circuit_state` | gauge | `key` | each breaker's state: `0` closed, `1` open, `2` half-open, `3` recovering |
//! | `fender_circuit_transitions_total` | counter | `key`, `from`, `to` | each breaker's state changes |
//! | `fender_envelope_responses_total` | counter | `code`, `status_class` | error envelopes an [`ErrorEnvelopeLayer`](crate::ErrorEnvelopeLayer) sent |
//!
//! # Label values
//!
//! Every label has a fixed, small set of values; none is ever a path, a query, a request id or
//! a string a peer sent.
//!
//! - `class` and `reason` of retries: the [`Class`](crate::Class) of the outcome in snake
//!   case: `success`, `client_error`, `rate_limited`, `server_error`,
//!   `permanent_server_error`, `invalid_status`, `timeout`, `connect_failed`, `transport`,
//!   `rejected`, `other_error`. A request refused before its first attempt counts as
//!   `rejected` in `fender_requests_total` and sent no attempt. Classes are the retry layer's
//!   classifier's verdicts; a request a plain `RetryLayer` sends only once (`max_attempts(1)`)
//!   is classified by the contract's rules.
//! - `reason` of local rejections: `circuit_open` (a breaker refused the call: open, forced
//!   open, half-open with every probe slot taken, or not in a recovering ramp's share),
//!   `throttle` (the client stack's adaptive throttle shed it), `pushback` (a server's
//!   `Retry-After` holds the host longer than the request can wait).
//! - `key`: the breaker's key. For [`ClientLayer`](crate::ClientLayer) and
//!   [`per_host`](crate::CircuitBreakerLayer::per_host) it is the
//!   [`HostKey`](crate::circuit_breaker::HostKey) (`scheme://host:port`, never credentials, path
//!   or query), bounded by the layer's `max_keys`; for
//!   [`key_fn`](crate::CircuitBreakerLayer::key_fn) the key's `Debug` form, which your key
//!   function keeps bounded. A standalone breaker without keys reports the fixed value
//!   `default` (so two standalone breakers share one series: key them to tell them apart).
//! - `from`, `to`: the [`State`](crate::circuit_breaker::State) in snake case: `closed`,
//!   `recovering`, `open`, `half_open`, `forced_open`, `disabled`.
//! - `fender_circuit_state` reads `0` for `closed` and `disabled` (forced closed), `1` for
//!   `open` and `forced_open`, `2` for `half_open`, `3` for `recovering` (closed again, still
//!   refusing part of the calls while its ramp lasts). A breaker reports `0` when it is made. A
//!   key whose breaker was evicted from the bounded map keeps its last value until a breaker
//!   for it is made again.
//! - `code`: one of the eleven [`ErrorCode`](crate::ErrorCode)s as on the wire
//!   (`INVALID_REQUEST`, …), or `OTHER` for a code this version does not know (never the
//!   unknown string itself).
//! - `status_class`: `4xx`, `5xx`, or `other` for a status past 599.
//!
//! With labels of `&'static str`, recording allocates nothing: the keys are built at compile
//! time. Only a breaker's `key` is made at run time, once when the breaker is made and once per
//! state change.
//!
//! # Example
//!
//! ```
//! # #[cfg(all(feature = "retry", feature = "metrics"))] {
//! use metrics_util::debugging::{DebugValue, DebuggingRecorder};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! let recorder = DebuggingRecorder::new();
//! let snapshotter = recorder.snapshotter();
//! metrics::with_local_recorder(&recorder, || {
//!     let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//!     rt.block_on(async {
//!         let mut svc = ServiceBuilder::new()
//!             .layer(fender::RetryLayer::new())
//!             .service_fn(|_req: http::Request<fender::retry::ReplayBody<String>>| async {
//!                 Ok::<_, std::convert::Infallible>(http::Response::new(()))
//!             });
//!         let req = http::Request::new(String::new());
//!         svc.ready().await.unwrap().call(req).await.unwrap();
//!     });
//! });
//! let requests = snapshotter.snapshot().into_vec().into_iter().find(|(key, ..)| {
//!     key.key().name() == fender::metrics::REQUESTS_TOTAL
//! });
//! let (key, _, _, value) = requests.unwrap();
//! assert_eq!(key.key().labels().next().unwrap().value(), "success");
//! assert_eq!(value, DebugValue::Counter(1));
//! # }
//! ```

#[cfg(feature = "retry")]
use crate::classify::Class;

/// `fender_requests_total`: requests by the class of their final outcome.
#[cfg(feature = "metrics")]
pub const REQUESTS_TOTAL: &str = "fender_requests_total";
/// `fender_attempts_total`: attempts by their class.
#[cfg(feature = "metrics")]
pub const ATTEMPTS_TOTAL: &str = "fender_attempts_total";
/// `fender_attempt_duration_seconds`: attempt latency by class.
#[cfg(feature = "metrics")]
pub const ATTEMPT_DURATION_SECONDS: &str = "fender_attempt_duration_seconds";
/// `fender_retries_total`: retries by the class of the attempt that failed.
#[cfg(feature = "metrics")]
pub const RETRIES_TOTAL: &str = "fender_retries_total";
/// `fender_retry_budget_refusals_total`: retries the budget refused.
#[cfg(feature = "metrics")]
pub const RETRY_BUDGET_REFUSALS_TOTAL: &str = "fender_retry_budget_refusals_total";
/// `fender_local_rejections_total`: local refusals by reason.
#[cfg(feature = "metrics")]
pub const LOCAL_REJECTIONS_TOTAL: &str = "fender_local_rejections_total";
/// `fender_circuit_state`: each breaker's state (0 closed, 1 open, 2 half-open, 3 recovering).
#[cfg(feature = "metrics")]
pub const CIRCUIT_STATE: &str = "fender_circuit_state";
/// `fender_circuit_transitions_total`: each breaker's state changes.
#[cfg(feature = "metrics")]
pub const CIRCUIT_TRANSITIONS_TOTAL: &str = "fender_circuit_transitions_total";
/// `fender_envelope_responses_total`: error envelopes sent, by code and status class.
#[cfg(feature = "metrics")]
pub const ENVELOPE_RESPONSES_TOTAL: &str = "fender_envelope_responses_total";

/// The `key` label of a breaker that has no key (a standalone
/// [`CircuitBreakerLayer`](crate::CircuitBreakerLayer) without `per_host` or `key_fn`).
#[cfg(feature = "metrics")]
pub const UNKEYED_BREAKER: &str = "default";

/// Tells the installed recorder the unit and a help text of every metric in the table.
///
/// Optional (metrics are recorded without it); call it once after installing the recorder, in
/// the scope of the recorder that should know (the global one, or a local one).
#[cfg(feature = "metrics")]
pub fn describe() {
    use ::metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        REQUESTS_TOTAL,
        Unit::Count,
        "Requests through the retry layer, by the class of their final outcome."
    );
    describe_counter!(
        ATTEMPTS_TOTAL,
        Unit::Count,
        "Attempts sent by the retry loop, by class."
    );
    describe_histogram!(
        ATTEMPT_DURATION_SECONDS,
        Unit::Seconds,
        "Duration of each attempt, by class."
    );
    describe_counter!(
        RETRIES_TOTAL,
        Unit::Count,
        "Retries sent, by the class of the failed attempt."
    );
    describe_counter!(
        RETRY_BUDGET_REFUSALS_TOTAL,
        Unit::Count,
        "Retries refused by the retry budget."
    );
    describe_counter!(
        LOCAL_REJECTIONS_TOTAL,
        Unit::Count,
        "Calls refused locally (open circuit, throttle, pushback), by reason."
    );
    describe_gauge!(
        CIRCUIT_STATE,
        "Circuit breaker state per key: 0 closed, 1 open, 2 half-open, 3 recovering."
    );
    describe_counter!(
        CIRCUIT_TRANSITIONS_TOTAL,
        Unit::Count,
        "Circuit breaker state changes per key."
    );
    describe_counter!(
        ENVELOPE_RESPONSES_TOTAL,
        Unit::Count,
        "Error envelopes sent by the server layer, by code and status class."
    );
}

/// The position of a class in the tables of label values.
#[cfg(feature = "retry")]
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
const fn class_index(class: Class) -> usize {
    match class {
        Class::Success => 0,
        Class::ClientError => 1,
        Class::RateLimited => 2,
        Class::ServerError => 3,
        Class::PermanentServerError => 4,
        Class::InvalidStatus => 5,
        Class::Timeout => 6,
        Class::ConnectFailed => 7,
        Class::Transport => 8,
        Class::Rejected => 9,
        Class::OtherError => 10,
    }
}

#[cfg(feature = "metrics")]
pub(crate) use on::*;

#[cfg(not(feature = "metrics"))]
pub(crate) use off::*;

/// The recording points with the feature on.
#[cfg(feature = "metrics")]
mod on {
    use super::*;
    use ::metrics::{Key, Label, Level, Metadata};

    static META: Metadata<'static> = Metadata::new("fender", Level::INFO, Some(module_path!()));

    fn count(key: &Key) {
        ::metrics::with_recorder(|r| r.register_counter(key, &META).increment(1));
    }

    #[cfg(feature = "retry")]
    const CLASSES: [&str; 11] = [
        "success",
        "client_error",
        "rate_limited",
        "server_error",
        "permanent_server_error",
        "invalid_status",
        "timeout",
        "connect_failed",
        "transport",
        "rejected",
        "other_error",
    ];

    /// One one-label set per value, `name => values[i]`.
    #[cfg(any(feature = "retry", feature = "circuit-breaker"))]
    const fn labels<const N: usize>(
        name: &'static str,
        values: [&'static str; N],
    ) -> [[Label; 1]; N] {
        let mut out = [const { [Label::from_static_parts("", "")] }; N];
        let mut i = 0;
        while i < N {
            std::mem::forget(std::mem::replace(
                &mut out[i],
                [Label::from_static_parts(name, values[i])],
            ));
            i += 1;
        }
        out
    }

    /// One key per label set, all named `name`, hashed at compile time.
    const fn keys<const N: usize, const L: usize>(
        name: &'static str,
        labels: &'static [[Label; L]; N],
    ) -> [Key; N] {
        let mut out = [const { Key::from_static_name("") }; N];
        let mut i = 0;
        while i < N {
            std::mem::forget(std::mem::replace(
                &mut out[i],
                Key::from_static_parts(name, &labels[i]),
            ));
            i += 1;
        }
        out
    }

    #[cfg(feature = "retry")]
    static CLASS_LABELS: [[Label; 1]; 11] = labels("class", CLASSES);
    #[cfg(feature = "retry")]
    static REASON_LABELS: [[Label; 1]; 11] = labels("reason", CLASSES);

    #[cfg(feature = "circuit-breaker")]
    static REJECTION_LABELS: [[Label; 1]; 3] =
        labels("reason", ["circuit_open", "throttle", "pushback"]);
    #[cfg(feature = "circuit-breaker")]
    static REJECTIONS: [Key; 3] = keys(LOCAL_REJECTIONS_TOTAL, &REJECTION_LABELS);

    /// A circuit breaker refused a call.
    #[cfg(feature = "circuit-breaker")]
    pub(crate) fn circuit_refused() {
        count(&REJECTIONS[0]);
    }

    /// The client stack's throttle shed a request.
    #[cfg(all(feature = "retry", feature = "circuit-breaker", feature = "envelope"))]
    pub(crate) fn throttled() {
        count(&REJECTIONS[1]);
    }

    /// A server's `Retry-After` holds the host longer than the request may wait; the refusal
    /// passes through.
    #[cfg(all(feature = "retry", feature = "circuit-breaker", feature = "envelope"))]
    pub(crate) fn held<T>(refusal: T) -> T {
        count(&REJECTIONS[2]);
        refusal
    }

    #[cfg(feature = "retry")]
    pub(crate) use retry::*;

    #[cfg(feature = "retry")]
    mod retry {
        use super::*;
        use crate::BoxError;
        use crate::classify::{Classify, ContractClassifier, Outcome};
        use tokio::time::Instant;

        static REQUESTS: [Key; 11] = keys(REQUESTS_TOTAL, &CLASS_LABELS);
        static ATTEMPTS: [Key; 11] = keys(ATTEMPTS_TOTAL, &CLASS_LABELS);
        static DURATIONS: [Key; 11] = keys(ATTEMPT_DURATION_SECONDS, &CLASS_LABELS);
        static RETRIES: [Key; 11] = keys(RETRIES_TOTAL, &REASON_LABELS);
        static BUDGET_REFUSALS: Key = Key::from_static_name(RETRY_BUDGET_REFUSALS_TOTAL);

        /// When the attempt in flight started.
        #[derive(Debug, Clone, Copy)]
        pub(crate) struct Stopwatch(Instant);

        impl Stopwatch {
            /// Starts now.
            pub(crate) fn start() -> Self {
                Stopwatch(Instant::now())
            }
        }

        /// An attempt ended as `class`.
        pub(crate) fn attempt_done(class: Class, started: &Stopwatch) {
            let i = class_index(class);
            count(&ATTEMPTS[i]);
            let secs = Instant::now()
                .saturating_duration_since(started.0)
                .as_secs_f64();
            ::metrics::with_recorder(|r| r.register_histogram(&DURATIONS[i], &META).record(secs));
        }

        /// A request ended as `class`.
        pub(crate) fn request_done(class: Class) {
            count(&REQUESTS[class_index(class)]);
        }

        /// The one attempt of a request that will not be retried ended with `result`: counted
        /// as an attempt and as a request, classified by the first classifier given (the
        /// contract's without one).
        pub(crate) fn unretried<C: Classify, T>(
            started: &Stopwatch,
            classifier: Option<&C>,
            fallback: Option<&C>,
            result: &Result<http::Response<T>, BoxError>,
        ) {
            let outcome = match result {
                Ok(res) => Outcome::Response {
                    status: res.status(),
                    headers: res.headers(),
                },
                Err(err) => Outcome::Error(&**err),
            };
            let class = match classifier.or(fallback) {
                Some(classifier) => classifier.classify(outcome),
                None => ContractClassifier.classify(outcome),
            };
            attempt_done(class, started);
            request_done(class);
        }

        /// A retry is about to be sent after an attempt that ended as `reason`.
        pub(crate) fn retry(reason: Class) {
            count(&RETRIES[class_index(reason)]);
        }

        /// The retry budget refused a retry.
        pub(crate) fn budget_refused() {
            count(&BUDGET_REFUSALS);
        }
    }

    #[cfg(feature = "circuit-breaker")]
    pub(crate) use breaker::*;

    #[cfg(feature = "circuit-breaker")]
    mod breaker {
        use std::sync::Arc;

        use super::*;
        use crate::circuit_breaker::State;

        fn state_name(state: State) -> &'static str {
            match state {
                State::Closed => "closed",
                State::Recovering => "recovering",
                State::Open => "open",
                State::HalfOpen => "half_open",
                State::ForcedOpen => "forced_open",
                State::Disabled => "disabled",
            }
        }

        fn state_value(state: State) -> f64 {
            match state {
                State::Closed | State::Disabled => 0.0,
                State::Open | State::ForcedOpen => 1.0,
                State::HalfOpen => 2.0,
                State::Recovering => 3.0,
            }
        }

        fn key_label(key: Option<&Arc<str>>) -> Label {
            match key {
                Some(key) => Label::new("key", key.clone()),
                None => Label::from_static_parts("key", UNKEYED_BREAKER),
            }
        }

        fn set_state(key: Option<&Arc<str>>, state: State) {
            let key = Key::from_parts(CIRCUIT_STATE, vec![key_label(key)]);
            let value = state_value(state);
            ::metrics::with_recorder(|r| r.register_gauge(&key, &META).set(value));
        }

        /// A breaker was made (closed).
        pub(crate) fn breaker_made(key: Option<&Arc<str>>) {
            set_state(key, State::Closed);
        }

        /// A breaker changed state.
        pub(crate) fn breaker_transition(key: Option<&Arc<str>>, from: State, to: State) {
            let labels = vec![
                key_label(key),
                Label::from_static_parts("from", state_name(from)),
                Label::from_static_parts("to", state_name(to)),
            ];
            count(&Key::from_parts(CIRCUIT_TRANSITIONS_TOTAL, labels));
            set_state(key, to);
        }
    }

    #[cfg(feature = "envelope")]
    pub(crate) use envelope::*;

    #[cfg(feature = "envelope")]
    mod envelope {
        use super::*;
        use crate::{ApiError, ErrorCode};

        const CODES: usize = 12;
        const STATUS_CLASSES: [&str; 3] = ["4xx", "5xx", "other"];

        const fn envelope_labels() -> [[Label; 2]; CODES * 3] {
            let mut out = [const {
                [
                    Label::from_static_parts("", ""),
                    Label::from_static_parts("", ""),
                ]
            }; CODES * 3];
            let mut i = 0;
            while i < CODES * 3 {
                let code = match i / 3 {
                    c if c < ErrorCode::ALL.len() => code_name(c),
                    _ => "OTHER",
                };
                std::mem::forget(std::mem::replace(
                    &mut out[i],
                    [
                        Label::from_static_parts("code", code),
                        Label::from_static_parts("status_class", STATUS_CLASSES[i % 3]),
                    ],
                ));
                i += 1;
            }
            out
        }

        /// The wire name of the `i`th code of [`ErrorCode::ALL`].
        const fn code_name(i: usize) -> &'static str {
            [
                "INVALID_REQUEST",
                "UNAUTHORIZED",
                "FORBIDDEN",
                "NOT_FOUND",
                "CONFLICT",
                "VALIDATION_ERROR",
                "RATE_LIMIT_EXCEEDED",
                "INTERNAL_ERROR",
                "BAD_GATEWAY",
                "SERVICE_UNAVAILABLE",
                "TIMEOUT",
            ][i]
        }

        fn code_index(code: &ErrorCode) -> usize {
            match code {
                ErrorCode::InvalidRequest => 0,
                ErrorCode::Unauthorized => 1,
                ErrorCode::Forbidden => 2,
                ErrorCode::NotFound => 3,
                ErrorCode::Conflict => 4,
                ErrorCode::ValidationError => 5,
                ErrorCode::RateLimitExceeded => 6,
                ErrorCode::InternalError => 7,
                ErrorCode::BadGateway => 8,
                ErrorCode::ServiceUnavailable => 9,
                ErrorCode::Timeout => 10,
                ErrorCode::Other(_) => 11,
            }
        }

        static ENVELOPE_LABELS: [[Label; 2]; CODES * 3] = envelope_labels();
        static ENVELOPES: [Key; CODES * 3] = keys(ENVELOPE_RESPONSES_TOTAL, &ENVELOPE_LABELS);

        /// The server layer sent `api` as an envelope.
        pub(crate) fn envelope_sent(api: &ApiError) {
            let status = api.status();
            let class = if status.is_client_error() {
                0
            } else if status.is_server_error() {
                1
            } else {
                2
            };
            count(&ENVELOPES[code_index(api.code()) * 3 + class]);
        }

        #[cfg(test)]
        mod tests {
            use super::*;

            #[test]
            fn code_names_follow_the_table_of_codes() {
                for (i, code) in ErrorCode::ALL.iter().enumerate() {
                    assert_eq!(code_name(i), code.as_str());
                    assert_eq!(code_index(code), i);
                }
            }
        }
    }
}

/// The recording points without the feature: nothing.
#[cfg(not(feature = "metrics"))]
mod off {
    #[cfg(feature = "retry")]
    use super::Class;

    #[cfg(feature = "circuit-breaker")]
    #[inline(always)]
    pub(crate) fn circuit_refused() {}

    #[cfg(all(feature = "retry", feature = "circuit-breaker", feature = "envelope"))]
    #[inline(always)]
    pub(crate) fn throttled() {}

    #[cfg(all(feature = "retry", feature = "circuit-breaker", feature = "envelope"))]
    #[inline(always)]
    pub(crate) fn held<T>(refusal: T) -> T {
        refusal
    }

    /// Nothing to time.
    #[cfg(feature = "retry")]
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Stopwatch;

    #[cfg(feature = "retry")]
    impl Stopwatch {
        #[inline(always)]
        pub(crate) fn start() -> Self {
            Stopwatch
        }
    }

    #[cfg(feature = "retry")]
    #[inline(always)]
    pub(crate) fn attempt_done(_class: Class, _started: &Stopwatch) {}

    #[cfg(feature = "retry")]
    #[inline(always)]
    pub(crate) fn request_done(_class: Class) {}

    #[cfg(feature = "retry")]
    #[inline(always)]
    pub(crate) fn unretried<C, T>(
        _started: &Stopwatch,
        _classifier: Option<&C>,
        _fallback: Option<&C>,
        _result: &Result<http::Response<T>, crate::BoxError>,
    ) {
    }

    #[cfg(feature = "retry")]
    #[inline(always)]
    pub(crate) fn retry(_reason: Class) {}

    #[cfg(feature = "retry")]
    #[inline(always)]
    pub(crate) fn budget_refused() {}

    #[cfg(feature = "circuit-breaker")]
    #[inline(always)]
    pub(crate) fn breaker_made(_key: Option<&std::sync::Arc<str>>) {}

    #[cfg(feature = "circuit-breaker")]
    #[inline(always)]
    pub(crate) fn breaker_transition(
        _key: Option<&std::sync::Arc<str>>,
        _from: crate::circuit_breaker::State,
        _to: crate::circuit_breaker::State,
    ) {
    }

    #[cfg(feature = "envelope")]
    #[inline(always)]
    pub(crate) fn envelope_sent(_api: &crate::ApiError) {}
}
