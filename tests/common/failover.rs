//! What the cluster and sentinel tests watch while a topology fails: readiness and fast
//! failures before the store answers, and a [`Load`] of open and verify calls whose every
//! call is recorded with when it was sent and answered.

use std::time::{Duration, Instant};

/// Before anything answers on the configured addresses: `/readyz` is 503 and a call fails
/// with the store-unavailable error within the store timeout (plus a second of slack).
pub async fn assert_unready_and_failing_fast(app: &super::TestApp, timeout_ms: u64) {
    let (status, _) = app.get("/readyz").await;
    assert_eq!(status, hyper::StatusCode::SERVICE_UNAVAILABLE);
    let started = Instant::now();
    let answer = app
        .call("session.open_session", serde_json::json!({}))
        .await;
    assert_eq!(answer["error"]["code"], -32000, "{answer}");
    assert!(
        started.elapsed() < Duration::from_millis(timeout_ms + 1_000),
        "failed within the timeout: {:?}",
        started.elapsed()
    );
}

/// Polls `/readyz` until it is 200, then opens and verifies a session; panics after `within`.
pub async fn assert_ready_within(app: &super::TestApp, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (status, _) = app.get("/readyz").await;
        if status == hyper::StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token = app.open(None).await;
    assert!(app.verify(&token).await);
}

/// One call made by a [`Load`] worker.
#[derive(Debug, Clone)]
pub struct Call {
    /// When the call was sent.
    pub started: Instant,
    /// When its answer came.
    pub finished: Instant,
    /// Whether it got a result (not an error).
    pub ok: bool,
}

/// What a [`Load`] saw: every call, and every session it opened with when it was opened.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Every open and verify, in no particular order.
    pub calls: Vec<Call>,
    /// Tokens of the sessions opened, with when each open was sent.
    pub opened: Vec<(Instant, String)>,
}

impl LoadReport {
    /// The calls answered before `until`, as (succeeded, failed).
    pub fn counts_until(&self, until: Instant) -> (usize, usize) {
        let answered = self.calls.iter().filter(|c| c.finished < until);
        let ok = answered.clone().filter(|c| c.ok).count();
        (ok, answered.count() - ok)
    }

    /// The calls sent at or after `from`, as (succeeded, failed).
    pub fn counts_since(&self, from: Instant) -> (usize, usize) {
        let sent = self.calls.iter().filter(|c| c.started >= from);
        let ok = sent.clone().filter(|c| c.ok).count();
        (ok, sent.count() - ok)
    }

    /// When the last failed call was sent, if any failed at or after `from`.
    pub fn last_failure_since(&self, from: Instant) -> Option<Instant> {
        self.calls
            .iter()
            .filter(|c| !c.ok && c.started >= from)
            .map(|c| c.started)
            .max()
    }
}

/// Workers that open a session and verify it, over and over, until stopped.
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<LoadReport>>,
}

impl Load {
    /// Starts `workers` workers against `app`, each pausing `pause` between rounds.
    pub fn start(app: std::sync::Arc<super::TestApp>, workers: usize, pause: Duration) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let workers = (0..workers)
            .map(|_| {
                let (app, stop) = (app.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut report = LoadReport::default();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let started = Instant::now();
                        let answer = app
                            .call("session.open_session", serde_json::json!({}))
                            .await;
                        let token = answer["result"]["access_token"].as_str().map(str::to_owned);
                        report.calls.push(Call {
                            started,
                            finished: Instant::now(),
                            ok: token.is_some(),
                        });
                        if let Some(token) = token {
                            let started_verify = Instant::now();
                            let answer = app
                                .call(
                                    "session.verify_session_token",
                                    serde_json::json!({ "token": token }),
                                )
                                .await;
                            report.calls.push(Call {
                                started: started_verify,
                                finished: Instant::now(),
                                ok: answer.get("result").is_some(),
                            });
                            report.opened.push((started, token));
                        }
                        tokio::time::sleep(pause).await;
                    }
                    report
                })
            })
            .collect();
        Self { stop, workers }
    }

    /// Stops the workers and merges what they saw.
    pub async fn stop(self) -> LoadReport {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut all = LoadReport::default();
        for worker in self.workers {
            let report = worker.await.expect("load worker");
            all.calls.extend(report.calls);
            all.opened.extend(report.opened);
        }
        all
    }
}
