//! rumgate: a self-hosted personal gateway that is also a full node of a RUM-style group network.
//!
//! Start a node with [`node::Node::start`]; everything it runs is owned by that handle.

pub mod api;
#[cfg(feature = "bench")]
pub mod bench;
pub mod chain;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod engine;
pub mod gateways;
pub mod metrics;
pub mod node;
pub mod p2p;
pub mod store;
pub mod util;

pub use config::Config;
pub use node::Node;
