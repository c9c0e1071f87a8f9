//! The OAuth 2.0 token endpoints, so that resource-server middleware (Spring Security's
//! opaque-token support, Kong, authlib…) uses sessiond unchanged:
//! - `POST /oauth2/introspect` (RFC 7662): a form-encoded `token` (`token_type_hint`
//!   ignored) → `{"active": true, "token_type": "Bearer", "exp", "iat", "sub"?}` or
//!   `{"active": false}` alone.
//! - `POST /oauth2/revoke` (RFC 7009): a form-encoded `token` → 200, empty, whether or not it
//!   was live.
//!
//! With `SESSIOND_API_KEYS` set the caller authenticates with HTTP Basic (the key's name and
//! secret: `client_secret_basic`) or `Bearer <secret>`; otherwise 401 `invalid_client` with
//! `WWW-Authenticate: Basic`. A missing, repeated or empty `token`, or a body that is not a
//! form, is 400 `invalid_request`; a store failure is 503 with `Retry-After`.

use std::time::Instant;

use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue, PRAGMA, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};

use super::app::App;
use super::body::{self, Refused};
use super::request_id;
use super::routes::{Body, closing, json, method_not_allowed};
use crate::calls::errors::to_status;
use crate::rpc::response::write_json_string;
use crate::session::record;

/// Which endpoint.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/oauth2/introspect`
    Introspect,
    /// `/oauth2/revoke`
    Revoke,
}

impl Endpoint {
    fn label(self) -> &'static str {
        match self {
            Self::Introspect => "oauth2_introspect",
            Self::Revoke => "oauth2_revoke",
        }
    }
}

/// Answers a request to an OAuth2 endpoint.
pub async fn answer(app: &App, endpoint: Endpoint, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let (outcome, mut response) = respond(app, endpoint, req).await;
    app.metrics
        .endpoint(endpoint.label(), outcome, started.elapsed());
    request_id::with_current(|id| {
        tracing::debug!(
            request_id = id,
            endpoint = endpoint.label(),
            outcome,
            "oauth2 request"
        );
    });
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

async fn respond(
    app: &App,
    endpoint: Endpoint,
    req: Request<Incoming>,
) -> (&'static str, Response<Body>) {
    if req.method() != Method::POST {
        return ("method_not_allowed", method_not_allowed("POST"));
    }
    if let Some(keys) = &app.settings.auth.api_keys
        && keys.authenticate_client(req.headers()).is_none()
    {
        app.metrics.unauthorized.inc();
        let mut response = error(StatusCode::UNAUTHORIZED, "invalid_client");
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"sessiond\""),
        );
        return ("invalid_client", response);
    }
    let is_form = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return (
            "invalid_request",
            closing(error(StatusCode::BAD_REQUEST, "invalid_request")),
        );
    }
    let bytes = match body::read(app, req).await {
        Ok(bytes) => bytes,
        Err(Refused::TooLarge(_)) => {
            return (
                "invalid_request",
                closing(error(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request")),
            );
        }
        Err(Refused::Other(response)) => return ("invalid_request", response),
    };
    let Some(token) = the_token(&bytes) else {
        return (
            "invalid_request",
            error(StatusCode::BAD_REQUEST, "invalid_request"),
        );
    };
    match endpoint {
        Endpoint::Introspect => match app.sessions.introspect(&token).await {
            Ok(Some(session)) => {
                let now = record::now();
                let mut out = Vec::with_capacity(160);
                out.extend_from_slice(b"{\"active\":true,\"token_type\":\"Bearer\",\"exp\":");
                out.extend_from_slice((now + session.expires_in).to_string().as_bytes());
                if let Some(iat) = session.record.issued_at {
                    out.extend_from_slice(b",\"iat\":");
                    out.extend_from_slice(iat.to_string().as_bytes());
                }
                if let Some(subject) = &session.record.subject {
                    out.extend_from_slice(b",\"sub\":");
                    write_json_string(&mut out, subject);
                }
                out.push(b'}');
                ("active", json(StatusCode::OK, out))
            }
            Ok(None) => (
                "inactive",
                json(StatusCode::OK, b"{\"active\":false}".to_vec()),
            ),
            Err(err) => ("unavailable", unavailable(to_status(&err))),
        },
        Endpoint::Revoke => match app.sessions.close(&token).await {
            Ok(()) => {
                let mut response = Response::new(Body::default());
                *response.status_mut() = StatusCode::OK;
                ("revoked", response)
            }
            Err(err) => ("unavailable", unavailable(to_status(&err))),
        },
    }
}

/// The form's one `token`: `None` when it is missing, empty or given more than once (RFC 6749
/// §3.1: parameters must not be repeated).
fn the_token(form: &[u8]) -> Option<String> {
    let mut tokens = form_urlencoded::parse(form).filter(|(name, _)| name == "token");
    let token = tokens.next()?.1.into_owned();
    (tokens.next().is_none() && !token.is_empty()).then_some(token)
}

fn error(status: StatusCode, code: &'static str) -> Response<Body> {
    let mut out = Vec::with_capacity(32);
    out.extend_from_slice(b"{\"error\":");
    write_json_string(&mut out, code);
    out.push(b'}');
    json(status, out)
}

fn unavailable(status: StatusCode) -> Response<Body> {
    let mut response = error(status, "temporarily_unavailable");
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

#[cfg(test)]
mod tests {
    use super::the_token;

    #[test]
    fn one_token_field_exactly() {
        assert_eq!(
            the_token(b"token=abc&token_type_hint=access_token").as_deref(),
            Some("abc")
        );
        assert_eq!(the_token(b"token=a%2Bb+c").as_deref(), Some("a+b c"));
        assert_eq!(the_token(b"token=a&token=b"), None, "repeated");
        assert_eq!(the_token(b"token="), None, "empty");
        assert_eq!(the_token(b"tok=a"), None, "missing");
        assert_eq!(the_token(br#"{"token":"a"}"#), None, "JSON is not a form");
    }
}
