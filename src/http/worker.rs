//! Thread per core: each worker thread is a single-threaded Tokio runtime with its own store
//! connection, serving the connections the accepting thread hands it. A connection and all its
//! requests stay on one worker: no task migrates, no wake-up crosses threads, and the worker's
//! Redis connection pipelines that worker's calls (why, and the figures: docs/BENCHMARKS.md).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc as std_mpsc;

use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};
use tokio::time::Instant;

use super::app::App;
use super::connection::{self, Protocols};
use super::routes::Admission;
use super::shutdown::Phase;
use crate::config::Settings;
use crate::metrics::Metrics;

/// What the accepting thread sends a worker.
pub enum Handed {
    /// A connection, with its slot (under the limit, or beyond it for probes).
    Connection(
        std::net::TcpStream,
        SocketAddr,
        OwnedSemaphorePermit,
        Admission,
    ),
    /// The shutdown signal arrived at this instant: drain.
    Drain(std::time::Instant),
}

/// How a worker's start-up went: `Err((exit code, message))` when it could not start.
pub type Started = Result<(), (u8, String)>;

/// What one worker thread is given.
pub struct Worker {
    /// The settings.
    pub settings: Arc<Settings>,
    /// The process's metrics.
    pub metrics: Arc<Metrics>,
    /// Set when the shutdown begins.
    pub draining: Arc<AtomicBool>,
    /// Where its connections come from.
    pub handed: mpsc::UnboundedReceiver<Handed>,
    /// Where it says whether it started.
    pub report: std_mpsc::Sender<Started>,
}

impl Worker {
    /// Builds this worker's runtime and app, reports whether that worked, then serves the
    /// connections it is handed until told to drain, and drains.
    pub fn run(self) {
        let Worker {
            settings,
            metrics,
            draining,
            mut handed,
            report,
        } = self;
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(err) => {
                let _ = report.send(Err((1, format!("cannot start a runtime: {err}"))));
                return;
            }
        };
        runtime.block_on(async move {
            let app = match App::build(settings, metrics, draining) {
                Ok(app) => app,
                Err(err) => {
                    let message = format!("cannot set up the session store: {err}");
                    let _ = report.send(Err((2, message)));
                    return;
                }
            };
            let _ = report.send(Ok(()));
            let protocols = Arc::new(Protocols::new(&app));
            let (phase, watching) = watch::channel(Phase::Serving);
            // Each connection task holds a clone; `recv` returns `None` once all are gone.
            let (open, mut all_closed) = mpsc::channel::<()>(1);
            let mut signalled = None;
            while let Some(handed) = handed.recv().await {
                match handed {
                    Handed::Connection(stream, peer, permit, admission) => {
                        let stream = stream
                            .set_nonblocking(true)
                            .and_then(|()| tokio::net::TcpStream::from_std(stream));
                        let Ok(stream) = stream else {
                            continue;
                        };
                        let (app, protocols, watching, open) = (
                            app.clone(),
                            protocols.clone(),
                            watching.clone(),
                            open.clone(),
                        );
                        let gauge = app.metrics.connections.clone();
                        gauge.inc();
                        tokio::spawn(async move {
                            connection::serve(app, &protocols, stream, peer, admission, watching)
                                .await;
                            gauge.dec();
                            drop((permit, open));
                        });
                    }
                    Handed::Drain(at) => {
                        signalled = Some(at);
                        break;
                    }
                }
            }
            drop((open, watching));
            let signalled = signalled.map_or_else(Instant::now, Instant::from_std);
            drain(&app, &phase, &mut all_closed, signalled).await;
        });
    }
}

/// Moves this worker's connections through the drain phases, and returns when the last one
/// is done or the shutdown deadline passes.
async fn drain(
    app: &App,
    phase: &watch::Sender<Phase>,
    all_closed: &mut mpsc::Receiver<()>,
    signalled: Instant,
) {
    let http = &app.settings.http;
    let _ = phase.send(Phase::Draining);
    let closing_at = signalled + http.drain;
    let deadline = signalled + http.shutdown_timeout;
    let mut closing = std::pin::pin!(tokio::time::sleep_until(closing_at));
    let mut deadline = std::pin::pin!(tokio::time::sleep_until(deadline));
    loop {
        tokio::select! {
            None = all_closed.recv() => return,
            () = &mut closing, if *phase.borrow() == Phase::Draining => {
                let _ = phase.send(Phase::Closing);
            }
            () = &mut deadline => {
                tracing::warn!(
                    still_open = phase.receiver_count(),
                    timeout_ms = http.shutdown_timeout.as_millis() as u64,
                    "shutdown deadline passed with connections still open; closing them"
                );
                return;
            }
        }
    }
}
