//! Pure broker logic: no sockets, no clock, no files.
//!
//! Time comes in as arguments and files come in as text, so everything here is tested
//! exhaustively in-process. The I/O crate (`midge-server`) wraps these types in locks and
//! tasks.

pub mod acl;
pub mod bridge_reconnect;
pub mod bridge_topics;
pub mod config;
pub mod dynsec;
#[doc(hidden)]
pub mod fuzz_check;
mod inline_stack;
pub mod password;
pub mod psk;
pub mod rate;
pub mod retained;
pub mod systree;
pub mod throttle;
pub mod topic;
pub mod trie;

pub use config::{Config, ConfigError, ListenerConfig};
pub use retained::RetainedStore;
pub use trie::{Match, SharedGroup, SubscriptionTrie};
