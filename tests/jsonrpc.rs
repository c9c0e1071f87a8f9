//! The JSON-RPC 2.0 contract, case by case, against an app on a real Redis: parse errors,
//! invalid requests, unknown methods, invalid params, id echo, batches and notifications.

mod common;

use common::requests::{open_as, quoted, verify_as};
use common::spawn_redis_app;
use hyper::StatusCode;
use serde_json::{Value, json};

/// A token shape that was never issued.
const NEVER_ISSUED: &str = "00890640-ec03-4663-82ce-456ea993807d";

/// What a body must be answered with.
enum Expect {
    /// 200 with one error object of this code, whose id is this raw JSON text.
    Error(i32, &'static str),
    /// 200 with exactly this JSON.
    Json(Value),
    /// 204, empty body.
    Nothing,
}

#[tokio::test]
async fn every_case_gets_its_documented_answer() {
    let (_redis, app) = spawn_redis_app().await;
    let cases: Vec<(&str, String, Expect)> = vec![
        // -32700: not JSON at all, or broken JSON.
        ("empty body", String::new(), Expect::Error(-32700, "null")),
        ("not json", "hello".into(), Expect::Error(-32700, "null")),
        ("truncated", r#"{"jsonrpc":"2.0","method""#.into(), Expect::Error(-32700, "null")),
        ("double comma", r#"{"jsonrpc":"2.0",,"id":1}"#.into(), Expect::Error(-32700, "null")),
        ("leading comma", r#"[,{"jsonrpc":"2.0"}]"#.into(), Expect::Error(-32700, "null")),
        ("two commas before ]", "[1,,]".into(), Expect::Error(-32700, "null")),
        ("trailing garbage", r#"{"jsonrpc":"2.0","method":"m","id":1} x"#.into(), Expect::Error(-32700, "null")),
        ("single quotes", "{'jsonrpc':'2.0'}".into(), Expect::Error(-32700, "null")),
        ("batch of broken json", r#"[{"jsonrpc":"2.0","method":"m","id":1},{"jsonrpc""#.into(), Expect::Error(-32700, "null")),
        // -32600: JSON, but not a request.
        ("empty batch", "[]".into(), Expect::Error(-32600, "null")),
        ("a number", "1".into(), Expect::Error(-32600, "null")),
        ("a string", r#""x""#.into(), Expect::Error(-32600, "null")),
        ("null", "null".into(), Expect::Error(-32600, "null")),
        ("no jsonrpc", r#"{"method":"session.open_session","id":1}"#.into(), Expect::Error(-32600, "1")),
        ("jsonrpc 1.0", r#"{"jsonrpc":"1.0","method":"session.open_session","id":1}"#.into(), Expect::Error(-32600, "1")),
        ("jsonrpc as number", r#"{"jsonrpc":2.0,"method":"session.open_session","id":1}"#.into(), Expect::Error(-32600, "1")),
        ("no method", r#"{"jsonrpc":"2.0","id":"a"}"#.into(), Expect::Error(-32600, r#""a""#)),
        ("method not a string", r#"{"jsonrpc":"2.0","method":7,"id":"a"}"#.into(), Expect::Error(-32600, r#""a""#)),
        ("params a string", r#"{"jsonrpc":"2.0","method":"session.open_session","params":"x","id":2}"#.into(), Expect::Error(-32600, "2")),
        ("params null", r#"{"jsonrpc":"2.0","method":"session.open_session","params":null,"id":2}"#.into(), Expect::Error(-32600, "2")),
        ("id an object", r#"{"jsonrpc":"2.0","method":"session.open_session","id":{}}"#.into(), Expect::Error(-32600, "null")),
        ("id a boolean", r#"{"jsonrpc":"2.0","method":"session.open_session","id":true}"#.into(), Expect::Error(-32600, "null")),
        ("duplicate id, answered under the first", r#"{"jsonrpc":"2.0","method":"session.open_session","id":1,"id":2}"#.into(), Expect::Error(-32600, "1")),
        ("invalid request without id is still answered", r#"{"jsonrpc":"2.0","method":1}"#.into(), Expect::Error(-32600, "null")),
        // -32601
        ("unknown method", r#"{"jsonrpc":"2.0","method":"session.nope","id":3}"#.into(), Expect::Error(-32601, "3")),
        ("method in other case", r#"{"jsonrpc":"2.0","method":"Session.Open_Session","id":3}"#.into(), Expect::Error(-32601, "3")),
        // -32602
        ("expires_in zero", open_as("0", "4"), Expect::Error(-32602, "4")),
        ("expires_in negative", open_as("-5", "4"), Expect::Error(-32602, "4")),
        ("expires_in fractional", open_as("1.5", "4"), Expect::Error(-32602, "4")),
        ("expires_in a string", open_as(r#""60""#, "4"), Expect::Error(-32602, "4")),
        ("expires_in a boolean", open_as("true", "4"), Expect::Error(-32602, "4")),
        ("expires_in above the maximum", open_as("31536001", "4"), Expect::Error(-32602, "4")),
        ("expires_in beyond u64", open_as("184467440737095516160", "4"), Expect::Error(-32602, "4")),
        ("unknown named param", r#"{"jsonrpc":"2.0","method":"session.open_session","params":{"ttl":5},"id":4}"#.into(), Expect::Error(-32602, "4")),
        ("too many positional params", r#"{"jsonrpc":"2.0","method":"session.open_session","params":[5,6],"id":4}"#.into(), Expect::Error(-32602, "4")),
        ("token missing", r#"{"jsonrpc":"2.0","method":"session.verify_session_token","params":{},"id":4}"#.into(), Expect::Error(-32602, "4")),
        ("token not a string", r#"{"jsonrpc":"2.0","method":"session.close_session","params":{"token":12},"id":4}"#.into(), Expect::Error(-32602, "4")),
        ("token null", r#"{"jsonrpc":"2.0","method":"session.close_session","params":[null],"id":4}"#.into(), Expect::Error(-32602, "4")),
        // Results, and ids echoed as sent.
        ("string id", verify_as(&quoted(NEVER_ISSUED), r#""abc""#), active_false(r#""abc""#)),
        ("integer id", verify_as(&quoted(NEVER_ISSUED), "42"), active_false("42")),
        ("negative id", verify_as(&quoted(NEVER_ISSUED), "-7"), active_false("-7")),
        ("fractional id", verify_as(&quoted(NEVER_ISSUED), "1.50"), Expect::Error(0, "1.50")),
        ("huge id", verify_as(&quoted(NEVER_ISSUED), "123456789012345678901234567890"), Expect::Error(0, "123456789012345678901234567890")),
        ("null id", verify_as(&quoted(NEVER_ISSUED), "null"), active_false("null")),
        ("malformed token is inactive", r#"{"jsonrpc":"2.0","method":"session.verify_session_token","params":{"token":"not-a-token"},"id":1}"#.into(), active_false("1")),
        ("close of a never-issued token", format!(r#"{{"jsonrpc":"2.0","method":"session.close_session","params":["{NEVER_ISSUED}"],"id":1}}"#), Expect::Json(json!({"jsonrpc":"2.0","result":true,"id":1}))),
        // Notifications and batches.
        ("notification", format!(r#"{{"jsonrpc":"2.0","method":"session.verify_session_token","params":["{NEVER_ISSUED}"]}}"#), Expect::Nothing),
        ("notification with bad params", r#"{"jsonrpc":"2.0","method":"session.open_session","params":{"expires_in":0}}"#.into(), Expect::Nothing),
        ("notification of an unknown method", r#"{"jsonrpc":"2.0","method":"nope"}"#.into(), Expect::Nothing),
        ("batch of notifications", r#"[{"jsonrpc":"2.0","method":"nope"},{"jsonrpc":"2.0","method":"session.close_session","params":["x"]}]"#.into(), Expect::Nothing),
        ("batch of non-requests", "[1,2]".into(), Expect::Json(json!([
            {"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request: a request must be a JSON object"},"id":null},
            {"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request: a request must be a JSON object"},"id":null},
        ]))),
    ];
    let mut failures = Vec::new();
    for (name, body, expect) in &cases {
        let (status, text) = app.post(body.clone()).await;
        if let Err(why) = check(status, &text, expect) {
            failures.push(format!(
                "{name}: {why}\n  sent: {body}\n  got: {status} {text}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    // After all of that, the service still works.
    let token = app.open(Some(60)).await;
    assert!(app.verify(&token).await);
}

fn active_false(id: &'static str) -> Expect {
    let id: Value = serde_json::from_str(id).expect("id");
    Expect::Json(json!({"jsonrpc":"2.0","result":{"active":false},"id":id}))
}

fn check(status: StatusCode, text: &str, expect: &Expect) -> Result<(), String> {
    match expect {
        Expect::Nothing => {
            if status != StatusCode::NO_CONTENT || !text.is_empty() {
                return Err("expected 204 with no body".into());
            }
        }
        Expect::Json(expected) => {
            if status != StatusCode::OK {
                return Err("expected 200".into());
            }
            let got: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
            if &got != expected {
                return Err(format!("expected {expected}"));
            }
        }
        Expect::Error(code, id) => {
            if status != StatusCode::OK {
                return Err("expected 200".into());
            }
            // The id must be echoed byte for byte.
            if !text.ends_with(&format!(",\"id\":{id}}}")) {
                return Err(format!("expected id {id} echoed exactly"));
            }
            if *code != 0 {
                let got: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
                if got["jsonrpc"] != "2.0" || got["error"]["code"] != json!(code) {
                    return Err(format!("expected error {code}"));
                }
                if !got["error"]["message"].is_string() || got.get("result").is_some() {
                    return Err("expected an error object with a message and no result".into());
                }
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_batch_answers_each_entry_on_its_own() {
    let (_redis, app) = spawn_redis_app().await;
    let live = app.open(None).await;
    let closing = app.open(None).await;
    let body = format!(
        r#"[
        {{"jsonrpc":"2.0","method":"session.verify_session_token","params":{{"token":"{live}"}},"id":"v"}},
        {{"jsonrpc":"2.0","method":"session.close_session","params":["{closing}"]}},
        {{"jsonrpc":"2.0","method":"session.open_session","params":{{"expires_in":0}},"id":"bad"}},
        5,
        {{"jsonrpc":"2.0","method":"session.open_session","params":[120],"id":"o"}},
        {{"jsonrpc":"2.0","method":"session.missing","id":"m"}},
    ]"#
    );
    let (status, text) = app.post(body).await;
    assert_eq!(status, StatusCode::OK);
    let answers: Vec<Value> = serde_json::from_str(&text).expect("array");
    assert_eq!(answers.len(), 5, "one per non-notification entry: {text}");
    let by_id = |id: Value| {
        answers
            .iter()
            .find(|a| a["id"] == id)
            .cloned()
            .expect("answered")
    };
    assert_eq!(by_id(json!("v"))["result"], json!({"active": true}));
    assert_eq!(by_id(json!("bad"))["error"]["code"], -32602);
    assert_eq!(by_id(Value::Null)["error"]["code"], -32600);
    assert_eq!(by_id(json!("o"))["result"]["expires_in"], 120);
    assert_eq!(by_id(json!("m"))["error"]["code"], -32601);
    let opened = by_id(json!("o"))["result"]["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert!(app.verify(&opened).await);
    assert!(
        !app.verify(&closing).await,
        "the notification in the batch was carried out"
    );
}

#[tokio::test]
async fn a_batch_longer_than_the_limit_is_refused_whole() {
    let redis = common::RedisServer::start();
    let app = common::spawn_app(&[
        ("SESSIOND_REDIS_URL", &redis.url()),
        ("SESSIOND_MAX_BATCH", "3"),
    ])
    .await;
    let entry = format!(
        r#"{{"jsonrpc":"2.0","method":"session.verify_session_token","params":["{NEVER_ISSUED}"],"id":1}}"#
    );
    let three = format!("[{entry},{entry},{entry}]");
    let (_, text) = app.post(three).await;
    assert_eq!(
        serde_json::from_str::<Vec<Value>>(&text)
            .expect("array")
            .len(),
        3
    );
    let four = format!("[{entry},{entry},{entry},{entry}]");
    let (status, text) = app.post(four).await;
    assert_eq!(status, StatusCode::OK);
    let answer: Value = serde_json::from_str(&text).expect("object");
    assert_eq!(answer["error"]["code"], -32600, "{text}");
    assert_eq!(answer["id"], Value::Null);
}

#[tokio::test]
async fn a_notification_is_carried_out_but_not_answered() {
    let (_redis, app) = spawn_redis_app().await;
    let token = app.open(None).await;
    let (status, text) = app
        .post(format!(
            r#"{{"jsonrpc":"2.0","method":"session.close_session","params":{{"token":"{token}"}}}}"#
        ))
        .await;
    assert_eq!((status, text.as_str()), (StatusCode::NO_CONTENT, ""));
    assert!(!app.verify(&token).await);
}

#[tokio::test]
async fn error_messages_say_what_is_allowed() {
    let (_redis, app) = spawn_redis_app().await;
    let response = app
        .call("session.open_session", json!({"expires_in": 0}))
        .await;
    let message = response["error"]["message"].as_str().expect("message");
    assert!(message.contains("1 to 31536000"), "{message}");
    let response = app.call("session.open_session", json!({"ttl": 5})).await;
    let message = response["error"]["message"].as_str().expect("message");
    assert!(message.contains("expires_in"), "{message}");
}
