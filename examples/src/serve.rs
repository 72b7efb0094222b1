//! Serving a router over HTTP/1.1 with timeouts and limits.
//!
//! `axum::serve` sets no header-read timeout and no limits of its own: a client that sends half
//! a request line, or keeps an idle connection open, holds a socket and a task for as long as
//! it likes. [`serve`] drives hyper's HTTP/1 connection builder directly instead, with
//!
//! - a **header read timeout**: the whole request head must arrive within it, or the connection
//!   is closed. hyper restarts this timer whenever a kept-alive connection waits for its next
//!   request, so the same timeout is also the **idle timeout** of kept-alive connections;
//! - a limit on the **number of headers** and on the **size of the request head**, answered
//!   with a bare `431 Request Header Fields Too Large` by hyper itself, before any service runs.
//!   The defaults are generous so that every ordinary request reaches the router, where errors
//!   become envelopes;
//! - a **read buffer** just large enough for the largest head allowed.
//!
//! Request bodies are the router's business: axum's body limit, the gateway's streaming limit.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::cli;

/// The default header read (and idle) timeout, in seconds.
pub const DEFAULT_HEADER_READ_TIMEOUT: &str = "10";
/// The default limit on the number of request headers (hyper's own default).
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// The default limit on the size of the request line and headers together.
pub const DEFAULT_MAX_HEADER_SIZE: &str = "32KiB";

/// The smallest read buffer hyper accepts.
const MIN_BUFFER: usize = 8 * 1024;
/// The largest header read timeout accepted: a minute.
const MAX_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// How connections are served: timeouts and limits, as command-line flags.
///
/// Flatten it into an example's arguments with `#[command(flatten)]`.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    /// Seconds a client has to send a request's line and headers; a kept-alive connection that
    /// stays idle this long is closed too (0.001 to 60).
    #[arg(long, value_name = "SECS", default_value = DEFAULT_HEADER_READ_TIMEOUT,
          value_parser = header_read_timeout)]
    pub header_read_timeout: Duration,
    /// The most headers a request may have (1 to 1000); more are answered 431.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_HEADERS,
          value_parser = max_headers)]
    pub max_headers: usize,
    /// The largest request line and headers together (1KiB to 1MiB); larger are answered 431.
    #[arg(long, value_name = "BYTES", default_value = DEFAULT_MAX_HEADER_SIZE,
          value_parser = max_header_size)]
    pub max_header_size: usize,
}

fn header_read_timeout(s: &str) -> Result<Duration, String> {
    cli::seconds_at_most(s, MAX_HEADER_READ_TIMEOUT)
}

fn max_headers(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=1000).contains(&n) => Ok(n),
        _ => Err(format!("must be a whole number from 1 to 1000, not `{s}`")),
    }
}

fn max_header_size(s: &str) -> Result<usize, String> {
    cli::byte_size_in(s, 1024, 1 << 20)
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_read_timeout: header_read_timeout(DEFAULT_HEADER_READ_TIMEOUT)
                .expect("the default is valid"),
            max_headers: DEFAULT_MAX_HEADERS,
            max_header_size: max_header_size(DEFAULT_MAX_HEADER_SIZE)
                .expect("the default is valid"),
        }
    }
}

impl ServeOptions {
    /// The connection's read buffer: room for the largest head allowed, and at least hyper's
    /// minimum of 8 KiB.
    pub fn buffer_size(&self) -> usize {
        self.max_header_size.max(MIN_BUFFER)
    }

    /// hyper's HTTP/1 connection builder with these settings and tokio's timer.
    pub fn builder(&self) -> hyper::server::conn::http1::Builder {
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout)
            .max_headers(self.max_headers)
            .max_header_size(self.max_header_size)
            .max_buf_size(self.buffer_size())
            .keep_alive(true);
        http
    }
}

impl fmt::Display for ServeOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "request head within {:?} (also the keep-alive idle timeout), at most {} headers and \
             {} bytes of head, else 431",
            self.header_read_timeout, self.max_headers, self.max_header_size
        )
    }
}

/// Serves `app` on `listener` until Ctrl-C.
///
/// Connections in progress are dropped when it returns.
pub async fn serve(listener: TcpListener, app: Router, options: &ServeOptions) {
    serve_until(listener, app, options, async {
        if tokio::signal::ctrl_c().await.is_err() {
            // No signal handler: serve until the process is killed.
            std::future::pending::<()>().await;
        }
    })
    .await;
}

