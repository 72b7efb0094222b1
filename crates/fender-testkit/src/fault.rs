//! [`FaultLayer`]: seeded aborts, errors and delays for any HTTP service.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::Sleep;
use tower_layer::Layer;
use tower_service::Service;

use crate::BoxError;
use crate::reply::IntoStatusCode;

/// A tower layer that injects faults into a seeded share of requests, like a chaos filter in
/// front of your own service.
///
/// Each request draws twice from a seeded random number generator: once to pick an abort (a
/// response with the given status and an empty body, the inner service not called), an error
/// ([`InjectedError`], the inner service not called), or neither; and once to pick whether it is
/// delayed first. A delayed request waits (`tokio::time`) before its abort, its error, or the
/// inner service's future is polled.
///
/// ```
/// use std::time::Duration;
/// use fender_testkit::FaultLayer;
/// use http::{Request, Response, StatusCode};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let svc = ServiceBuilder::new()
///     .layer(
///         FaultLayer::new(42)
///             .abort(0.1, StatusCode::SERVICE_UNAVAILABLE)
///             .error(0.05)
///             .delay(0.2, Duration::from_millis(50)),
///     )
///     .service(service_fn(|_req: Request<String>| async {
///         Ok::<_, std::convert::Infallible>(Response::new(String::from("fine")))
///     }));
///
/// let mut statuses = Vec::new();
/// for _ in 0..100 {
///     match svc.clone().oneshot(Request::new(String::new())).await {
///         Ok(response) => statuses.push(response.status()),
///         Err(err) => assert!(err.is::<fender_testkit::InjectedError>()),
///     }
/// }
/// assert!(statuses.contains(&StatusCode::SERVICE_UNAVAILABLE));
/// assert!(statuses.contains(&StatusCode::OK));
/// # }
/// ```
///
/// # Clone
///
/// Each service the layer makes has its own generator, seeded with the layer's seed, so two
/// services made by one layer see the same sequence of faults. Clones of a service share its
/// generator.
#[derive(Debug, Clone)]
pub struct FaultLayer {
    seed: u64,
    abort: f64,
    status: StatusCode,
    error: f64,
    delay: f64,
    delay_for: Duration,
}

fn check_share(share: f64) {
    assert!(
        (0.0..=1.0).contains(&share),
        "a share is within 0.0 and 1.0, got {share}"
    );
}

impl FaultLayer {
    /// A layer with this seed that injects nothing yet.
    pub fn new(seed: u64) -> FaultLayer {
        FaultLayer {
            seed,
            abort: 0.0,
            status: StatusCode::SERVICE_UNAVAILABLE,
            error: 0.0,
            delay: 0.0,
            delay_for: Duration::ZERO,
        }
    }

    /// About `share` of the requests get a response with `status` and an empty body, without
    /// reaching the inner service.
    ///
    /// # Panics
    ///
    /// When `share` is not within 0.0 to 1.0, when the abort and error shares add up to more
    /// than 1.0, or when `status` is a number that is not a valid status code.
    pub fn abort(mut self, share: f64, status: impl IntoStatusCode) -> FaultLayer {
        check_share(share);
        assert!(
            share + self.error <= 1.0 + 1e-9,
            "the abort and error shares add up to more than 1.0"
        );
        self.abort = share;
        self.status = status.into_status_code();
        self
    }

    /// About `share` of the requests fail with an [`InjectedError`], without reaching the inner
    /// service.
    ///
    /// # Panics
    ///
    /// When `share` is not within 0.0 to 1.0, or the abort and error shares add up to more than
    /// 1.0.
    pub fn error(mut self, share: f64) -> FaultLayer {
        check_share(share);
        assert!(
            share + self.abort <= 1.0 + 1e-9,
            "the abort and error shares add up to more than 1.0"
        );
        self.error = share;
        self
    }

    /// About `share` of the requests wait `delay` first.
    ///
    /// # Panics
    ///
    /// When `share` is not within 0.0 to 1.0.
    pub fn delay(mut self, share: f64, delay: Duration) -> FaultLayer {
        check_share(share);
        self.delay = share;
        self.delay_for = delay;
        self
    }
}

impl<S> Layer<S> for FaultLayer {
    type Service = Fault<S>;

    fn layer(&self, inner: S) -> Fault<S> {
        Fault {
            inner,
            config: self.clone(),
            rng: Arc::new(Mutex::new(SmallRng::seed_from_u64(self.seed))),
        }
    }
}

/// The error of a request that [`FaultLayer::error`] picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InjectedError {
    _priv: (),
}

impl fmt::Display for InjectedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("fault injected")
    }
}

impl std::error::Error for InjectedError {}

/// The service of [`FaultLayer`].
///
/// # Clone
///
/// Clones share the random number generator, so they follow one sequence of faults.
#[derive(Debug, Clone)]
pub struct Fault<S> {
    inner: S,
    config: FaultLayer,
    rng: Arc<Mutex<SmallRng>>,
}

impl<S> Fault<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming this one.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Fault<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = BoxError;
    type Future = FaultFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let (fault, delayed) = {
            let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
            let fault: f64 = rng.random_range(0.0..1.0);
            let delayed: f64 = rng.random_range(0.0..1.0);
            (fault, delayed < self.config.delay)
        };
        let delay = delayed
            .then(|| Box::pin(tokio::time::sleep(self.config.delay_for)))
            .filter(|_| !self.config.delay_for.is_zero());
        let kind = if fault < self.config.abort {
            Kind::Abort {
                status: self.config.status,
            }
        } else if fault < self.config.abort + self.config.error {
            Kind::Error
        } else {
            Kind::Inner {
                future: self.inner.call(request),
            }
        };
        FaultFuture {
            kind,
            delay,
            _body: PhantomData,
        }
    }
}

pin_project! {
    /// The response future of [`Fault`].
    pub struct FaultFuture<F, B> {
        #[pin]
        kind: Kind<F>,
        delay: Option<Pin<Box<Sleep>>>,
        _body: PhantomData<fn() -> B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner { #[pin] future: F },
        Abort { status: StatusCode },
        Error,
    }
}

impl<F, B> fmt::Debug for FaultFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Inner { .. } => "inner",
            Kind::Abort { .. } => "abort",
            Kind::Error => "error",
        };
        f.debug_struct("FaultFuture")
            .field("kind", &kind)
            .field("delayed", &self.delay.is_some())
            .finish()
    }
}

impl<F, B, E> Future for FaultFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
    B: Default,
{
    type Output = Result<Response<B>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(sleep) = this.delay {
            ready!(sleep.as_mut().poll(cx));
            *this.delay = None;
        }
        match this.kind.project() {
            KindProj::Inner { future } => future.poll(cx).map_err(Into::into),
            KindProj::Abort { status } => {
                let mut response = Response::new(B::default());
                *response.status_mut() = *status;
                Poll::Ready(Ok(response))
            }
            KindProj::Error => Poll::Ready(Err(InjectedError { _priv: () }.into())),
        }
    }
}
