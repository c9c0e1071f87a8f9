//! Health: `GET /healthz` (the process is alive and serving), `GET /readyz` (this replica
//! should get traffic: the store answers and takes writes, and no shutdown has begun), and
//! `sessiond healthcheck`, which asks the local `/healthz` so that an image without a shell
//! or curl can be probed.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

use hyper::{Response, StatusCode};

use super::app::App;
use super::request_id;
use super::routes::{Body, text};

/// `/healthz`: always 200 while the process serves.
pub fn live() -> Response<Body> {
    text(StatusCode::OK, "ok\n")
}

/// `/readyz`: 200 when the store answers (as a master that takes writes) within its timeout
/// and no shutdown has begun; 503 otherwise.
pub async fn ready(app: &App) -> Response<Body> {
    if app.is_draining() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
    }
    match app.sessions.ready().await {
        Ok(()) => text(StatusCode::OK, "ready\n"),
        Err(err) => {
            request_id::with_current(|id| {
                tracing::warn!(request_id = id, error = %err, "session store is not ready");
            });
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "session store unavailable\n",
            )
        }
    }
}

/// Whether the server listening on `listen` answers `/healthz` with 200 within `timeout`.
pub fn probe(listen: SocketAddr, timeout: Duration) -> bool {
    let target = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), listen.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), listen.port())
        }
        _ => listen,
    };
    let ask = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect_timeout(&target, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head)?;
        Ok(head.starts_with(b"HTTP/1.") && &head[8..12] == b" 200")
    };
    ask().unwrap_or(false)
}
