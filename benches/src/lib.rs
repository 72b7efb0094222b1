//! Benchmarks for fender live under `benches/` and run with `cargo bench`; this library holds
//! the code they share.

pub mod sim;