/// Serves `app` on `listener` until `shutdown` completes.
pub async fn serve_until(
    listener: TcpListener,
    app: Router,
    options: &ServeOptions,
    shutdown: impl Future<Output = ()>,
) {
    let http = options.builder();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors, typically: wait a little instead of spinning.
                tracing::warn!(error = %err, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %err, "could not set TCP_NODELAY");
        }
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%peer, error = %err, "connection closed");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use clap::Parser;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::time::Instant;

    #[derive(Parser, Debug)]
    struct Args {
        #[command(flatten)]
        serve: ServeOptions,
    }

    fn parse(args: &[&str]) -> Result<ServeOptions, clap::Error> {
        Args::try_parse_from(std::iter::once("test").chain(args.iter().copied())).map(|a| a.serve)
    }

    #[test]
    fn flags_default_to_the_documented_limits() {
        let options = parse(&[]).unwrap();
        assert_eq!(options, ServeOptions::default());
        assert_eq!(options.header_read_timeout, Duration::from_secs(10));
        assert_eq!(options.max_headers, 100);
        assert_eq!(options.max_header_size, 32 * 1024);
        assert_eq!(options.buffer_size(), 32 * 1024);
    }

    #[test]
    fn flags_out_of_range_are_refused() {
        for bad in [
            &["--header-read-timeout", "0"][..],
            &["--header-read-timeout", "nan"],
            &["--header-read-timeout", "61"],
            &["--max-headers", "0"],
            &["--max-headers", "1001"],
            &["--max-header-size", "512"],
            &["--max-header-size", "2MiB"],
        ] {
            assert!(parse(bad).is_err(), "accepted {bad:?}");
        }
        let small = parse(&["--max-header-size", "1KiB"]).unwrap();
        assert_eq!(small.buffer_size(), 8192, "hyper's minimum buffer");
    }

    async fn start(options: ServeOptions) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/", get(|| async { "hello" }));
        tokio::spawn(async move {
            serve_until(listener, app, &options, std::future::pending()).await;
        });
        addr
    }

    /// Reads until the server closes the connection; what it sent.
    async fn read_to_close(stream: &mut TcpStream) -> String {
        let mut seen = Vec::new();
        stream.read_to_end(&mut seen).await.unwrap();
        String::from_utf8_lossy(&seen).into_owned()
    }

    #[tokio::test(start_paused = true)]
    async fn closes_a_connection_whose_headers_stop_half_way() {
        let options = ServeOptions::default();
        let addr = start(options.clone()).await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let began = Instant::now();
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        let seen = read_to_close(&mut stream).await;
        assert!(began.elapsed() >= options.header_read_timeout);
        assert!(!seen.contains("hello"), "{seen}");
    }

    #[tokio::test(start_paused = true)]
    async fn closes_an_idle_kept_alive_connection_after_the_header_read_timeout() {
        let options = ServeOptions::default();
        let addr = start(options.clone()).await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut first = [0u8; 12];
        stream.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"HTTP/1.1 200");
        let answered = Instant::now();
        let rest = read_to_close(&mut stream).await;
        assert!(rest.ends_with("hello"), "one response only: {rest}");
        assert!(answered.elapsed() >= options.header_read_timeout);
    }

    #[tokio::test]
    async fn answers_431_to_a_request_with_too_many_headers() {
        let options = ServeOptions {
            max_headers: 4,
            ..ServeOptions::default()
        };
        let addr = start(options).await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut request = String::from("GET / HTTP/1.1\r\nhost: x\r\n");
        for i in 0..8 {
            request.push_str(&format!("x-h{i}: v\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let seen = read_to_close(&mut stream).await;
        assert!(seen.starts_with("HTTP/1.1 431"), "{seen}");
    }

    #[tokio::test]
    async fn serves_a_request_with_many_ordinary_headers() {
        let addr = start(ServeOptions::default()).await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut request = String::from("GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n");
        for i in 0..60 {
            request.push_str(&format!("x-header-{i}: {}\r\n", "v".repeat(100)));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let seen = read_to_close(&mut stream).await;
        assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
        assert!(seen.ends_with("hello"), "{seen}");
    }
}
