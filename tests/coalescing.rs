//! Calls that arrive together on a worker share Redis round trips (verify calls one `MGET`,
//! close calls one `DEL`, reads one pipeline of `GET` and `TTL`): under concurrent load Redis
//! sees fewer commands (or writes) than calls, every call still gets its own answer, at most
//! two are in flight, and the verify batch sizes are exported.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use std::time::{Duration, Instant};

use common::relay::Relay;
use common::{RedisServer, sha256_hex, spawn_app, spawn_redis_app};
use serde_json::json;

fn commandstat(redis: &RedisServer, command: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut redis.client())
        .expect("INFO");
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A Redis, a relay in front of it (to slow the link), and sessiond on it with one worker —
/// one Redis connection, so every call of a test shares its queues — and a store timeout
/// longer than the relay's delays.
async fn one_worker_behind_a_relay() -> (RedisServer, Relay, std::sync::Arc<common::TestApp>) {
    let redis = RedisServer::start();
    let relay = Relay::start(redis.port);
    let app = spawn_app(&[
        ("SESSIOND_REDIS_URL", &relay.url()),
        ("SESSIOND_REDIS_TIMEOUT_MS", "5000"),
        ("SESSIOND_WORKER_THREADS", "1"),
    ])
    .await;
    (redis, relay, std::sync::Arc::new(app))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_verify_calls_share_mget_commands_and_each_gets_its_answer() {
    let (redis, app) = spawn_redis_app().await;
    let live = app.open(Some(600)).await;
    let never = "00890640-ec03-4663-82ce-456ea993807d";
    let before = commandstat(&redis, "mget");
    const CONNECTIONS: usize = 48;
    const CALLS_EACH: usize = 20;
    let addr = app.addr;
    // Every connection sends its calls pipelined, so many calls are in flight at once.
    let threads: Vec<_> = (0..CONNECTIONS)
        .map(|i| {
            let token = if i % 2 == 0 {
                live.clone()
            } else {
                never.to_owned()
            };
            std::thread::spawn(move || {
                let body = json!({"jsonrpc": "2.0", "method": "session.verify_session_token",
                                  "params": {"token": token}, "id": i})
                .to_string();
                let request = format!(
                    "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let mut stream = TcpStream::connect(addr).expect("connect");
                stream
                    .write_all(request.repeat(CALLS_EACH).as_bytes())
                    .expect("write");
                stream
                    .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .expect("write");
                let mut answers = String::new();
                stream.read_to_string(&mut answers).expect("read");
                (i % 2 == 0, answers)
            })
        })
        .collect();
    for thread in threads {
        let (live, answers) = thread.join().expect("client");
        let expected = format!(r#""result":{{"active":{live}}}"#);
        assert_eq!(
            answers.matches(&expected).count(),
            CALLS_EACH,
            "every call answered for its own token: {answers}"
        );
    }
    let calls = (CONNECTIONS * CALLS_EACH) as u64;
    let mgets = commandstat(&redis, "mget") - before;
    assert!(mgets > 0, "verify calls go through MGET");
    assert!(
        mgets < calls,
        "{calls} concurrent verify calls shared {mgets} MGET commands"
    );
    println!("{calls} verify calls took {mgets} MGET commands");
    let (_, metrics) = app.get("/metrics").await;
    let count: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sessiond_store_coalesced_batch_size_count "))
        .and_then(|n| n.trim().parse().ok())
        .expect("the batch size histogram is exported");
    assert!(count >= mgets, "{metrics}");
}

/// At most two `MGET`s in flight per connection: a call that arrives while one is on its way
/// starts the second at once (it does not wait for the first's answer), and the calls that
/// arrive while both are out wait and then go together as one more — not one command per
/// call or per turn of the event loop.
#[tokio::test]
async fn calls_arriving_while_mgets_are_in_flight_go_together_two_at_most() {
    let (redis, relay, app) = one_worker_behind_a_relay().await;
    let live = app.open(Some(600)).await;
    assert!(app.verify(&live).await, "warm: the connection is made");
    // Every chunk between sessiond and Redis is now held 500 ms, one after another, each way:
    // the first MGET's answer is back at 1.0 s; a second sent at once, at 1.5 s; one sent
    // only when the first is answered, at 2.0 s.
    relay.delay(Duration::from_millis(500));
    let before = commandstat(&redis, "mget");
    let started = Instant::now();
    let first = {
        let (app, token) = (app.clone(), live.clone());
        tokio::spawn(async move {
            let active = app.verify(&token).await;
            (active, started.elapsed())
        })
    };
    // The first MGET is on its way (held by the relay); these arrive meanwhile, in waves
    // 40 ms apart: the first wave starts the second MGET, and the later waves, arriving while
    // both are out, go together in a third (without the bound each wave would start one).
    tokio::time::sleep(Duration::from_millis(100)).await;
    const WAVES: usize = 6;
    const LATER: usize = WAVES * 5;
    let mut later = Vec::with_capacity(LATER);
    for i in 0..LATER {
        if i > 0 && i % (LATER / WAVES) == 0 {
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        let app = app.clone();
        let token = if i % 3 == 0 {
            "00890640-ec03-4663-82ce-456ea993807d".to_owned()
        } else {
            live.clone()
        };
        later.push(tokio::spawn(async move {
            let active = app.verify(&token).await;
            (i % 3 != 0, active, started.elapsed())
        }));
    }
    let (active, first_done) = first.await.expect("first call");
    assert!(active, "the first call's answer");
    let mut earliest_later = Duration::MAX;
    for call in later {
        let (expected, active, done) = call.await.expect("later call");
        assert_eq!(
            active, expected,
            "each call gets the answer for its own token"
        );
        earliest_later = earliest_later.min(done);
    }
    relay.delay(Duration::ZERO);
    let mgets = commandstat(&redis, "mget") - before;
    assert_eq!(
        mgets, 3,
        "the first call's MGET, a second started at once by the first wave, and one more for \
         the later waves' calls, which arrived while both were in flight"
    );
    assert!(
        earliest_later < first_done + Duration::from_millis(750),
        "the second MGET did not wait for the first's answer: first call done at \
         {first_done:?}, the earliest later one at {earliest_later:?}"
    );
}

/// Close calls that arrive together share `DEL` commands the same way, and every one of them
/// closes its own session.
#[tokio::test]
async fn concurrent_close_calls_share_del_commands_and_each_session_is_gone() {
    let (redis, relay, app) = one_worker_behind_a_relay().await;
    const SESSIONS: usize = 40;
    let mut tokens = Vec::new();
    for _ in 0..SESSIONS {
        tokens.push(app.open(Some(600)).await);
    }
    // A slow link, so that the closes are on their way together.
    relay.delay(Duration::from_millis(100));
    let before = commandstat(&redis, "del");
    let closes: Vec<_> = tokens
        .iter()
        .cloned()
        .map(|token| {
            let app = app.clone();
            tokio::spawn(async move { app.close(&token).await })
        })
        .collect();
    for close in closes {
        close.await.expect("close call");
    }
    relay.delay(Duration::ZERO);
    let dels = commandstat(&redis, "del") - before;
    assert!(
        (1..SESSIONS as u64 / 2).contains(&dels),
        "{SESSIONS} concurrent closes took {dels} DEL commands"
    );
    for token in &tokens {
        assert!(!app.verify(token).await, "a closed session is gone");
    }
    let keys: u64 = redis::cmd("DBSIZE")
        .query(&mut redis.client())
        .expect("DBSIZE");
    assert_eq!(keys, 0, "no session is left in Redis");
}

fn introspect_params(token: &str) -> serde_json::Value {
    json!({"token": token})
}

/// Concurrent reads (introspect, and `/auth`, which reads the same way) share pipelines of
/// `GET` and `TTL`, and each call still gets its own session: its subject, its metadata, its
/// time left — or inactive for a token never issued; a key that holds something other than a
/// session fails that call only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_each_get_their_own_session_and_a_bad_key_fails_only_its_call() {
    let (redis, app) = spawn_redis_app().await;
    let app = std::sync::Arc::new(app);
    const SESSIONS: usize = 60;
    let mut tokens = Vec::with_capacity(SESSIONS);
    for i in 0..SESSIONS {
        let opened = app
            .call(
                "session.open_session",
                json!({"expires_in": 600 + i, "subject": format!("user-{i}"), "metadata": {"i": i}}),
            )
            .await;
        tokens.push(
            opened["result"]["access_token"]
                .as_str()
                .unwrap_or_else(|| panic!("open failed: {opened}"))
                .to_owned(),
        );
    }
    // A token whose key holds a list: GET on it is a WRONGTYPE error reply.
    let bad = "5a0a6f3e-0f57-4a55-8f2c-6a1f0e1c2d3b";
    let bad_key = format!("sessiond:{}", sha256_hex(bad));
    let _: i64 = redis::cmd("RPUSH")
        .arg(&bad_key)
        .arg("not a session")
        .query(&mut redis.client())
        .expect("RPUSH");
    let before = commandstat(&redis, "get");
    for round in 0..5 {
        let calls: Vec<_> = (0..SESSIONS + 2)
            .map(|i| {
                let app = app.clone();
                let token = match i {
                    i if i < SESSIONS => tokens[i].clone(),
                    i if i == SESSIONS => "00890640-ec03-4663-82ce-456ea993807d".to_owned(),
                    _ => bad.to_owned(),
                };
                tokio::spawn(async move {
                    let answer = app
                        .call("session.introspect_session", introspect_params(&token))
                        .await;
                    (i, answer)
                })
            })
            .collect();
        for call in calls {
            let (i, answer) = call.await.expect("call");
            if i < SESSIONS {
                let result = &answer["result"];
                assert_eq!(
                    result["active"],
                    json!(true),
                    "round {round}, call {i}: {answer}"
                );
                assert_eq!(result["subject"], json!(format!("user-{i}")), "{answer}");
                assert_eq!(result["metadata"], json!({"i": i}), "{answer}");
                let left = result["expires_in"].as_u64().expect("expires_in");
                assert!(
                    (590 + i as u64..=600 + i as u64).contains(&left),
                    "call {i}: its own time left, got {left}"
                );
            } else if i == SESSIONS {
                assert_eq!(answer["result"], json!({"active": false}), "{answer}");
            } else {
                assert!(
                    answer["error"]["code"].is_i64() && answer.get("result").is_none(),
                    "the key holding a list fails its own call: {answer}"
                );
            }
        }
    }
    let gets = commandstat(&redis, "get") - before;
    assert_eq!(
        gets,
        5 * (SESSIONS as u64 + 2),
        "each read is one GET (the pipeline carries them; none is dropped or doubled)"
    );
}

/// Reads are coalesced like verify calls: two pipelines at most in flight, and the reads
/// arriving while both are out wait and go together in the next one. Behind a relay that
/// holds every chunk 500 ms: the first read's pipeline is answered at about 1.0 s, a second
/// sent at once for the first wave at about 1.5 s, and the later waves, sent only when the
/// first is answered, at about 2.0 s. Sent one pipeline per read instead, the relay would
/// carry the later waves' together with the second and answer them at about 1.5 s.
#[tokio::test]
async fn reads_arriving_while_two_pipelines_are_in_flight_wait_and_go_together() {
    let (_redis, relay, app) = one_worker_behind_a_relay().await;
    let live = app.open(Some(600)).await;
    let warm = app
        .call("session.introspect_session", introspect_params(&live))
        .await;
    assert_eq!(warm["result"]["active"], json!(true), "{warm}");
    relay.delay(Duration::from_millis(500));
    let started = Instant::now();
    let read = |app: std::sync::Arc<common::TestApp>, token: String| async move {
        let answer = app
            .call("session.introspect_session", introspect_params(&token))
            .await;
        (answer["result"]["active"] == json!(true), started.elapsed())
    };
    let first = tokio::spawn(read(app.clone(), live.clone()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    const WAVES: usize = 6;
    let mut waves = Vec::with_capacity(WAVES);
    for _ in 0..WAVES {
        let wave: Vec<_> = (0..5)
            .map(|_| tokio::spawn(read(app.clone(), live.clone())))
            .collect();
        waves.push(wave);
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let (active, first_done) = first.await.expect("first read");
    assert!(active, "the first read's answer");
    // Per wave: when its first and its last read were answered.
    let mut done = Vec::with_capacity(WAVES);
    for wave in waves {
        let (mut earliest, mut latest) = (Duration::MAX, Duration::ZERO);
        for call in wave {
            let (active, at) = call.await.expect("later read");
            assert!(active, "each read gets its session");
            earliest = earliest.min(at);
            latest = latest.max(at);
        }
        done.push((earliest, latest));
    }
    relay.delay(Duration::ZERO);
    assert!(
        done[0].0 < first_done + Duration::from_millis(750),
        "the first wave's pipeline did not wait for the first's answer: first read done at \
         {first_done:?}, per wave (first, last answer): {done:?}"
    );
    assert!(
        done[WAVES - 1].1 >= first_done + Duration::from_millis(750),
        "the later waves waited for a pipeline in flight to be answered, then went together: \
         first read done at {first_done:?}, per wave (first, last answer): {done:?}"
    );
}
