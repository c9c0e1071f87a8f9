//! Caller authentication: with SESSIOND_API_KEYS set, a JSON-RPC call needs a valid key as
//! `Authorization: Bearer` or as the `APIKey`/`Secret` pair; anything else is 401 with a
//! JSON-RPC error body. Health endpoints stay open.

mod common;

use bytes::Bytes;
use common::{RedisServer, TestApp, sha256_hex, spawn_app};
use http_body_util::Full;
use hyper::{Request, StatusCode};
use serde_json::Value;

const OPEN: &str = r#"{"jsonrpc":"2.0","method":"session.open_session","id":1}"#;

async fn app_with_keys(redis: &RedisServer) -> TestApp {
    let keys = format!(
        "gateway:gw-secret,login:sha256:{}",
        sha256_hex("login-secret")
    );
    spawn_app(&[
        ("SESSIOND_REDIS_URL", &redis.url()),
        ("SESSIOND_API_KEYS", &keys),
    ])
    .await
}

async fn post_with(
    app: &TestApp,
    headers: &[(&str, &str)],
) -> (StatusCode, hyper::HeaderMap, String) {
    let mut request = Request::post(app.url("/"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    app.send(
        request
            .body(Full::new(Bytes::from_static(OPEN.as_bytes())))
            .expect("request"),
    )
    .await
}

#[tokio::test]
async fn calls_need_a_valid_key_in_either_form() {
    let redis = RedisServer::start();
    let app = app_with_keys(&redis).await;

    let accepted: &[&[(&str, &str)]] = &[
        &[("authorization", "Bearer gw-secret")],
        &[("authorization", "bearer login-secret")],
        &[("apikey", "gateway"), ("secret", "gw-secret")],
        &[("APIKey", "login"), ("Secret", "login-secret")],
    ];
    for headers in accepted {
        let (status, _, body) = post_with(&app, headers).await;
        assert_eq!(status, StatusCode::OK, "{headers:?}");
        assert!(body.contains("access_token"), "{body}");
    }

    let refused: &[&[(&str, &str)]] = &[
        &[],
        &[("authorization", "Bearer wrong")],
        &[("authorization", "Bearer ")],
        &[("authorization", "Basic Z3ctc2VjcmV0")],
        &[("authorization", "gw-secret")],
        &[("authorization", &"Bearer x".repeat(1000))],
        &[("apikey", "gateway")],
        &[("secret", "gw-secret")],
        &[("apikey", "gateway"), ("secret", "login-secret")],
        &[("apikey", "nobody"), ("secret", "gw-secret")],
        &[(
            "authorization",
            &format!("Bearer {}", sha256_hex("login-secret")),
        )],
    ];
    for headers in refused {
        let (status, response_headers, body) = post_with(&app, headers).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{headers:?}");
        assert!(response_headers.contains_key("www-authenticate"));
        let answer: Value = serde_json::from_str(&body).expect("JSON-RPC error body");
        assert_eq!(answer["error"]["code"], -32001);
        assert_eq!(answer["id"], Value::Null);
        assert!(!body.contains("gw-secret") && !body.contains("login-secret"));
    }

    // Health stays open; nothing was opened by the refused calls.
    assert_eq!(app.get("/healthz").await.0, StatusCode::OK);
    assert_eq!(app.get("/readyz").await.0, StatusCode::OK);
    let keys: Vec<String> = redis::Commands::keys(&mut redis.client(), "*").expect("keys");
    assert_eq!(keys.len(), accepted.len());

    let (_, metrics) = app.get("/metrics").await;
    assert!(
        metrics.contains(r#"sessiond_caller_requests_total{caller="gateway"} 2"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"sessiond_caller_requests_total{caller="login"} 2"#));
    assert!(metrics.contains(&format!(
        "sessiond_unauthorized_requests_total {}",
        refused.len()
    )));
}

#[tokio::test]
async fn without_keys_every_caller_is_let_in() {
    let redis = RedisServer::start();
    let app = spawn_app(&[("SESSIOND_REDIS_URL", &redis.url())]).await;
    let (status, _, _) = post_with(&app, &[]).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = post_with(&app, &[("authorization", "Bearer anything")]).await;
    assert_eq!(status, StatusCode::OK);
}
