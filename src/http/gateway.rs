//! `/auth`: the gateway check (nginx `auth_request`, Traefik `ForwardAuth`, Envoy/Istio
//! `ext_authz`, Caddy `forward_auth`). Any method, on `/auth` or any path under it; the request
//! body is never read. The user's token comes from `Authorization: Bearer`, else from the
//! cookie named by `SESSIOND_AUTH_COOKIE`. With `SESSIOND_API_KEYS` set, the gateway proves
//! itself with the `APIKey` + `Secret` pair (403 otherwise).
//!
//! 200 (empty) for a live session with `X-Session-Subject` (always present, empty without a
//! subject, so a copy sent by the client can never pass through), `X-Session-Id` and
//! `X-Session-Expires-In`; 401 with `WWW-Authenticate: Bearer` (no token) or
//! `Bearer error="invalid_token"` (not active); 503 when the store fails, so the gateway fails
//! closed. Never 404 or 429, which nginx turns into 500.

use std::time::Instant;

use hyper::body::Incoming;
use hyper::header::{
    CACHE_CONTROL, CONTENT_LENGTH, COOKIE, HeaderName, HeaderValue, TRANSFER_ENCODING,
    WWW_AUTHENTICATE,
};
use hyper::{HeaderMap, Request, Response, StatusCode};

use super::api_keys;
use super::app::App;
use super::request_id;
use super::routes::{Body, closing};
use crate::calls::errors::to_status;

/// `X-Session-Subject`
pub const SUBJECT: HeaderName = HeaderName::from_static("x-session-subject");
/// `X-Session-Id`
pub const SESSION_ID: HeaderName = HeaderName::from_static("x-session-id");
/// `X-Session-Expires-In`
pub const EXPIRES_IN: HeaderName = HeaderName::from_static("x-session-expires-in");
/// `X-Accel-Expires` (nginx)
pub const X_ACCEL_EXPIRES: HeaderName = HeaderName::from_static("x-accel-expires");

/// Answers a request on `/auth` or under it.
pub async fn check(app: &App, req: &Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let (outcome, mut response) = answer(app, req.headers()).await;
    app.metrics.endpoint("auth", outcome, started.elapsed());
    request_id::with_current(|id| {
        tracing::debug!(request_id = id, endpoint = "auth", outcome, "gateway check");
    });
    // The body is not read: a connection that carried one is not reused (hyper would
    // otherwise have to read the rest of it).
    let has_body = req.headers().contains_key(TRANSFER_ENCODING)
        || req
            .headers()
            .get(CONTENT_LENGTH)
            .is_some_and(|len| len.as_bytes() != b"0");
    if has_body {
        response = closing(response);
    }
    response
}

async fn answer(app: &App, headers: &HeaderMap) -> (&'static str, Response<Body>) {
    if let Some(keys) = &app.settings.auth.api_keys
        && keys.authenticate_pair(headers).is_none()
    {
        app.metrics.unauthorized.inc();
        return ("forbidden", empty(StatusCode::FORBIDDEN));
    }
    let Some(token) = user_token(headers, app.settings.http.auth_cookie.as_deref()) else {
        return ("no_token", unauthorized("Bearer"));
    };
    match app.sessions.introspect(&token).await {
        Ok(Some(session)) => {
            let mut response = empty(StatusCode::OK);
            let headers = response.headers_mut();
            let subject = session.record.subject.as_deref().unwrap_or_default();
            // A subject that is not a valid header value (control characters) is sent empty
            // rather than refused; subjects come from the login backend, not the user.
            headers.insert(
                SUBJECT,
                HeaderValue::from_str(subject).unwrap_or(HeaderValue::from_static("")),
            );
            if let Ok(id) = HeaderValue::from_str(&session.session_id) {
                headers.insert(SESSION_ID, id);
            }
            headers.insert(EXPIRES_IN, HeaderValue::from(session.expires_in));
            let max_age = app.settings.http.auth_cache_max_age.min(session.expires_in);
            if max_age == 0 {
                headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            } else {
                let cache = HeaderValue::from_str(&format!("private, max-age={max_age}"))
                    .unwrap_or(HeaderValue::from_static("no-store"));
                headers.insert(CACHE_CONTROL, cache);
                // nginx's proxy_cache never stores a `private` answer; X-Accel-Expires, which
                // it reads first, lets a gateway cache keyed by the token do so.
                headers.insert(X_ACCEL_EXPIRES, HeaderValue::from(max_age));
            }
            ("allowed", response)
        }
        Ok(None) => ("inactive", unauthorized("Bearer error=\"invalid_token\"")),
        Err(err) => ("unavailable", empty(to_status(&err))),
    }
}

/// The user's token: `Authorization: Bearer <token>`, else the configured cookie.
pub fn user_token(headers: &HeaderMap, cookie: Option<&str>) -> Option<String> {
    if let Some(bearer) = api_keys::bearer(headers) {
        let token = std::str::from_utf8(bearer).ok()?.trim();
        return (!token.is_empty()).then(|| token.to_owned());
    }
    let name = cookie?;
    for header in headers.get_all(COOKIE) {
        let Ok(text) = header.to_str() else { continue };
        for pair in text.split(';') {
            if let Some((key, value)) = pair.trim().split_once('=')
                && key == name
            {
                let value = value.trim().trim_matches('"');
                if !value.is_empty() {
                    return Some(value.to_owned());
                }
            }
        }
    }
    None
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Body::default());
    *response.status_mut() = status;
    response
}

fn unauthorized(challenge: &'static str) -> Response<Body> {
    let mut response = empty(StatusCode::UNAUTHORIZED);
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).expect("header"));
        }
        map
    }

    #[test]
    fn the_token_comes_from_the_bearer_header_then_the_cookie() {
        let both = headers(&[
            ("authorization", "Bearer from-header"),
            ("cookie", "a=1; sid=from-cookie"),
        ]);
        assert_eq!(
            user_token(&both, Some("sid")).as_deref(),
            Some("from-header")
        );
        let cookie = headers(&[("cookie", "a=1"), ("cookie", "sid=\"from-cookie\"; b=2")]);
        assert_eq!(
            user_token(&cookie, Some("sid")).as_deref(),
            Some("from-cookie")
        );
        assert_eq!(
            user_token(&cookie, None),
            None,
            "cookies are read only when named"
        );
        assert_eq!(
            user_token(&headers(&[("authorization", "Basic x")]), None),
            None
        );
        assert_eq!(
            user_token(&headers(&[("authorization", "Bearer  ")]), None),
            None
        );
    }
}
