//! A loopback TCP relay between sessiond and a real Redis, for faults that a Redis process
//! cannot show by itself:
//!
//! - [`Relay::freeze`]: the connections open now stop carrying bytes in either direction, and
//!   are neither read, written nor closed — what a Redis that moved away, or a NAT or firewall
//!   that silently dropped the flow, looks like to the client: no error, no reset, no answer.
//!   Connections made afterwards are accepted and forwarded normally.
//! - [`Relay::delay`]: every chunk read is held for a while before it is written on: a slow
//!   link.
//!
//! The relay runs on its own thread and runtime (so a test blocking its own thread does not
//! stall it), sets `TCP_NODELAY` on both of its sockets (so it adds no Nagle delay of its own),
//! and closes everything when dropped.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

/// What the test controls, shared with the relay's tasks.
struct Control {
    /// Bumped by every freeze: a connection accepted at an earlier generation stops.
    generation: watch::Sender<u64>,
    /// Held before forwarding each chunk, in microseconds.
    delay_us: AtomicU64,
    /// Connections accepted so far.
    accepted: AtomicUsize,
    /// The client address of each connection accepted, in order.
    clients: Mutex<Vec<SocketAddr>>,
}

/// A relay on `127.0.0.1:<port>` to an upstream address.
pub struct Relay {
    /// The port the relay listens on.
    pub port: u16,
    control: Arc<Control>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Relay {
    /// A relay to `127.0.0.1:<upstream_port>`, listening on a free loopback port.
    pub fn start(upstream_port: u16) -> Self {
        let listener = StdListener::bind("127.0.0.1:0").expect("bind the relay");
        Self::on(listener, upstream_port)
    }

    /// A relay to `127.0.0.1:<upstream_port>` on a listener already bound.
    pub fn on(listener: StdListener, upstream_port: u16) -> Self {
        let port = listener.local_addr().expect("relay address").port();
        listener.set_nonblocking(true).expect("non-blocking");
        let upstream = SocketAddr::from(([127, 0, 0, 1], upstream_port));
        let control = Arc::new(Control {
            generation: watch::Sender::new(0),
            delay_us: AtomicU64::new(0),
            accepted: AtomicUsize::new(0),
            clients: Mutex::new(Vec::new()),
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let shared = control.clone();
        let thread = std::thread::Builder::new()
            .name(format!("relay-{port}"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("relay runtime");
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(listener).expect("relay listener");
                    tokio::select! {
                        () = accept_loop(listener, upstream, shared) => {}
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime drops every connection task, and so every socket.
            })
            .expect("relay thread");
        Self {
            port,
            control,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `redis://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Every connection open now stops forwarding (both ways) and is left open, unread and
    /// unwritten. New connections are forwarded as usual.
    pub fn freeze(&self) {
        self.control.generation.send_modify(|g| *g += 1);
    }

    /// Holds every chunk read (either way) for `delay` before writing it on; zero for none.
    pub fn delay(&self, delay: Duration) {
        self.control
            .delay_us
            .store(delay.as_micros() as u64, Ordering::SeqCst);
    }

    /// How many connections the relay has accepted so far.
    pub fn accepted(&self) -> usize {
        self.control.accepted.load(Ordering::SeqCst)
    }

    /// The client (source) address of every connection accepted so far, oldest first: the
    /// local address of the client's socket.
    pub fn clients(&self) -> Vec<SocketAddr> {
        self.control
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, control: Arc<Control>) {
    loop {
        let Ok((client, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        control
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(peer);
        control.accepted.fetch_add(1, Ordering::SeqCst);
        let control = control.clone();
        tokio::spawn(async move {
            // A refused upstream is passed on as a closed connection.
            let Ok(server) = TcpStream::connect(upstream).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let born = *control.generation.borrow();
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::join!(
                pump(client_read, server_write, born, &control),
                pump(server_read, client_write, born, &control),
            );
        });
    }
}

/// Forwards `from` to `to` until either side closes or the relay freezes; after a freeze the
/// halves are kept, untouched, until the relay is dropped.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, born: u64, control: &Control) {
    let mut generation = control.generation.subscribe();
    let mut frozen = std::pin::pin!(async move {
        let _ = generation.wait_for(|g| *g > born).await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            biased;
            () = &mut frozen => break,
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => {
                    let _ = to.shutdown().await;
                    return;
                }
                Ok(n) => n,
            },
        };
        let delay = Duration::from_micros(control.delay_us.load(Ordering::SeqCst));
        let forwarded = async {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            to.write_all(&buf[..n]).await
        };
        tokio::select! {
            biased;
            () = &mut frozen => break,
            written = forwarded => if written.is_err() {
                return;
            },
        }
    }
    // Frozen: hold both halves open and do nothing with them.
    std::future::pending::<()>().await;
    drop((from, to));
}
