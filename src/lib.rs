//! sessiond: a stateless JSON-RPC 2.0 session-token service whose state lives in Redis.
//!
//! The binary (`main.rs`) only reads configuration, sets up telemetry and calls
//! [`workers::run`]: the main thread accepts ([`server::accept`], [`server::admit`]) and each
//! worker thread serves its share of the connections ([`server::Connections`]); everything else
//! lives here so that the tests and benchmarks drive the same code.
//!
//! Where to find things:
//! - [`config`]: settings from the environment and an optional TOML file.
//! - [`rpc`]: the JSON-RPC 2.0 envelope (lenient parsing, batches, error codes, responses).
//! - [`methods`]: the three session methods and their params, decoded once at the edge.
//! - [`sessions`]: what each method does against the store.
//! - [`token`]: token generation and the hashed store key.
//! - [`store`]: the store trait with its Redis and in-memory backends.
//! - [`routes`] and [`server`]: the HTTP surface and the connection loop with graceful shutdown.
//! - [`workers`]: thread per core, each worker with its own runtime and store connection.

pub mod app;
pub mod auth;
pub mod config;
pub mod healthcheck;
pub mod methods;
pub mod metrics;
pub mod openrpc;
pub mod redact;
pub mod request_id;
pub mod routes;
pub mod rpc;
pub mod server;
pub mod sessions;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod token;
pub mod workers;
