//! The HTTP surface: `POST /` (JSON-RPC), `GET /healthz`, `GET /readyz`, `GET /metrics`,
//! `GET /openrpc.json`. Each request gets a span with its request id (taken from
//! `X-Request-Id` or made up, and echoed); JSON-RPC calls need an API key when keys are
//! configured; bodies are read under a size limit (413 before buffering more than the limit)
//! and a time limit.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use futures_util::FutureExt;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{
    ALLOW, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue,
    WWW_AUTHENTICATE,
};
use hyper::{Method, Request, Response, StatusCode};
use tracing::Instrument;

use crate::app::App;
use crate::metrics::{self, CallerLabels, GaugeGuard};
use crate::openrpc;
use crate::rpc::RpcError;
use crate::rpc::dispatch::handle_body;
use crate::rpc::response::error_body;

/// Every response body: whole, in memory.
pub type Body = Full<Bytes>;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Routes one request.
///
/// # Errors
/// Never: every failure is an HTTP response.
pub async fn route(app: Arc<App>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    // Read only for the debug line below: a clock reading per request is not free.
    let started = tracing::enabled!(tracing::Level::DEBUG).then(Instant::now);
    let _in_flight = GaugeGuard::new(&app.metrics.in_flight);
    let request_id = request_id(req.headers());
    // The span carries only what a problem logged during the request needs to be traced back:
    // the request id (and, with API keys, the caller). Every field of a span is formatted into
    // text when the span is made, at the default level too, and with the method and the path
    // as well that was about an eighth of a verify's instructions; they are on the debug line
    // below instead. The id stays a `str`, which the text formatter quotes and escapes: it may
    // hold `"` or `=`, and a caller must not be able to forge the text around it.
    let span = tracing::info_span!(
        "request",
        request_id = request_id.to_str().unwrap_or_default(),
        caller = tracing::field::Empty,
    );
    let target =
        started.map(|started| (started, req.method().clone(), req.uri().path().to_owned()));
    let mut response = answer(&app, req).instrument(span.clone()).await;
    if let Some((started, method, path)) = target {
        tracing::debug!(
            parent: &span,
            %method,
            path,
            status = response.status().as_u16(),
            micros = started.elapsed().as_micros() as u64,
            "request finished"
        );
    }
    response.headers_mut().insert(REQUEST_ID, request_id);
    Ok(response)
}

async fn answer(app: &App, req: Request<Incoming>) -> Response<Body> {
    let get = matches!(*req.method(), Method::GET | Method::HEAD);
    match req.uri().path() {
        "/" if req.method() == Method::POST => match refusal(app, &req) {
            None => rpc(app, req).await,
            Some(refused) => refused,
        },
        "/" => method_not_allowed("POST"),
        "/healthz" if get => text(StatusCode::OK, "ok\n"),
        "/readyz" if get => {
            if app.sessions.ready().await {
                text(StatusCode::OK, "ready\n")
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "session store unavailable\n",
                )
            }
        }
        "/metrics" if get => {
            if app.metrics_auth {
                if let Some(refused) = refusal(app, &req) {
                    return refused;
                }
            }
            let mut response = Response::new(Body::from(app.metrics.render()));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(metrics::CONTENT_TYPE),
            );
            response
        }
        "/openrpc.json" if get => json(StatusCode::OK, openrpc::DOCUMENT.as_bytes().to_vec()),
        "/healthz" | "/readyz" | "/metrics" | "/openrpc.json" => method_not_allowed("GET, HEAD"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// The caller's request id when it is a sane header value, otherwise a new one.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    if let Some(given) = headers.get(&REQUEST_ID) {
        let sane = given.len() <= 128 && given.as_bytes().iter().all(u8::is_ascii_graphic);
        if sane && !given.is_empty() {
            return given.clone();
        }
    }
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    // `<boot id, 8 hex digits>-<counter in hex>`, written without the formatting machinery:
    // this runs on every request.
    let mut made = [0u8; 8 + 1 + 16];
    write_hex(&mut made[..8], u64::from(boot_id()));
    made[8] = b'-';
    let digits = (64 - n.leading_zeros()).div_ceil(4).max(1) as usize;
    write_hex(&mut made[9..9 + digits], n);
    HeaderValue::from_bytes(&made[..9 + digits])
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// Fills `out` with the low `out.len()` hex digits of `n`, most significant first.
fn write_hex(out: &mut [u8], mut n: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for digit in out.iter_mut().rev() {
        *digit = HEX[(n & 0xf) as usize];
        n >>= 4;
    }
}

