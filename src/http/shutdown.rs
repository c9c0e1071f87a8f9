//! Shutting down without losing a call: the signals that start it (SIGTERM, what Kubernetes
//! and Docker send, and Ctrl-C) and the phases every connection follows.
//!
//! On the signal `/readyz` turns 503 at once, the listener takes the connections already
//! queued in its backlog and closes (new connects are refused, which a load balancer retries
//! elsewhere safely), and each worker drains:
//! 1. [`Phase::Draining`] for `SESSIOND_DRAIN_MS`: every HTTP/1 response carries
//!    `Connection: close` (the peer learns not to reuse the connection from the answer to a
//!    request it sent, so no request can be lost on it), h2 connections get a GOAWAY;
//!    connections with no request in progress stay open for their peer's last request.
//! 2. [`Phase::Closing`]: connections with no request in progress are closed; requests still
//!    running finish.
//!
//! The process exits 0 when the last connection is done, or at `SESSIOND_SHUTDOWN_TIMEOUT_MS`
//! after the signal with a warning naming how many connections were still open.

use tokio::sync::watch;

/// Where a worker's shutdown stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Serving as usual.
    Serving,
    /// Answering with `Connection: close`; idle connections wait for a last request.
    Draining,
    /// Idle connections close; requests in progress finish.
    Closing,
}

impl Phase {
    /// Completes once the phase is `at_least` (or the worker is gone).
    pub async fn reached(phase: &mut watch::Receiver<Phase>, at_least: Phase) {
        let _ = phase.wait_for(|now| *now >= at_least).await;
    }
}

/// Completes when SIGTERM or SIGINT arrives.
pub async fn signal() {
    let interrupt = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = interrupt => tracing::info!("received Ctrl-C"),
        () = terminate => tracing::info!("received SIGTERM"),
    }
}
