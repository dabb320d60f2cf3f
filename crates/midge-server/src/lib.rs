//! Midge's I/O layer: listeners, the per-connection driver and the shared broker state.
//!
//! ```no_run
//! # async fn demo() -> Result<(), midge_server::ServerError> {
//! let config = midge_core::config::parse("listener 1883\nallow_anonymous true\n", "midge.conf")
//!     .expect("valid config");
//! let server = midge_server::Server::bind(&config).await?;
//! server.run().await;
//! # Ok(()) }
//! ```

mod admission;
pub mod audit;
mod bridge;
pub mod broker;
mod connection;
pub mod dynsec;
pub mod heap;
pub mod http_api;
mod listener;
pub mod listener_ctx;
pub mod message;
pub mod metrics;
pub mod persist;
pub mod policy;
mod restore;
pub mod session;
pub mod settings;
pub mod store;
mod stream;
pub mod systree;
pub mod tls;
mod websocket;

pub use listener::{Server, ServerError, ServerHandle, ShutdownHandle};
