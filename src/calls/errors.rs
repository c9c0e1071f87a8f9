//! The one error boundary: a [`SessionError`] becomes a JSON-RPC error object here (and, for
//! the HTTP endpoints, a status), and is logged here — rate-limited, so that a store outage
//! under load writes a few lines a second, not one per failed call.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use hyper::StatusCode;

use crate::http::request_id;
use crate::rpc::RpcError;
use crate::rpc::error::{INTERNAL_ERROR, STORE_UNAVAILABLE};
use crate::session::SessionError;

/// `-32000`: the session store did not answer; the caller may retry.
pub fn store_unavailable() -> RpcError {
    RpcError::new(
        STORE_UNAVAILABLE,
        "Server error: the session store is unavailable; retry later",
    )
}

/// The JSON-RPC error a failure is answered with, after logging it.
pub fn to_rpc(err: &SessionError) -> RpcError {
    log(err);
    match err {
        SessionError::Store(_) => store_unavailable(),
        SessionError::RandomSource(_) => {
            RpcError::new(INTERNAL_ERROR, "Internal error: could not draw a new token")
        }
    }
}

/// The HTTP status a failure is answered with on the non-JSON-RPC endpoints, after logging
/// it: 503 when the store failed (the caller may retry elsewhere or later), 500 otherwise.
pub fn to_status(err: &SessionError) -> StatusCode {
    log(err);
    match err {
        SessionError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        SessionError::RandomSource(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// At most one line per [`LOG_EVERY_MS`] for failures, each saying how many were not logged
/// since the last one.
const LOG_EVERY_MS: u64 = 1_000;

fn log(err: &SessionError) {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    static NEXT_LOG_AT_MS: AtomicU64 = AtomicU64::new(0);
    static SUPPRESSED: AtomicU64 = AtomicU64::new(0);
    let now = START.get_or_init(Instant::now).elapsed().as_millis() as u64;
    let next = NEXT_LOG_AT_MS.load(Ordering::Relaxed);
    let due = now >= next
        && NEXT_LOG_AT_MS
            .compare_exchange(
                next,
                now + LOG_EVERY_MS,
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok();
    if !due {
        SUPPRESSED.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let suppressed = SUPPRESSED.swap(0, Ordering::Relaxed);
    request_id::with_current(|id| {
        tracing::warn!(
            request_id = id,
            error = %err,
            suppressed_since_last_line = suppressed,
            "session store call failed"
        );
    });
}
