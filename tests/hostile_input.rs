//! Hostile input, case by case, over raw sockets against the app on a real Redis with small
//! limits: oversized and unfinished bodies, slow clients, deep nesting, huge numbers, invalid
//! UTF-8, NUL bytes, duplicate keys, oversized batches, huge ids, look-alike method names,
//! HTTP/1.0, pipelining, tokens of every wrong shape and more connections than allowed. Each
//! case states the exact answer expected (HTTP status, then the JSON-RPC error code or result
//! and the id, then whether the connection is closed); after the table the service still
//! answers normally, Redis holds nothing but hashed session keys, and the process's memory is
//! back near where it was.
//!
//! The client is a hand-written one over tokio sockets so that the test controls every byte
//! and every pause, and sees exactly what the server sends and when it closes the connection.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{RedisServer, spawn_app};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Large enough for a 1 MB id, small enough that oversized bodies stay cheap to send.
const MAX_BODY: usize = 1_100_000;
const MAX_BATCH: usize = 10;
const MAX_CONNECTIONS: usize = 4;
const HEADER_TIMEOUT: Duration = Duration::from_millis(500);
const BODY_TIMEOUT: Duration = Duration::from_millis(500);
/// Every case must be over (answered and closed) within this, or it is reported as a hang.
const CASE_BOUND: Duration = Duration::from_secs(5);
/// Bound for the cases the configured timeouts must cut off: the timeout plus scheduling slack
/// on a busy 2-core machine.
const TIMEOUT_BOUND: Duration = Duration::from_millis(2500);
/// Growth of the process's resident memory allowed from before the table to after two passes
/// of it (the first pass warms up the allocator, runtime and Redis connection: about +5 MB was
/// measured; each pass moves several 1 MB bodies, so keeping one per request would go far past
/// this).
const RSS_GROWTH_BOUND_KIB: u64 = 20 * 1024;
/// Growth allowed over the second pass alone, after the warm-up (under 1 MB was measured).
const RSS_PASS_GROWTH_BOUND_KIB: u64 = 8 * 1024;

/// A token shape the service issues, never issued.
const NEVER_ISSUED: &str = "00890640-ec03-4663-82ce-456ea993807d";

// ---------------------------------------------------------------------------------------------
// What is sent and what comes back.

/// One step of what a client does on its connection.
#[derive(Clone)]
enum Step {
    Send(Vec<u8>),
    Pause(Duration),
    /// Half-close: the server sees end of stream.
    ShutdownWrite,
}

/// What a response body held.
#[derive(Debug, Clone, PartialEq)]
enum Body {
    /// A JSON-RPC error object: its code and its id as the exact JSON text sent back.
    Error(i32, String),
    /// A JSON-RPC result and its id as exact JSON text.
    Result(Value, String),
    /// A batch of answers.
    Batch(Vec<Body>),
    /// No body.
    Empty,
    /// A body that is not JSON (plain text from the HTTP layer).
    Text,
    /// JSON that is not a JSON-RPC response: always a failure.
    NotAResponse(String),
}

/// What the client saw, in order.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    /// An HTTP/1.1 response.
    Http(u16, Body),
    /// An HTTP/1.0 response.
    Http10(u16, Body),
    /// The server closed the connection (end of stream or reset).
    Closed,
    /// Neither an answer nor a close before the case's bound: a hang.
    Hung,
    /// Bytes that are not an HTTP response.
    Garbage(String),
}

/// Runs `steps` on a new connection while reading everything the server sends until it
/// closes the connection or `bound` passes.
async fn exchange(addr: SocketAddr, steps: Vec<Step>, bound: Duration) -> (Vec<Answer>, Duration) {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + bound;
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        for step in steps {
            match step {
                Step::Send(bytes) => {
                    if writer.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
                Step::Pause(pause) => tokio::time::sleep(pause).await,
                Step::ShutdownWrite => {
                    let _ = writer.shutdown().await;
                }
            }
        }
        // Returned, not dropped: dropping the write half would half-close the connection.
        writer
    });
    let mut received = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let end = loop {
        match tokio::time::timeout_at(deadline, reader.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break Answer::Closed,
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Err(_) => break Answer::Hung,
        }
    };
    let elapsed = started.elapsed();
    writing.abort();
    let _ = writing.await;
    let mut answers = parse_responses(&received);
    answers.push(end);
    (answers, elapsed)
}

/// Splits what the server sent into responses.
fn parse_responses(mut rest: &[u8]) -> Vec<Answer> {
    let mut answers = Vec::new();
    while !rest.is_empty() {
        let Some(head_end) = rest.windows(4).position(|w| w == b"\r\n\r\n") else {
            answers.push(Answer::Garbage(shorten(&String::from_utf8_lossy(rest))));
            break;
        };
        let head = String::from_utf8_lossy(&rest[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut words = status_line.split(' ');
        let version = words.next().unwrap_or_default();
        let Some(status) = words.next().and_then(|s| s.parse::<u16>().ok()) else {
            answers.push(Answer::Garbage(shorten(&head)));
            break;
        };
        let length = lines
            .filter_map(|line| line.split_once(':'))
            .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, value)| value.trim().parse::<usize>().ok())
            .unwrap_or(0);
        let body_start = head_end + 4;
        if rest.len() < body_start + length {
            answers.push(Answer::Garbage(format!("truncated body after {head}")));
            break;
        }
        let body = classify(&rest[body_start..body_start + length]);
        answers.push(match version {
            "HTTP/1.0" => Answer::Http10(status, body),
            _ => Answer::Http(status, body),
        });
        rest = &rest[body_start + length..];
    }
    answers
}

