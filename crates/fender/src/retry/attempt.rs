//! What one request keeps between its attempts, and the decision after each one: retry, wait
//! for the budget, or stop.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use http::{
    Extensions, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri,
    Version,
};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::time::Instant;

use super::body::{ReplayBody, Source};
use super::policy::Config;
use crate::BoxError;
use crate::classify::{Class, Classify, Outcome};

/// What a later attempt needs: the service, the request to send again, the settings.
pub(crate) struct Ctx<S, B, C> {
    /// The service of the next attempt, once one is being readied: a clone of the thread
    /// group's copy ([`ConfigRef::service`]), made only when an attempt after `call` is sent.
    pub(super) service: Option<S>,
    /// The head and body source to build each retry from; `None` when the request cannot be
    /// retried (it is only waiting for its first admission).
    pub(super) replay: Option<Source<B>>,
    /// The first request, while it waits to be admitted; boxed, since few requests wait and
    /// every future carries this field.
    first: Option<Box<Request<ReplayBody<B>>>>,
    idempotent: bool,
    pub(super) config: Arc<ConfigRef<S, C>>,
    /// When the request's deadline passes, if it has one.
    deadline: Option<Instant>,
    pub(super) history: Option<Box<History>>,
    /// The budget refused a retry once and the request waits to ask again.
    deferred: bool,
}

/// One thread group's reference to a layer's settings and its copy of the inner service, on
/// cache lines of its own.
///
/// Every request keeps the settings alive until it completes. Cloning one shared `Arc` for
/// that would make every request on every thread write the same reference count; a request
/// clones the `ConfigRef` of its thread's group instead.
///
/// The copy of the service is what a retry is sent through. A request that may be retried
/// used to carry a clone of the inner service from `call` on, made and dropped for every
/// request although few are retried; for a hyper-util `Client` that is a handful of reference
/// counts every thread writes. The copy is a clone of the service the group's first retryable
/// request was called on, and a later attempt clones it again.
#[repr(align(128))]
pub(crate) struct ConfigRef<S, C> {
    config: Arc<Config<C>>,
    /// Behind a lock so that a service that is `Send` but not `Sync` (a `BoxCloneService`)
    /// keeps the futures `Send`; it is taken only to clone it for a later attempt.
    service: OnceLock<Mutex<S>>,
}

impl<S, C> std::ops::Deref for ConfigRef<S, C> {
    type Target = Config<C>;

    fn deref(&self) -> &Config<C> {
        &self.config
    }
}

impl<S: Clone, C> ConfigRef<S, C> {
    /// Keeps a clone of `service` as the group's copy, unless it has one.
    #[inline]
    pub(crate) fn keep_service(&self, service: &S) {
        self.service.get_or_init(|| Mutex::new(service.clone()));
    }

    /// A fresh clone of the group's copy of the service, for an attempt after the first.
    pub(crate) fn service(&self) -> S {
        self.service
            .get()
            .expect("a request that is sent again kept its group's service first")
            .lock()
            // A panic in a clone leaves the service as it was.
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A layer's settings and one [`ConfigRef`] to them per thread group.
pub(crate) struct ConfigRefs<S, C> {
    refs: [Arc<ConfigRef<S, C>>; super::budget::COUNTERS],
}

impl<S, C> ConfigRefs<S, C> {
    pub(crate) fn new(config: Arc<Config<C>>) -> Self {
        ConfigRefs {
            refs: std::array::from_fn(|_| {
                Arc::new(ConfigRef {
                    config: config.clone(),
                    service: OnceLock::new(),
                })
            }),
        }
    }

    /// The settings, through the reference of the current thread's group, and the group.
    #[inline]
    pub(crate) fn current(&self) -> (&Arc<ConfigRef<S, C>>, usize) {
        let shard = super::budget::thread_shard();
        (&self.refs[shard], shard)
    }
}

impl<S, C: fmt::Debug> fmt::Debug for ConfigRefs<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.refs[0].config, f)
    }
}

