//! The OpenRPC document describing the service's methods, answered by `rpc.discover` and
//! served at `GET /openrpc.json`. It lives in `openrpc.json` beside this file; a test checks it
//! against the OpenRPC meta-schema and against the methods the server dispatches.

/// The document, as JSON text.
pub const DOCUMENT: &str = include_str!("openrpc.json");
