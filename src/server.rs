//! The connection loop: accepts on a listener it is given (so tests bind port 0), serves
//! HTTP/1.1 and h2c on each connection, caps the number of connections, and on shutdown stops
//! accepting and lets in-flight requests finish within the configured deadline. [`serve`] does
//! all of it on one runtime; the binary's workers (`workers.rs`) use the same pieces with the
//! accepting and the serving on different threads.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::app::App;
use crate::metrics::Metrics;
use crate::routes;

/// The HTTP/2 connection preface. hyper-util reads it to tell HTTP/2 from HTTP/1 without a
/// time limit of its own, so [`request_started`] waits for it under one.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Waits, for at most `within`, until the client has sent enough to tell which protocol it
/// speaks: any byte that is not the start of the HTTP/2 preface, or the whole preface. A client
/// that sends nothing (or half a preface) would otherwise hold a connection slot forever; the
/// header timeout proper only starts once the protocol is known.
async fn request_started(stream: &TcpStream, within: Duration) -> bool {
    let wait = async {
        let mut buf = [0u8; H2_PREFACE.len()];
        loop {
            match stream.peek(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) if n == buf.len() || buf[..n] != H2_PREFACE[..n] => return true,
                // Part of the preface: peek returns at once, so wait a little for the rest.
                Ok(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    };
    tokio::time::timeout(within, wait).await.unwrap_or(false)
}

/// Serves `app` on `listener` until `shutdown` completes, then drains.
pub async fn serve(listener: TcpListener, app: Arc<App>, shutdown: impl Future<Output = ()>) {
    let permits = Arc::new(Semaphore::new(app.limits.max_connections));
    let connections = Connections::new(&app);
    let mut shutdown = pin!(shutdown);
    while let Some((stream, peer)) = accept(&listener, &mut shutdown).await {
        if let Some(permit) = admit(&app.metrics, &permits, &stream, peer) {
            connections.serve(&app, stream, peer, permit);
        }
    }
    drop(listener);
    tracing::info!("shutting down: no new connections; draining in-flight requests");
    connections.drain(&app).await;
}

/// The next connection, or `None` once `shutdown` completes.
pub async fn accept(
    listener: &TcpListener,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut *shutdown => return None,
        };
        match accepted {
            Ok(accepted) => return Some(accepted),
            Err(err) => {
                // Typically EMFILE: back off briefly instead of spinning.
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Takes a connection slot for a new connection, or closes it when all
/// `SESSIOND_MAX_CONNECTIONS` slots are taken (so the client sees the overload at once).
pub fn admit(
    metrics: &Metrics,
    permits: &Arc<Semaphore>,
    stream: &TcpStream,
    peer: SocketAddr,
) -> Option<OwnedSemaphorePermit> {
    let Ok(permit) = permits.clone().try_acquire_owned() else {
        tracing::warn!(%peer, "connection limit (SESSIOND_MAX_CONNECTIONS) reached; closing new connection");
        metrics.connections_refused.inc();
        return None;
    };
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(error = %err, "could not set TCP_NODELAY");
    }
    Some(permit)
}

/// The connections one runtime serves: HTTP/1.1 or h2c each, all drained together.
pub struct Connections {
    builder: auto::Builder<TokioExecutor>,
    graceful: GracefulShutdown,
}

impl Connections {
    /// Connection settings from `app`'s limits.
    pub fn new(app: &App) -> Self {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(app.limits.header_timeout)
            .keep_alive(true);
        builder.http2().timer(TokioTimer::new());
        Self {
            builder,
            graceful: GracefulShutdown::new(),
        }
    }

    /// Serves one admitted connection on the current runtime until it ends; `permit` is
    /// given back then.
    pub fn serve(
        &self,
        app: &Arc<App>,
        stream: TcpStream,
        peer: SocketAddr,
        permit: OwnedSemaphorePermit,
    ) {
        let open = app.metrics.connections.clone();
        open.inc();
        let app = app.clone();
        let builder = self.builder.clone();
        let watcher = self.graceful.watcher();
        tokio::spawn(async move {
            if request_started(&stream, app.limits.header_timeout).await {
                let service = service_fn(move |req| routes::route(app.clone(), req));
                let connection = builder.serve_connection(TokioIo::new(stream), service);
                if let Err(err) = watcher.watch(connection.into_owned()).await {
                    tracing::debug!(%peer, error = %err, "connection ended with an error");
                }
            } else {
                tracing::debug!(%peer, "closed a connection that sent no request in time");
            }
            open.dec();
            drop(permit);
        });
    }

    /// Lets in-flight requests finish (idle connections close at once), for at most
    /// `SESSIOND_SHUTDOWN_TIMEOUT_MS`.
    pub async fn drain(self, app: &App) {
        let deadline = app.limits.shutdown_timeout;
        if tokio::time::timeout(deadline, self.graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                ?deadline,
                "drain deadline passed with requests still in flight"
            );
        }
    }
}
