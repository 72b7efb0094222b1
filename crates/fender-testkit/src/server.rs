//! [`TestServer`], the socket face of an [`Upstream`], and [`refused_addr`].

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::conn::auto;
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::BoxError;
use crate::body::TestBody;
use crate::upstream::{Fault, Received, Respond, Upstream};

/// How long in-flight requests may take to finish once the server is dropped.
const GRACE: Duration = Duration::from_secs(1);

/// A real HTTP server on `127.0.0.1`, serving an [`Upstream`]'s plan; from
/// [`Upstream::serve`].
///
/// It speaks HTTP/1.1 and HTTP/2 with prior knowledge, on a port of its own. Faults are real on
/// the wire: a [`Reply::reset`](crate::Reply::reset) closes the TCP connection with a reset, a
/// [`Reply::close_mid_body`](crate::Reply::close_mid_body) closes it mid-body.
///
/// ```
/// use fender_testkit::{Plan, Reply, Upstream};
/// use http_body_util::{BodyExt, Empty};
/// use hyper_util::client::legacy::Client;
/// use hyper_util::rt::TokioExecutor;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let server = Upstream::new(Plan::sequence([Reply::retry_after_secs(503, 2), Reply::ok()]))
///     .serve()
///     .await;
/// let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
///
/// let busy = client.get(server.url("/health")).await.unwrap();
/// assert_eq!(busy.status(), 503);
/// assert_eq!(busy.headers()["retry-after"], "2");
/// let fine = client.get(server.url("/health")).await.unwrap();
/// assert_eq!(fine.into_body().collect().await.unwrap().to_bytes(), r#"{"ok":true}"#);
///
/// assert_eq!(server.count(), 2);
/// assert_eq!(server.received()[0].uri, "/health");
/// # }
/// ```
///
/// # Shutdown
///
/// Dropping the server closes its listener at once, so later connections are refused; open
/// connections finish their in-flight requests within a grace period of one second
/// (`tokio::time`), hanging ones are closed at once, and then every task the server started is
/// gone. [`shutdown`](TestServer::shutdown) does the same and waits for it.
pub struct TestServer {
    server: ServiceServer,
    upstream: Upstream,
}

impl TestServer {
    pub(crate) async fn start(upstream: Upstream) -> TestServer {
        let plan = upstream.clone();
        let server = ServiceServer::start(move |state| ConnService {
            upstream: plan.clone(),
            state,
        })
        .await;
        TestServer { server, upstream }
    }

    /// The address it listens on: `127.0.0.1` and its own port.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `http://127.0.0.1:PORT` followed by `path_and_query` (which should start with `/`).
    ///
    /// # Panics
    ///
    /// When the result is not a valid URI.
    pub fn url(&self, path_and_query: &str) -> Uri {
        self.server.url(path_and_query)
    }

    /// The upstream it serves (the same plan and record).
    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// A copy of the record: [`Upstream::received`].
    pub fn received(&self) -> Vec<Received> {
        self.upstream.received()
    }

    /// How many requests it received: [`Upstream::count`].
    pub fn count(&self) -> usize {
        self.upstream.count()
    }

    /// Shuts down as a drop does, and waits until every task it started is gone.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

impl fmt::Debug for TestServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestServer")
            .field("addr", &self.addr())
            .field("upstream", &self.upstream)
            .finish_non_exhaustive()
    }
}

