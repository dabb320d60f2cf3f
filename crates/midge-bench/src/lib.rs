//! midge-bench: a load tool for MQTT brokers (Midge, Mosquitto, any other) over plain TCP.
//!
//! The binary is a thin wrapper: parse [`Options`], build the runtime with [`runtime`], call
//! [`run`], print the [`Report`]. Tests call the same functions in-process.
//!
//! Cheap per message by design, so that the broker, not the tool, is what is measured: hot
//! packets are stamped from templates and parsed in place ([`hot_packets`]), writes and
//! reads are batched, and by default everything runs on one thread (pin it with `taskset`).

pub mod cli;
pub mod client;
pub mod clock;
pub mod engine;
pub mod error;
pub mod histogram;
pub mod hot_packets;
pub mod json;
pub mod payload;
pub mod procstat;
pub mod progress;
pub mod report;
pub mod scenarios;
pub mod sequence;

pub use cli::{Options, OptionsError, Scenario};
pub use error::BenchError;
pub use report::Report;

/// Runs the scenario the options name and returns its report. Needs a tokio runtime with
/// I/O and timers enabled (see [`runtime`]).
pub async fn run(options: &Options) -> Result<Report, BenchError> {
    scenarios::run(options).await
}

/// The runtime `--threads` asks for: a current-thread runtime for 1 (the whole tool on one
/// core), a multi-thread one otherwise.
pub fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}
