//! Every error response is logged with its request id: 5xx at `ERROR`, 4xx at `DEBUG`.

use super::serve_app;
use crate::support::{self, LogBuffer, get_with_id, send};

#[tokio::test]
async fn client_errors_are_logged_at_debug_with_their_id() {
    let logs = LogBuffer::default();
    let _guard = logs.install();
    let server = serve_app().await;
    send(
        &support::client(),
        get_with_id(server.url("/nowhere"), "find-me-404"),
    )
    .await;
    let line = logs.line_with("find-me-404");
    assert!(
        line.contains("DEBUG") && line.contains("status=404"),
        "{line}"
    );
}
