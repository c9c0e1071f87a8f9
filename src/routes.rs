//! The HTTP surface: `POST /` (JSON-RPC), `GET /healthz`, `GET /readyz`. Bodies are read
//! under a size limit (413 before buffering more than the limit) and a time limit.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::app::App;
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
    let get = matches!(*req.method(), Method::GET | Method::HEAD);
    let response = match req.uri().path() {
        "/" if req.method() == Method::POST => rpc(&app, req).await,
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
        "/healthz" | "/readyz" => method_not_allowed("GET, HEAD"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    };
    Ok(response)
}

async fn rpc(app: &App, req: Request<Incoming>) -> Response<Body> {
    let limit = app.limits.max_body_bytes;
    let too_large = || {
        let error = RpcError::invalid_request(format!("the body is larger than {limit} bytes"));
        let mut response = json(StatusCode::PAYLOAD_TOO_LARGE, error_body(&error));
        // The rest of the body is not read, so the connection cannot be reused.
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
        response
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return too_large();
    }
    let body = Limited::new(req.into_body(), limit).collect();
    let bytes = match tokio::time::timeout(app.limits.body_timeout, body).await {
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
