//! The HTTP surface: `POST /` (JSON-RPC), `/auth` (gateways), `POST /oauth2/introspect` and
//! `POST /oauth2/revoke`, `GET /healthz`, `GET /readyz`, `GET /metrics`, `GET /openrpc.json`. Each request gets its request id (taken from `X-Request-Id` or made
//! up, and echoed); JSON-RPC calls need an API key when keys are configured; HEAD answers carry
//! no content in either protocol; during a drain every HTTP/1 answer closes its connection.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONNECTION, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode, Version};
use tracing::Instrument;

use super::app::App;
use super::body::{self, Refused};
use super::oauth2::{self, Endpoint};
use super::{gateway, health, request_id};
use crate::calls::dispatch::handle_body;
use crate::metrics::{self, CallerLabels, GaugeGuard};
use crate::openrpc;
use crate::rpc::RpcError;
use crate::rpc::response::error_body;

/// Every response body: whole, in memory.
pub type Body = Full<Bytes>;

/// How a connection was let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Under the connection limit: everything is served.
    Full,
    /// Beyond it: probes are answered, anything else is 503.
    ProbesOnly,
}

/// Routes one request.
///
/// # Errors
/// Never: every failure is an HTTP response.
pub async fn route(
    app: Arc<App>,
    req: Request<Incoming>,
    admission: Admission,
) -> Result<Response<Body>, Infallible> {
    // Read only for the debug line below: a clock reading per request is not free.
    let started = tracing::enabled!(tracing::Level::DEBUG).then(Instant::now);
    let _in_flight = GaugeGuard::new(&app.metrics.in_flight);
    let id = request_id::from_headers(req.headers());
    // At `debug` every call is logged, in a span naming the request; at the default level the
    // span is not made and the problems logged while serving the request name it through
    // `request_id::with_current` (why: docs/BENCHMARKS.md).
    let span = tracing::debug_span!(
        "request",
        request_id = id.to_str().unwrap_or_default(),
        caller = tracing::field::Empty,
    );
    let head = req.method() == Method::HEAD;
    let version = req.version();
    let target =
        started.map(|started| (started, req.method().clone(), req.uri().path().to_owned()));
    let mut response = request_id::scope(id.clone(), answer(&app, req, admission))
        .instrument(span.clone())
        .await;
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
    app.metrics.http_response(response.status());
    response.headers_mut().insert(request_id::HEADER, id);
    if version <= Version::HTTP_11 && (app.is_draining() || admission == Admission::ProbesOnly) {
        response = closing(response);
    }
    if head {
        *response.body_mut() = Body::default();
    }
    Ok(response)
}

async fn answer(app: &App, req: Request<Incoming>, admission: Admission) -> Response<Body> {
    let get = matches!(*req.method(), Method::GET | Method::HEAD);
    if admission == Admission::ProbesOnly {
        return match req.uri().path() {
            "/healthz" if get => health::live(),
            "/readyz" if get => Box::pin(health::ready(app)).await,
            _ => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "connection limit reached; retry later\n",
            ),
        };
    }
    match req.uri().path() {
        "/" if req.method() == Method::POST => match refusal(app, &req, true) {
            None => rpc(app, req).await,
            Some(refused) => refused,
        },
        "/" => method_not_allowed("POST"),
        "/healthz" if get => health::live(),
        "/readyz" if get => Box::pin(health::ready(app)).await,
        "/metrics" if get => {
            if app.settings.auth.metrics_auth {
                if let Some(refused) = refusal(app, &req, false) {
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
        path if path == "/auth" || path.starts_with("/auth/") => {
            Box::pin(gateway::check(app, &req)).await
        }
        "/oauth2/introspect" => Box::pin(oauth2::answer(app, Endpoint::Introspect, req)).await,
        "/oauth2/revoke" => Box::pin(oauth2::answer(app, Endpoint::Revoke, req)).await,
        "/openrpc.json" if get => json(
            StatusCode::OK,
            openrpc::document(&app.settings.expiry).as_bytes().to_vec(),
        ),
        "/healthz" | "/readyz" | "/metrics" | "/openrpc.json" => method_not_allowed("GET, HEAD"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// `None` lets the request through (no keys configured, or the headers carry a valid one);
/// otherwise the 401 to answer with. `count` says whether it is a caller's request (counted
/// by caller) rather than a scrape.
fn refusal(app: &App, req: &Request<Incoming>, count: bool) -> Option<Response<Body>> {
    let keys = app.settings.auth.api_keys.as_ref()?;
    match keys.authenticate(req.headers()) {
        Some(caller) => {
            tracing::Span::current().record("caller", caller);
            if count {
                app.metrics
                    .caller_requests
                    .get_or_create(&CallerLabels {
                        caller: caller.to_owned(),
                    })
                    .inc();
            }
            None
        }
        None => {
            app.metrics.unauthorized.inc();
            request_id::with_current(|id| {
                tracing::info!(
                    request_id = id,
                    path = req.uri().path(),
                    "refused a call without a valid API key"
                );
            });
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
    let bytes = match body::read(app, req).await {
        Ok(bytes) => bytes,
        Err(Refused::TooLarge(limit)) => {
            let error = RpcError::invalid_request(format!("the body is larger than {limit} bytes"));
            return closing(json(StatusCode::PAYLOAD_TOO_LARGE, error_body(&error)));
        }
        Err(Refused::Other(response)) => return response,
    };
    match handle_body(&app.sessions, &bytes, app.settings.http.max_batch).await {
        Some(answer) => json(StatusCode::OK, answer),
        None => {
            let mut response = Response::new(Body::default());
            *response.status_mut() = StatusCode::NO_CONTENT;
            response
        }
    }
}

/// A JSON response.
pub fn json(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A plain-text response.
pub fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// 405 with the methods allowed.
pub fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

/// The response, closing its (HTTP/1) connection after it.
pub fn closing(mut response: Response<Body>) -> Response<Body> {
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}
