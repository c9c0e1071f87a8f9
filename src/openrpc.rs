//! The OpenRPC document describing the service's methods, answered by `rpc.discover` and
//! served at `GET /openrpc.json`. It lives in `openrpc.json` beside this file, with the
//! `expires_in` bounds written as placeholders that [`document`] fills in from the
//! configuration; a test checks it against the OpenRPC meta-schema and against the methods
//! the server dispatches.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::session::expiry::ExpiryLimits;

/// The document's template, as JSON text with `"__MAX_EXPIRES_IN__"`-style placeholders.
const TEMPLATE: &str = include_str!("openrpc.json");

/// The document for these limits. Rendered once per distinct pair of bounds (one in a
/// running service) and kept for the life of the process.
pub fn document(limits: &ExpiryLimits) -> &'static str {
    static RENDERED: Mutex<Option<HashMap<(u64, u64), &'static str>>> = Mutex::new(None);
    let mut rendered = RENDERED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    rendered
        .get_or_insert_with(HashMap::new)
        .entry((limits.default, limits.max))
        .or_insert_with(|| {
            let text = TEMPLATE
                .replace("\"__MAX_EXPIRES_IN__\"", &limits.max.to_string())
                .replace("__MAX_EXPIRES_IN__", &limits.max.to_string())
                .replace("\"__DEFAULT_EXPIRES_IN__\"", &limits.default.to_string())
                .replace("__DEFAULT_EXPIRES_IN__", &limits.default.to_string());
            Box::leak(text.into_boxed_str())
        })
}
