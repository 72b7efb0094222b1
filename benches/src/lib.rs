//! Benchmarks for fender live under `benches/` and run with `cargo bench`.