#[derive(Deserialize)]
struct RawResponse<'a> {
    jsonrpc: String,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error: Option<ErrorObject>,
    #[serde(borrow)]
    id: &'a RawValue,
}

#[derive(Deserialize)]
struct ErrorObject {
    code: i32,
    message: String,
}

fn classify(body: &[u8]) -> Body {
    if body.is_empty() {
        return Body::Empty;
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return Body::Text;
    };
    if let Ok(entries) = serde_json::from_str::<Vec<&RawValue>>(text) {
        return Body::Batch(entries.iter().map(|e| classify_one(e.get())).collect());
    }
    if serde_json::from_str::<&RawValue>(text).is_err() {
        return Body::Text;
    }
    classify_one(text)
}

fn classify_one(text: &str) -> Body {
    match serde_json::from_str::<RawResponse<'_>>(text) {
        Ok(r) if r.jsonrpc == "2.0" => match (r.result, r.error) {
            (Some(result), None) => Body::Result(result, r.id.get().to_owned()),
            (None, Some(error)) if !error.message.is_empty() => {
                Body::Error(error.code, r.id.get().to_owned())
            }
            _ => Body::NotAResponse(shorten(text)),
        },
        _ => Body::NotAResponse(shorten(text)),
    }
}

fn shorten(text: &str) -> String {
    if text.len() <= 300 {
        return text.to_owned();
    }
    let mut end = 300;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

// ---------------------------------------------------------------------------------------------
// Requests.

/// `POST /` with a `Content-Length`; `connection` is `close` or `keep-alive`.
fn http_post(body: &[u8], connection: &str) -> Vec<u8> {
    let mut request = head(&format!(
        "Connection: {connection}\r\nContent-Length: {}\r\n",
        body.len()
    ));
    request.extend_from_slice(body);
    request
}

/// One request on its own connection, which the client asks to close after the answer.
fn post(body: impl AsRef<[u8]>) -> Vec<Step> {
    vec![Step::Send(http_post(body.as_ref(), "close"))]
}

/// Bytes sent exactly as given.
fn raw(bytes: impl Into<Vec<u8>>) -> Vec<Step> {
    vec![Step::Send(bytes.into())]
}

/// A request body; `method` is the inside of a JSON string, `params` and `id` are JSON text.
fn call(method: &str, params: &str, id: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","method":"{method}","params":{params},"id":{id}}}"#)
}

fn verify(token: &str) -> String {
    call(
        "session.verify_session_token",
        &format!(r#"{{"token":{token}}}"#),
        "1",
    )
}

fn close(token: &str) -> String {
    call(
        "session.close_session",
        &format!(r#"{{"token":{token}}}"#),
        "1",
    )
}

fn open(expires_in: &str) -> String {
    call(
        "session.open_session",
        &format!(r#"{{"expires_in":{expires_in}}}"#),
        "1",
    )
}

fn verify_with_id(id: &str) -> String {
    call(
        "session.verify_session_token",
        &format!(r#"["{NEVER_ISSUED}"]"#),
        id,
    )
}

/// A JSON string literal.
fn quoted(s: &str) -> String {
    serde_json::to_string(s).expect("string")
}

// ---------------------------------------------------------------------------------------------
// Expected answers: each ends with the server closing the connection, since every request
// asks for it (or the server decides to).

fn ok(result: Value, id: &str) -> Vec<Answer> {
    vec![
        Answer::Http(200, Body::Result(result, id.to_owned())),
        Answer::Closed,
    ]
}

fn inactive() -> Vec<Answer> {
    ok(json!({"active": false}), "1")
}

fn closed_true() -> Vec<Answer> {
    ok(json!(true), "1")
}

fn err(code: i32, id: &str) -> Vec<Answer> {
    vec![
        Answer::Http(200, Body::Error(code, id.to_owned())),
        Answer::Closed,
    ]
}

fn http(status: u16, body: Body) -> Vec<Answer> {
    vec![Answer::Http(status, body), Answer::Closed]
}

fn e(code: i32, id: &str) -> Body {
    Body::Error(code, id.to_owned())
}

/// Closed without any answer.
fn closed() -> Vec<Answer> {
    vec![Answer::Closed]
}

// ---------------------------------------------------------------------------------------------
// The table.

enum Probe {
    /// One connection doing these steps.
    Steps(Vec<Step>),
    /// `MAX_CONNECTIONS` connections each in the middle of a request, then one more.
    ConnectionLimit,
    /// `MAX_CONNECTIONS` connections that send nothing at all, then a normal request once the
    /// header timeout has passed.
    SilentConnections,
}

struct Case {
    name: String,
    probe: Probe,
    expect: Vec<Answer>,
    within: Duration,
}

fn case(name: impl Into<String>, probe: Vec<Step>, expect: Vec<Answer>) -> Case {
    Case {
        name: name.into(),
        probe: Probe::Steps(probe),
        expect,
        within: CASE_BOUND,
    }
}

/// A case that the configured timeouts (or limits) must end quickly.
fn quick(name: impl Into<String>, probe: Vec<Step>, expect: Vec<Answer>) -> Case {
    Case {
        within: TIMEOUT_BOUND,
        ..case(name, probe, expect)
    }
}

/// Every case, grouped by what it attacks.
fn cases(live_token: &str) -> Vec<Case> {
    [
        body_limits(),
        slow_clients(),
        deep_nesting(),
        huge_numbers(),
        bad_bytes(),
        duplicate_keys(live_token),
        batches(),
        method_names(),
        http_framing(),
        live_token_cases(live_token),
        connection_limits(),
        wrong_tokens(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// `POST / HTTP/1.1` with these header lines (each ending in CRLF), then the blank line.
fn head(headers: &str) -> Vec<u8> {
    format!("POST / HTTP/1.1\r\nHost: sessiond\r\n{headers}\r\n").into_bytes()
}

/// A verify of a never-issued token.
fn verify_never() -> String {
    verify(&quoted(NEVER_ISSUED))
}

/// The same as a notification (no id).
fn notification() -> String {
    format!(
        r#"{{"jsonrpc":"2.0","method":"session.verify_session_token","params":["{NEVER_ISSUED}"]}}"#
    )
}

/// A verify padded with white space to exactly `len` bytes.
fn padded(len: usize) -> String {
    let body = verify_never();
    format!("{body}{}", " ".repeat(len - body.len()))
}

/// `n` levels of `open`, then `middle`, then `n` levels of `close`.
fn nested(open: &str, middle: &str, close: &str, n: usize) -> String {
    format!("{}{middle}{}", open.repeat(n), close.repeat(n))
}

fn batch_of(entries: &[String]) -> String {
    format!("[{}]", entries.join(","))
}

/// Bodies over the limit: refused from the declared length before any body is read, or as
/// soon as a chunked body crosses the limit.
fn body_limits() -> Vec<Case> {
    let mut chunked = vec![Step::Send(head("Transfer-Encoding: chunked\r\n"))];
    let mut sent = 0;
    while sent < MAX_BODY {
        let n = 0x10000.min(MAX_BODY - sent);
        let mut bytes = format!("{n:x}\r\n").into_bytes();
        bytes.extend(std::iter::repeat_n(b' ', n));
        bytes.extend_from_slice(b"\r\n");
        chunked.push(Step::Send(bytes));
        sent += n;
    }
    // One byte too many; the terminating chunk never comes.
    chunked.push(Step::Send(b"1\r\n \r\n".to_vec()));
    let big_id = format!("\"{}\"", "i".repeat(1_000_000));
    let million_digit_id = format!("1{}", "0".repeat(999_999));
    vec![
        quick(
            "declared body over the limit, body never sent",
            raw([
                head("Content-Length: 104857600\r\n"),
                b"{\"jsonrpc\"".to_vec(),
            ]
            .concat()),
            http(413, e(-32600, "null")),
        ),
        quick(
            "declared body over the limit with Expect: 100-continue",
            raw(head("Expect: 100-continue\r\nContent-Length: 5000000\r\n")),
            http(413, e(-32600, "null")),
        ),
        quick(
            "chunked body that crosses the limit",
            chunked,
            http(413, e(-32600, "null")),
        ),
        case(
            "body one byte over the limit",
            post(padded(MAX_BODY + 1)),
            http(413, e(-32600, "null")),
        ),
        case(
            "body exactly at the limit",
            post(padded(MAX_BODY)),
            inactive(),
        ),
        case(
            "a 1 MB string id is echoed exactly",
            post(verify_with_id(&big_id)),
            ok(json!({"active": false}), &big_id),
        ),
        case(
            "a million-digit id is echoed exactly",
            post(verify_with_id(&million_digit_id)),
            ok(json!({"active": false}), &million_digit_id),
        ),
        case(
            "a 1 MB token",
            post(verify(&quoted(&"t".repeat(1_000_000)))),
            inactive(),
        ),
    ]
}

/// Slow clients: the header and body timeouts close them.
fn slow_clients() -> Vec<Case> {
    let tick = Duration::from_millis(100);
    let mut trickled_headers = vec![Step::Send(b"POST / HTTP/1.1\r\n".to_vec())];
    for i in 0..40 {
        trickled_headers.push(Step::Pause(tick));
        trickled_headers.push(Step::Send(format!("X-Slow-{i}: a\r\n").into_bytes()));
    }
    let trickled_line = b"POST / HTTP/1.1\r\n"
        .iter()
        .flat_map(|&b| [Step::Send(vec![b]), Step::Pause(tick)])
        .collect();
    let body = verify_never();
    let mut trickled_body = vec![Step::Send(head(&format!(
        "Content-Length: {}\r\n",
        body.len()
    )))];
    for &b in body.as_bytes() {
        trickled_body.push(Step::Send(vec![b]));
        trickled_body.push(Step::Pause(tick));
    }
    let unfinished = [head("Content-Length: 100\r\n"), b"{\"jsonrpc\"".to_vec()].concat();
    vec![
        quick(
            "headers that trickle, a line every 100 ms",
            trickled_headers,
            closed(),
        ),
        quick(
            "a request line that trickles, a byte every 100 ms",
            trickled_line,
            closed(),
        ),
        quick(
            "a connection that sends nothing at all",
            vec![Step::Pause(CASE_BOUND)],
            closed(),
        ),
        quick(
            "the start of an HTTP/2 preface, then nothing",
            vec![
                Step::Send(b"PRI * HTTP/2.0\r\n".to_vec()),
                Step::Pause(CASE_BOUND),
            ],
            closed(),
        ),
        quick(
            "a body that never finishes",
            raw(unfinished.clone()),
            http(408, Body::Text),
        ),
        quick(
            "a chunked body that never finishes",
            raw([
                head("Transfer-Encoding: chunked\r\n"),
                b"4\r\n{\"js\r\n".to_vec(),
            ]
            .concat()),
            http(408, Body::Text),
        ),
        quick(
            "a body that trickles, a byte every 100 ms",
            trickled_body,
            http(408, Body::Text),
        ),
        quick(
            "a body cut short by the client's half-close",
            vec![Step::Send(unfinished), Step::ShutdownWrite],
            http(400, Body::Text),
        ),
    ]
}

/// Deep nesting (100,000 levels): no stack overflow, an answer by the rules.
fn deep_nesting() -> Vec<Case> {
    let deep = 100_000;
    let arrays = nested("[", "", "]", deep);
    let batch_of_one_non_object = http(200, Body::Batch(vec![e(-32600, "null")]));
    vec![
        case(
            "100k levels of [ never closed",
            post("[".repeat(deep)),
            err(-32700, "null"),
        ),
        case(
            "100k levels of nested arrays, balanced: a batch of one non-object",
            post(arrays.clone()),
            batch_of_one_non_object.clone(),
        ),
        case(
            "100k levels of nested objects",
            post(nested(r#"{"a":"#, "1", "}", deep)),
            err(-32600, "null"),
        ),
        case(
            "100k-deep array as the token",
            post(verify(&arrays)),
            err(-32602, "1"),
        ),
        case(
            "100k-deep array in an ignored member",
            post(verify_never().replacen('{', &format!(r#"{{"x":{arrays},"#), 1)),
            inactive(),
        ),
        case(
            "100k-deep array as the id",
            post(verify_with_id(&arrays)),
            err(-32600, "null"),
        ),
        case(
            "100k-deep nesting with a trailing comma at the bottom",
            post(nested("[", "1,", "]", deep)),
            batch_of_one_non_object,
        ),
    ]
}

/// Numbers too large for any integer or float.
fn huge_numbers() -> Vec<Case> {
    let inactive_as = |id: &str| ok(json!({"active": false}), id);
    vec![
        case(
            "id 1e400 is echoed as sent",
            post(verify_with_id("1e400")),
            inactive_as("1e400"),
        ),
        case(
            "id -1e-400 is echoed as sent",
            post(verify_with_id("-1e-400")),
            inactive_as("-1e-400"),
        ),
        case(
            "a 400-digit id is echoed as sent",
            post(verify_with_id(&"9".repeat(400))),
            inactive_as(&"9".repeat(400)),
        ),
        case("expires_in 1e400", post(open("1e400")), err(-32602, "1")),
        case(
            "expires_in with 400 digits",
            post(open(&"9".repeat(400))),
            err(-32602, "1"),
        ),
        case(
            "expires_in 2^64",
            post(open("18446744073709551616")),
            err(-32602, "1"),
        ),
        case(
            "expires_in 2^64 - 1",
            post(open("18446744073709551615")),
            err(-32602, "1"),
        ),
        case(
            "expires_in -2^63 - 1",
            post(open("-9223372036854775809")),
            err(-32602, "1"),
        ),
        case(
            "expires_in by position, 2^128",
            post(call(
                "session.open_session",
                "[340282366920938463463374607431768211456]",
                "1",
            )),
            err(-32602, "1"),
        ),
    ]
}

/// Bytes that are not UTF-8, or not allowed in JSON; escapes that are.
fn bad_bytes() -> Vec<Case> {
    let in_token = |bytes: &[u8]| {
        [
            br#"{"jsonrpc":"2.0","method":"session.verify_session_token","params":[""#.as_slice(),
            bytes,
            br#""],"id":1}"#.as_slice(),
        ]
        .concat()
    };
    let utf16: Vec<u8> = [0xff, 0xfe]
        .into_iter()
        .chain(verify_never().encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    vec![
        case(
            "invalid UTF-8 body",
            post(b"\xff\xfe\xfd"),
            err(-32700, "null"),
        ),
        case(
            "invalid UTF-8 inside the token",
            post(in_token(b"\xc3\x28")),
            err(-32700, "null"),
        ),
        case(
            "overlong UTF-8 encoding of a quote",
            post(in_token(b"a\xc0\xa2")),
            err(-32700, "null"),
        ),
        case(
            "UTF-16 body with a byte-order mark",
            post(utf16),
            err(-32700, "null"),
        ),
        case(
            "UTF-8 byte-order mark before a valid request",
            post([b"\xef\xbb\xbf".as_slice(), verify_never().as_bytes()].concat()),
            err(-32700, "null"),
        ),
        case("a body of NUL bytes", post([0u8; 64]), err(-32700, "null")),
        case(
            "a NUL byte after a valid request",
            post([verify_never().as_bytes(), b"\0"].concat()),
            err(-32700, "null"),
        ),
        case(
            "a raw NUL byte inside the token",
            post(in_token(b"a\0")),
            err(-32700, "null"),
        ),
        case(
            "an escaped NUL after a valid token",
            post(verify(&format!("\"{NEVER_ISSUED}\\u0000\""))),
            inactive(),
        ),
        case(
            "an escaped NUL in the method",
            post(call("session.open_session\\u0000", "{}", "1")),
            err(-32601, "1"),
        ),
        // A lone surrogate escape is a JSON string (RFC 8259's grammar allows it) that is not
        // Unicode text: as a token it is malformed, so inactive; as a method, an unknown one.
        case(
            "a lone surrogate escape as the token",
            post(verify(r#""\ud800""#)),
            inactive(),
        ),
        case(
            "a lone surrogate escape as the token to close",
            post(close(r#""a\udc00""#)),
            closed_true(),
        ),
        case(
            "a lone surrogate escape in the method",
            post(call("session.open_session\\ud800", "{}", "1")),
            err(-32601, "1"),
        ),
        case(
            "a method spelled with escapes is the same method",
            post(call(
                "session.open\\u005fsession",
                r#"{"expires_in":1}"#,
                "1",
            )),
            // A fresh token: compared by shape (see `run_table`).
            vec![
                Answer::Http(200, Body::Result(Value::Null, "1".into())),
                Answer::Closed,
            ],
        ),
    ]
}

/// Duplicate keys: refused rather than guessed at.
fn duplicate_keys(live_token: &str) -> Vec<Case> {
    let request = |members: &str| {
        format!(r#"{{"jsonrpc":"2.0",{members},"params":["{NEVER_ISSUED}"],"id":1}}"#)
    };
    vec![
        case(
            "duplicate method",
            post(request(
                r#""method":"session.verify_session_token","method":"session.open_session""#,
            )),
            err(-32600, "null"),
        ),
        case(
            "duplicate jsonrpc",
            post(request(
                r#""jsonrpc":"1.0","method":"session.verify_session_token""#,
            )),
            err(-32600, "null"),
        ),
        case(
            "duplicate params",
            post(request(
                r#""method":"session.verify_session_token","params":{}"#,
            )),
            err(-32600, "null"),
        ),
        case(
            "duplicate id, the second spelled with an escape",
            post(request(
                r#""method":"session.verify_session_token","\u0069d":2"#,
            )),
            err(-32600, "null"),
        ),
        case(
            "duplicate token param, the second one live",
            post(call(
                "session.verify_session_token",
                &format!(r#"{{"token":"{NEVER_ISSUED}","token":"{live_token}"}}"#),
                "1",
            )),
            err(-32602, "1"),
        ),
    ]
}

fn batches() -> Vec<Case> {
    let hostile_entries = [
        verify_with_id("1"),
        "1".to_owned(),
        "[]".to_owned(),
        call("Session.Open_Session", "{}", "4"),
        call("session.open_session", r#"{"expires_in":1e400}"#, "5"),
        call("session.verify_session_token", r#"{"token":{}}"#, "6"),
        call("session.close_session", r#"["x"]"#, "7").replace('}', r#","id":8}"#),
        call("session.close_session", r#"["{}"]"#, "9"),
        notification(),
        verify_with_id(r#""last""#),
    ];
    assert_eq!(hostile_entries.len(), MAX_BATCH);
    vec![
        case(
            "a batch one longer than the limit",
            post(batch_of(&vec![verify_with_id("1"); MAX_BATCH + 1])),
            err(-32600, "null"),
        ),
        case(
            "a batch of 100,000 numbers",
            post(batch_of(&vec!["1".to_owned(); 100_000])),
            err(-32600, "null"),
        ),
        case(
            "a batch of notifications one longer than the limit",
            post(batch_of(&vec![notification(); MAX_BATCH + 1])),
            err(-32600, "null"),
        ),
        case(
            "a batch at the limit of hostile entries, each judged on its own",
            post(batch_of(&hostile_entries)),
            http(
                200,
                Body::Batch(vec![
                    Body::Result(json!({"active": false}), "1".into()),
                    e(-32600, "null"),
                    e(-32600, "null"),
                    e(-32601, "4"),
                    e(-32602, "5"),
                    e(-32602, "6"),
                    e(-32600, "null"),
                    Body::Result(json!(true), "9".into()),
                    Body::Result(json!({"active": false}), r#""last""#.into()),
                ]),
            ),
        ),
        case(
            "a batch of notifications only",
            post(batch_of(&vec![notification(); MAX_BATCH])),
            http(204, Body::Empty),
        ),
        case(
            "a batch inside a batch",
            post(format!("[[{}]]", verify_with_id("1"))),
            http(200, Body::Batch(vec![e(-32600, "null")])),
        ),
    ]
}

/// Method names are exact: case, spaces and look-alike letters matter.
fn method_names() -> Vec<Case> {
    [
        ("method in title case", "Session.Open_Session".to_owned()),
        (
            "method in upper case",
            "SESSION.VERIFY_SESSION_TOKEN".to_owned(),
        ),
        (
            "method with one capital",
            "session.close_Session".to_owned(),
        ),
        (
            "method with a trailing space",
            "session.open_session ".to_owned(),
        ),
        (
            "method with a Cyrillic o",
            "sessi\u{43e}n.open_session".to_owned(),
        ),
        ("method of 100 KB", "m".repeat(100_000)),
    ]
    .into_iter()
    .map(|(name, method)| case(name, post(call(&method, "{}", "1")), err(-32601, "1")))
    .collect()
}

/// HTTP framing: versions, pipelining, oversized or contradictory headers.
fn http_framing() -> Vec<Case> {
    let body = verify_never();
    let inactive_as =
        |id: &str| Answer::Http(200, Body::Result(json!({"active": false}), id.into()));
    let pipelined = |i: usize, last: bool| {
        let connection = if last { "close" } else { "keep-alive" };
        http_post(verify_with_id(&i.to_string()).as_bytes(), connection)
    };
    let with_body = |request_line: &str| {
        format!(
            "{request_line}\r\nHost: s\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let many_headers: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    vec![
        case(
            "HTTP/1.0 with a length",
            raw(format!(
                "POST / HTTP/1.0\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )),
            vec![
                Answer::Http10(200, Body::Result(json!({"active": false}), "1".into())),
                Answer::Closed,
            ],
        ),
        case(
            "HTTP/1.0 without a length: an empty body",
            vec![
                Step::Send(format!("POST / HTTP/1.0\r\n\r\n{body}").into_bytes()),
                Step::ShutdownWrite,
            ],
            vec![
                Answer::Http10(200, Body::Error(-32700, "null".into())),
                Answer::Closed,
            ],
        ),
        case(
            "three pipelined requests, the middle one broken",
            raw([
                pipelined(1, false),
                http_post(b"{\"jsonrpc\":", "keep-alive"),
                pipelined(3, true),
            ]
            .concat()),
            vec![
                inactive_as("1"),
                Answer::Http(200, e(-32700, "null")),
                inactive_as("3"),
                Answer::Closed,
            ],
        ),
        case(
            "fifty pipelined requests answered in order",
            raw((1..=50)
                .flat_map(|i| pipelined(i, i == 50))
                .collect::<Vec<u8>>()),
            (1..=50)
                .map(|i| inactive_as(&i.to_string()))
                .chain([Answer::Closed])
                .collect(),
        ),
        case(
            "a header of 1 MB",
            raw([
                head(&format!("X-Big: {}\r\n", "h".repeat(1_000_000))),
                b"{}".to_vec(),
            ]
            .concat()),
            http(431, Body::Empty),
        ),
        case(
            "two hundred headers",
            raw([head(&many_headers), b"{}".to_vec()].concat()),
            http(431, Body::Empty),
        ),
        case(
            "a request line that is not HTTP",
            raw(b"HELLO\r\n\r\n".to_vec()),
            http(400, Body::Empty),
        ),
        case(
            "two different Content-Length headers",
            raw([
                head("Content-Length: 2\r\nContent-Length: 3\r\n"),
                b"{}".to_vec(),
            ]
            .concat()),
            http(400, Body::Empty),
        ),
        case(
            "a negative Content-Length",
            raw([head("Content-Length: -1\r\n"), b"{}".to_vec()].concat()),
            http(400, Body::Empty),
        ),
        // RFC 9112 6.3: Transfer-Encoding wins, and the connection is closed after the answer,
        // so the smuggled GET /x (a 404 if it were served) is never answered.
        case(
            "Content-Length and chunked together: the smuggled request is not served",
            raw([
                head("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n"),
                b"0\r\n\r\nGET /x HTTP/1.1\r\n\r\n".to_vec(),
            ]
            .concat()),
            err(-32700, "null"),
        ),
        case(
            "GET / with a body",
            raw(with_body("GET / HTTP/1.1")),
            http(405, Body::Text),
        ),
        case(
            "a request body sent to an unknown path",
            raw(with_body("POST /session HTTP/1.1")),
            http(404, Body::Text),
        ),
    ]
}

/// A live token is only ever matched by itself.
fn live_token_cases(live_token: &str) -> Vec<Case> {
    vec![
        case(
            "closing the upper-case form of a live token",
            post(close(&quoted(&live_token.to_uppercase()))),
            closed_true(),
        ),
        case(
            "closing the live token in braces",
            post(close(&quoted(&format!("{{{live_token}}}")))),
            closed_true(),
        ),
        case(
            "verifying the live token's store key is not the token",
            post(verify(&quoted(&hex_sha256(live_token)))),
            inactive(),
        ),
        case(
            "the live token itself is still active",
            post(verify(&quoted(live_token))),
            ok(json!({"active": true}), "1"),
        ),
    ]
}

fn connection_limits() -> Vec<Case> {
    let served = Answer::Http(200, Body::Result(json!({"active": false}), "1".into()));
    let timed_out = [Answer::Http(408, Body::Text), Answer::Closed];
    vec![
        Case {
            name: format!("more than {MAX_CONNECTIONS} connections at once"),
            probe: Probe::ConnectionLimit,
            // Each held connection is served, the extra one is closed unanswered, then each
            // held one gets 408 for the body it never finishes.
            expect: std::iter::repeat_n(served, MAX_CONNECTIONS)
                .chain([Answer::Closed])
                .chain(std::iter::repeat_n(timed_out, MAX_CONNECTIONS).flatten())
                .collect(),
            within: CASE_BOUND,
        },
        Case {
            name: format!("{MAX_CONNECTIONS} connections that send nothing do not lock others out"),
            probe: Probe::SilentConnections,
            expect: inactive(),
            within: CASE_BOUND,
        },
    ]
}

/// Tokens of every wrong shape: inactive to verify, `true` to close (and never a store key);
/// tokens that are not strings: -32602.
fn wrong_tokens() -> Vec<Case> {
    let shapes: [(&str, String); 16] = [
        ("empty", String::new()),
        ("upper case", NEVER_ISSUED.to_uppercase()),
        ("in braces", format!("{{{NEVER_ISSUED}}}")),
        ("as a URN", format!("urn:uuid:{NEVER_ISSUED}")),
        ("one character too long", format!("{NEVER_ISSUED}0")),
        ("one character too short", NEVER_ISSUED[..35].to_owned()),
        ("without hyphens", NEVER_ISSUED.replace('-', "")),
        (
            "hyphens moved",
            "0089064-0ec03-4663-82ce-456ea993807d".to_owned(),
        ),
        ("with a leading space", format!(" {NEVER_ISSUED}")),
        (
            "with a non-ASCII letter",
            NEVER_ISSUED.replacen('a', "\u{e4}", 1),
        ),
        (
            "with full-width digits",
            NEVER_ISSUED.replacen('0', "\u{ff10}", 1),
        ),
        ("10 KB", "a".repeat(10_240)),
        ("a path", "../../../etc/passwd".to_owned()),
        ("a Redis glob", "sessiond:*".to_owned()),
        ("a Redis command", "\r\nFLUSHALL\r\n".to_owned()),
        (
            "the nil UUID",
            "00000000-0000-0000-0000-000000000000".to_owned(),
        ),
    ];
    let mut cases = Vec::new();
    for (shape, token) in &shapes {
        let token = quoted(token);
        cases.push(case(
            format!("verify a token {shape}"),
            post(verify(&token)),
            inactive(),
        ));
        cases.push(case(
            format!("close a token {shape}"),
            post(close(&token)),
            closed_true(),
        ));
    }
    for (shape, token) in [
        ("a number", "12"),
        ("an object", r#"{"token":"x"}"#),
        ("an array", r#"["x"]"#),
        ("a boolean", "true"),
        ("null", "null"),
    ] {
        cases.push(case(
            format!("verify a token that is {shape}"),
            post(verify(token)),
            err(-32602, "1"),
        ));
        cases.push(case(
            format!("close a token that is {shape}"),
            post(close(token)),
            err(-32602, "1"),
        ));
    }
    cases
}

fn hex_sha256(s: &str) -> String {
    let mut out = String::new();
    sessiond::store::key::SessionKey::of(s).write_hex(&mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// Running the table.

/// Runs one case; returns what was seen and how long it took.
async fn run(addr: SocketAddr, case: &Case) -> (Vec<Answer>, Duration) {
    match &case.probe {
        Probe::Steps(steps) => exchange(addr, steps.clone(), case.within).await,
        Probe::ConnectionLimit => connection_limit(addr).await,
        Probe::SilentConnections => silent_connections(addr).await,
    }
}

/// Fills every connection slot with a connection in the middle of a request body, then opens
/// one more: it must be closed unanswered while the others are kept, and each held one then
/// gets 408 from the body timeout.
async fn connection_limit(addr: SocketAddr) -> (Vec<Answer>, Duration) {
    // Let the connections of earlier cases release their slots.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let body = verify(&quoted(NEVER_ISSUED));
    let mut answers = Vec::new();
    let mut held = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(&http_post(body.as_bytes(), "keep-alive"))
            .await
            .expect("write");
        let first = read_one_response(&mut stream).await;
        answers.extend(first);
        // Start another request and leave its body unfinished: the slot stays taken.
        let _ = stream
            .write_all(b"POST / HTTP/1.1\r\nHost: s\r\nContent-Length: 100\r\n\r\n{")
            .await;
        held.push(stream);
    }
    let (extra, _) = exchange(addr, post(&body), Duration::from_secs(2)).await;
    answers.extend(extra);
    for mut stream in held {
        let mut received = Vec::new();
        let end = read_to_end(&mut stream, &mut received, CASE_BOUND).await;
        answers.extend(parse_responses(&received));
        answers.push(end);
    }
    (answers, started.elapsed())
}

/// Opens `MAX_CONNECTIONS` connections that never send a byte, waits past the header
/// timeout, and makes one normal call.
async fn silent_connections(addr: SocketAddr) -> (Vec<Answer>, Duration) {
    let started = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        silent.push(TcpStream::connect(addr).await.expect("connect"));
    }
    tokio::time::sleep(HEADER_TIMEOUT * 3).await;
    let (answers, _) = exchange(
        addr,
        post(verify(&quoted(NEVER_ISSUED))),
        Duration::from_secs(2),
    )
    .await;
    drop(silent);
    (answers, started.elapsed())
}

/// Reads one response (headers and `Content-Length` body) from a kept-alive connection.
async fn read_one_response(stream: &mut TcpStream) -> Vec<Answer> {
    let deadline = tokio::time::Instant::now() + CASE_BOUND;
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let answers = parse_responses(&received);
        if matches!(answers.first(), Some(Answer::Http(..))) {
            return answers;
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => {
                return [parse_responses(&received), vec![Answer::Closed]].concat();
            }
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Err(_) => return vec![Answer::Hung],
        }
    }
}

async fn read_to_end(stream: &mut TcpStream, received: &mut Vec<u8>, bound: Duration) -> Answer {
    let deadline = tokio::time::Instant::now() + bound;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return Answer::Closed,
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Err(_) => return Answer::Hung,
        }
    }
}

/// Runs the whole table once; returns one line per case that did not get its answer.
async fn run_table(addr: SocketAddr, cases: &[Case]) -> Vec<String> {
    let mut failures = Vec::new();
    for case in cases {
        let (mut seen, elapsed) = run(addr, case).await;
        // A result whose exact value is not fixed (a fresh token) is compared by shape.
        if case.expect.first() == Some(&Answer::Http(200, Body::Result(Value::Null, "1".into()))) {
            if let Some(Answer::Http(200, Body::Result(result, _))) = seen.first_mut() {
                if result["access_token"].is_string() && result["expires_in"] == 1 {
                    *result = Value::Null;
                }
            }
        }
        if seen != case.expect {
            failures.push(format!(
                "{}: expected {}, got {}",
                case.name,
                shorten(&format!("{:?}", case.expect)),
                shorten(&format!("{seen:?}"))
            ));
        } else if elapsed > case.within {
            failures.push(format!(
                "{}: answered, but after {elapsed:?} (bound {:?})",
                case.name, case.within
            ));
        }
        // Let the server release the connection's slot before the next case.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    failures
}

/// This process's resident set size in KiB (the app runs in this process).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// One call over a fresh connection; the answer's JSON.
async fn rpc(addr: SocketAddr, body: &str) -> Value {
    let (answers, _) = exchange(addr, post(body), CASE_BOUND).await;
    match answers.first() {
        Some(Answer::Http(200, Body::Result(result, _))) => result.clone(),
        other => panic!("expected a result for {body}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_gets_its_documented_answer_and_leaves_the_service_whole() {
    let redis = RedisServer::start();
    let app = spawn_app(&[
        ("SESSIOND_REDIS_URL", &redis.url()),
        ("SESSIOND_MAX_BODY_BYTES", &MAX_BODY.to_string()),
        ("SESSIOND_MAX_BATCH", &MAX_BATCH.to_string()),
        ("SESSIOND_MAX_CONNECTIONS", &MAX_CONNECTIONS.to_string()),
        (
            "SESSIOND_HEADER_TIMEOUT_MS",
            &HEADER_TIMEOUT.as_millis().to_string(),
        ),
        (
            "SESSIOND_BODY_TIMEOUT_MS",
            &BODY_TIMEOUT.as_millis().to_string(),
        ),
    ])
    .await;
    let addr = app.addr;

    let live = rpc(addr, &open("600")).await;
    let live_token = live["access_token"].as_str().expect("token").to_owned();
    let cases = cases(&live_token);
    assert!(cases.len() >= 40, "{} cases", cases.len());

    // The first pass is also the warm-up for the memory figures.
    let rss_before = rss_kib();
    let failures = run_table(addr, &cases).await;
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    let rss_warm = rss_kib();
    let failures = run_table(addr, &cases).await;
    assert!(
        failures.is_empty(),
        "on the second pass:\n{}",
        failures.join("\n")
    );

    // The service still answers normally.
    let opened = rpc(addr, &open("60")).await;
    let token = opened["access_token"].as_str().expect("token").to_owned();
    assert_eq!(opened["expires_in"], 60);
    assert_eq!(
        rpc(addr, &verify(&quoted(&token))).await,
        json!({"active": true})
    );
    assert_eq!(
        rpc(addr, &verify(&quoted(&live_token))).await,
        json!({"active": true})
    );
    assert_eq!(rpc(addr, &close(&quoted(&token))).await, json!(true));
    assert_eq!(
        rpc(addr, &verify(&quoted(&token))).await,
        json!({"active": false})
    );

    // Redis holds hashed session keys only: nothing a hostile token wrote.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query(&mut redis.client())
        .expect("KEYS");
    let expected_key = format!("sessiond:{}", hex_sha256(&live_token));
    for key in &keys {
        let hex = key.strip_prefix("sessiond:").unwrap_or_default();
        assert!(
            hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
            "unexpected key {key:?}"
        );
    }
    assert!(keys.contains(&expected_key), "{keys:?}");

    let rss_after = rss_kib();
    eprintln!(
        "VmRSS: {rss_before} KiB before the table, {rss_warm} KiB after the first pass, \
         {rss_after} KiB after the second ({} cases each)",
        cases.len()
    );
    assert!(
        rss_after <= rss_before + RSS_GROWTH_BOUND_KIB,
        "resident memory grew from {rss_before} KiB to {rss_after} KiB"
    );
    assert!(
        rss_after <= rss_warm + RSS_PASS_GROWTH_BOUND_KIB,
        "resident memory grew from {rss_warm} KiB to {rss_after} KiB over one pass"
    );
}
