//! The HTTP surface: `POST /` (JSON-RPC), `GET /healthz`, `GET /readyz`, `GET /metrics`,
//! `GET /openrpc.json`. Each request gets a span with its request id (taken from
//! `X-Request-Id` or made up, and echoed); JSON-RPC calls need an API key when keys are
//! configured; bodies are read under a size limit (413 before buffering more than the limit)
//! and a time limit.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::FutureExt;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{
    ALLOW, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE,
};
use hyper::{Method, Request, Response, StatusCode};
use tracing::Instrument;

use crate::app::App;
use crate::metrics::{self, CallerLabels, GaugeGuard};
use crate::openrpc;
use crate::request_id;
use crate::rpc::RpcError;
use crate::rpc::dispatch::handle_body;
use crate::rpc::response::error_body;

/// Every response body: whole, in memory.
pub type Body = Full<Bytes>;

/// Routes one request.
///
/// # Errors
/// Never: every failure is an HTTP response.
pub async fn route(app: Arc<App>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    // Read only for the debug line below: a clock reading per request is not free.
    let started = tracing::enabled!(tracing::Level::DEBUG).then(Instant::now);
    let _in_flight = GaugeGuard::new(&app.metrics.in_flight);
    let id = request_id::from_headers(req.headers());
    // At `debug` every call is logged, in a span naming the request; at the default level the
    // span is not made (its fields would be formatted on every request) and the problems
    // logged while serving the request name it through `request_id::with_current`.
    let span = tracing::debug_span!(
        "request",
        request_id = id.to_str().unwrap_or_default(),
        caller = tracing::field::Empty,
    );
    let target =
        started.map(|started| (started, req.method().clone(), req.uri().path().to_owned()));
    let mut response = request_id::scope(id.clone(), answer(&app, req))
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
    response.headers_mut().insert(request_id::HEADER, id);
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
