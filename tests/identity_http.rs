//! Sessions that know their owner, through HTTP (SPEC, "Sessions that know their owner"): the
//! new methods' exact answers by name and by position, bad input refused without touching
//! Redis, batches and notifications, the page's three methods unchanged (one read per
//! verify), no subject or metadata in the logs, and the OpenRPC document.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::process::{json_body, post, start, stop_and_collect_logs};
use common::{RedisServer, TestApp, sha256_hex, spawn_redis_app};
use hyper::StatusCode;
use redis::Commands;
use serde_json::{Value, json};

/// A token of the shape the service issues that it never issued.
const NEVER_ISSUED: &str = "00890640-ec03-4663-82ce-456ea993807d";

const OPEN: &str = "session.open_session";
const VERIFY: &str = "session.verify_session_token";
const CLOSE: &str = "session.close_session";
const INTROSPECT: &str = "session.introspect_session";
const EXTEND: &str = "session.extend_session";
const LIST: &str = "session.list_sessions";
const CLOSE_SESSIONS: &str = "session.close_sessions";

/// The default `expires_in` of the service.
const DEFAULT_EXPIRES_IN: u64 = 2_592_000;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Calls `method` and returns its result, checking the envelope is exactly
/// `{"jsonrpc", "result", "id"}`.
async fn result(app: &TestApp, method: &str, params: Value) -> Value {
    let response = app.call(method, params.clone()).await;
    let result = response["result"].clone();
    assert_eq!(
        response,
        json!({"jsonrpc": "2.0", "result": result, "id": 1}),
        "{method} {params}"
    );
    result
}

