//! Hostile input, case by case, over raw sockets against the app on a real Redis with small
//! limits: oversized and unfinished bodies, slow clients, silent or partial HTTP/2 prefaces,
//! deep nesting, huge numbers, invalid UTF-8, NUL bytes, duplicate keys, oversized batches,
//! `rpc.discover` asked a thousand times, huge ids, look-alike method names, HTTP/1.0,
//! pipelining, HEAD, tokens of every wrong shape or letter case and more connections than
//! allowed. Each case states the exact answer expected (HTTP status, then the JSON-RPC error
//! code, message where it matters, result and id, then whether the connection is closed).
//!
//! The cases come in groups, one test each (`group::<name>`), on a Redis and an app of their
//! own, so the groups run in parallel and can be picked by name:
//!
//! ```sh
//! cargo test --test hostile_input duplicate             # the duplicate-key cases only
//! cargo test --test hostile_input group::               # every group, not the whole-table test
//! HOSTILE_CASE="HEAD /metrics" cargo test --test hostile_input head   # one case by its name
//! ```
//!
//! (`HOSTILE_CASE` picks cases within the groups; the whole-table test below ignores it.)
//!
//! `service_survives_the_whole_table_twice` runs every group on the default limits twice
//! against the `sessiond` binary, then checks that the service still answers normally, that
//! Redis holds nothing but hashed session keys, and that the server's memory is back near
//! where it was (measured on its own process, so the groups running alongside do not count).
//!
//! The client is a hand-written one over tokio sockets so that the test controls every byte
//! and every pause, and sees exactly what the server sends and when it closes the connection.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::RedisServer;
use common::requests::{
    NEVER_ISSUED, batch_of, call, close, notification, open, quoted, verify, verify_positional,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Large enough for a 1 MB id, small enough that oversized bodies stay cheap to send.
const MAX_BODY: usize = 1_100_000;
const MAX_BATCH: usize = 10;
const MAX_CONNECTIONS: usize = 4;
/// Connections let in beyond `SESSIOND_MAX_CONNECTIONS` to answer probes only.
const PROBE_SLOTS: usize = 32;
const HEADER_TIMEOUT: Duration = Duration::from_millis(500);
const BODY_TIMEOUT: Duration = Duration::from_millis(500);
/// `SESSIOND_MAX_BATCH` of the app the `rpc.discover` group runs on.
const DISCOVER_BATCH: usize = 1000;
/// Every case must be over (answered and closed) within this, or it is reported as a hang.
const CASE_BOUND: Duration = Duration::from_secs(5);
/// Bound for the cases the configured timeouts must cut off: the timeout plus scheduling slack
/// on a busy 2-core machine.
const TIMEOUT_BOUND: Duration = Duration::from_millis(2500);
/// Growth of the server's resident memory allowed from before the table to after two passes
/// of it (the first pass warms up the allocator, runtime and Redis connection: about +5 MB was
/// measured; each pass moves several 1 MB bodies, so keeping one per request would go far past
/// this).
const RSS_GROWTH_BOUND_KIB: u64 = 20 * 1024;
/// Growth allowed over the second pass alone, after the warm-up (under 1 MB was measured).
const RSS_PASS_GROWTH_BOUND_KIB: u64 = 8 * 1024;

/// The limits every group runs under (a group may add its own).
fn limits() -> Vec<(&'static str, String)> {
    vec![
        ("SESSIOND_MAX_BODY_BYTES", MAX_BODY.to_string()),
        ("SESSIOND_MAX_BATCH", MAX_BATCH.to_string()),
        ("SESSIOND_MAX_CONNECTIONS", MAX_CONNECTIONS.to_string()),
        (
            "SESSIOND_HEADER_TIMEOUT_MS",
            HEADER_TIMEOUT.as_millis().to_string(),
        ),
        (
            "SESSIOND_BODY_TIMEOUT_MS",
            BODY_TIMEOUT.as_millis().to_string(),
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// The tests: one per group, and the whole table twice.

/// A group of cases: built from the live token of the app it runs on.
type Group = fn(&str) -> Vec<Case>;

/// One `#[tokio::test]` per group (`group::<name>`), each on its own Redis and app with
/// [`limits`] and the group's own settings; [`GROUPS`] lists them for the whole-table test.
macro_rules! groups {
    ($($group:ident $(with [$($var:expr),* $(,)?])?;)*) => {
        mod group {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $group() {
                    super::run_group(super::$group, &[$($($var),*)?]).await;
                }
            )*
        }

        /// Every group with the settings it adds to [`limits`].
        const GROUPS: &[(Group, &[(&str, &str)])] = &[$(($group, &[$($($var),*)?])),*];
    };
}

groups! {
    body_limits;
    slow_clients;
    h2_prefaces;
    deep_nesting;
    huge_numbers;
    bad_bytes;
    duplicate_keys;
    batches;
    discover_batches with [("SESSIOND_MAX_BATCH", "1000")]; // DISCOVER_BATCH
    method_names;
    http_framing;
    head_requests;
    live_token;
    connection_limits;
    wrong_tokens;
}

/// The cases whose name holds `HOSTILE_CASE` (all when it is unset).
fn selected(cases: Vec<Case>) -> Vec<Case> {
    match std::env::var("HOSTILE_CASE") {
        Ok(filter) => cases
            .into_iter()
            .filter(|c| c.name.contains(&filter))
            .collect(),
        Err(_) => cases,
    }
}

/// Runs one group on a Redis and an app of its own; then the app still answers normally.
async fn run_group(group: Group, settings: &[(&str, &str)]) {
    if let Ok(filter) = std::env::var("HOSTILE_CASE") {
        if !group(NEVER_ISSUED).iter().any(|c| c.name.contains(&filter)) {
            return;
        }
    }
    let redis = RedisServer::start();
    let mut vars: Vec<(&str, String)> = limits();
    vars.retain(|(name, _)| !settings.iter().any(|(set, _)| set == name));
    vars.extend(settings.iter().map(|&(k, v)| (k, v.to_owned())));
    vars.push(("SESSIOND_REDIS_URL", redis.url()));
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = common::spawn_app(&vars).await;
    let addr = app.addr;

    let live = rpc(addr, &open("600")).await;
    let live_token = live["access_token"].as_str().expect("token").to_owned();
    let cases = selected(group(&live_token));
    let failures = run_table(addr, &cases).await;
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert_answers_normally(addr).await;
}

/// Opens, verifies and closes a session.
async fn assert_answers_normally(addr: SocketAddr) {
    let opened = rpc(addr, &open("60")).await;
    let token = opened["access_token"].as_str().expect("token").to_owned();
    assert_eq!(opened["expires_in"], 60);
    assert_eq!(
        rpc(addr, &verify(&quoted(&token))).await,
        json!({"active": true})
    );
    assert_eq!(rpc(addr, &close(&quoted(&token))).await, json!(true));
    assert_eq!(
        rpc(addr, &verify(&quoted(&token))).await,
        json!({"active": false})
    );
}

/// Every group on the default limits, twice, against the `sessiond` binary (its memory is
/// its own); then it still answers normally, a session no case touched is still active, and
/// Redis holds hashed session keys only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_survives_the_whole_table_twice() {
    let redis = RedisServer::start();
    let mut vars = limits();
    vars.push(("SESSIOND_REDIS_URL", redis.url()));
    let server = Sessiond::start(&vars);
    let addr = server.addr;
    let on_defaults: Vec<Group> = GROUPS
        .iter()
        .filter(|(_, settings)| settings.is_empty())
        .map(|&(group, _)| group)
        .collect();

    let witness = rpc(addr, &open("600")).await["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    // The first pass is also the warm-up for the memory figures.
    let rss_before = server.rss_kib();
    let first = run_pass(addr, &on_defaults, "first").await;
    let rss_warm = server.rss_kib();
    let second = run_pass(addr, &on_defaults, "second").await;
    let rss_after = server.rss_kib();
    let count = second.1;

    // The service still answers normally.
    assert_answers_normally(addr).await;
    assert_eq!(
        rpc(addr, &verify(&quoted(&witness))).await,
        json!({"active": true})
    );
    for live_token in [&first.0, &second.0] {
        assert_eq!(
            rpc(addr, &verify(&quoted(live_token))).await,
            json!({"active": false}),
            "closed by its upper-case form"
        );
    }

    // Redis holds hashed session keys only: nothing a hostile token wrote.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query(&mut redis.client())
        .expect("KEYS");
    for key in &keys {
        let hex = key.strip_prefix("sessiond:").unwrap_or_default();
        assert!(
            hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
            "unexpected key {key:?}"
        );
    }
    let witness_key = format!("sessiond:{}", hex_sha256(&witness));
    assert!(keys.contains(&witness_key), "{keys:?}");

    eprintln!(
        "sessiond VmRSS: {rss_before} KiB before the table, {rss_warm} KiB after the first \
         pass, {rss_after} KiB after the second ({count} cases each)"
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

/// Runs `groups` once on a fresh live token (each pass closes its own, by its upper-case
/// form); that token and the number of cases.
async fn run_pass(addr: SocketAddr, groups: &[Group], pass: &str) -> (String, usize) {
    let live = rpc(addr, &open("600")).await;
    let live_token = live["access_token"].as_str().expect("token").to_owned();
    let cases: Vec<Case> = groups.iter().flat_map(|g| g(&live_token)).collect();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let failures = run_table(addr, &cases).await;
    assert!(
        failures.is_empty(),
        "on the {pass} pass, {} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    (live_token, cases.len())
}

/// The `sessiond` binary on a free loopback port, killed when dropped.
struct Sessiond {
    child: std::process::Child,
    addr: SocketAddr,
}

impl Sessiond {
    fn start(vars: &[(&str, String)]) -> Self {
        let port = common::free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = common::process::sessiond()
            .env("SESSIOND_LISTEN", addr.to_string())
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn sessiond");
        let server = Self { child, addr };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "sessiond did not start listening"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// The server's resident set size in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc/<pid>/status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }
}

impl Drop for Sessiond {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

/// Text a case pins down exactly, or leaves open.
#[derive(Debug, Clone)]
enum Said {
    /// Any text matches.
    Any,
    /// Exactly this text.
    Is(String),
}

impl PartialEq for Said {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Any, _) | (_, Self::Any) => true,
            (Self::Is(a), Self::Is(b)) => a == b,
        }
    }
}

/// What a response body held.
#[derive(Debug, Clone, PartialEq)]
enum Body {
    /// A JSON-RPC error object: its code, its id as the exact JSON text sent back, and its
    /// message.
    Error(i32, String, Said),
    /// A JSON-RPC result and its id as exact JSON text.
    Result(Value, String),
    /// A batch of answers.
    Batch(Vec<Body>),
    /// No body.
    Empty,
    /// A body that is not JSON (plain text from the HTTP layer).
    Text(Said),
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
    /// The response before carried `Connection: close` (reported only by the probes that look
    /// for it: those of the connection limit).
    ConnectionClose,
    /// An HTTP/2 GOAWAY frame (one or several in a row).
    GoAway,
    /// An HTTP/2 frame other than SETTINGS, PING, WINDOW_UPDATE or GOAWAY: its type.
    H2Frame(u8),
    /// The server closed the connection (end of stream or reset).
    Closed,
    /// Closed, but only after this long where it should have been at once.
    ClosedLate(Duration),
    /// Neither an answer nor a close before the case's bound: a hang.
    Hung,
    /// Bytes that are not an HTTP response.
    Garbage(String),
}

/// What the server sent on one connection, how it ended and when.
struct Exchange {
    received: Vec<u8>,
    end: Answer,
    elapsed: Duration,
}

/// Runs `steps` on a new connection while reading everything the server sends until it
/// closes the connection or `bound` passes.
async fn exchange(addr: SocketAddr, steps: Vec<Step>, bound: Duration) -> Exchange {
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
    Exchange {
        received,
        end,
        elapsed,
    }
}

/// How to read HTTP/1 responses.
#[derive(Clone, Copy)]
struct Reading {
    /// Answers to HEAD: no body follows the head, whatever `Content-Length` says.
    bodiless: bool,
    /// Report a `Connection: close` header as [`Answer::ConnectionClose`].
    note_close: bool,
}

impl Reading {
    const PLAIN: Self = Self {
        bodiless: false,
        note_close: false,
    };
    const HEAD: Self = Self {
        bodiless: true,
        note_close: false,
    };
    const NOTE_CLOSE: Self = Self {
        bodiless: false,
        note_close: true,
    };
}

/// Splits what the server sent into responses.
fn parse_responses(mut rest: &[u8], reading: Reading) -> Vec<Answer> {
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
        let headers: Vec<(&str, &str)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name, value.trim()))
            .collect();
        let header = |wanted: &str| {
            headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(wanted))
                .map(|&(_, value)| value)
        };
        let length = if reading.bodiless {
            0
        } else {
            header("content-length")
                .and_then(|value| value.parse::<usize>().ok())
                .unwrap_or(0)
        };
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
        if reading.note_close
            && header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"))
        {
            answers.push(Answer::ConnectionClose);
        }
        rest = &rest[body_start + length..];
    }
    answers
}

/// Splits what the server sent on an h2c connection into frames: GOAWAY and unexpected
/// frames are reported; SETTINGS, PING and WINDOW_UPDATE are the protocol's housekeeping.
fn h2_frames(mut rest: &[u8]) -> Vec<Answer> {
    const SETTINGS: u8 = 0x4;
    const PING: u8 = 0x6;
    const GOAWAY: u8 = 0x7;
    const WINDOW_UPDATE: u8 = 0x8;
    let mut answers = Vec::new();
    while !rest.is_empty() {
        if rest.len() < 9 {
            answers.push(Answer::Garbage(format!(
                "a frame header cut short: {rest:?}"
            )));
            break;
        }
        let length = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        let kind = rest[3];
        if rest.len() < 9 + length {
            answers.push(Answer::Garbage(format!("a frame of type {kind} cut short")));
            break;
        }
        match kind {
            SETTINGS | PING | WINDOW_UPDATE => {}
            GOAWAY if answers.last() == Some(&Answer::GoAway) => {}
            GOAWAY => answers.push(Answer::GoAway),
            other => answers.push(Answer::H2Frame(other)),
        }
        rest = &rest[9 + length..];
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
        return Body::Text(Said::Is(String::from_utf8_lossy(body).into_owned()));
    };
    if let Ok(entries) = serde_json::from_str::<Vec<&RawValue>>(text) {
        return Body::Batch(entries.iter().map(|e| classify_one(e.get())).collect());
    }
    if serde_json::from_str::<&RawValue>(text).is_err() {
        return Body::Text(Said::Is(text.to_owned()));
    }
    classify_one(text)
}

fn classify_one(text: &str) -> Body {
    match serde_json::from_str::<RawResponse<'_>>(text) {
        Ok(r) if r.jsonrpc == "2.0" => match (r.result, r.error) {
            (Some(result), None) => Body::Result(result, r.id.get().to_owned()),
            (None, Some(error)) if !error.message.is_empty() => {
                Body::Error(error.code, r.id.get().to_owned(), Said::Is(error.message))
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
// Requests (the JSON-RPC bodies are `common::requests`).

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

/// `GET <path>` (or another method) over HTTP/1.1 with these header lines.
fn request_line(method: &str, path: &str, headers: &str) -> Vec<u8> {
    format!("{method} {path} HTTP/1.1\r\nHost: sessiond\r\n{headers}\r\n").into_bytes()
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

fn active() -> Vec<Answer> {
    ok(json!({"active": true}), "1")
}

fn closed_true() -> Vec<Answer> {
    ok(json!(true), "1")
}

fn err(code: i32, id: &str) -> Vec<Answer> {
    http(200, e(code, id))
}

/// An error with exactly this message.
fn err_saying(code: i32, id: &str, message: &str) -> Vec<Answer> {
    http(200, e_saying(code, id, message))
}

fn http(status: u16, body: Body) -> Vec<Answer> {
    vec![Answer::Http(status, body), Answer::Closed]
}

fn e(code: i32, id: &str) -> Body {
    Body::Error(code, id.to_owned(), Said::Any)
}

fn e_saying(code: i32, id: &str, message: &str) -> Body {
    Body::Error(code, id.to_owned(), Said::Is(message.to_owned()))
}

/// Plain text, whatever it says.
fn text() -> Body {
    Body::Text(Said::Any)
}

fn text_saying(text: &str) -> Body {
    Body::Text(Said::Is(text.to_owned()))
}

/// Closed without any answer.
fn closed() -> Vec<Answer> {
    vec![Answer::Closed]
}

// ---------------------------------------------------------------------------------------------
// The table.

enum Probe {
    /// One connection doing these steps, answered in HTTP/1.
    Steps(Vec<Step>),
    /// One connection sending HEAD requests: answers without bodies.
    Head(Vec<Step>),
    /// One h2c connection doing these steps: the frames the server sends.
    H2(Vec<Step>),
    /// `MAX_CONNECTIONS` connections each in the middle of a request, then one more, then
    /// every probe slot taken, then one more again.
    ConnectionLimit,
    /// `MAX_CONNECTIONS` idle keep-alive connections, then probes and a call.
    ProbesWhileFull,
    /// `MAX_CONNECTIONS` connections that send nothing at all, then a normal request once the
    /// header timeout has passed.
    SilentConnections,
}

struct Case {
    name: String,
    probe: Probe,
    expect: Vec<Answer>,
    /// Over (answered and closed) within this.
    within: Duration,
    /// And not before this: for the cases a timeout must end.
    not_before: Duration,
    /// At most this many bytes from the server, when bounded.
    max_bytes: Option<usize>,
}

fn case(name: impl Into<String>, probe: Vec<Step>, expect: Vec<Answer>) -> Case {
    Case {
        name: name.into(),
        probe: Probe::Steps(probe),
        expect,
        within: CASE_BOUND,
        not_before: Duration::ZERO,
        max_bytes: None,
    }
}

/// A case that the configured timeouts (or limits) must end quickly.
fn quick(name: impl Into<String>, probe: Vec<Step>, expect: Vec<Answer>) -> Case {
    Case {
        within: TIMEOUT_BOUND,
        ..case(name, probe, expect)
    }
}

/// `POST / HTTP/1.1` with these header lines (each ending in CRLF), then the blank line.
fn head(headers: &str) -> Vec<u8> {
    request_line("POST", "/", headers)
}

/// A verify of a never-issued token.
fn verify_never() -> String {
    verify(&quoted(NEVER_ISSUED))
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

/// Bodies over the limit: refused from the declared length before any body is read, or as
/// soon as a chunked body crosses the limit.
fn body_limits(_live: &str) -> Vec<Case> {
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
            post(verify_positional(&big_id)),
            ok(json!({"active": false}), &big_id),
        ),
        case(
            "a million-digit id is echoed exactly",
            post(verify_positional(&million_digit_id)),
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
fn slow_clients(_live: &str) -> Vec<Case> {
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
            "a body that never finishes",
            raw(unfinished.clone()),
            http(408, text()),
        ),
        quick(
            "a chunked body that never finishes",
            raw([
                head("Transfer-Encoding: chunked\r\n"),
                b"4\r\n{\"js\r\n".to_vec(),
            ]
            .concat()),
            http(408, text()),
        ),
        quick(
            "a body that trickles, a byte every 100 ms",
            trickled_body,
            http(408, text()),
        ),
        quick(
            "a body cut short by the client's half-close",
            vec![Step::Send(unfinished), Step::ShutdownWrite],
            http(400, text()),
        ),
    ]
}

/// Deep nesting (100,000 levels): no stack overflow, an answer by the rules.
fn deep_nesting(_live: &str) -> Vec<Case> {
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
            post(verify_positional(&arrays)),
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
fn huge_numbers(_live: &str) -> Vec<Case> {
    let inactive_as = |id: &str| ok(json!({"active": false}), id);
    vec![
        case(
            "id 1e400 is echoed as sent",
            post(verify_positional("1e400")),
            inactive_as("1e400"),
        ),
        case(
            "id -1e-400 is echoed as sent",
            post(verify_positional("-1e-400")),
            inactive_as("-1e-400"),
        ),
        case(
            "a 400-digit id is echoed as sent",
            post(verify_positional(&"9".repeat(400))),
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
fn bad_bytes(_live: &str) -> Vec<Case> {
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

/// h2c with prior knowledge: a connection that says it speaks HTTP/2, or starts to, and then
/// says nothing more is closed by the header timeout.
fn h2_prefaces(_live: &str) -> Vec<Case> {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    // A SETTINGS frame with no settings: length 0, type 4, no flags, stream 0.
    const EMPTY_SETTINGS: [u8; 9] = [0, 0, 0, 4, 0, 0, 0, 0, 0];
    vec![
        quick(
            "the start of an HTTP/2 preface, then nothing",
            vec![
                Step::Send(b"PRI * HTTP/2.0\r\n".to_vec()),
                Step::Pause(CASE_BOUND),
            ],
            closed(),
        ),
        Case {
            not_before: HEADER_TIMEOUT,
            ..quick(
                "one byte of an HTTP/2 preface, then nothing",
                vec![Step::Send(b"P".to_vec()), Step::Pause(CASE_BOUND)],
                closed(),
            )
        },
        Case {
            probe: Probe::H2(vec![
                Step::Send([PREFACE, &EMPTY_SETTINGS].concat()),
                Step::Pause(CASE_BOUND),
            ]),
            ..quick(
                "an h2c preface and an empty SETTINGS frame, then nothing",
                Vec::new(),
                vec![Answer::GoAway, Answer::Closed],
            )
        },
    ]
}

/// Duplicate keys: refused rather than guessed at, under the first id the request carries.
fn duplicate_keys(live_token: &str) -> Vec<Case> {
    let request = |members: &str| {
        format!(r#"{{"jsonrpc":"2.0",{members},"params":["{NEVER_ISSUED}"],"id":1}}"#)
    };
    let given_twice = |member: &str| format!(r#"Invalid Request: "{member}" is given twice"#);
    vec![
        case(
            "duplicate method",
            post(request(
                r#""method":"session.verify_session_token","method":"session.open_session""#,
            )),
            err_saying(-32600, "1", &given_twice("method")),
        ),
        case(
            "duplicate jsonrpc",
            post(request(
                r#""jsonrpc":"1.0","method":"session.verify_session_token""#,
            )),
            err_saying(-32600, "1", &given_twice("jsonrpc")),
        ),
        case(
            "duplicate params",
            post(request(
                r#""method":"session.verify_session_token","params":{}"#,
            )),
            err_saying(-32600, "1", &given_twice("params")),
        ),
        // The escaped "id" comes first in the document: its id is the one echoed.
        case(
            "duplicate id, the second spelled with an escape",
            post(request(
                r#""method":"session.verify_session_token","\u0069d":2"#,
            )),
            err_saying(-32600, "2", &given_twice("id")),
        ),
        case(
            "duplicate id: the first is echoed",
            post(verify_positional(r#""first""#).replacen('}', r#","id":2}"#, 1)),
            err_saying(-32600, r#""first""#, &given_twice("id")),
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

fn batches(_live: &str) -> Vec<Case> {
    let hostile_entries = [
        verify_positional("1"),
        "1".to_owned(),
        "[]".to_owned(),
        call("Session.Open_Session", "{}", "4"),
        call("session.open_session", r#"{"expires_in":1e400}"#, "5"),
        call("session.verify_session_token", r#"{"token":{}}"#, "6"),
        call("session.close_session", r#"["x"]"#, "7").replace('}', r#","id":8}"#),
        call("session.close_session", r#"["{}"]"#, "9"),
        notification(),
        verify_positional(r#""last""#),
    ];
    assert_eq!(hostile_entries.len(), MAX_BATCH);
    // A megabyte of zeros: a batch far past the limit, refused as soon as it crosses it.
    let mut zeros = format!("[{}0]", "0,".repeat(524_286));
    zeros.push_str(&" ".repeat(1_048_576 - zeros.len()));
    let too_long = format!(
        "Invalid Request: a batch of more than {MAX_BATCH} requests; at most {MAX_BATCH} are \
         allowed"
    );
    vec![
        case(
            "a batch one longer than the limit",
            post(batch_of(&vec![verify_positional("1"); MAX_BATCH + 1])),
            err(-32600, "null"),
        ),
        case(
            "a batch of 100,000 numbers",
            post(batch_of(&vec!["1".to_owned(); 100_000])),
            err(-32600, "null"),
        ),
        case(
            "a batch of 1 MB of zeros",
            post(zeros),
            err_saying(-32600, "null", &too_long),
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
                    // Two ids: answered under the first.
                    e_saying(-32600, "7", r#"Invalid Request: "id" is given twice"#),
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
            post(format!("[[{}]]", verify_positional("1"))),
            http(200, Body::Batch(vec![e(-32600, "null")])),
        ),
    ]
}

/// `rpc.discover` asked for a thousand times in one batch (on an app that allows batches of
/// [`DISCOVER_BATCH`]): the document once, a short error for every other one.
fn discover_batches(_live: &str) -> Vec<Case> {
    let ids = 1..=DISCOVER_BATCH;
    let entries: Vec<String> = ids
        .clone()
        .map(|id| format!(r#"{{"jsonrpc":"2.0","method":"rpc.discover","id":{id}}}"#))
        .collect();
    let settings = sessiond::config::Settings::from_vars(Vec::<(String, String)>::new())
        .expect("default settings");
    let document: Value =
        serde_json::from_str(sessiond::openrpc::document(&settings.expiry)).expect("document");
    let answers = ids
        .map(|id| match id {
            1 => Body::Result(document.clone(), "1".into()),
            id => e_saying(
                -32600,
                &id.to_string(),
                "Invalid Request: rpc.discover is answered once per batch",
            ),
        })
        .collect();
    vec![Case {
        max_bytes: Some(256 * 1024),
        ..case(
            format!("a batch of {DISCOVER_BATCH} rpc.discover calls"),
            post(batch_of(&entries)),
            http(200, Body::Batch(answers)),
        )
    }]
}

/// HEAD on every GET path: the GET's status, and no body.
fn head_requests(_live: &str) -> Vec<Case> {
    ["/healthz", "/readyz", "/metrics", "/openrpc.json"]
        .into_iter()
        .map(|path| Case {
            probe: Probe::Head(raw(request_line("HEAD", path, "Connection: close\r\n"))),
            ..case(
                format!("HEAD {path} over HTTP/1.1"),
                Vec::new(),
                http(200, Body::Empty),
            )
        })
        .collect()
}

/// A live token is matched by itself and by its upper-case form (letters in UUIDs are
/// case-insensitive), never by its braces form or its store key.
fn live_token(live_token: &str) -> Vec<Case> {
    let upper = live_token.to_uppercase();
    vec![
        case(
            "verifying the upper-case form of a live token",
            post(verify(&quoted(&upper))),
            active(),
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
            active(),
        ),
        case(
            "closing the upper-case form of a live token",
            post(close(&quoted(&upper))),
            closed_true(),
        ),
        case(
            "the live token is inactive once its upper-case form is closed",
            post(verify(&quoted(live_token))),
            inactive(),
        ),
    ]
}

fn connection_limits(_live: &str) -> Vec<Case> {
    let served = Answer::Http(200, Body::Result(json!({"active": false}), "1".into()));
    let timed_out = [Answer::Http(408, text()), Answer::Closed];
    let refused = [
        Answer::Http(503, text_saying("connection limit reached; retry later\n")),
        Answer::ConnectionClose,
        Answer::Closed,
    ];
    let probe = |said: &str| {
        [
            Answer::Http(200, text_saying(said)),
            Answer::ConnectionClose,
            Answer::Closed,
        ]
    };
    let limit_case = |name: String, probe: Probe, expect: Vec<Answer>| Case {
        probe,
        ..case(name, Vec::new(), expect)
    };
    vec![
        // Each held connection is served; the next one gets a probe slot, so its call is 503;
        // with every probe slot taken too, one more is closed at once, unanswered; the probe
        // slots end with the header timeout, and each held connection gets 408 for the body
        // it never finishes.
        limit_case(
            format!("more than {MAX_CONNECTIONS} connections at once"),
            Probe::ConnectionLimit,
            std::iter::repeat_n(served.clone(), MAX_CONNECTIONS)
                .chain(refused.clone())
                .chain([Answer::Closed])
                .chain(std::iter::repeat_n(Answer::Closed, PROBE_SLOTS))
                .chain(std::iter::repeat_n(timed_out, MAX_CONNECTIONS).flatten())
                .collect(),
        ),
        limit_case(
            format!("with {MAX_CONNECTIONS} keep-alive clients, GET /healthz still answers"),
            Probe::ProbesWhileFull,
            std::iter::repeat_n(served, MAX_CONNECTIONS)
                .chain(probe("ok\n"))
                .chain(probe("ready\n"))
                .chain(refused)
                .collect(),
        ),
        limit_case(
            format!("{MAX_CONNECTIONS} connections that send nothing do not lock others out"),
            Probe::SilentConnections,
            inactive(),
        ),
    ]
}

/// Method names are exact: case, spaces and look-alike letters matter.
fn method_names(_live: &str) -> Vec<Case> {
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
fn http_framing(_live: &str) -> Vec<Case> {
    let body = verify_never();
    let inactive_as =
        |id: &str| Answer::Http(200, Body::Result(json!({"active": false}), id.into()));
    let pipelined = |i: usize, last: bool| {
        let connection = if last { "close" } else { "keep-alive" };
        http_post(verify_positional(&i.to_string()).as_bytes(), connection)
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
            vec![Answer::Http10(200, e(-32700, "null")), Answer::Closed],
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
            http(405, text()),
        ),
        case(
            "a request body sent to an unknown path",
            raw(with_body("POST /session HTTP/1.1")),
            http(404, text()),
        ),
    ]
}

/// Tokens of every wrong shape (and a never-issued token in upper case, which is well formed:
/// letters in UUIDs are case-insensitive): inactive to verify, `true` to close, and never a
/// store key written; tokens that are not strings: -32602.
fn wrong_tokens(_live: &str) -> Vec<Case> {
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

/// What one case saw: the answers, how long it took, and how many bytes the server sent.
struct Seen {
    answers: Vec<Answer>,
    elapsed: Duration,
    bytes: usize,
}

/// Runs one case.
async fn run(addr: SocketAddr, case: &Case) -> Seen {
    let one = |parse: fn(&[u8]) -> Vec<Answer>, exchange: Exchange| {
        let mut answers = parse(&exchange.received);
        answers.push(exchange.end);
        Seen {
            answers,
            elapsed: exchange.elapsed,
            bytes: exchange.received.len(),
        }
    };
    match &case.probe {
        Probe::Steps(steps) => one(
            |r| parse_responses(r, Reading::PLAIN),
            exchange(addr, steps.clone(), case.within).await,
        ),
        Probe::Head(steps) => one(
            |r| parse_responses(r, Reading::HEAD),
            exchange(addr, steps.clone(), case.within).await,
        ),
        Probe::H2(steps) => one(h2_frames, exchange(addr, steps.clone(), case.within).await),
        Probe::ConnectionLimit => connection_limit(addr).await,
        Probe::ProbesWhileFull => probes_while_full(addr).await,
        Probe::SilentConnections => silent_connections(addr).await,
    }
}

/// `MAX_CONNECTIONS` connections, each served one call and kept open; with `unfinished`, each
/// then starts another request and leaves its body unfinished (the slot stays taken until the
/// body timeout), otherwise it stays idle (until the keep-alive ends with the header timeout).
/// The connections, and what each was answered.
async fn hold_every_slot(addr: SocketAddr, unfinished: bool) -> (Vec<TcpStream>, Vec<Answer>) {
    let body = verify_never();
    let mut answers = Vec::new();
    let mut held = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(&http_post(body.as_bytes(), "keep-alive"))
            .await
            .expect("write");
        answers.extend(read_one_response(&mut stream).await);
        if unfinished {
            let _ = stream
                .write_all(b"POST / HTTP/1.1\r\nHost: s\r\nContent-Length: 100\r\n\r\n{")
                .await;
        }
        held.push(stream);
    }
    (held, answers)
}

/// One request on a connection of its own, its answers read noting `Connection: close`.
async fn noting_close(addr: SocketAddr, request: Vec<u8>) -> Vec<Answer> {
    let seen = exchange(addr, raw(request), Duration::from_secs(2)).await;
    let mut answers = parse_responses(&seen.received, Reading::NOTE_CLOSE);
    answers.push(seen.end);
    answers
}

/// Fills every connection slot with a connection in the middle of a request body; one more
/// gets a probe slot, where a call is 503; then every probe slot is taken by a connection that
/// sends nothing, and one more is closed at once, unanswered. Each held connection then gets
/// 408 from the body timeout.
async fn connection_limit(addr: SocketAddr) -> Seen {
    // Let the connections of earlier cases release their slots.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let (held, mut answers) = hold_every_slot(addr, true).await;
    answers.extend(noting_close(addr, http_post(verify_never().as_bytes(), "close")).await);
    // Let that connection release its probe slot.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut probes = Vec::new();
    for _ in 0..PROBE_SLOTS {
        probes.push(TcpStream::connect(addr).await.expect("connect"));
    }
    let extra = exchange(addr, post(verify_never()), Duration::from_secs(2)).await;
    answers.extend(parse_responses(&extra.received, Reading::PLAIN));
    answers.push(match extra.end {
        Answer::Closed if extra.elapsed >= HEADER_TIMEOUT / 2 => Answer::ClosedLate(extra.elapsed),
        end => end,
    });
    for mut stream in probes.into_iter().chain(held) {
        let mut received = Vec::new();
        let end = read_to_end(&mut stream, &mut received, CASE_BOUND).await;
        answers.extend(parse_responses(&received, Reading::PLAIN));
        answers.push(end);
    }
    Seen {
        answers,
        elapsed: started.elapsed(),
        bytes: 0,
    }
}

/// Holds every connection slot with an idle keep-alive connection, then asks `/healthz` and
/// `/readyz` and makes a call, each on a connection of its own.
async fn probes_while_full(addr: SocketAddr) -> Seen {
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let (held, mut answers) = hold_every_slot(addr, false).await;
    for path in ["/healthz", "/readyz"] {
        answers.extend(noting_close(addr, request_line("GET", path, "")).await);
    }
    answers.extend(noting_close(addr, http_post(verify_never().as_bytes(), "close")).await);
    drop(held);
    Seen {
        answers,
        elapsed: started.elapsed(),
        bytes: 0,
    }
}

/// Opens `MAX_CONNECTIONS` connections that never send a byte, waits past the header
/// timeout, and makes one normal call.
async fn silent_connections(addr: SocketAddr) -> Seen {
    let started = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        silent.push(TcpStream::connect(addr).await.expect("connect"));
    }
    tokio::time::sleep(HEADER_TIMEOUT * 3).await;
    let seen = exchange(addr, post(verify_never()), Duration::from_secs(2)).await;
    let mut answers = parse_responses(&seen.received, Reading::PLAIN);
    answers.push(seen.end);
    drop(silent);
    Seen {
        answers,
        elapsed: started.elapsed(),
        bytes: 0,
    }
}

/// Reads one response (headers and `Content-Length` body) from a kept-alive connection.
async fn read_one_response(stream: &mut TcpStream) -> Vec<Answer> {
    let deadline = tokio::time::Instant::now() + CASE_BOUND;
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let answers = parse_responses(&received, Reading::PLAIN);
        if matches!(answers.first(), Some(Answer::Http(..))) {
            return answers;
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => {
                return [
                    parse_responses(&received, Reading::PLAIN),
                    vec![Answer::Closed],
                ]
                .concat();
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

/// Runs the cases one after another; returns one line per case that did not get its answer.
async fn run_table(addr: SocketAddr, cases: &[Case]) -> Vec<String> {
    let mut failures = Vec::new();
    for case in cases {
        let Seen {
            answers: mut seen,
            elapsed,
            bytes,
        } = run(addr, case).await;
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
        } else if elapsed < case.not_before {
            failures.push(format!(
                "{}: over after {elapsed:?}, before {:?}",
                case.name, case.not_before
            ));
        } else if let Some(max) = case.max_bytes.filter(|&max| bytes > max) {
            failures.push(format!(
                "{}: answered with {bytes} bytes (bound {max})",
                case.name
            ));
        }
        // Let the server release the connection's slot before the next case.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    failures
}

/// One call over a fresh connection; the answer's JSON.
async fn rpc(addr: SocketAddr, body: &str) -> Value {
    let seen = exchange(addr, post(body), CASE_BOUND).await;
    match parse_responses(&seen.received, Reading::PLAIN).first() {
        Some(Answer::Http(200, Body::Result(result, _))) => result.clone(),
        other => panic!("expected a result for {body}, got {other:?}"),
    }
}
