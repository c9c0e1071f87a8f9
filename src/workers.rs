//! Thread per core: the binary runs `SESSIOND_WORKER_THREADS` (by default one per CPU) worker
//! threads, each a single-threaded Tokio runtime with its own store connection. The main
//! thread accepts connections and hands them out in turn; from then on a connection and all
//! its requests are served on one worker: no task migrates, no wake-up crosses threads, and
//! each worker's Redis connection pipelines that worker's calls. Against one multi-threaded
//! runtime sharing one Redis connection this cut sessiond's CPU per call by about a third
//! (figures in BENCHMARKS.md).
//!
//! The workers share the metrics registry (so `/metrics` counts the whole process) and the
//! connection limit. On SIGTERM or Ctrl-C the main thread stops accepting and closes the
//! listener in one place, then each worker drains its connections. The memory store is one map
//! in one process, so with it there is one worker.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;

use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::app::App;
use crate::config::{Settings, StoreSettings};
use crate::metrics::Metrics;
use crate::server::{Connections, accept, admit};
use crate::{shutdown, store};

/// A connection handed to a worker, with its slot under the connection limit.
type Handed = (std::net::TcpStream, SocketAddr, OwnedSemaphorePermit);

/// The running workers: where to hand each one connections, and its thread.
struct Running {
    senders: Vec<mpsc::UnboundedSender<Handed>>,
    threads: Vec<JoinHandle<()>>,
}

/// How a worker's start-up went: `Err((exit code, message))` when it could not start.
type Started = Result<(), (u8, String)>;

/// How many workers to run: the setting, or one per CPU; one for the memory store.
pub fn count(settings: &Settings) -> usize {
    if matches!(settings.store, StoreSettings::Memory) {
        return 1;
    }
    settings.worker_threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    })
}

/// Serves until SIGTERM or Ctrl-C, then lets every worker drain. The exit code: 0 after a
/// clean shutdown, 2 when the store cannot be set up, 1 when the listener, a thread or a
/// runtime cannot be made.
pub fn run(settings: Settings) -> ExitCode {
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
    let listener = match runtime.block_on(TcpListener::bind(settings.listen)) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("sessiond: cannot listen on {}: {err}", settings.listen);
            return ExitCode::FAILURE;
        }
    };
    App::describe(&settings);
    let settings = Arc::new(settings);
    let metrics = Arc::new(Metrics::new(store::kind(&settings.store)));

    let Running {
        senders: workers,
        threads,
    } = match start_workers(&settings, &metrics) {
        Ok(running) => running,
        Err(code) => return code,
    };
    tracing::info!(
        listen = %settings.listen,
        store = store::kind(&settings.store),
        workers = workers.len(),
        version = env!("CARGO_PKG_VERSION"),
        "sessiond is listening"
    );

    let permits = Arc::new(Semaphore::new(settings.max_connections));
    runtime.block_on(async {
        let mut signal = std::pin::pin!(shutdown::signal());
        let mut turn = 0usize;
        while let Some((stream, peer)) = accept(&listener, &mut signal).await {
            let Some(permit) = admit(&metrics, &permits, &stream, peer) else {
                continue;
            };
            match stream.into_std() {
                Ok(stream) => {
                    // A worker that is gone drops the connection (it cannot happen before
                    // shutdown: workers only stop when their channel closes).
                    let _ = workers[turn % workers.len()].send((stream, peer, permit));
                    turn = turn.wrapping_add(1);
                }
                Err(err) => {
                    tracing::debug!(%peer, error = %err, "could not hand over a connection")
                }
            }
        }
    });
    drop(listener);
    tracing::info!("shutting down: no new connections; draining in-flight requests");
    // Closing the channels is the workers' signal to drain and stop.
    drop(workers);
    let code = join(threads, ExitCode::SUCCESS);
    tracing::info!("stopped");
    code
}

/// Starts one thread per worker and waits until each has its app (or one failed).
fn start_workers(settings: &Arc<Settings>, metrics: &Arc<Metrics>) -> Result<Running, ExitCode> {
    let count = count(settings);
    let (report, reports) = std_mpsc::channel::<Started>();
    let mut senders = Vec::with_capacity(count);
    let mut threads = Vec::with_capacity(count);
    for index in 0..count {
        let (sender, handed) = mpsc::unbounded_channel();
        let worker = Worker {
            settings: settings.clone(),
            metrics: metrics.clone(),
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
    Ok(Running { senders, threads })
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

/// What one worker thread is given.
struct Worker {
    settings: Arc<Settings>,
    metrics: Arc<Metrics>,
    handed: mpsc::UnboundedReceiver<Handed>,
    report: std_mpsc::Sender<Started>,
}

impl Worker {
    /// Builds this worker's runtime and app, reports whether that worked, then serves the
    /// connections it is handed until the channel closes, and drains.
    fn run(self) {
        let Worker {
            settings,
            metrics,
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
            let app = match App::build(&settings, metrics) {
                Ok(app) => app,
                Err(err) => {
                    let message = format!("cannot set up the session store: {err}");
                    let _ = report.send(Err((2, message)));
                    return;
                }
            };
            let _ = report.send(Ok(()));
            let connections = Connections::new(&app);
            while let Some((stream, peer, permit)) = handed.recv().await {
                match tokio::net::TcpStream::from_std(stream) {
                    Ok(stream) => connections.serve(&app, stream, peer, permit),
                    Err(err) => {
                        tracing::debug!(%peer, error = %err, "could not take over a connection")
                    }
                }
            }
            connections.drain(&app).await;
        });
    }
}
