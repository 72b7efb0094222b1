//! The envelope layers over real sockets: axum and tower services behind `ErrorEnvelopeLayer`
//! on testkit servers, and hyper-util clients with and without `DecodeEnvelopeLayer`.

#[path = "../support/mod.rs"]
mod support;

mod classify;
mod client;
mod problem;
mod server;
