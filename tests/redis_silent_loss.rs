//! Redis vanishes silently (issue 18): the connection sessiond holds stops carrying bytes
//! without being closed or reset — Redis moved to another address, a NAT or firewall forgot
//! the flow, a node was cut off. The client sees no error, only silence, and TCP keep-alive
//! does not help (the peer's kernel, here the relay's, still acknowledges). A relay
//! (`common::relay`) makes exactly that: `freeze()` leaves every open connection open and
//! silent, while new connections are forwarded normally.
//!
//! What must hold: a call that times out drops the connection it used (`timed_out` in the
//! store), so the next call connects anew and succeeds. Service is back within about two
//! store timeouts (the call that timed out, then one on a fresh connection), not after the
//! kernel gives up on the dead socket (~15 minutes) — or never, as here, where the kernel
//! keeps acknowledging.

mod common;

use std::time::{Duration, Instant};

use common::cluster::RedisCluster;
use common::relay::Relay;
use common::{RedisServer, TestApp, spawn_app};
use hyper::StatusCode;
use serde_json::json;

const TIMEOUT_MS: u64 = 300;
/// Two store timeouts and scheduling slack on a loaded 2-core machine.
const RECOVERY_BOUND: Duration = Duration::from_secs(2);

/// After the freeze: polls verify until it answers `active: true`; returns how long that took
/// and how many calls failed before. Fails the test after [`RECOVERY_BOUND`].
async fn recovers(app: &TestApp, token: &str, frozen_at: Instant) -> (Duration, usize) {
    let mut failures = 0;
    loop {
        let answer = app
            .call("session.verify_session_token", json!({"token": token}))
            .await;
        let elapsed = frozen_at.elapsed();
        if answer["result"]["active"] == json!(true) {
            return (elapsed, failures);
        }
        assert_eq!(answer["error"]["code"], -32000, "{answer}");
        failures += 1;
        assert!(
            elapsed < RECOVERY_BOUND,
            "still failing {elapsed:?} after Redis went silent ({failures} calls failed): {answer}"
        );
    }
}

/// After recovery every further call and `/readyz` succeed (none of them lands on a silent
/// connection kept somewhere).
async fn stays_up(app: &TestApp, token: &str) {
    for _ in 0..20 {
        assert!(app.verify(token).await, "verify after recovery");
    }
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "/readyz after recovery: {body}");
    let fresh = app.open(None).await;
    assert!(app.verify(&fresh).await);
}

#[tokio::test]
async fn standalone_redis_gone_silent_is_reconnected_after_one_timeout() {
    let redis = RedisServer::start();
    let relay = Relay::start(redis.port);
    // One worker: one Redis connection, so the calls below all go through the one that froze.
    let app = spawn_app(&[
        ("SESSIOND_REDIS_URL", &relay.url()),
        ("SESSIOND_REDIS_TIMEOUT_MS", &TIMEOUT_MS.to_string()),
        ("SESSIOND_WORKER_THREADS", "1"),
    ])
    .await;
    let token = app.open(None).await;
    assert!(app.verify(&token).await);
    assert_eq!(app.get("/readyz").await.0, StatusCode::OK);
    let connections_before = relay.accepted();

    relay.freeze();
    let frozen_at = Instant::now();
    let (recovered_after, failures) = recovers(&app, &token, frozen_at).await;
    println!(
        "standalone: first success {recovered_after:?} after the freeze ({failures} call(s) \
         failed; store timeout {TIMEOUT_MS} ms)"
    );
    assert!(
        failures >= 1,
        "the relay froze the connection in use, so at least one call had to time out"
    );
    assert!(
        relay.accepted() > connections_before,
        "recovery went through a new connection"
    );
    stays_up(&app, &token).await;
    drop(redis);
}

/// Sets `cluster-announce-ip`/`cluster-announce-port` on every node so that each announces its
/// relay's address, and waits until every node's `CLUSTER SLOTS` names only relay ports: the
/// client then learns the relays, never the nodes' own ports.
fn announce_relays(cluster: &RedisCluster, relays: &[(u16, Relay)]) {
    for (node, relay) in relays {
        let mut conn = cluster.connection(*node);
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("cluster-announce-ip")
            .arg("127.0.0.1")
            .arg("cluster-announce-port")
            .arg(relay.port)
            .query(&mut conn)
            .unwrap_or_else(|e| panic!("CONFIG SET cluster-announce-port on {node}: {e}"));
    }
    let relay_ports: Vec<u16> = relays.iter().map(|(_, r)| r.port).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut seen = Vec::new();
        let all_relayed = relays.iter().all(|(node, _)| {
            let mut conn = cluster.connection(*node);
            let slots: redis::Value = redis::cmd("CLUSTER")
                .arg("SLOTS")
                .query(&mut conn)
                .expect("CLUSTER SLOTS");
            let ports = slot_ports(&slots);
            seen.push((*node, ports.clone()));
            ports.len() == 6 && ports.iter().all(|p| relay_ports.contains(p))
        });
        if all_relayed {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the nodes still announce their own ports: {seen:?} (relays {relay_ports:?})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every node port named in a `CLUSTER SLOTS` reply (masters and replicas), deduplicated.
fn slot_ports(slots: &redis::Value) -> Vec<u16> {
    let mut ports = Vec::new();
    let redis::Value::Array(ranges) = slots else {
        return ports;
    };
    for range in ranges {
        let redis::Value::Array(fields) = range else {
            continue;
        };
        for node in fields.iter().skip(2) {
            if let redis::Value::Array(node) = node
                && let Some(redis::Value::Int(port)) = node.get(1)
                && let Ok(port) = u16::try_from(*port)
                && !ports.contains(&port)
            {
                ports.push(port);
            }
        }
    }
    ports
}

#[tokio::test]
async fn cluster_gone_silent_is_reconnected_after_one_timeout() {
    let cluster = RedisCluster::start();
    let relays: Vec<(u16, Relay)> = cluster
        .ports()
        .into_iter()
        .map(|node| (node, Relay::start(node)))
        .collect();
    announce_relays(&cluster, &relays);
    let seeds = relays
        .iter()
        .map(|(_, relay)| relay.url())
        .collect::<Vec<_>>()
        .join(",");
    let app = spawn_app(&[
        ("SESSIOND_REDIS_MODE", "cluster"),
        ("SESSIOND_REDIS_URL", &seeds),
        ("SESSIOND_REDIS_TIMEOUT_MS", &TIMEOUT_MS.to_string()),
        ("SESSIOND_WORKER_THREADS", "1"),
    ])
    .await;
    let token = app.open(None).await;
    assert!(app.verify(&token).await);
    assert_eq!(app.get("/readyz").await.0, StatusCode::OK);
    let accepted = |relays: &[(u16, Relay)]| relays.iter().map(|(_, r)| r.accepted()).sum();
    let connections_before: usize = accepted(&relays);
    assert!(
        connections_before > 0,
        "the app reached the cluster through the relays"
    );

    for (_, relay) in &relays {
        relay.freeze();
    }
    let frozen_at = Instant::now();
    let (recovered_after, failures) = recovers(&app, &token, frozen_at).await;
    println!(
        "cluster: first success {recovered_after:?} after the freeze ({failures} call(s) \
         failed; store timeout {TIMEOUT_MS} ms)"
    );
    assert!(
        failures >= 1,
        "the relays froze the connections in use, so at least one call had to time out"
    );
    assert!(
        accepted(&relays) > connections_before,
        "recovery went through new connections"
    );
    stays_up(&app, &token).await;
    drop(cluster);
}