/// Your own service on a real socket, from [`serve_service`]; shuts down when dropped, as a
/// [`TestServer`] does.
pub struct ServiceServer {
    addr: SocketAddr,
    stop: Option<watch::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ServiceServer {
    async fn start<M, S, B>(make_service: M) -> ServiceServer
    where
        M: Fn(Arc<ConnState>) -> S + Send + 'static,
        S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind a listener on 127.0.0.1");
        let addr = listener.local_addr().expect("the listener's address");
        let (stop, stopped) = watch::channel(());
        let task = tokio::spawn(accept_loop(listener, make_service, stopped));
        ServiceServer {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The address it listens on: `127.0.0.1` and its own port.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` followed by `path_and_query` (which should start with `/`).
    ///
    /// # Panics
    ///
    /// When the result is not a valid URI.
    pub fn url(&self, path_and_query: &str) -> Uri {
        format!("http://{}{path_and_query}", self.addr)
            .parse()
            .expect("a valid URI")
    }

    /// Shuts down as a drop does, and waits until every task it started is gone.
    pub async fn shutdown(mut self) {
        self.stop.take();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl fmt::Debug for ServiceServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for ServiceServer {
    fn drop(&mut self) {
        // Dropping the sender tells the accept loop and every connection to stop.
        self.stop.take();
    }
}

/// Serves your own `tower::Service` over HTTP/1.1 and HTTP/2 on `127.0.0.1:0`, with a real
/// connection reset at hand: every request carries a [`ResetConnection`] in its extensions.
///
/// Use it to put a real application (an axum router behind your middleware, say) on a socket
/// and still make it misbehave the way only a socket can. It shuts down like a [`TestServer`].
///
/// ```
/// use fender_testkit::{ResetConnection, serve_service};
/// use http_body_util::Full;
/// use hyper_util::client::legacy::Client;
/// use hyper_util::rt::TokioExecutor;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let app = tower::service_fn(|req: http::Request<hyper::body::Incoming>| async move {
///     if req.uri().path() == "/crash" {
///         req.extensions().get::<ResetConnection>().unwrap().reset();
///     }
///     Ok::<_, std::convert::Infallible>(http::Response::new(Full::<bytes::Bytes>::from("fine")))
/// });
/// let server = serve_service(app).await;
/// let client = Client::builder(TokioExecutor::new()).build_http::<Full<bytes::Bytes>>();
///
/// let fine = client.get(server.url("/")).await.unwrap();
/// assert_eq!(fine.status(), 200);
/// let crashed = client.get(server.url("/crash")).await;
/// assert!(crashed.is_err()); // the connection was reset
/// # }
/// ```
pub async fn serve_service<S, B>(service: S) -> ServiceServer
where
    S: tower_service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    ServiceServer::start(move |state| {
        let handle = ResetConnection {
            state: state.clone(),
        };
        let service = tower::ServiceBuilder::new()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(handle.clone());
                request
            })
            .map_future(move |future: S::Future| {
                let state = state.clone();
                async move {
                    let response = future.await;
                    // A reset connection sends nothing: hold the response back until the
                    // connection is dropped.
                    if state.resetting.load(Ordering::Acquire) {
                        std::future::pending::<()>().await;
                    }
                    response
                }
            })
            .service(service.clone());
        hyper_util::service::TowerToHyperService::new(service)
    })
    .await
}

/// Resets the TCP connection a request arrived on; in the extensions of every request that
/// [`serve_service`] serves.
#[derive(Clone)]
pub struct ResetConnection {
    state: Arc<ConnState>,
}

impl ResetConnection {
    /// Drops the connection with a TCP reset (`SO_LINGER` 0): the client sees a connection
    /// reset, and whatever the handler answers is never sent.
    pub fn reset(&self) {
        self.state.resetting.store(true, Ordering::Release);
        self.state.reset.notify_one();
    }
}

impl fmt::Debug for ResetConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResetConnection").finish_non_exhaustive()
    }
}

async fn accept_loop<M, S, B>(
    listener: TcpListener,
    make_service: M,
    mut stopped: watch::Receiver<()>,
) where
    M: Fn(Arc<ConnState>) -> S,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    // Tasks hyper spawns (HTTP/2 streams) end when this sender is dropped, that is when this
    // task ends or is cancelled.
    let (_alive, alive) = watch::channel(());
    let executor = ServerExecutor { alive };
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                match accepted {
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        let state = Arc::new(ConnState::default());
                        connections.spawn(serve_connection(
                            stream,
                            make_service(state.clone()),
                            state,
                            executor.clone(),
                            stopped.clone(),
                        ));
                    }
                    // Out of file descriptors and the like: let other tasks run, then go on.
                    Err(_) => tokio::task::yield_now().await,
                }
            }
            _ = stopped.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    // Each connection ends within the grace period once stopped.
    while connections.join_next().await.is_some() {}
}

