//! The envelope layers over real sockets: an axum server behind `ErrorEnvelopeLayer` on
//! 127.0.0.1:0, and hyper-util clients with and without `DecodeEnvelopeLayer`.

#[path = "../support/mod.rs"]
mod support;

mod client;
mod server;
