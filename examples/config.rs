//! Load fender's settings from a TOML file, check them, print what is in effect, build the
//! client stack and, with `--url`, send one GET through it.
//!
//! ```sh
//! cargo run --example config -- --config examples/fender.toml
//! cargo run --example server &             # an API to talk to
//! cargo run --example config -- --config examples/fender.toml --url http://127.0.0.1:3000/users/42
//! cargo run --example config -- --help
//! ```
//!
//! fender's settings are tables of the application's own file (`[client]`, `[envelope]`), so
//! one file configures the whole program. A misspelt key, a duration that does not parse or a
//! value a builder would refuse ends the program with a message that names it and exit code 2.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bytes::Bytes;
use clap::Parser;
use fender::config::{ClientConfig, EnvelopeConfig};
use fender::retry::RetryInfo;
use fender::{CircuitBreakerLayer, ClientLayer, ErrorEnvelopeLayer, RetryLayer};
use fender_examples::cli;
use http::{Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use tower::{ServiceBuilder, ServiceExt};

/// How much of a successful response's body is printed.
const PRINT_LIMIT: usize = 4 * 1024;

/// Command-line settings.
#[derive(Parser, Debug)]
#[command(
    name = "config",
    about = "Load fender's settings from a TOML file, print the settings in effect, and \
             optionally send one GET through the configured client stack",
    after_help = "Try: --config examples/fender.toml (from the repository root)."
)]
struct Args {
    /// The TOML file to load; its [client] and [envelope] tables hold fender's settings.
    #[arg(long, value_name = "PATH")]
    config: PathBuf,
    /// Send one GET to this URL through the configured client: http://host[:port]/path.
    #[arg(long, value_parser = cli::http_url)]
    url: Option<Uri>,
}

/// The application's configuration file. Unknown tables are refused, like unknown keys.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileConfig {
    /// The outgoing client stack.
    client: ClientConfig,
    /// The server's error envelopes.
    envelope: EnvelopeConfig,
}

/// What the example builds from a file.
struct Loaded {
    /// The settings in effect, defaults filled in.
    effective: FileConfig,
    client: ClientLayer,
    envelope: ErrorEnvelopeLayer,
}

/// Reads, parses and checks the file; the error is the message to print.
fn load(path: &Path) -> Result<Loaded, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    let file: FileConfig =
        toml::from_str(&text).map_err(|err| format!("{}: {err}", path.display()))?;
    let invalid = |err| format!("{}: invalid setting {err}", path.display());
    let effective = FileConfig {
        client: file
            .client
            .effective()
            .map_err(|e| invalid(e.within("client")))?,
        envelope: file
            .envelope
            .effective()
            .map_err(|e| invalid(e.within("envelope")))?,
    };
    // The code adds what a file cannot say: here, a line for every retry.
    let client = file
        .client
        .layer_with(
            RetryLayer::new().on_retry(|attempt, delay, reason| {
                println!("  {reason}: attempt {attempt} in {delay:.1?}");
            }),
            CircuitBreakerLayer::new(),
        )
        .map_err(|e| invalid(e.within("client")))?;
    let envelope = file
        .envelope
        .layer()
        .map_err(|e| invalid(e.within("envelope")))?;
    Ok(Loaded {
        effective,
        client,
        envelope,
    })
}

/// Sends one GET through `layer`, printing the outcome.
async fn get(layer: ClientLayer, url: Uri) -> ExitCode {
    let client = ServiceBuilder::new()
        .layer(layer)
        .service(Client::builder(TokioExecutor::new()).build_http());
    let request = Request::get(url.clone())
        .body(Full::new(Bytes::new()))
        .expect("a GET of a parsed URL is a valid request");
    println!("-> GET {url}");
    match client.oneshot(request).await {
        Ok(response) => {
            let attempts = response
                .extensions()
                .get::<RetryInfo>()
                .map_or(1, RetryInfo::attempts);
            let status = response.status();
            println!("ok: {status} after {attempts} attempt(s)");
            match Limited::new(response.into_body(), PRINT_LIMIT)
                .collect()
                .await
            {
                Ok(body) => println!("{}", String::from_utf8_lossy(&body.to_bytes())),
                Err(err) if err.is::<http_body_util::LengthLimitError>() => {
                    println!("(the body is larger than {PRINT_LIMIT} bytes; not printed)");
                }
                Err(err) => println!("the body failed: {err}"),
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            println!("error: {err}");
            println!("  code:       {}", err.code());
            println!("  request id: {}", err.request_id().unwrap_or("-"));
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let loaded = match load(&args.config) {
        Ok(loaded) => loaded,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    match toml::to_string_pretty(&loaded.effective) {
        Ok(text) => println!(
            "# the settings in effect, from {}\n{text}",
            args.config.display()
        ),
        Err(err) => println!("(the settings cannot be printed: {err})"),
    }
    // A server would wrap its router with this layer; here it is only built.
    let _ = loaded.envelope;
    match args.url {
        Some(url) => get(loaded.client, url).await,
        None => {
            println!("# the client stack is ready; pass --url to send a GET through it");
            ExitCode::SUCCESS
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped_file() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fender.toml")
    }

    #[test]
    fn the_shipped_file_loads_and_its_effective_settings_read_back() {
        let loaded = load(&shipped_file()).unwrap_or_else(|err| panic!("{err}"));
        let printed = toml::to_string_pretty(&loaded.effective).unwrap();
        let again: FileConfig = toml::from_str(&printed).unwrap();
        assert_eq!(again.client, loaded.effective.client);
        assert_eq!(again.envelope, loaded.effective.envelope);
    }

    #[test]
    fn a_bad_setting_is_reported_with_the_file_and_the_whole_path() {
        let dir = std::env::temp_dir().join(format!("fender-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.toml");
        std::fs::write(&path, "[client.retry]\nmax_attempts = 0\n").unwrap();
        let err = load(&path).err().unwrap();
        assert!(
            err.ends_with("invalid setting client.retry.max_attempts: must be at least 1 (the first attempt), got 0"),
            "{err}"
        );
        std::fs::write(&path, "[server]\nport = 1\n").unwrap();
        let err = load(&path).err().unwrap();
        assert!(
            err.contains("unknown field `server`, expected `client` or `envelope`"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