async fn serve_connection<S, B>(
    stream: TcpStream,
    service: S,
    state: Arc<ConnState>,
    executor: ServerExecutor,
    mut stopped: watch::Receiver<()>,
) where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let io = TokioIo::new(ConnIo {
        stream,
        state: state.clone(),
    });
    let builder = auto::Builder::new(executor);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        // Dropping the connection drops the socket, with SO_LINGER 0 set: a reset.
        _ = state.reset.notified() => return,
        _ = stopped.changed() => {}
    }
    if state.hanging.load(Ordering::Acquire) > 0 {
        return;
    }
    connection.as_mut().graceful_shutdown();
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = state.reset.notified() => {}
        _ = tokio::time::sleep(GRACE) => {}
    }
}

#[derive(Default)]
pub(crate) struct ConnState {
    /// Set before the connection is dropped to reset it.
    resetting: AtomicBool,
    reset: Notify,
    /// Requests on this connection that will never be answered.
    hanging: AtomicUsize,
}

/// The socket of one connection; closes with a TCP reset when its connection is reset.
struct ConnIo {
    stream: TcpStream,
    state: Arc<ConnState>,
}

impl Drop for ConnIo {
    fn drop(&mut self) {
        if self.state.resetting.load(Ordering::Acquire) {
            let _ = self.stream.set_zero_linger();
        }
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// The service of one connection: the upstream, plus the socket faults.
struct ConnService {
    upstream: Upstream,
    state: Arc<ConnState>,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<TestBody>;
    type Error = BoxError;
    type Future = ConnFuture;

    fn call(&self, request: Request<Incoming>) -> ConnFuture {
        ConnFuture {
            inner: self.upstream.respond(request),
            state: self.state.clone(),
            parked: None,
        }
    }
}

pin_project! {
    struct ConnFuture {
        #[pin]
        inner: Respond<Incoming>,
        state: Arc<ConnState>,
        parked: Option<Parked>,
    }
}

/// A request that is never answered; counted as hanging while it lives.
struct Parked {
    state: Option<Arc<ConnState>>,
}

impl Drop for Parked {
    fn drop(&mut self) {
        if let Some(state) = &self.state {
            state.hanging.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Future for ConnFuture {
    type Output = Result<Response<TestBody>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if this.parked.is_some() {
            return Poll::Pending;
        }
        match ready!(this.inner.poll(cx)) {
            Ok(response) => Poll::Ready(Ok(response)),
            Err(Fault::Body(e)) => Poll::Ready(Err(e)),
            Err(Fault::Hang) => {
                this.state.hanging.fetch_add(1, Ordering::AcqRel);
                *this.parked = Some(Parked {
                    state: Some(this.state.clone()),
                });
                Poll::Pending
            }
            Err(Fault::Reset) => {
                this.state.resetting.store(true, Ordering::Release);
                this.state.reset.notify_one();
                *this.parked = Some(Parked { state: None });
                Poll::Pending
            }
        }
    }
}

/// Runs the tasks hyper spawns, and ends them when the server's accept loop ends.
#[derive(Clone)]
struct ServerExecutor {
    alive: watch::Receiver<()>,
}

impl<F> hyper::rt::Executor<F> for ServerExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        let mut alive = self.alive.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = future => {}
                _ = alive.changed() => {}
            }
        });
    }
}

/// A `127.0.0.1` address where nothing listens: connecting to it is refused.
///
/// The port is bound (so no one else can take it) but never listened on, for the life of the
/// process; every call returns the same address.
///
/// # Panics
///
/// When no loopback port can be bound.
pub fn refused_addr() -> SocketAddr {
    static HOLDER: OnceLock<(TcpSocket, SocketAddr)> = OnceLock::new();
    HOLDER
        .get_or_init(|| {
            let socket = TcpSocket::new_v4().expect("create a socket");
            socket
                .bind((Ipv4Addr::LOCALHOST, 0).into())
                .expect("bind a port on 127.0.0.1");
            let addr = socket.local_addr().expect("the socket's address");
            (socket, addr)
        })
        .1
}
