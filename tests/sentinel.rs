//! The service on Redis Sentinel (one master, one replica and three sentinels, all real
//! `redis-server` processes on loopback): the API behaves as on one Redis, the service starts
//! before the sentinels do, and it follows a failover, whether the master dies under load or
//! is demoted while it stays up.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::failover::{Load, assert_ready_within, assert_unready_and_failing_fast};
use common::redis_nodes::{free_ports, loopback_urls};
use common::sentinel::{SENTINEL_DOWN_AFTER_MS, SENTINEL_MASTER_NAME, SentinelGroup};
use common::{TestApp, spawn_app};
use hyper::StatusCode;
use sessiond::store::key::SessionKey;

/// `SESSIOND_REDIS_TIMEOUT_MS` in these tests (the default).
const TIMEOUT_MS: u64 = 1_000;

/// How long after the master is killed calls may keep failing: the sentinels'
/// `down-after-milliseconds` (the time before the master is suspected), plus a margin for the
/// rest of the failover and for the service to follow it. The margin covers: the sentinels
/// agreeing that the master is down (they ask each other once a second), the failover's
/// random start delay (up to 1 s), the leader election, the promotion and the sentinels
/// noticing it (they poll the promoted replica's role once a second), the service's next
/// discovery (at most 100 ms of back-off after a failed one) and one call timeout (1 s) for a
/// call already waiting on the dead master: about 5 s at worst, plus 1 s of slack for a
/// loaded 2-core CI machine. Measured on such a machine (30 runs, the file's other tests
/// running alongside, in some runs also other cluster and sentinel test binaries): the last
/// failed call was sent 2.2–2.4 s after the kill, when the sentinels named the replica
/// (2.2–2.7 s after it).
const FAILOVER_MARGIN: Duration = Duration::from_millis(6_000);

async fn sentinel_app(sentinels: &str) -> TestApp {
    spawn_app(&[
        ("SESSIOND_REDIS_MODE", "sentinel"),
        ("SESSIOND_REDIS_URL", sentinels),
        ("SESSIOND_REDIS_SENTINEL_MASTER", SENTINEL_MASTER_NAME),
        ("SESSIOND_REDIS_TIMEOUT_MS", &TIMEOUT_MS.to_string()),
    ])
    .await
}

fn exists(group: &SentinelGroup, port: u16, token: &str) -> bool {
    redis::cmd("EXISTS")
        .arg(SessionKey::of(token).with_prefix("sessiond:"))
        .query::<u64>(&mut group.connection(port))
        .expect("EXISTS")
        > 0
}

/// Waits until the master at `port` has sent every write so far to its replica.
fn wait_for_replica(group: &SentinelGroup, port: u16) {
    let acked: u64 = redis::cmd("WAIT")
        .arg(1)
        .arg(2_000)
        .query(&mut group.connection(port))
        .expect("WAIT");
    assert_eq!(acked, 1, "the replica has every write");
}

async fn open_many(app: &TestApp, count: usize) -> Vec<String> {
    let mut tokens = Vec::with_capacity(count);
    for _ in 0..count {
        tokens.push(app.open(None).await);
    }
    tokens
}

#[tokio::test]
async fn the_api_works_on_the_master_the_sentinels_name() {
    let group = SentinelGroup::start();
    let app = sentinel_app(&group.sentinel_urls()).await;
    let (master, replica) = (group.master_port(), group.replica_port());

    let (status, _) = app.get("/readyz").await;
    assert_eq!(status, StatusCode::OK);

    let token = app.open(Some(600)).await;
    assert!(app.verify(&token).await);
    assert!(exists(&group, master, &token), "written to the master");
    wait_for_replica(&group, master);
    assert!(exists(&group, replica, &token), "and replicated");
    let ttl: i64 = redis::cmd("TTL")
        .arg(SessionKey::of(&token).with_prefix("sessiond:"))
        .query(&mut group.connection(master))
        .expect("TTL");
    assert!((590..=600).contains(&ttl), "{ttl}");

    app.close(&token).await;
    assert!(!app.verify(&token).await);
    assert!(!exists(&group, master, &token));
    app.close(&token).await;

    let tokens = open_many(&app, 100).await;
    let keys: u64 = redis::cmd("DBSIZE")
        .query(&mut group.connection(master))
        .expect("DBSIZE");
    assert_eq!(keys, 100);
    for token in &tokens {
        assert!(app.verify(token).await);
    }
}