/// What only a request that is being retried needs.
pub(super) struct History {
    pub(super) delays: Vec<Duration>,
    previous: Duration,
    rng: SmallRng,
}

/// The head of the request, kept to build each retry.
pub(crate) struct Template {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeadHeaders,
    extensions: Extensions,
}

/// The headers of a kept head, in the cheapest form that holds them.
enum HeadHeaders {
    /// A request without headers: nothing to make, copy or drop.
    None,
    /// A request with exactly one header value (a client stack's request id, say): the name
    /// and value are kept by handle, since a copy of a map allocates twice and its drop frees
    /// twice, per request, for a map a retry-free call never uses.
    One(HeaderName, HeaderValue),
    /// Any other request: a copy of its map.
    Map(HeaderMap),
}

impl Template {
    #[inline]
    pub(crate) fn new(parts: &http::request::Parts) -> Self {
        Template {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            version: parts.version,
            // An empty map is not kept and an empty extension set is made anew, not cloned:
            // nothing to copy.
            headers: match parts.headers.len() {
                0 => HeadHeaders::None,
                1 => match parts.headers.iter().next() {
                    Some((name, value)) => HeadHeaders::One(name.clone(), value.clone()),
                    None => HeadHeaders::None,
                },
                _ => HeadHeaders::Map(parts.headers.clone()),
            },
            extensions: if parts.extensions.is_empty() {
                Extensions::new()
            } else {
                parts.extensions.clone()
            },
        }
    }

    fn request<B>(&self, body: B) -> Request<B> {
        let mut req = Request::new(body);
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.version_mut() = self.version;
        match &self.headers {
            HeadHeaders::None => {}
            HeadHeaders::One(name, value) => {
                req.headers_mut().insert(name.clone(), value.clone());
            }
            HeadHeaders::Map(headers) => *req.headers_mut() = headers.clone(),
        }
        *req.extensions_mut() = self.extensions.clone();
        req
    }
}

impl<S, B, C> Ctx<S, B, C> {
    #[inline]
    pub(crate) fn new(
        replay: Option<Source<B>>,
        first: Option<Request<ReplayBody<B>>>,
        idempotent: bool,
        config: Arc<ConfigRef<S, C>>,
        deadline: Option<Instant>,
    ) -> Self {
        Ctx {
            service: None,
            replay,
            first: first.map(Box::new),
            idempotent,
            config,
            deadline,
            history: None,
            deferred: false,
        }
    }

    /// The time left before the deadline, when there is one.
    pub(super) fn remaining(&self) -> Option<Duration> {
        Some(self.deadline?.saturating_duration_since(Instant::now()))
    }

    /// The next request to send, attempt number `attempt`: the waiting first one, or a replay,
    /// with its attempt number and the time left before its deadline in its headers.
    pub(super) fn next_request(&mut self, attempt: u32) -> Request<ReplayBody<B>> {
        let mut req = match self.first.take() {
            Some(first) => *first,
            None => {
                let source = self
                    .replay
                    .as_ref()
                    .expect("only a replayable request is sent again");
                source.template().request(source.body())
            }
        };
        super::deadline::stamp(req.headers_mut(), attempt, self.remaining());
        req
    }
}