/// A random number fixed for the life of the process, so request ids differ across replicas.
fn boot_id() -> u32 {
    static BOOT: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *BOOT.get_or_init(|| uuid::Uuid::new_v4().as_u128() as u32)
}

/// `None` lets the request through (no keys configured, or the headers carry a valid one);
/// otherwise the 401 to answer with.
fn refusal(app: &App, req: &Request<Incoming>) -> Option<Response<Body>> {
    let Some(keys) = &app.auth else {
        return None;
    };
    match keys.authenticate(req.headers()) {
        Some(caller) => {
            tracing::Span::current().record("caller", caller);
            app.metrics
                .caller_requests
                .get_or_create(&CallerLabels {
                    caller: caller.to_owned(),
                })
                .inc();
            None
        }
        None => {
            app.metrics.unauthorized.inc();
            tracing::info!(
                path = req.uri().path(),
                "refused a call without a valid API key"
            );
            let mut response = json(
                StatusCode::UNAUTHORIZED,
                error_body(&RpcError::unauthorized()),
            );
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"sessiond\""),
            );
            Some(response)
        }
    }
}

async fn rpc(app: &App, req: Request<Incoming>) -> Response<Body> {
    let limit = app.limits.max_body_bytes;
    let too_large = || {
        let error = RpcError::invalid_request(format!("the body is larger than {limit} bytes"));
        // The rest of the body is not read, so the connection cannot be reused.
        closing(json(StatusCode::PAYLOAD_TOO_LARGE, error_body(&error)))
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return too_large();
    }
    // A small body has nearly always arrived with the headers: one look without a timer
    // takes it; only a body still on its way is waited for under the time limit.
    let mut body = std::pin::pin!(Limited::new(req.into_body(), limit).collect());
    let collected = match (&mut body).now_or_never() {
        Some(collected) => Ok(collected),
        None => tokio::time::timeout(app.limits.body_timeout, body).await,
    };
    let bytes = match collected {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(err)) if err.downcast_ref::<LengthLimitError>().is_some() => return too_large(),
        Ok(Err(err)) => {
            tracing::debug!(error = %err, "request body could not be read");
            return closing(text(
                StatusCode::BAD_REQUEST,
                "the request body could not be read\n",
            ));
        }
        Err(_) => {
            return closing(text(
                StatusCode::REQUEST_TIMEOUT,
                "the request body was not received in time\n",
            ));
        }
    };
    match handle_body(&app.sessions, &bytes, app.limits.max_batch).await {
        Some(answer) => json(StatusCode::OK, answer),
        None => {
            let mut response = Response::new(Body::default());
            *response.status_mut() = StatusCode::NO_CONTENT;
            response
        }
    }
}

fn json(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

fn closing(mut response: Response<Body>) -> Response<Body> {
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_request_ids_are_the_boot_id_and_a_counter_in_hex() {
        let first = request_id(&HeaderMap::new());
        let second = request_id(&HeaderMap::new());
        let parse = |id: &HeaderValue| {
            let text = id.to_str().expect("ascii").to_owned();
            let (boot, n) = text.split_once('-').expect("two parts");
            assert_eq!(boot, format!("{:08x}", boot_id()));
            u64::from_str_radix(n, 16).expect("hex")
        };
        assert!(parse(&second) > parse(&first));
        let mut out = [0u8; 3];
        write_hex(&mut out, 0xabc);
        assert_eq!(&out, b"abc");
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_static("given-1"));
        assert_eq!(request_id(&headers), "given-1");
    }
}
