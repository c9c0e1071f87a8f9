//! One client connection: which protocol it speaks (HTTP/1.1, or h2c by its preface), its
//! timeouts, and its part in a drain.
//!
//! - The protocol is known from the first bytes, read (not peeked: a peek loop on a partial
//!   preface would wake again at once) under the header timeout.
//! - HTTP/1.1: hyper's header timeout bounds each request's headers and an idle keep-alive;
//!   the body timeout bounds the body (`body.rs`) and each write the client does not read.
//! - h2c: at most `SESSIOND_H2_MAX_STREAMS` concurrent streams, keep-alive pings, and a
//!   connection with no open stream for the header timeout is closed (GOAWAY).
//! - Drain (`shutdown.rs`): from the signal on, HTTP/1 responses carry `Connection: close` and
//!   h2 connections get a GOAWAY; a connection with no request in progress is closed when the
//!   drain period ends, not before, so it can never race a request its peer has sent.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use super::app::App;
use super::routes::{self, Admission, Body};
use super::shutdown::Phase;

/// The HTTP/2 connection preface.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How the builders are set up for one worker.
pub struct Protocols {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
}

impl Protocols {
    /// Builders from the settings' limits and timeouts.
    pub fn new(app: &App) -> Self {
        let http = &app.settings.http;
        let mut http1 = http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(http.header_timeout)
            .keep_alive(true);
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_concurrent_streams(http.h2_max_streams)
            .max_header_list_size(64 * 1024)
            .keep_alive_interval(http.header_timeout)
            .keep_alive_timeout(http.header_timeout);
        Self { http1, http2 }
    }
}

/// Serves one connection until it ends. `admission` says whether it holds a slot under the
/// connection limit or was let in beyond it to answer probes only.
pub async fn serve(
    app: Arc<App>,
    protocols: &Protocols,
    stream: TcpStream,
    peer: SocketAddr,
    admission: Admission,
    mut phase: watch::Receiver<Phase>,
) {
    let http = &app.settings.http;
    let mut stream = stream;
    let Some((prefix, len)) = first_bytes(&mut stream, http.header_timeout, &mut phase).await
    else {
        tracing::debug!(%peer, "closed a connection that sent no request");
        return;
    };
    let h2 = len == H2_PREFACE.len() && &prefix == H2_PREFACE;
    let io = TokioIo::new(Socket {
        prefix,
        start: 0,
        end: len,
        stream,
        write_timeout: http.body_timeout,
        write_deadline: None,
    });
    // Boxed: an idle connection's task is then only as large as the protocol it speaks (the
    // h2 connection's state is several times an HTTP/1 one's).
    let result = if h2 {
        Box::pin(serve_h2(app.clone(), protocols, io, admission, &mut phase)).await
    } else {
        Box::pin(serve_http1(
            app.clone(),
            protocols,
            io,
            admission,
            &mut phase,
        ))
        .await
    };
    if let Err(err) = result {
        tracing::debug!(%peer, error = %err, "connection ended with an error");
    }
}

/// Reads until the protocol is known: any byte that is not the start of the HTTP/2 preface,
/// or the whole preface. `None` when the client closes, sends nothing within `within`, or
/// sent nothing at all by the end of a drain.
async fn first_bytes(
    stream: &mut TcpStream,
    within: Duration,
    phase: &mut watch::Receiver<Phase>,
) -> Option<([u8; 24], usize)> {
    let mut buf = [0u8; 24];
    let mut len = 0;
    let deadline = tokio::time::sleep(within);
    let mut deadline = pin!(deadline);
    loop {
        tokio::select! {
            read = stream.read(&mut buf[len..]) => match read {
                Ok(0) | Err(_) => return None,
                Ok(n) => {
                    len += n;
                    if len == buf.len() || buf[..len] != H2_PREFACE[..len] {
                        return Some((buf, len));
                    }
                }
            },
            () = &mut deadline => return None,
            () = Phase::reached(phase, Phase::Closing), if len == 0 => return None,
        }
    }
}

