//! The one serving path, for the binary and the tests alike: [`run`] takes a listener it did
//! not bind and a shutdown future (in the manner of mini-redis). The calling thread accepts and
//! hands each connection to a worker thread in turn (`worker.rs`); on shutdown it takes what is
//! queued in the listener's backlog, closes the listener and lets every worker drain
//! (`shutdown.rs`).
//!
//! The connection limit (`SESSIOND_MAX_CONNECTIONS`) is one semaphore for the process. Beyond
//! it, a few more connections ([`PROBE_SLOTS`]) are let in to answer probes only: `/healthz`
//! (so that a busy replica is not restarted by its liveness probe) and `/readyz`; anything else
//! on them is 503. Past those too, a connection is closed at once.

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::routes::Admission;
use super::worker::{Handed, Started, Worker};
use crate::config::{Settings, StoreKind};
use crate::metrics::Metrics;
use crate::redact::redact_url;

/// Connections let in beyond the limit to answer probes.
pub const PROBE_SLOTS: usize = 32;

/// How many workers to run: the setting, or one per CPU; one for the memory store (one map in
/// one process).
pub fn worker_count(settings: &Settings) -> usize {
    if settings.store.kind == StoreKind::Memory {
        return 1;
    }
    settings.worker_threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    })
}

/// Serves on `listener` until `shutdown` completes, then drains. The exit code: 0 after a
/// clean shutdown, 2 when the store cannot be set up, 1 when the listener, a thread or a
/// runtime cannot be made.
pub fn run(
    listener: std::net::TcpListener,
    settings: Settings,
    shutdown: impl Future<Output = ()>,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("sessiond: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match listener
        .set_nonblocking(true)
        .and_then(|()| runtime.block_on(async { TcpListener::from_std(listener) }))
    {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("sessiond: cannot use the listener: {err}");
            return ExitCode::FAILURE;
        }
    };
    describe(&settings);
    let settings = Arc::new(settings);
    let metrics = Arc::new(Metrics::new(settings.store.name()));
    let draining = Arc::new(AtomicBool::new(false));
    let (workers, threads) = match start_workers(&settings, &metrics, &draining) {
        Ok(running) => running,
        Err(code) => return code,
    };
    let local = listener
        .local_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    tracing::info!(
        listen = %local,
        store = settings.store.name(),
        workers = workers.len(),
        version = env!("CARGO_PKG_VERSION"),
        "sessiond is listening"
    );

    let limit = Limit {
        slots: Arc::new(Semaphore::new(settings.http.max_connections)),
        probes: Arc::new(Semaphore::new(PROBE_SLOTS)),
        metrics: metrics.clone(),
    };
    let mut turn = 0usize;
    let mut hand = |stream: std::net::TcpStream, peer: SocketAddr| {
        let Some((permit, admission)) = limit.admit(&stream, peer) else {
            return;
        };
        let worker = &workers[turn % workers.len()];
        let _ = worker.send(Handed::Connection(stream, peer, permit, admission));
        turn = turn.wrapping_add(1);
    };
    let listener = runtime.block_on(async {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = &mut shutdown => return listener,
            };
            match accepted {
                Ok((stream, peer)) => match stream.into_std() {
                    Ok(stream) => hand(stream, peer),
                    Err(err) => {
                        tracing::debug!(%peer, error = %err, "could not hand over a connection")
                    }
                },
                Err(err) => {
                    // Typically EMFILE: back off briefly instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    });
    let signalled = std::time::Instant::now();
    draining.store(true, Ordering::SeqCst);
    tracing::info!("shutting down: not ready, no new connections; draining");
    // Connections the kernel has already completed are in the backlog: serve them rather than
    // reset them by closing the listener.
    // The listener is non-blocking: `accept` answers WouldBlock once the backlog is empty.
    if let Ok(listener) = listener.into_std() {
        while let Ok((stream, peer)) = listener.accept() {
            hand(stream, peer);
        }
    }
    for worker in &workers {
        let _ = worker.send(Handed::Drain(signalled));
    }
    drop(workers);
    let code = join(threads, ExitCode::SUCCESS);
    tracing::info!("stopped");
    code
}

/// Logs, once, where sessions live and whether callers need a key.
fn describe(settings: &Settings) {
    match &settings.store.kind {
        StoreKind::Memory => tracing::warn!(
            "SESSIOND_REDIS_URL is unset: sessions live in this process's memory, are lost \
             on restart and are not shared; run one instance only"
        ),
        StoreKind::Redis(redis) => tracing::info!(
            mode = settings.store.name(),
            url = %redact_url(&redis.urls.join(",")),
            "sessions live in Redis"
        ),
    }
    if let Some(keys) = &settings.auth.api_keys {
        let names: Vec<&str> = keys.names().collect();
        tracing::info!(?names, "callers must present an API key");
    }
}

/// The connection limit, and the few slots beyond it for probes.
struct Limit {
    slots: Arc<Semaphore>,
    probes: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

impl Limit {
    /// A slot for a new connection, or `None` (the connection is then closed at once).
    fn admit(
        &self,
        stream: &std::net::TcpStream,
        peer: SocketAddr,
    ) -> Option<(OwnedSemaphorePermit, Admission)> {
        let admitted = match self.slots.clone().try_acquire_owned() {
            Ok(permit) => (permit, Admission::Full),
            Err(_) => {
                self.metrics.connections_refused.inc();
                let Ok(permit) = self.probes.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, "connection limit (SESSIOND_MAX_CONNECTIONS) reached; closing new connection");
                    return None;
                };
                (permit, Admission::ProbesOnly)
            }
        };
        if let Err(err) = stream.set_nodelay(true) {
            tracing::debug!(error = %err, "could not set TCP_NODELAY");
        }
        Some(admitted)
    }
}

/// The workers: where to hand each its connections, and their threads.
type Running = (Vec<mpsc::UnboundedSender<Handed>>, Vec<JoinHandle<()>>);

/// Starts one thread per worker and waits until each has its app (or one failed).
fn start_workers(
    settings: &Arc<Settings>,
    metrics: &Arc<Metrics>,
    draining: &Arc<AtomicBool>,
) -> Result<Running, ExitCode> {
    let count = worker_count(settings);
    let (report, reports) = std_mpsc::channel::<Started>();
    let mut senders = Vec::with_capacity(count);
    let mut threads = Vec::with_capacity(count);
    for index in 0..count {
        let (sender, handed) = mpsc::unbounded_channel();
        let worker = Worker {
            settings: settings.clone(),
            metrics: metrics.clone(),
            draining: draining.clone(),
            handed,
            report: report.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("sessiond-worker-{index}"))
            .spawn(move || worker.run());
        match spawned {
            Ok(thread) => {
                senders.push(sender);
                threads.push(thread);
            }
            Err(err) => {
                eprintln!("sessiond: cannot start a worker thread: {err}");
                drop(senders);
                return Err(join(threads, ExitCode::FAILURE));
            }
        }
    }
    drop(report);
    for _ in 0..count {
        let failure = match reports.recv() {
            Ok(Ok(())) => continue,
            Ok(Err((code, message))) => (ExitCode::from(code), message),
            Err(_) => (
                ExitCode::FAILURE,
                "a worker stopped while starting".to_owned(),
            ),
        };
        eprintln!("sessiond: {}", failure.1);
        drop(senders);
        return Err(join(threads, failure.0));
    }
    Ok((senders, threads))
}

/// Waits for every worker thread; `code`, or failure if one panicked.
fn join(threads: Vec<JoinHandle<()>>, code: ExitCode) -> ExitCode {
    let mut code = code;
    for thread in threads {
        if thread.join().is_err() {
            eprintln!("sessiond: a worker thread panicked");
            code = ExitCode::FAILURE;
        }
    }
    code
}
