//! What fender's examples share, kept here so that it is tested: the examples themselves are
//! under `examples/` and run with `cargo run --example NAME`.
//!
//! - [`cli`]: parsers for command-line arguments that validate what they accept;
//! - [`serve`]: serving a router with a header-read (and idle) timeout and header limits;
//! - [`gateway`]: the gateway example's relay, its status mapping and header filtering;
//! - [`report`]: the demo's charts of its outcome over time, in the terminal and as SVG or HTML.

pub mod cli;
pub mod gateway;
pub mod report;
pub mod serve;
