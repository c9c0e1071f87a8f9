//! sessiond: a stateless JSON-RPC 2.0 session-token service whose state lives in Redis.
//!
//! The binary (`main.rs`) reads the settings, sets up logs, binds the listener and calls
//! [`http::server::run`]; the tests call the same function, so they drive the code users run.
//!
//! Where to find things (docs/ARCHITECTURE.md says more):
//! - [`config`]: settings from the environment and an optional TOML file, and their bounds.
//! - [`http`]: the server (accepting, workers, connections, the drain on SIGTERM), routes,
//!   health, caller authentication, request ids.
//! - [`rpc`]: the JSON-RPC 2.0 envelope only (parsing, lenient repair, batches, errors).
//! - [`calls`]: session calls over JSON-RPC: method names and params, dispatch, results, and
//!   the one place failures become error objects.
//! - [`session`]: what each method does, its errors, tokens, the bounds of `expires_in`.
//! - [`store`]: the store trait, the Redis key format and the Redis and in-memory backends.
//! - [`metrics`], [`telemetry`] (logs), [`redact`] (credentials in URLs), [`openrpc`].

pub mod calls;
pub mod config;
pub mod http;
pub mod metrics;
pub mod openrpc;
pub mod redact;
pub mod rpc;
pub mod session;
pub mod store;
pub mod telemetry;
