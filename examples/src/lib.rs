//! Examples for fender live under `examples/` and run with `cargo run --example NAME`.