/// `rediss://` with a password, as in standalone mode: the sentinel and the master speak only
/// TLS, and the URL's scheme and credentials serve for both.
#[test]
fn sessions_over_tls_with_a_password() {
    let group = common::tls_topology::TlsTopology::sentinel("tls-sentinel-secret");
    let sentinel = group.sentinel_port.expect("a sentinel");
    let url = format!("rediss://:tls-sentinel-secret@127.0.0.1:{sentinel}");
    common::tls_topology::sessions_over_tls(
        &[
            ("SESSIOND_REDIS_MODE", "sentinel"),
            ("SESSIOND_REDIS_URL", &url),
            ("SESSIOND_REDIS_SENTINEL_MASTER", SENTINEL_MASTER_NAME),
        ],
        &group.ca_file(),
        "tls-sentinel-secret",
    );
}

#[tokio::test]
async fn starts_before_the_sentinels_and_connects_once_they_answer() {
    let ports = free_ports(5);
    let app = sentinel_app(&loopback_urls(&ports[2..])).await;
    assert_unready_and_failing_fast(&app, TIMEOUT_MS).await;

    let _group = SentinelGroup::start_on(&ports, None);
    assert_ready_within(&app, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_under_load_is_replaced_and_its_sessions_survive() {
    let mut group = SentinelGroup::start();
    let app = Arc::new(sentinel_app(&group.sentinel_urls()).await);
    let (master, replica) = (group.master_port(), group.replica_port());

    let before = open_many(&app, 200).await;
    wait_for_replica(&group, master);

    let load = Load::start(app.clone(), 6, Duration::from_millis(5));
    tokio::time::sleep(Duration::from_millis(700)).await;

    let killed = Instant::now();
    group.kill_master();
    let bound = Duration::from_millis(SENTINEL_DOWN_AFTER_MS) + FAILOVER_MARGIN;
    let promoted =
        tokio::task::block_in_place(|| group.wait_for_promotion(Duration::from_secs(30)))
            .expect("the replica was promoted");
    let until = killed + bound + Duration::from_secs(2);
    tokio::time::sleep(until.saturating_duration_since(Instant::now())).await;
    let report = load.stop().await;

    let (ok_before, failed_before) = report.counts_until(killed);
    let recovered = report
        .last_failure_since(killed)
        .map_or(Duration::ZERO, |t| t.duration_since(killed));
    let (ok_after, failed_after) = report.counts_since(killed + bound);
    eprintln!(
        "sentinel failover: every sentinel named the replica {promoted:?} after the kill; last \
         failed call sent {recovered:?} after the kill (bound {bound:?}); answered before the \
         kill {ok_before} ok / {failed_before} failed; sent after the bound {ok_after} ok / \
         {failed_after} failed"
    );
    assert_eq!(failed_before, 0, "no call answered before the kill failed");
    assert!(ok_before > 0);
    assert!(
        recovered < bound,
        "calls still failed {recovered:?} after the kill (bound {bound:?})"
    );
    assert_eq!(failed_after, 0);
    assert!(
        ok_after > 50,
        "the load ran past the bound: {ok_after} calls"
    );

    for token in &before {
        assert!(app.verify(token).await, "a session opened before the kill");
    }
    let mut held = 0;
    let mut lost = 0;
    for (opened, token) in &report.opened {
        if *opened >= killed || exists(&group, replica, token) {
            assert!(app.verify(token).await, "opened under load, still held");
            held += 1;
        } else {
            lost += 1;
        }
    }
    eprintln!(
        "sessions opened under load: {held} verified; {lost} acknowledged by the killed master \
         but not yet replicated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demoted_master_is_left_for_the_promoted_one() {
    let group = SentinelGroup::start();
    let app = sentinel_app(&group.sentinel_urls()).await;
    let (old, new) = (group.master_port(), group.replica_port());

    let before = open_many(&app, 50).await;
    wait_for_replica(&group, old);

    group.manual_failover();
    tokio::task::block_in_place(|| {
        group
            .wait_for_promotion(Duration::from_secs(20))
            .expect("the replica was promoted");
        let deadline = Instant::now() + Duration::from_secs(20);
        while group.role(old).as_deref() != Some("slave") {
            assert!(Instant::now() < deadline, "the old master was not demoted");
            std::thread::sleep(Duration::from_millis(50));
        }
    });

    // The service's connection still leads to the old master, now a replica: the first
    // write there is refused (READONLY), the sentinels are asked again and the call goes to
    // the new master, all within the one call.
    let after = open_many(&app, 20).await;
    for token in &after {
        assert!(exists(&group, new, token), "written to the new master");
    }
    for token in before.iter().chain(&after) {
        assert!(
            app.verify(token).await,
            "a session opened before or after the failover (on the new master: {}, on the old: {})",
            exists(&group, new, token),
            exists(&group, old, token)
        );
    }
    let (status, _) = app.get("/readyz").await;
    assert_eq!(status, StatusCode::OK);
}