impl<S, B, C: Classify> Ctx<S, B, C> {
    /// After attempt number `attempt` ended as `class` (with the server asking for `asked`):
    /// the delay before the next attempt, or `None` to return the attempt's result.
    pub(super) fn decide(
        &mut self,
        class: Class,
        asked: Option<Duration>,
        attempt: u32,
        gate: GateView,
    ) -> Option<Next> {
        let config = &*self.config;
        if !class.is_retryable() {
            return None;
        }
        let source = self.replay.as_ref()?;
        let template = source.template();
        let method = &template.method;
        let uri = Redacted(&template.uri);
        if attempt >= config.max_attempts {
            tracing::debug!(%method, %uri, attempts = attempt, reason = %class, "not retrying: attempts exhausted");
            return None;
        }
        if !self.idempotent && !class.never_reached_upstream() {
            tracing::debug!(%method, %uri, reason = %class, "not retrying: the request is not idempotent");
            return None;
        }
        if !source.is_replayable() {
            tracing::debug!(%method, %uri, reason = %class, "not retrying: the request body exceeded the replay cap");
            return None;
        }
        if let Some(asked) = asked
            && asked > config.retry_after_cap
        {
            tracing::debug!(%method, %uri, retry_after = ?asked, cap = ?config.retry_after_cap, "not retrying: Retry-After exceeds the cap");
            return None;
        }
        // A server's Retry-After lengthens the contract's backoff, never shortens it.
        let history = self.history.get_or_insert_with(|| History::new(config));
        let backoff = config
            .backoff
            .delay(attempt, history.previous, &mut history.rng);
        let delay = asked.map_or(backoff, |asked| asked.max(backoff));
        if let Some(remaining) = self.remaining() {
            let fits = match config.attempt_timeout {
                Some(timeout) => delay.saturating_add(timeout) <= remaining,
                None => delay < remaining,
            };
            if !fits {
                tracing::debug!(%method, %uri, ?delay, ?remaining, "not retrying: the next attempt would not finish before the deadline");
                return None;
            }
        }
        if let Some(budget) = &config.budget
            && !gate.healthy
            && !budget.withdraw()
        {
            if !gate.defers || self.deferred {
                tracing::debug!(%method, %uri, reason = %class, "not retrying: the retry budget is exhausted");
                crate::metrics::budget_refused();
                return None;
            }
            // A herd's retries must spread before the budget can allow them: wait one more
            // backoff period, then ask again (the host may look healthy by then).
            let history = self.history.get_or_insert_with(|| History::new(config));
            let extra = config.backoff.delay(attempt + 1, delay, &mut history.rng);
            let wait = delay.saturating_add(extra);
            if let Some(remaining) = self.remaining()
                && wait.saturating_add(config.attempt_timeout.unwrap_or_default()) >= remaining
            {
                tracing::debug!(%method, %uri, reason = %class, "not retrying: the retry budget is exhausted");
                crate::metrics::budget_refused();
                return None;
            }
            tracing::debug!(%method, %uri, reason = %class, ?wait, "the retry budget is exhausted: asking again later");
            self.deferred = true;
            return Some(Next::Defer(wait));
        }
        self.announce(class, delay, attempt);
        Some(Next::Retry(delay))
    }

    /// Logs a retry about to happen, runs the callback and keeps its delay.
    pub(super) fn announce(&mut self, class: Class, delay: Duration, attempt: u32) {
        let config = &*self.config;
        let Some(template) = self.replay.as_ref().map(Source::template) else {
            return;
        };
        let method = &template.method;
        let uri = Redacted(&template.uri);
        let next = attempt + 1;
        tracing::info!(
            attempt = next,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            reason = %class,
            %method,
            %uri,
            "retrying request"
        );
        crate::metrics::retry(class);
        if let Some(callback) = &config.on_retry {
            callback.on_retry(next, delay, class);
        }
        let history = self.history.get_or_insert_with(|| History::new(config));
        history.previous = delay;
        history.delays.push(delay);
    }

    /// After a deferral: whether the budget (or the host's health) now allows the retry.
    pub(super) fn budget_allows(&self, healthy: bool) -> bool {
        healthy || self.config.budget.as_ref().is_none_or(|b| b.withdraw())
    }
}

/// What the retry loop does next.
pub(super) enum Next {
    /// Retry after this delay.
    Retry(Duration),
    /// The budget said no: wait this long, then ask it again.
    Defer(Duration),
}

