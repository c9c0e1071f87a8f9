//! The HTTP surface and the server that carries it.
//!
//! - [`server`]: `run(listener, settings, shutdown)`, the one serving path of the binary and
//!   the tests: accepting, the connection limit, handing connections to the workers.
//! - [`worker`]: thread per core, each worker a single-threaded runtime with its own store
//!   connection.
//! - [`connection`]: one connection, HTTP/1.1 or h2c, with its timeouts.
//! - [`shutdown`]: the signals, and the drain that makes a rollout lossless.
//! - [`routes`]: paths to handlers; [`body`]: reading a body under size and time limits.
//! - [`health`]: `/healthz`, `/readyz`, and the `sessiond healthcheck` probe.
//! - [`gateway`]: `/auth`, the check gateways ask; [`oauth2`]: `/oauth2/introspect` and
//!   `/oauth2/revoke` (RFC 7662, RFC 7009).
//! - [`api_keys`]: caller authentication; [`request_id`]: the id of each request.
//! - [`app`]: what a request needs.

pub mod api_keys;
pub mod app;
pub mod body;
pub mod connection;
pub mod gateway;
pub mod health;
pub mod oauth2;
pub mod request_id;
pub mod routes;
pub mod server;
pub mod shutdown;
pub mod worker;

pub use self::app::App;
