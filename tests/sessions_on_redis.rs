//! The three methods against a real Redis: the API page's examples sent verbatim, what Redis
//! holds (hashed keys, TTLs), real expiry, and replicas sharing one Redis.

mod common;

use std::time::Duration;

use common::{RedisServer, sha256_hex, spawn_app, spawn_redis_app};
use hyper::StatusCode;
use redis::Commands;
use serde_json::{Value, json};

const SEED_TOKEN: &str = "00890640-ec03-4663-82ce-456ea993807d";

fn seed(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR")))
        .expect("seed example")
}

#[tokio::test]
async fn the_seed_examples_sent_verbatim_get_the_documented_answers() {
    let (redis, app) = spawn_redis_app().await;

    // Open, with the page's trailing comma.
    let (status, text) = app.post(seed("seed-open-session.json")).await;
    assert_eq!(status, StatusCode::OK);
    let opened: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(opened["jsonrpc"], "2.0");
    assert_eq!(opened["id"], "jsonrpc_id");
    assert_eq!(opened["result"]["expires_in"], 2_592_000);
    let token = opened["result"]["access_token"].as_str().expect("token");
    let parsed = uuid::Uuid::parse_str(token).expect("a UUID");
    assert_eq!(parsed.get_version_num(), 4);
    assert_eq!(
        token,
        parsed.hyphenated().to_string(),
        "hyphenated lower case"
    );
    assert!(app.verify(token).await);

    // The page's token was never issued: verify says inactive, close says true.
    let (_, text) = app.post(seed("seed-verify-session-token.json")).await;
    assert_eq!(
        serde_json::from_str::<Value>(&text).expect("json"),
        json!({"jsonrpc": "2.0", "result": {"active": false}, "id": "jsonrpc_id"})
    );

    // Make the page's token live, as if this service had issued it, and replay the pages.
    let mut redis_conn = redis.client();
    let _: () = redis_conn
        .set_ex(format!("sessiond:{}", sha256_hex(SEED_TOKEN)), 1, 600)
        .expect("set");
    let (_, text) = app.post(seed("seed-verify-session-token.json")).await;
    assert_eq!(
        serde_json::from_str::<Value>(&text).expect("json"),
        json!({"jsonrpc": "2.0", "result": {"active": true}, "id": "jsonrpc_id"})
    );
    let (_, text) = app.post(seed("seed-close-session.json")).await;
    assert_eq!(
        serde_json::from_str::<Value>(&text).expect("json"),
        json!({"jsonrpc": "2.0", "result": true, "id": "jsonrpc_id"})
    );
    let (_, text) = app.post(seed("seed-verify-session-token.json")).await;
    assert_eq!(
        serde_json::from_str::<Value>(&text).expect("json")["result"],
        json!({"active": false})
    );
    // Closing again is still true.
    let (_, text) = app.post(seed("seed-close-session.json")).await;
    assert_eq!(
        serde_json::from_str::<Value>(&text).expect("json")["result"],
        json!(true)
    );
}

#[tokio::test]
async fn redis_holds_only_the_hash_of_the_token_with_the_granted_ttl() {
    let (redis, app) = spawn_redis_app().await;
    let token = app.open(Some(120)).await;
    let mut conn = redis.client();
    let keys: Vec<String> = conn.keys("*").expect("keys");
    assert_eq!(keys, vec![format!("sessiond:{}", sha256_hex(&token))]);
    let ttl: i64 = conn.ttl(&keys[0]).expect("ttl");
    assert!((118..=120).contains(&ttl), "TTL {ttl}");
    let value: String = conn.get(&keys[0]).expect("value");
    assert!(!value.contains(&token));
    // Nowhere in Redis's whole dataset.
    let dump: Vec<u8> = redis::cmd("DUMP")
        .arg(&keys[0])
        .query(&mut conn)
        .expect("dump");
    assert!(!String::from_utf8_lossy(&dump).contains(&token));
    let with_uuid_shape = keys.iter().any(|k| k.contains(&token[..8]));
    assert!(!with_uuid_shape);

    // The default duration is what SESSIOND_DEFAULT_EXPIRES_IN says.
    app.call("session.open_session", json!([null])).await;
    let keys: Vec<String> = conn.keys("*").expect("keys");
    assert_eq!(keys.len(), 2);
    let ttls: Vec<i64> = keys.iter().map(|k| conn.ttl(k).expect("ttl")).collect();
    assert!(
        ttls.iter().any(|&t| (2_591_990..=2_592_000).contains(&t)),
        "{ttls:?}"
    );

    // Close deletes the key.
    app.close(&token).await;
    let exists: bool = conn
        .exists(format!("sessiond:{}", sha256_hex(&token)))
        .expect("exists");
    assert!(!exists);
}