/// Opens a session (any params) and returns its token, checking the result is exactly
/// `{"access_token", "expires_in"}` as before subjects existed.
async fn open(app: &TestApp, params: Value, expires_in: u64) -> String {
    let opened = result(app, OPEN, params.clone()).await;
    let token = opened["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("open {params}: {opened}"))
        .to_owned();
    assert_eq!(
        opened,
        json!({"access_token": token, "expires_in": expires_in}),
        "open's result is unchanged"
    );
    token
}

/// Checks a live introspection exactly, `expires_in` within 2 s of `granted` and `issued_at`
/// within the last `age` seconds.
fn assert_live(seen: &Value, token: &str, granted: u64, owner: Option<(&str, Value)>) {
    let expires_in = seen["expires_in"].as_u64().expect("expires_in");
    assert!(
        (granted.saturating_sub(2)..=granted).contains(&expires_in),
        "expires_in {expires_in} of {granted}"
    );
    let issued_at = seen["issued_at"].as_u64().expect("issued_at");
    assert!(
        (now() - 10..=now()).contains(&issued_at),
        "issued_at {issued_at}"
    );
    let mut expected = json!({
        "active": true,
        "expires_in": expires_in,
        "issued_at": issued_at,
        "session_id": sha256_hex(token),
    });
    if let Some((subject, metadata)) = owner {
        expected["subject"] = json!(subject);
        if !metadata.is_null() {
            expected["metadata"] = metadata;
        }
    }
    assert_eq!(seen, &expected);
}

/// Checks a list exactly: these tokens, newest first, each with its metadata (if any).
fn assert_listed(listed: &Value, expected: &[(&str, u64, Value)]) {
    let items = listed.as_array().unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(items.len(), expected.len(), "{listed}");
    for (item, (token, granted, metadata)) in items.iter().zip(expected) {
        let expires_in = item["expires_in"].as_u64().expect("expires_in");
        assert!(
            (granted.saturating_sub(3)..=*granted).contains(&expires_in),
            "{item}"
        );
        let mut want = json!({
            "session_id": sha256_hex(token),
            "issued_at": item["issued_at"].as_u64().expect("issued_at"),
            "expires_in": expires_in,
        });
        if !metadata.is_null() {
            want["metadata"] = metadata.clone();
        }
        assert_eq!(item, &want);
    }
}

#[tokio::test]
async fn each_new_method_answers_the_spec_shapes_by_name_and_by_position() {
    let (_redis, app) = spawn_redis_app().await;
    let phone = json!({"device": "phone"});
    let laptop = json!({"device": "laptop", "ip": "10.0.0.2", "tags": ["a", 1, null]});

    // open_session: {expires_in, subject, metadata} / [expires_in, subject, metadata].
    let a1 = open(
        &app,
        json!({"expires_in": 600, "subject": "alice", "metadata": phone}),
        600,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let a2 = open(&app, json!([300, "alice", laptop]), 300).await;
    let b1 = open(&app, json!([null, "bob"]), DEFAULT_EXPIRES_IN).await;
    let plain = open(&app, json!([60]), 60).await;
    let no_metadata = open(
        &app,
        json!({"subject": "alice", "metadata": null}),
        DEFAULT_EXPIRES_IN,
    )
    .await;

    // introspect_session: {token} / [token].
    let seen = result(&app, INTROSPECT, json!({"token": a1})).await;
    assert_live(&seen, &a1, 600, Some(("alice", phone.clone())));
    let seen = result(&app, INTROSPECT, json!([a2])).await;
    assert_live(&seen, &a2, 300, Some(("alice", laptop.clone())));
    let seen = result(&app, INTROSPECT, json!([a2.to_ascii_uppercase()])).await;
    assert_live(&seen, &a2, 300, Some(("alice", laptop.clone())));
    let seen = result(&app, INTROSPECT, json!({"token": b1})).await;
    assert_live(&seen, &b1, DEFAULT_EXPIRES_IN, Some(("bob", Value::Null)));
    let seen = result(&app, INTROSPECT, json!({"token": plain})).await;
    assert_live(&seen, &plain, 60, None);
    for inactive in [NEVER_ISSUED, "not-a-token", ""] {
        assert_eq!(
            result(&app, INTROSPECT, json!({"token": inactive})).await,
            json!({"active": false}),
            "an inactive token is {{\"active\": false}} and nothing else"
        );
    }

    // extend_session: {token, expires_in} / [token, expires_in]; the default when absent.
    assert_eq!(
        result(&app, EXTEND, json!({"token": a1, "expires_in": 120})).await,
        json!({"active": true, "expires_in": 120})
    );
    let seen = result(&app, INTROSPECT, json!([a1])).await;
    assert_live(&seen, &a1, 120, Some(("alice", phone.clone())));
    assert_eq!(
        result(&app, EXTEND, json!([a2, 900])).await,
        json!({"active": true, "expires_in": 900})
    );
    assert_eq!(
        result(&app, EXTEND, json!([plain])).await,
        json!({"active": true, "expires_in": DEFAULT_EXPIRES_IN}),
        "the default, as for open"
    );
    let seen = result(&app, INTROSPECT, json!([plain])).await;
    assert_live(&seen, &plain, DEFAULT_EXPIRES_IN, None);
    for inactive in [NEVER_ISSUED, "not-a-token"] {
        assert_eq!(
            result(&app, EXTEND, json!({"token": inactive, "expires_in": 60})).await,
            json!({"active": false})
        );
    }

    // list_sessions: {subject} / [subject]; newest first.
    let listed = result(&app, LIST, json!({"subject": "alice"})).await;
    let ids: Vec<&str> = listed
        .as_array()
        .expect("a list")
        .iter()
        .map(|s| s["session_id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids.len(), 3, "{listed}");
    assert_eq!(ids[2], sha256_hex(&a1), "the oldest last: {listed}");
    // a2 and no_metadata may share an issue second; both are newer than a1.
    let newer: Vec<(&str, u64, Value)> = if ids[0] == sha256_hex(&a2) {
        vec![
            (&a2, 900, laptop.clone()),
            (&no_metadata, DEFAULT_EXPIRES_IN, Value::Null),
        ]
    } else {
        vec![
            (&no_metadata, DEFAULT_EXPIRES_IN, Value::Null),
            (&a2, 900, laptop.clone()),
        ]
    };
    let mut expected = newer;
    expected.push((&a1, 120, phone.clone()));
    assert_listed(&listed, &expected);
    assert_eq!(result(&app, LIST, json!(["alice"])).await, listed);
    assert_listed(
        &result(&app, LIST, json!(["bob"])).await,
        &[(&b1, DEFAULT_EXPIRES_IN, Value::Null)],
    );
    assert_eq!(
        result(&app, LIST, json!({"subject": "nobody"})).await,
        json!([])
    );

    // close_sessions: {subject, except_token?, session_ids?} / [subject, except_token,
    // session_ids].
    assert_eq!(
        result(
            &app,
            CLOSE_SESSIONS,
            json!({"subject": "alice", "session_ids": [sha256_hex(&a2)]})
        )
        .await,
        json!({"closed": 1}),
        "that device"
    );
    assert_eq!(
        result(
            &app,
            CLOSE_SESSIONS,
            json!(["alice", null, [sha256_hex(&b1)]])
        )
        .await,
        json!({"closed": 0}),
        "bob's session is not alice's"
    );
    let a3 = open(&app, json!([600, "alice"]), 600).await;
    assert_eq!(
        result(&app, CLOSE_SESSIONS, json!(["alice", a1])).await,
        json!({"closed": 2}),
        "everywhere else"
    );
    assert_listed(
        &result(&app, LIST, json!(["alice"])).await,
        &[(&a1, 120, phone.clone())],
    );
    assert_eq!(
        result(&app, CLOSE_SESSIONS, json!({"subject": "alice"})).await,
        json!({"closed": 1}),
        "everywhere"
    );
    assert_eq!(
        result(
            &app,
            CLOSE_SESSIONS,
            json!({"subject": "bob", "except_token": null, "session_ids": null})
        )
        .await,
        json!({"closed": 1})
    );
    for token in [&a1, &a2, &a3, &b1, &no_metadata] {
        assert!(!app.verify(token).await, "closed");
        assert_eq!(
            result(&app, INTROSPECT, json!([token])).await,
            json!({"active": false})
        );
        assert_eq!(
            result(&app, EXTEND, json!([token, 60])).await,
            json!({"active": false}),
            "never revived"
        );
    }
    assert!(app.verify(&plain).await, "a plain session has no subject");
    assert_eq!(result(&app, LIST, json!(["alice"])).await, json!([]));
}

/// The commands Redis has run since its stats were last reset (`INFO commandstats`), but for
/// those the test itself sends.
fn commands_run(conn: &mut redis::Connection) -> Vec<String> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(conn)
        .expect("INFO");
    info.lines()
        .filter_map(|l| l.strip_prefix("cmdstat_"))
        .filter_map(|l| l.split(':').next())
        .filter(|c| !["info", "dbsize", "config|resetstat"].contains(c))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_param_and_nothing_reaches_redis() {
    let (redis, app) = spawn_redis_app().await;
    let mut conn = redis.client();
    // A live session of alice's (and the app's connection to Redis made).
    let live = open(&app, json!([600, "alice", {"k": "v"}]), 600).await;
    let id = sha256_hex(&live);
    let dbsize: i64 = redis::cmd("DBSIZE").query(&mut conn).expect("DBSIZE");
    assert_eq!(dbsize, 2, "the session and its index");
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut conn)
        .expect("RESETSTAT");

    let long_subject = "s".repeat(257);
    let long_multibyte = "é".repeat(129); // 258 bytes, 129 characters
    let big = json!({"k": "x".repeat(4097 - 8)});
    assert_eq!(big.to_string().len(), 4097);
    let many_ids: Vec<String> = (0..1001).map(|i| format!("{i:064x}")).collect();
    let cases: Vec<(&str, Value, &str)> = vec![
        // subject: a non-empty string of at most 256 bytes.
        (OPEN, json!({"subject": 5}), "subject"),
        (OPEN, json!({"subject": ""}), "subject"),
        (OPEN, json!({"subject": long_subject}), "subject"),
        (OPEN, json!({"subject": long_multibyte}), "subject"),
        (OPEN, json!({"subject": ["alice"]}), "subject"),
        (OPEN, json!({"subject": {"id": "alice"}}), "subject"),
        (OPEN, json!({"subject": true}), "subject"),
        (OPEN, json!([60, 7]), "subject"),
        // metadata: a JSON object of at most 4096 bytes serialised.
        (
            OPEN,
            json!({"subject": "alice", "metadata": [1]}),
            "metadata",
        ),
        (OPEN, json!({"metadata": "ip=10.0.0.1"}), "metadata"),
        (OPEN, json!({"metadata": 5}), "metadata"),
        (OPEN, json!({"metadata": true}), "metadata"),
        (
            OPEN,
            json!({"subject": "alice", "metadata": big}),
            "metadata",
        ),
        (OPEN, json!([60, "alice", "meta"]), "metadata"),
        (OPEN, json!([60, "alice", []]), "metadata"),
        // Unknown params, and too many positional ones.
        (
            OPEN,
            json!({"expires_in": 60, "owner": "alice"}),
            "\"owner\"",
        ),
        (OPEN, json!({"subject": "alice", "meta": {}}), "\"meta\""),
        (
            OPEN,
            json!([60, "alice", {}, 1]),
            "expires_in, subject, metadata",
        ),
        (
            INTROSPECT,
            json!({"token": live, "subject": "alice"}),
            "\"subject\"",
        ),
        (INTROSPECT, json!({}), "token"),
        (INTROSPECT, json!({"token": 5}), "token"),
        (
            EXTEND,
            json!({"token": live, "expires_in": 0}),
            "expires_in",
        ),
        (
            EXTEND,
            json!({"token": live, "expires_in": "60"}),
            "expires_in",
        ),
        (EXTEND, json!([live, 31_536_001]), "expires_in"),
        (EXTEND, json!({"expires_in": 60}), "token"),
        (EXTEND, json!([5, 60]), "token"),
        (EXTEND, json!({"token": live, "ttl": 60}), "\"ttl\""),
        (EXTEND, json!([live, 60, 1]), "token, expires_in"),
        // list_sessions and close_sessions need a subject.
        (LIST, json!({}), "subject"),
        (LIST, json!([]), "subject"),
        (LIST, json!({"subject": null}), "subject"),
        (LIST, json!({"subject": ""}), "subject"),
        (LIST, json!({"subject": 5}), "subject"),
        (LIST, json!([long_subject]), "subject"),
        (
            LIST,
            json!({"subject": "alice", "token": live}),
            "\"token\"",
        ),
        (CLOSE_SESSIONS, json!({}), "subject"),
        (CLOSE_SESSIONS, json!([]), "subject"),
        (CLOSE_SESSIONS, json!({"except_token": live}), "subject"),
        (CLOSE_SESSIONS, json!({"session_ids": [id]}), "subject"),
        (CLOSE_SESSIONS, json!([null, null, [id]]), "subject"),
        (CLOSE_SESSIONS, json!({"subject": ""}), "subject"),
        // except_token: a string.
        (
            CLOSE_SESSIONS,
            json!({"subject": "alice", "except_token": 5}),
            "except_token",
        ),
        (
            CLOSE_SESSIONS,
            json!({"subject": "alice", "except_token": [live]}),
            "except_token",
        ),
        (
            CLOSE_SESSIONS,
            json!(["alice", {"token": live}]),
            "except_token",
        ),
        // A malformed except_token would keep nothing open: refused instead.
        (
            CLOSE_SESSIONS,
            json!({"subject": "alice", "except_token": "not-a-token"}),
            "except_token",
        ),
        // session_ids: a list of strings.
        (
            CLOSE_SESSIONS,
            json!({"subject": "alice", "session_ids": id}),
            "session_ids",
        ),
        (
            CLOSE_SESSIONS,
            json!({"subject": "alice", "session_ids": [1, 2]}),
            "session_ids",
        ),
        (
            CLOSE_SESSIONS,
            json!({"subject": "alice", "session_ids": [id, null]}),
            "session_ids",
        ),
        (
            CLOSE_SESSIONS,
            json!({"subject": "alice", "session_ids": {"id": id}}),
            "session_ids",
        ),
        (
            CLOSE_SESSIONS,
            json!({"subject": "alice", "session_ids": [[id]]}),
            "session_ids",
        ),
        (
            CLOSE_SESSIONS,
            json!({"subject": "alice", "session_ids": many_ids}),
            "session_ids",
        ),
        (CLOSE_SESSIONS, json!(["alice", null, id]), "session_ids"),
        (
            CLOSE_SESSIONS,
            json!({"subject": "alice", "token": live}),
            "\"token\"",
        ),
        (
            CLOSE_SESSIONS,
            json!(["alice", null, [], 1]),
            "subject, except_token, session_ids",
        ),
    ];
    for (method, params, needle) in &cases {
        let response = app.call(method, params.clone()).await;
        let shown = response.to_string();
        let shown: String = shown.chars().take(300).collect();
        assert_eq!(response["jsonrpc"], "2.0", "{shown}");
        assert_eq!(response["id"], 1, "{shown}");
        assert_eq!(response.get("result"), None, "{method} {shown}");
        assert_eq!(
            response["error"]["code"], -32602,
            "{method} {needle}: {shown}"
        );
        let message = response["error"]["message"].as_str().expect("a message");
        assert!(
            message.contains(needle),
            "{method}: the message names {needle}: {message}"
        );
        let now: i64 = redis::cmd("DBSIZE").query(&mut conn).expect("DBSIZE");
        assert_eq!(now, dbsize, "{method} {needle}: nothing written");
    }
    assert_eq!(
        commands_run(&mut conn),
        Vec::<String>::new(),
        "no refused call sent Redis anything"
    );
    assert!(app.verify(&live).await, "the live session is untouched");
    assert!(
        !commands_run(&mut conn).is_empty(),
        "INFO commandstats does show the app's commands"
    );
    let ttl: i64 = conn.ttl(format!("sessiond:{id}")).expect("TTL");
    assert!((590..=600).contains(&ttl), "not extended: {ttl}");

    // The bounds are inclusive: 256 bytes of subject (in bytes, not characters), a
    // metadata object of 4096 bytes compact, even sent with whitespace around it.
    let subject = "é".repeat(128);
    assert_eq!(subject.len(), 256);
    let exact = json!({"k": "x".repeat(4096 - 8)});
    assert_eq!(exact.to_string().len(), 4096);
    let body = format!(
        r#"{{"jsonrpc":"2.0","method":"{OPEN}","params":{{"subject":{},"metadata":{{ "k" :  {} }}}},"id":1}}"#,
        json!(subject),
        exact["k"]
    );
    let (status, text) = app.post(body).await;
    assert_eq!(status, StatusCode::OK);
    let opened: Value = serde_json::from_str(&text).expect("json");
    let token = opened["result"]["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{text}"));
    let seen = result(&app, INTROSPECT, json!([token])).await;
    assert_live(
        &seen,
        token,
        DEFAULT_EXPIRES_IN,
        Some((subject.as_str(), exact.clone())),
    );
    let listed = result(&app, LIST, json!([subject])).await;
    assert_eq!(listed[0]["metadata"], exact);
}

#[tokio::test]
async fn a_batch_mixing_old_and_new_methods_is_answered_in_order_and_notifications_run() {
    let (_redis, app) = spawn_redis_app().await;
    let plain = open(&app, json!([600]), 600).await;
    let to_close = open(&app, json!([600]), 600).await;
    let listed = open(&app, json!([600, "batch-listed", {"n": 1}]), 600).await;
    let extended = open(&app, json!([600, "batch-extended"]), 600).await;
    let quiet = open(&app, json!([600, "batch-quiet"]), 600).await;
    let gone: Vec<String> = vec![
        open(&app, json!([600, "batch-gone"]), 600).await,
        open(&app, json!([600, "batch-gone"]), 600).await,
    ];
    let other = open(&app, json!([600, "batch-other"]), 600).await;

    let body = json!([
        {"jsonrpc": "2.0", "method": OPEN, "params": {"expires_in": 60, "subject": "batch-new", "metadata": {"b": true}}, "id": 1},
        {"jsonrpc": "2.0", "method": VERIFY, "params": {"token": plain}, "id": 2},
        {"jsonrpc": "2.0", "method": INTROSPECT, "params": [listed], "id": "three"},
        {"jsonrpc": "2.0", "method": CLOSE_SESSIONS, "params": {"subject": "batch-gone"}},
        {"jsonrpc": "2.0", "method": LIST, "params": ["batch-listed"], "id": 4},
        {"jsonrpc": "2.0", "method": EXTEND, "params": [extended, 120], "id": 5},
        {"jsonrpc": "2.0", "method": OPEN, "params": [30], "id": 6},
        {"jsonrpc": "2.0", "method": CLOSE, "params": [to_close], "id": 7},
        {"jsonrpc": "2.0", "method": EXTEND, "params": {"token": quiet, "expires_in": 90}},
        {"jsonrpc": "2.0", "method": CLOSE_SESSIONS, "params": ["batch-other"], "id": 8},
        {"jsonrpc": "2.0", "method": LIST, "params": {}, "id": 9},
        {"jsonrpc": "2.0", "method": VERIFY, "params": [NEVER_ISSUED], "id": 10},
    ]);
    let (status, text) = app.post(body.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let answers: Vec<Value> = serde_json::from_str(&text).expect("an array");
    let ids: Vec<Value> = answers.iter().map(|a| a["id"].clone()).collect();
    assert_eq!(
        ids,
        vec![
            json!(1),
            json!(2),
            json!("three"),
            json!(4),
            json!(5),
            json!(6),
            json!(7),
            json!(8),
            json!(9),
            json!(10)
        ],
        "one answer per call, in order, none for the notifications: {text}"
    );
    let new = answers[0]["result"]["access_token"]
        .as_str()
        .expect("opened")
        .to_owned();
    assert_eq!(
        answers[0]["result"],
        json!({"access_token": new, "expires_in": 60})
    );
    assert_eq!(answers[1]["result"], json!({"active": true}));
    assert_live(
        &answers[2]["result"],
        &listed,
        600,
        Some(("batch-listed", json!({"n": 1}))),
    );
    assert_listed(&answers[3]["result"], &[(&listed, 600, json!({"n": 1}))]);
    assert_eq!(
        answers[4]["result"],
        json!({"active": true, "expires_in": 120})
    );
    assert_eq!(answers[5]["result"]["expires_in"], 30);
    assert_eq!(answers[6]["result"], json!(true));
    assert_eq!(answers[7]["result"], json!({"closed": 1}));
    assert_eq!(answers[8]["error"]["code"], -32602);
    assert_eq!(answers[9]["result"], json!({"active": false}));

    // Every call was carried out, the notifications too.
    for token in gone.iter().chain([&to_close, &other]) {
        assert!(!app.verify(token).await, "closed in the batch");
    }
    assert_eq!(result(&app, LIST, json!(["batch-gone"])).await, json!([]));
    assert_live(
        &result(&app, INTROSPECT, json!([quiet])).await,
        &quiet,
        90,
        Some(("batch-quiet", Value::Null)),
    );
    assert_live(
        &result(&app, INTROSPECT, json!([extended])).await,
        &extended,
        120,
        Some(("batch-extended", Value::Null)),
    );
    assert_listed(
        &result(&app, LIST, json!(["batch-new"])).await,
        &[(&new, 60, json!({"b": true}))],
    );

    // A notification on its own: carried out, answered 204 with no body.
    let lone = [
        open(&app, json!([600, "lone"]), 600).await,
        open(&app, json!([600, "lone"]), 600).await,
    ];
    let notify = |method: &str, params: Value| {
        json!({"jsonrpc": "2.0", "method": method, "params": params}).to_string()
    };
    let (status, text) = app.post(notify(EXTEND, json!([lone[0], 45]))).await;
    assert_eq!((status, text.as_str()), (StatusCode::NO_CONTENT, ""));
    assert_live(
        &result(&app, INTROSPECT, json!([lone[0]])).await,
        &lone[0],
        45,
        Some(("lone", Value::Null)),
    );
    let (status, text) = app
        .post(notify(OPEN, json!({"subject": "lone", "expires_in": 60})))
        .await;
    assert_eq!((status, text.as_str()), (StatusCode::NO_CONTENT, ""));
    assert_eq!(
        result(&app, LIST, json!(["lone"]))
            .await
            .as_array()
            .expect("list")
            .len(),
        3,
        "the notified open was carried out"
    );
    let (status, text) = app
        .post(notify(CLOSE_SESSIONS, json!({"subject": "lone"})))
        .await;
    assert_eq!((status, text.as_str()), (StatusCode::NO_CONTENT, ""));
    for token in &lone {
        assert!(!app.verify(token).await, "closed by the notification");
    }
    assert_eq!(result(&app, LIST, json!(["lone"])).await, json!([]));
}

fn seed(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR")))
        .expect("seed example")
}

/// A `MONITOR` connection: everything Redis runs, as it runs it.
struct Monitor {
    reader: BufReader<TcpStream>,
}

impl Monitor {
    fn start(port: u16) -> Self {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        stream.write_all(b"MONITOR\r\n").expect("MONITOR");
        let mut reader = BufReader::new(stream);
        let mut ok = String::new();
        reader.read_line(&mut ok).expect("+OK");
        assert_eq!(ok, "+OK\r\n");
        Self { reader }
    }

    /// The commands Redis ran between the marker `ECHO`s sent around `during`.
    async fn around(
        &mut self,
        conn: &mut redis::Connection,
        during: impl std::future::Future<Output = ()>,
    ) -> Vec<String> {
        let _: String = redis::cmd("ECHO")
            .arg("identity-begin")
            .query(conn)
            .expect("ECHO");
        during.await;
        let _: String = redis::cmd("ECHO")
            .arg("identity-end")
            .query(conn)
            .expect("ECHO");
        let mut seen = Vec::new();
        let mut begun = false;
        loop {
            let mut line = String::new();
            let read = self.reader.read_line(&mut line).expect("a MONITOR line");
            assert!(read > 0, "MONITOR ended");
            if line.contains("\"identity-begin\"") {
                begun = true;
            } else if line.contains("\"identity-end\"") {
                return seen;
            } else if begun {
                // `+<time> [<db> <client>] "cmd" "arg"…`: the command and its arguments.
                let command = line.split_once("] ").map_or(line.as_str(), |(_, c)| c);
                seen.push(command.trim().to_ascii_lowercase());
            }
        }
    }
}

#[tokio::test]
async fn the_pages_three_methods_are_unchanged_and_verify_is_one_read() {
    let (redis, app) = spawn_redis_app().await;
    let mut conn = redis.client();

    // The seed examples, verbatim, get the answers they always got.
    let (status, text) = app.post(seed("seed-open-session.json")).await;
    assert_eq!(status, StatusCode::OK);
    let opened: Value = serde_json::from_str(&text).expect("json");
    let token = opened["result"]["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert_eq!(
        opened,
        json!({"jsonrpc": "2.0", "result": {"access_token": token, "expires_in": DEFAULT_EXPIRES_IN}, "id": "jsonrpc_id"})
    );
    let keys: Vec<String> = conn.keys("*").expect("KEYS");
    let key = format!("sessiond:{}", sha256_hex(&token));
    assert_eq!(keys, vec![key.clone()], "one key, nothing else");
    let kind: String = redis::cmd("TYPE").arg(&key).query(&mut conn).expect("TYPE");
    assert_eq!(kind, "string");
    let ttl: i64 = conn.ttl(&key).expect("TTL");
    assert!(
        (DEFAULT_EXPIRES_IN as i64 - 2..=DEFAULT_EXPIRES_IN as i64).contains(&ttl),
        "{ttl}"
    );
    let verify_seed = || async {
        let (_, text) = app.post(seed("seed-verify-session-token.json")).await;
        serde_json::from_str::<Value>(&text).expect("json")
    };
    assert_eq!(
        verify_seed().await,
        json!({"jsonrpc": "2.0", "result": {"active": false}, "id": "jsonrpc_id"})
    );
    let seed_key = format!("sessiond:{}", sha256_hex(NEVER_ISSUED));
    let _: () = conn.set_ex(&seed_key, 1, 600).expect("SET");
    assert_eq!(
        verify_seed().await,
        json!({"jsonrpc": "2.0", "result": {"active": true}, "id": "jsonrpc_id"})
    );
    let close_seed = || async {
        let (_, text) = app.post(seed("seed-close-session.json")).await;
        serde_json::from_str::<Value>(&text).expect("json")
    };
    let closed = json!({"jsonrpc": "2.0", "result": true, "id": "jsonrpc_id"});
    assert_eq!(close_seed().await, closed);
    assert_eq!(
        verify_seed().await["result"],
        json!({"active": false}),
        "closed"
    );
    assert_eq!(close_seed().await, closed, "closing again is still true");

    // verify is exactly one read of its key, for a plain session, an owned one and an
    // inactive one.
    let owned = open(&app, json!([600, "alice", {"device": "phone"}]), 600).await;
    let mut monitor = Monitor::start(redis.port);
    for (token, active) in [
        (&token, true),
        (&owned, true),
        (&NEVER_ISSUED.to_owned(), false),
    ] {
        let commands = monitor
            .around(&mut conn, async {
                assert_eq!(app.verify(token).await, active);
            })
            .await;
        // One read naming that key alone: `EXISTS`, or the single-key `MGET` verify calls
        // share when they arrive together (issue 17); never a write, never a second command.
        let key = format!("\"sessiond:{}\"", sha256_hex(token));
        assert!(
            commands == vec![format!("\"exists\" {key}")]
                || commands == vec![format!("\"mget\" {key}")],
            "one EXISTS (or one-key MGET) per verify, nothing else: {commands:?}"
        );
    }
    // close is one DEL, and open without a subject one SET.
    let commands = monitor
        .around(&mut conn, async { app.close(&token).await })
        .await;
    assert_eq!(
        commands,
        vec![format!("\"del\" \"sessiond:{}\"", sha256_hex(&token))]
    );
    let commands = monitor
        .around(&mut conn, async {
            open(&app, json!({"expires_in": 60}), 60).await;
        })
        .await;
    assert_eq!(commands.len(), 1, "{commands:?}");
    assert!(
        commands[0].starts_with("\"set\" \"sessiond:"),
        "{commands:?}"
    );
    assert!(
        commands[0].ends_with("\"ex\" \"60\" \"nx\""),
        "{commands:?}"
    );
}

#[test]
fn logs_never_hold_a_subject_or_metadata_value() {
    const SUBJECT: &str = "subject-secret-42";
    const METADATA: &str = "metadata-secret-7";
    let redis = RedisServer::start();
    let (mut child, port) = start(&[
        ("SESSIOND_REDIS_URL", &redis.url()),
        ("RUST_LOG", "debug"),
        ("SESSIOND_LOG_FORMAT", "json"),
    ]);
    let call = |method: &str, params: Value| {
        let body = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1});
        let answer = post(port, &body.to_string());
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        json_body(&answer)
    };
    let metadata = json!({"ip": METADATA});
    let opened = call(
        OPEN,
        json!({"expires_in": 60, "subject": SUBJECT, "metadata": metadata}),
    );
    let token = opened["result"]["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{opened}"))
        .to_owned();
    let other = call(OPEN, json!([60, SUBJECT, metadata]))["result"]["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let seen = call(INTROSPECT, json!({"token": token}));
    assert_eq!(seen["result"]["subject"], SUBJECT);
    assert_eq!(seen["result"]["metadata"], metadata);
    let listed = call(LIST, json!({"subject": SUBJECT}));
    assert_eq!(
        listed["result"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );
    let extended = call(EXTEND, json!([token, 30]));
    assert_eq!(extended["result"]["active"], true);
    // Refused input holding the values is not logged either.
    let refused = call(OPEN, json!({"subject": SUBJECT.repeat(20)}));
    assert_eq!(refused["error"]["code"], -32602);
    let refused = call(OPEN, json!({"subject": SUBJECT, "metadata": [METADATA]}));
    assert_eq!(refused["error"]["code"], -32602);
    let closed = call(
        CLOSE_SESSIONS,
        json!({"subject": SUBJECT, "except_token": token}),
    );
    assert_eq!(closed["result"], json!({"closed": 1}));
    let closed = call(CLOSE_SESSIONS, json!([SUBJECT, null, [sha256_hex(&token)]]));
    assert_eq!(closed["result"], json!({"closed": 1}));
    let answer = post(
        port,
        &json!({"jsonrpc": "2.0", "method": VERIFY, "params": [other], "id": 1}).to_string(),
    );
    assert_eq!(json_body(&answer)["result"], json!({"active": false}));

    let logs = stop_and_collect_logs(&mut child);
    for method in [OPEN, INTROSPECT, LIST, EXTEND, CLOSE_SESSIONS] {
        assert!(
            logs.contains(&format!("\"{method}\"")),
            "the {method} calls were logged: {logs}"
        );
    }
    assert!(!logs.contains(SUBJECT), "a subject in the logs: {logs}");
    assert!(!logs.contains(METADATA), "metadata in the logs: {logs}");
    assert!(!logs.contains(&token), "a token in the logs");
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
}

#[tokio::test]
async fn rpc_discover_lists_every_method_with_its_params_in_positional_order() {
    let (_redis, app) = spawn_redis_app().await;
    let document = result(&app, "rpc.discover", json!([])).await;
    let methods = document["methods"].as_array().expect("methods");
    let resolve = |param: &Value| -> Value {
        match param["$ref"].as_str() {
            Some(pointer) => document
                .pointer(pointer.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("a dangling $ref {pointer}"))
                .clone(),
            None => param.clone(),
        }
    };
    let expected: &[(&str, &[&str])] = &[
        (OPEN, &["expires_in", "subject", "metadata"]),
        (VERIFY, &["token"]),
        (CLOSE, &["token"]),
        (INTROSPECT, &["token"]),
        (EXTEND, &["token", "expires_in"]),
        (LIST, &["subject"]),
        (CLOSE_SESSIONS, &["subject", "except_token", "session_ids"]),
    ];
    let names: Vec<&str> = methods
        .iter()
        .map(|m| m["name"].as_str().expect("name"))
        .collect();
    for (name, params) in expected {
        let method = methods
            .iter()
            .find(|m| m["name"] == *name)
            .unwrap_or_else(|| panic!("rpc.discover does not list {name}: {names:?}"));
        let given: Vec<String> = method["params"]
            .as_array()
            .expect("params")
            .iter()
            .map(|p| {
                resolve(p)["name"]
                    .as_str()
                    .expect("a param name")
                    .to_owned()
            })
            .collect();
        assert_eq!(given, *params, "{name}'s params, in positional order");
    }
    assert_eq!(names.len(), expected.len(), "{names:?}");
}