/// What the gate tells a retry decision.
#[derive(Clone, Copy)]
pub(super) struct GateView {
    /// The host looks healthy now: a retry needs no budget.
    pub(super) healthy: bool,
    /// A retry the budget refuses may wait and ask again.
    pub(super) defers: bool,
}

impl History {
    fn new<C>(config: &Config<C>) -> Box<Self> {
        let rng = match config.seed {
            Some(seed) => SmallRng::seed_from_u64(
                seed.wrapping_add(config.sequence.fetch_add(1, Ordering::Relaxed)),
            ),
            None => SmallRng::from_rng(&mut rand::rng()),
        };
        Box::new(History {
            delays: Vec::new(),
            previous: Duration::ZERO,
            rng,
        })
    }
}

/// The delay a 429 or 503 asks for with `Retry-After`, from the response or a decoded
/// [`ApiError`](crate::ApiError) in the error's source chain.
pub(super) fn server_delay<T>(
    result: &Result<Response<T>, BoxError>,
    now: fn() -> std::time::SystemTime,
) -> Option<Duration> {
    let asks = |status: StatusCode| {
        status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE
    };
    match result {
        Ok(res) if asks(res.status()) => crate::retry_after::from_headers(res.headers(), now()),
        Ok(_) => None,
        Err(err) => {
            let api = crate::classify::find_api_error(&**err)?;
            api.retry_after().filter(|_| asks(api.status()))
        }
    }
}

/// The class of an attempt's result, by the layer's classifier.
pub(super) fn classify<C: Classify, T>(
    classifier: &C,
    result: &Result<Response<T>, BoxError>,
) -> Class {
    match result {
        Ok(res) => classifier.classify(Outcome::Response {
            status: res.status(),
            headers: res.headers(),
        }),
        Err(err) => classifier.classify(Outcome::Error(&**err)),
    }
}

/// A URI as logs show it: scheme, host, port and path; never userinfo or the query.
pub(crate) struct Redacted<'a>(pub(crate) &'a Uri);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let uri = self.0;
        if let Some(scheme) = uri.scheme_str() {
            write!(f, "{scheme}://")?;
        }
        if let Some(authority) = uri.authority() {
            f.write_str(authority.host())?;
            if let Some(port) = authority.port_u16() {
                write!(f, ":{port}")?;
            }
        }
        f.write_str(uri.path())
    }
}

/// `now + d`, saturating at a far future instead of overflowing.
pub(crate) fn after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(req: http::Request<()>) -> Template {
        Template::new(&req.into_parts().0)
    }

    #[test]
    fn a_retry_gets_the_head_as_it_was_with_none_one_or_many_headers() {
        let bare = head(Request::get("http://up/a").body(()).unwrap());
        assert!(matches!(bare.headers, HeadHeaders::None));
        assert!(bare.request(()).headers().is_empty());

        let mut secret = HeaderValue::from_static("Bearer t0ken");
        secret.set_sensitive(true);
        let one = head(
            Request::post("http://up/b")
                .header("authorization", secret.clone())
                .body(())
                .unwrap(),
        );
        assert!(matches!(one.headers, HeadHeaders::One(..)));
        let again = one.request(());
        assert_eq!(again.method(), Method::POST);
        assert_eq!(again.uri(), "http://up/b");
        assert_eq!(again.headers().len(), 1);
        let value = &again.headers()["authorization"];
        assert_eq!(value, &secret);
        assert!(value.is_sensitive());

        // Two values of one name are a map: both are sent again, in order.
        let many = head(
            Request::get("http://up/c")
                .header("accept", "text/plain")
                .header("accept", "application/json")
                .body(())
                .unwrap(),
        );
        assert!(matches!(many.headers, HeadHeaders::Map(_)));
        let again = many.request(());
        let values: Vec<_> = again.headers().get_all("accept").iter().collect();
        assert_eq!(values, ["text/plain", "application/json"]);
    }
}