async fn serve_http1(
    app: Arc<App>,
    protocols: &Protocols,
    io: TokioIo<Socket>,
    admission: Admission,
    phase: &mut watch::Receiver<Phase>,
) -> hyper::Result<()> {
    // Each request's future is boxed for the time it runs. hyper keeps the service's future in
    // a box it makes when the connection starts (`Option<S::Future>`, kept for the connection's
    // whole life): unboxed, every connection, idle ones included, would hold a whole route
    // future from its first byte to its close. Boxed, an idle connection holds a pointer and
    // the future exists only while its request is served. Measured at c1b9337 with 8,000 idle
    // keep-alive connections and two workers: 19.9-23.2 KB of RSS per connection before,
    // 14.5-17.6 KB after (docs/BENCHMARKS.md). h2 needs no such box: hyper spawns each
    // stream's future as a task of its own.
    let service = service_fn(move |req| Box::pin(routes::route(app.clone(), req, admission)));
    let conn = protocols.http1.serve_connection(io, service);
    let mut conn = pin!(conn);
    tokio::select! {
        result = conn.as_mut() => return result,
        // Until then, every response during the drain closed its connection itself.
        () = Phase::reached(phase, Phase::Closing) => conn.as_mut().graceful_shutdown(),
    }
    conn.await
}

async fn serve_h2(
    app: Arc<App>,
    protocols: &Protocols,
    io: TokioIo<Socket>,
    admission: Admission,
    phase: &mut watch::Receiver<Phase>,
) -> hyper::Result<()> {
    let idle_after = app.settings.http.header_timeout;
    let streams = Arc::new(AtomicUsize::new(0));
    let counted = streams.clone();
    let service = service_fn(move |req: Request<Incoming>| {
        let app = app.clone();
        let open = OpenStream::new(&counted);
        async move {
            let response: Result<Response<Body>, _> = routes::route(app, req, admission).await;
            drop(open);
            response
        }
    });
    let conn = protocols.http2.serve_connection(io, service);
    let mut conn = pin!(conn);
    let mut idle_since = Some(Instant::now());
    loop {
        let check = tokio::time::sleep(idle_after / 4);
        tokio::select! {
            result = conn.as_mut() => return result,
            () = Phase::reached(phase, Phase::Draining) => break,
            () = check => {
                if streams.load(Ordering::Relaxed) > 0 {
                    idle_since = None;
                } else if idle_since.get_or_insert_with(Instant::now).elapsed() >= idle_after {
                    break;
                }
            }
        }
    }
    conn.as_mut().graceful_shutdown();
    conn.await
}

/// Counts an h2 stream as open while alive.
struct OpenStream(Arc<AtomicUsize>);

impl OpenStream {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count.clone())
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The client's socket, with the bytes already read to tell the protocol given back first,
/// and a bound on each write: a client that stops reading its response cannot hold the
/// connection (and the response's memory) beyond the body timeout.
pub struct Socket {
    prefix: [u8; 24],
    start: usize,
    end: usize,
    stream: TcpStream,
    write_timeout: Duration,
    write_deadline: Option<Pin<Box<Sleep>>>,
}

impl Socket {
    /// `Ready(Err)` once a write has waited for the client longer than the write timeout.
    fn write_stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let timeout = self.write_timeout;
        let deadline = self
            .write_deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        deadline.as_mut().poll(cx).map(|()| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                "the client did not read its response in time",
            )
        })
    }

    fn wrote<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match poll {
            Poll::Ready(result) => {
                self.write_deadline = None;
                Poll::Ready(result)
            }
            Poll::Pending => self.write_stalled(cx).map(Err),
        }
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.start < self.end {
            let n = (self.end - self.start).min(buf.remaining());
            let start = self.start;
            buf.put_slice(&self.prefix[start..start + n]);
            self.start += n;
            // The rest of what has arrived goes in the same read: hyper then sees the whole
            // request at once. Given the prefix alone it would read again with those bytes
            // still in its buffer, and grow the buffer to 16 KB for every connection.
            if self.start == self.end && buf.remaining() > 0 {
                // Pending only means nothing more has arrived yet; the prefix is answer enough.
                if let Poll::Ready(Err(err)) = Pin::new(&mut self.stream).poll_read(cx, buf) {
                    return Poll::Ready(Err(err));
                }
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.wrote(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.wrote(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.stream).poll_flush(cx);
        self.wrote(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
