//! Shared by the envelope tests: a real hyper-util client, request and body helpers, and the one
//! log capture. Servers come from `fender-testkit` (`serve_service`, `Upstream`).
#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A plain HTTP/1.1 client, without any fender layer.
pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A `GET` of `uri` with an empty body.
pub fn get<U>(uri: U) -> Request<Full<Bytes>>
where
    Uri: TryFrom<U>,
    <Uri as TryFrom<U>>::Error: Into<http::Error>,
{
    Request::get(uri).body(Full::new(Bytes::new())).unwrap()
}

/// A `GET` of `uri` carrying `x-request-id: id`.
pub fn get_with_id<U>(uri: U, id: &str) -> Request<Full<Bytes>>
where
    Uri: TryFrom<U>,
    <Uri as TryFrom<U>>::Error: Into<http::Error>,
{
    Request::get(uri)
        .header("x-request-id", id)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// Sends a request and reads the whole response.
pub async fn send(
    client: &HttpClient,
    req: Request<Full<Bytes>>,
) -> (http::response::Parts, Bytes) {
    let res = client.request(req).await.unwrap();
    let (parts, body) = res.into_parts();
    (parts, body.collect().await.unwrap().to_bytes())
}

/// The JSON of a body.
pub fn json(bytes: &Bytes) -> serde_json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

/// A tracing subscriber that writes to a buffer, for asserting on logs.
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    /// Everything logged so far.
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// The first line that mentions `needle`, panicking with the whole log if none does.
    pub fn line_with(&self, needle: &str) -> String {
        let log = self.contents();
        log.lines()
            .find(|l| l.contains(needle))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no log line mentions {needle}: {log}"))
    }

    /// Installs a subscriber for the current thread until the guard drops.
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        let buffer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || buffer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
