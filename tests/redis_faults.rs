//! Redis down, hung or absent: every call still gets an answer (a -32000 server error) within
//! the configured timeout, /readyz says 503, and the service recovers by itself.

mod common;

use std::time::{Duration, Instant};

use common::{RedisServer, TestApp, free_port, spawn_app};
use hyper::StatusCode;
use serde_json::{Value, json};

const TIMEOUT_MS: u64 = 300;
/// Scheduling slack on a loaded 2-core machine, on top of the configured timeout.
const MARGIN: Duration = Duration::from_millis(700);

async fn app_on(url: &str) -> TestApp {
    spawn_app(&[
        ("SESSIOND_REDIS_URL", url),
        ("SESSIOND_REDIS_TIMEOUT_MS", &TIMEOUT_MS.to_string()),
    ])
    .await
}

/// Calls verify and returns the answer with how long it took.
async fn timed_verify(app: &TestApp, token: &str) -> (Value, Duration) {
    let started = Instant::now();
    let answer = app
        .call("session.verify_session_token", json!({"token": token}))
        .await;
    (answer, started.elapsed())
}

fn assert_store_unavailable(answer: &Value) {
    assert_eq!(answer["error"]["code"], -32000, "{answer}");
    let message = answer["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("session store is unavailable"),
        "{message}"
    );
}

/// Polls until `verify` answers with a result, for at most `within`.
async fn recovers_within(app: &TestApp, token: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let (answer, _) = timed_verify(app, token).await;
        if answer.get("result").is_some() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "not recovered within {within:?}: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn redis_killed_then_restarted() {
    let mut redis = RedisServer::start();
    let app = app_on(&redis.url()).await;
    let token = app.open(None).await;
    assert!(app.verify(&token).await);

    redis.kill();
    for _ in 0..5 {
        let (answer, took) = timed_verify(&app, &token).await;
        assert_store_unavailable(&answer);
        assert!(
            took < Duration::from_millis(TIMEOUT_MS) + MARGIN,
            "{took:?}"
        );
    }
    let opened = app.call("session.open_session", json!({})).await;
    assert_store_unavailable(&opened);
    assert_eq!(app.get("/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        app.get("/healthz").await.0,
        StatusCode::OK,
        "alive even when not ready"
    );

    redis.restart();
    let took = recovers_within(&app, &token, Duration::from_secs(5)).await;
    eprintln!("recovered {took:?} after the restart");
    assert_eq!(app.get("/readyz").await.0, StatusCode::OK);
    let fresh = app.open(None).await;
    assert!(app.verify(&fresh).await);
}

#[tokio::test]
async fn redis_paused_fails_within_the_timeout_and_resumes() {
    let redis = RedisServer::start();
    let app = app_on(&redis.url()).await;
    let token = app.open(None).await;

    redis.pause();
    // Several concurrent calls, so a stuck connection would show as a pile-up.
    let calls = (0..8).map(|_| timed_verify(&app, &token));
    for (answer, took) in futures_util::future::join_all(calls).await {
        assert_store_unavailable(&answer);
        assert!(
            took >= Duration::from_millis(TIMEOUT_MS) - Duration::from_millis(50),
            "{took:?}"
        );
        assert!(
            took < Duration::from_millis(TIMEOUT_MS) + MARGIN,
            "{took:?}"
        );
    }
    let started = Instant::now();
    assert_eq!(app.get("/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < Duration::from_millis(TIMEOUT_MS) + MARGIN);

    redis.resume();
    recovers_within(&app, &token, Duration::from_secs(5)).await;
    assert!(app.verify(&token).await, "the session survived the pause");
    assert_eq!(app.get("/readyz").await.0, StatusCode::OK);
}

#[tokio::test]
async fn redis_absent_at_start_up_is_used_once_it_appears() {
    let port = free_port();
    let app = app_on(&format!("redis://127.0.0.1:{port}")).await;
    assert_eq!(app.get("/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
    let (answer, took) = timed_verify(&app, "00890640-ec03-4663-82ce-456ea993807d").await;
    assert_store_unavailable(&answer);
    assert!(
        took < Duration::from_millis(TIMEOUT_MS) + MARGIN,
        "{took:?}"
    );

    let _redis = RedisServer::start_at(port);
    let started = Instant::now();
    while app.get("/readyz").await.0 != StatusCode::OK {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never became ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let token = app.open(None).await;
    assert!(app.verify(&token).await);
}
