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

/// A hung Redis fails a batch's verify calls within the timeout (its first command, the
/// multi-key `EXISTS`, never gets an answer), each with its own error, while entries that need
/// no store still get their answers.
#[tokio::test]
async fn a_batch_on_a_hung_redis_fails_entry_by_entry_within_the_timeout() {
    let redis = RedisServer::start();
    let app = app_on(&redis.url()).await;
    let token = app.open(None).await;
    let verify = |token: &str, id: u64| {
        json!({"jsonrpc": "2.0", "method": "session.verify_session_token",
               "params": {"token": token}, "id": id})
    };
    let batch = json!([
        verify(&token, 1),
        verify("malformed", 2),
        verify(&token, 3),
        {"jsonrpc": "2.0", "method": "session.nope", "id": 4},
    ])
    .to_string();

    redis.pause();
    let started = Instant::now();
    let (status, body) = app.post(batch.clone()).await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::OK);
    assert!(
        took < Duration::from_millis(TIMEOUT_MS) + MARGIN,
        "{took:?}"
    );
    let answers: Vec<Value> = serde_json::from_str(&body).expect("a JSON array");
    assert_eq!(answers.len(), 4, "{body}");
    assert_store_unavailable(&answers[0]);
    assert_eq!(answers[1]["result"], json!({"active": false}));
    assert_store_unavailable(&answers[2]);
    assert_eq!(answers[3]["error"]["code"], -32601);

    redis.resume();
    recovers_within(&app, &token, Duration::from_secs(5)).await;
    let (_, body) = app.post(batch).await;
    let answers: Vec<Value> = serde_json::from_str(&body).expect("a JSON array");
    assert_eq!(answers[0]["result"], json!({"active": true}), "{body}");
    assert_eq!(answers[2]["result"], json!({"active": true}), "{body}");
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

/// What a load loop saw: how many calls got a result, how many the store error, the slowest
/// answer, and when the last store error was seen.
#[derive(Default, Debug)]
struct LoadReport {
    results: u64,
    store_errors: u64,
    slowest: Duration,
    last_error: Option<Instant>,
}

/// Runs `workers` concurrent loops of verify (and every tenth an open) until `stop_at`.
/// Panics on any answer that is neither a result nor -32000: no hang, no dropped connection.
async fn load(app: &TestApp, token: &str, workers: usize, stop_at: Instant) -> LoadReport {
    let loops = (0..workers).map(|worker| async move {
        let mut report = LoadReport::default();
        let mut i = 0u64;
        while Instant::now() < stop_at {
            i += 1;
            let started = Instant::now();
            let answer = if (i + worker as u64) % 10 == 0 {
                app.call("session.open_session", json!({"expires_in": 60}))
                    .await
            } else {
                app.call("session.verify_session_token", json!({"token": token}))
                    .await
            };
            report.slowest = report.slowest.max(started.elapsed());
            if answer.get("result").is_some() {
                report.results += 1;
            } else {
                assert_store_unavailable(&answer);
                report.store_errors += 1;
                report.last_error = Some(Instant::now());
            }
        }
        report
    });
    let mut total = LoadReport::default();
    for report in futures_util::future::join_all(loops).await {
        total.results += report.results;
        total.store_errors += report.store_errors;
        total.slowest = total.slowest.max(report.slowest);
        total.last_error = total.last_error.max(report.last_error);
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_under_concurrent_load() {
    let mut redis = RedisServer::start();
    let app = app_on(&redis.url()).await;
    let token = app.open(None).await;
    let started = Instant::now();
    let stop_at = started + Duration::from_secs(6);
    let (report, restarted_at) = tokio::join!(load(&app, &token, 32, stop_at), async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        redis.kill();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        tokio::task::block_in_place(|| redis.restart());
        Instant::now()
    });
    eprintln!("{report:?}");
    assert!(report.results > 0 && report.store_errors > 0, "{report:?}");
    assert!(
        report.slowest < Duration::from_millis(TIMEOUT_MS) + MARGIN,
        "{report:?}"
    );
    let recovered_after = report
        .last_error
        .map(|at| at.saturating_duration_since(restarted_at))
        .unwrap_or_default();
    assert!(
        recovered_after < Duration::from_secs(2),
        "calls failed {recovered_after:?} after the restart"
    );
    // The session opened before the kill was lost with Redis's memory (no persistence here);
    // the service itself answers normally again.
    let fresh = app.open(None).await;
    assert!(app.verify(&fresh).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_hung_under_load_fails_fast_and_resumes() {
    let redis = RedisServer::start();
    let app = app_on(&redis.url()).await;
    let token = app.open(None).await;
    let stop_at = Instant::now() + Duration::from_secs(5);
    let (report, resumed_at) = tokio::join!(load(&app, &token, 32, stop_at), async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        redis.pause();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        redis.resume();
        Instant::now()
    });
    eprintln!("{report:?}");
    assert!(report.store_errors > 0, "{report:?}");
    assert!(
        report.slowest < Duration::from_millis(TIMEOUT_MS) + MARGIN,
        "{report:?}"
    );
    let recovered_after = report
        .last_error
        .map(|at| at.saturating_duration_since(resumed_at))
        .unwrap_or_default();
    assert!(
        recovered_after < Duration::from_secs(2),
        "calls failed {recovered_after:?} after SIGCONT"
    );
    assert!(app.verify(&token).await, "the session survived the hang");
}

#[tokio::test]
async fn nothing_acknowledged_is_lost_across_redis_restarts_with_persistence() {
    let mut redis = RedisServer::start_with(&[
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ]);
    let a = app_on(&redis.url()).await;
    let b = app_on(&redis.url()).await;
    let mut tokens = Vec::new();
    for i in 0..200 {
        let app = if i % 2 == 0 { &a } else { &b };
        tokens.push(app.open(Some(3600)).await);
    }
    for round in 0..2 {
        redis.kill();
        redis.restart();
        for app in [&a, &b] {
            recovers_within(app, &tokens[0], Duration::from_secs(5)).await;
            for token in &tokens {
                assert!(
                    app.verify(token).await,
                    "round {round}: an acknowledged session was lost"
                );
            }
        }
    }
    // Closed ones stay closed across a restart too.
    for token in &tokens[..50] {
        a.close(token).await;
    }
    redis.kill();
    redis.restart();
    recovers_within(&b, &tokens[100], Duration::from_secs(5)).await;
    for (i, token) in tokens.iter().enumerate() {
        assert_eq!(b.verify(token).await, i >= 50);
    }
}
