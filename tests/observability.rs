//! Metrics that move as calls are made, request ids, and the OpenRPC document (valid against
//! the OpenRPC meta-schema, and describing exactly the methods the server dispatches).

mod common;

use bytes::Bytes;
use common::{RedisServer, TestApp, spawn_redis_app};
use http_body_util::Full;
use hyper::{Request, StatusCode};
use serde_json::{Value, json};

/// The value of the sample whose name and labels are exactly `series`, or 0 when absent.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.split(' ').next().unwrap_or("0").parse().expect("number"))
        .unwrap_or(0.0)
}

async fn scrape(app: &TestApp) -> String {
    let request = Request::get(app.url("/metrics"))
        .body(Full::default())
        .expect("request");
    let (status, headers, body) = app.send(request).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .expect("type")
            .starts_with("application/openmetrics-text")
    );
    body
}

#[tokio::test]
async fn metrics_move_as_calls_are_made() {
    let (mut redis, app) = spawn_redis_app().await;
    let before = scrape(&app).await;
    assert!(
        before.contains("sessiond_build_info{version=\"0.1.0\""),
        "{before}"
    );
    assert!(before.contains("store=\"redis\""));
    assert!(before.trim_end().ends_with("# EOF"));

    let token = app.open(Some(60)).await;
    app.verify(&token).await;
    app.verify(&token).await;
    app.close(&token).await;
    app.call("session.open_session", json!({"expires_in": 0}))
        .await;
    app.call("session.nope", json!({})).await;
    app.post("not json").await;
    let batch = json!([
        {"jsonrpc": "2.0", "method": "session.verify_session_token", "params": [token], "id": 1},
        {"jsonrpc": "2.0", "method": "session.verify_session_token", "params": [token], "id": 2},
        {"jsonrpc": "2.0", "method": "session.verify_session_token", "params": [token], "id": 3},
    ]);
    app.post(batch.to_string()).await;

    let after = scrape(&app).await;
    let moved = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(
        moved(r#"sessiond_rpc_calls_total{method="session.open_session",outcome="result"}"#),
        1.0
    );
    assert_eq!(
        moved(r#"sessiond_rpc_calls_total{method="session.open_session",outcome="-32602"}"#),
        1.0
    );
    assert_eq!(
        moved(
            r#"sessiond_rpc_calls_total{method="session.verify_session_token",outcome="result"}"#
        ),
        5.0
    );
    assert_eq!(
        moved(r#"sessiond_rpc_calls_total{method="session.close_session",outcome="result"}"#),
        1.0
    );
    assert_eq!(
        moved(r#"sessiond_rpc_calls_total{method="unknown",outcome="-32601"}"#),
        1.0
    );
    assert_eq!(
        moved(r#"sessiond_rpc_calls_total{method="invalid",outcome="-32700"}"#),
        1.0
    );
    assert_eq!(
        moved(r#"sessiond_rpc_call_duration_seconds_count{method="session.verify_session_token"}"#),
        5.0
    );
    assert_eq!(
        moved(r#"sessiond_store_operation_duration_seconds_count{operation="exists"}"#),
        2.0,
        "the two single verify calls"
    );
    assert_eq!(
        moved(r#"sessiond_store_operation_duration_seconds_count{operation="exists_batch"}"#),
        1.0,
        "the batch's three verify calls went to the store together"
    );
    assert_eq!(
        moved(r#"sessiond_store_operation_duration_seconds_count{operation="create"}"#),
        1.0
    );
    assert_eq!(
        moved(r#"sessiond_store_operation_duration_seconds_count{operation="delete"}"#),
        1.0
    );
    assert_eq!(moved("sessiond_batch_size_count"), 1.0);
    assert_eq!(moved("sessiond_batch_size_sum"), 3.0);
    assert_eq!(sample(&after, "sessiond_store_up"), 1.0);
    assert_eq!(
        sample(&after, "sessiond_http_requests_in_flight"),
        1.0,
        "the scrape itself"
    );
    assert!(sample(&after, "sessiond_http_connections_open") >= 1.0);

    // A store failure shows.
    redis.kill();
    let failed = app
        .call("session.verify_session_token", json!({"token": token}))
        .await;
    assert_eq!(failed["error"]["code"], -32000);
    let down = scrape(&app).await;
    assert_eq!(sample(&down, "sessiond_store_up"), 0.0);
    let errors = sample(
        &down,
        r#"sessiond_store_errors_total{operation="exists",kind="error"}"#,
    ) + sample(
        &down,
        r#"sessiond_store_errors_total{operation="exists",kind="timeout"}"#,
    );
    assert_eq!(errors, 1.0, "{down}");
    assert_eq!(
        sample(
            &down,
            r#"sessiond_rpc_calls_total{method="session.verify_session_token",outcome="-32000"}"#
        ),
        1.0
    );
}

#[tokio::test]
async fn request_ids_are_echoed_or_made_up() {
    let (_redis, app) = spawn_redis_app().await;
    let with_id = |id: &str| {
        Request::post(app.url("/"))
            .header("x-request-id", id)
            .body(Full::new(Bytes::from_static(b"{}")))
            .expect("request")
    };
    let (_, headers, _) = app.send(with_id("abc-123")).await;
    assert_eq!(headers["x-request-id"], "abc-123");
    let (_, headers, _) = app.send(with_id(&"x".repeat(200))).await;
    let made = headers["x-request-id"].to_str().expect("id").to_owned();
    assert!(!made.is_empty() && made.len() < 64, "{made}");
    let (_, first, _) = app
        .send(
            Request::get(app.url("/healthz"))
                .body(Full::default())
                .expect("r"),
        )
        .await;
    let (_, second, _) = app
        .send(
            Request::get(app.url("/healthz"))
                .body(Full::default())
                .expect("r"),
        )
        .await;
    assert_ne!(first["x-request-id"], second["x-request-id"]);
}

#[tokio::test]
async fn the_openrpc_document_is_valid_and_describes_exactly_the_methods() {
    let (_redis, app) = spawn_redis_app().await;
    let discovered = app.call("rpc.discover", json!([])).await;
    let document = discovered["result"].clone();
    let (status, served) = app.get("/openrpc.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<Value>(&served).expect("json"),
        document
    );

    let meta_schema: Value =
        serde_json::from_str(include_str!("data/openrpc-meta-schema.json")).expect("meta-schema");
    let validator = jsonschema::validator_for(&meta_schema).expect("compiles");
    let errors: Vec<String> = validator
        .iter_errors(&document)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "not a valid OpenRPC document: {errors:?}"
    );
    // The meta-schema really checks: a broken document fails.
    let mut broken = document.clone();
    broken["methods"][0]["params"] = json!("nope");
    assert!(!validator.is_valid(&broken));

    assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"));
    let mut described: Vec<&str> = document["methods"]
        .as_array()
        .expect("methods")
        .iter()
        .map(|m| m["name"].as_str().expect("name"))
        .collect();
    described.sort_unstable();
    let mut dispatched = sessiond::calls::methods::session_methods().collect::<Vec<_>>();
    dispatched.sort_unstable();
    assert_eq!(described, dispatched);
    // And every described method is answered (not -32601) by the server.
    for name in described {
        let answer = app.call(name, json!({})).await;
        assert_ne!(answer["error"]["code"], -32601, "{name}");
    }
    let refused = app.call("rpc.discover", json!({"x": 1})).await;
    assert_eq!(refused["error"]["code"], -32602);
}

#[tokio::test]
async fn metrics_can_require_an_api_key() {
    let redis = RedisServer::start();
    let app = common::spawn_app(&[
        ("SESSIOND_REDIS_URL", &redis.url()),
        ("SESSIOND_API_KEYS", "ops:scrape-me"),
        ("SESSIOND_METRICS_AUTH", "true"),
    ])
    .await;
    assert_eq!(app.get("/metrics").await.0, StatusCode::UNAUTHORIZED);
    let request = Request::get(app.url("/metrics"))
        .header("authorization", "Bearer scrape-me")
        .body(Full::default())
        .expect("request");
    assert_eq!(app.send(request).await.0, StatusCode::OK);
    // Scrapes are not JSON-RPC callers: sessiond_caller_requests_total does not count them.
    let request = Request::get(app.url("/metrics"))
        .header("authorization", "Bearer scrape-me")
        .body(Full::default())
        .expect("request");
    let (_, _, body) = app.send(request).await;
    assert!(
        !body.contains("sessiond_caller_requests_total{caller=\"ops\"}"),
        "scrapes are not counted as calls: {body}"
    );
    let open = common::spawn_app(&[("SESSIOND_API_KEYS", "ops:scrape-me")]).await;
    assert_eq!(
        open.get("/metrics").await.0,
        StatusCode::OK,
        "open unless asked"
    );
}

/// `rpc.discover` and `/openrpc.json` describe the configured bounds of `expires_in`, not the
/// defaults.
#[tokio::test]
async fn the_openrpc_document_states_the_configured_expiry_bounds() {
    let app = common::spawn_app(&[
        ("SESSIOND_MAX_EXPIRES_IN", "600"),
        ("SESSIOND_DEFAULT_EXPIRES_IN", "60"),
    ])
    .await;
    let (status, text) = app.get("/openrpc.json").await;
    assert_eq!(status, StatusCode::OK);
    let document: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let open = document["methods"]
        .as_array()
        .expect("methods")
        .iter()
        .find(|m| m["name"] == "session.open_session")
        .expect("open_session");
    let expires_in = &open["params"][0];
    assert_eq!(
        expires_in["schema"]["oneOf"][0]["maximum"], 600,
        "{expires_in}"
    );
    let description = expires_in["description"].as_str().expect("description");
    assert!(
        description.contains("600") && description.contains("60 "),
        "{description}"
    );
    let discovered = app.call("rpc.discover", json!([])).await;
    assert_eq!(
        discovered["result"], document,
        "rpc.discover answers the same document"
    );
    assert!(
        !text.contains("__MAX_EXPIRES_IN__"),
        "every placeholder is filled"
    );
}