#[tokio::test]
async fn settings_change_the_prefix_the_default_and_the_maximum() {
    let redis = RedisServer::start();
    let app = spawn_app(&[
        ("SESSIOND_REDIS_URL", &redis.url()),
        ("SESSIOND_KEY_PREFIX", "tenant-a:sess:"),
        ("SESSIOND_DEFAULT_EXPIRES_IN", "77"),
        ("SESSIOND_MAX_EXPIRES_IN", "100"),
    ])
    .await;
    let opened = app.call("session.open_session", json!({})).await;
    assert_eq!(opened["result"]["expires_in"], 77);
    let token = opened["result"]["access_token"].as_str().expect("token");
    let mut conn = redis.client();
    let key = format!("tenant-a:sess:{}", sha256_hex(token));
    let ttl: i64 = conn.ttl(&key).expect("ttl");
    assert!((75..=77).contains(&ttl), "{ttl}");
    let refused = app
        .call("session.open_session", json!({"expires_in": 101}))
        .await;
    assert_eq!(refused["error"]["code"], -32602);
    let accepted = app
        .call("session.open_session", json!({"expires_in": 100}))
        .await;
    assert_eq!(accepted["result"]["expires_in"], 100);
}

#[tokio::test]
async fn a_session_expires_after_real_seconds() {
    let (_redis, app) = spawn_redis_app().await;
    let token = app.open(Some(1)).await;
    assert!(app.verify(&token).await);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(!app.verify(&token).await, "expired by Redis's own TTL");
}

#[tokio::test]
async fn replicas_sharing_one_redis_agree_on_every_token() {
    let redis = RedisServer::start();
    let a = spawn_app(&[("SESSIOND_REDIS_URL", &redis.url())]).await;
    let b = spawn_app(&[("SESSIOND_REDIS_URL", &redis.url())]).await;
    let mut tokens = Vec::new();
    for _ in 0..20 {
        tokens.push(a.open(None).await);
    }
    for token in &tokens {
        assert!(b.verify(token).await, "opened on a, active on b");
    }
    for token in &tokens[..10] {
        b.close(token).await;
    }
    for (i, token) in tokens.iter().enumerate() {
        assert_eq!(a.verify(token).await, i >= 10, "closed on b, inactive on a");
    }
}

#[tokio::test]
async fn params_by_position_work_like_params_by_name() {
    let (_redis, app) = spawn_redis_app().await;
    let opened = app.call("session.open_session", json!([30])).await;
    assert_eq!(opened["result"]["expires_in"], 30);
    let token = opened["result"]["access_token"].as_str().expect("token");
    let verified = app
        .call("session.verify_session_token", json!([token]))
        .await;
    assert_eq!(verified["result"], json!({"active": true}));
    let closed = app.call("session.close_session", json!([token])).await;
    assert_eq!(closed["result"], json!(true));
    assert!(!app.verify(token).await);
}

/// A batch's verify calls go to Redis together (live and unknown tokens mixed: the multi-key
/// `EXISTS`, then the pipeline); each entry is still answered on its own, in order, next to
/// the batch's other calls.
#[tokio::test]
async fn a_batch_of_verify_calls_is_answered_entry_by_entry() {
    let (_redis, app) = spawn_redis_app().await;
    let live: Vec<String> = futures_util::future::join_all((0..5).map(|_| app.open(None))).await;
    app.close(&live[1]).await;
    let verify = |token: &str, id: u64| {
        json!({"jsonrpc": "2.0", "method": "session.verify_session_token",
               "params": {"token": token}, "id": id})
    };
    let batch = json!([
        verify(&live[0], 1),
        verify(&live[1], 2),
        verify("not-a-token", 3),
        {"jsonrpc": "2.0", "method": "session.open_session", "params": {"expires_in": 60}, "id": 4},
        verify("00000000-0000-4000-8000-000000000000", 5),
        {"jsonrpc": "2.0", "method": "session.verify_session_token", "params": {"token": live[2]}},
        {"jsonrpc": "2.0", "method": "session.close_session", "params": [live[3]], "id": 6},
        {"jsonrpc": "2.0", "method": "session.verify_session_token", "params": {"token": 5}, "id": 7},
        {"jsonrpc": "2.0", "method": "session.verify_session_token", "params": [live[4]], "id": 8},
        verify(&live[2], 9),
    ]);
    let (status, body) = app.post(batch.to_string()).await;
    assert_eq!(status, StatusCode::OK);
    let answers: Vec<Value> = serde_json::from_str(&body).expect("a JSON array");
    let ids: Vec<u64> = answers
        .iter()
        .map(|a| a["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(
        ids,
        [1, 2, 3, 4, 5, 6, 7, 8, 9],
        "in order, the notification unanswered"
    );
    let active = |i: usize| answers[i]["result"]["active"].clone();
    assert_eq!(active(0), json!(true));
    assert_eq!(active(1), json!(false), "closed before the batch");
    assert_eq!(active(2), json!(false), "malformed");
    assert_eq!(answers[3]["result"]["expires_in"], 60);
    assert_eq!(active(4), json!(false), "well-formed but never opened");
    assert_eq!(answers[5]["result"], json!(true));
    assert_eq!(answers[6]["error"]["code"], -32602);
    assert_eq!(active(7), json!(true), "params by position");
    assert_eq!(active(8), json!(true));
    let opened = answers[3]["result"]["access_token"]
        .as_str()
        .expect("token");
    assert!(app.verify(opened).await);
    assert!(!app.verify(&live[3]).await, "closed in the batch");
}
