//! The HTTP surface: statuses, body limits, timeouts, connection limits, HTTP/1.0, pipelining
//! and h2c — over real sockets, raw where the client library would hide what is sent.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{TestApp, spawn_app, spawn_redis_app};
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use serde_json::Value;

const VERIFY: &str = r#"{"jsonrpc":"2.0","method":"session.verify_session_token","params":{"token":"00890640-ec03-4663-82ce-456ea993807d"},"id":1}"#;

/// Sends raw bytes on a fresh connection and reads until the server closes it or `wait`
/// passes.
fn raw_exchange(app: &TestApp, request: &[u8], wait: Duration) -> String {
    let mut stream = TcpStream::connect(app.addr).expect("connect");
    stream.set_read_timeout(Some(wait)).expect("timeout");
    stream.write_all(request).expect("write");
    read_all(&mut stream)
}

fn read_all(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_for_methods_and_paths() {
    let (_redis, app) = spawn_redis_app().await;
    for method in ["GET", "PUT", "DELETE", "PATCH"] {
        let request = Request::builder()
            .method(method)
            .uri(app.url("/"))
            .body(Full::default())
            .expect("request");
        let (status, headers, _) = app.send(request).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} /");
        assert_eq!(headers["allow"], "POST");
    }
    assert_eq!(app.get("/nope").await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.get("/healthz/x").await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.post(VERIFY).await.0, StatusCode::OK);
    let (status, body) = app.get("/healthz").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok\n"));
    assert_eq!(app.get("/readyz").await.0, StatusCode::OK);
    let request = Request::post(app.url("/healthz"))
        .body(Full::default())
        .expect("request");
    assert_eq!(app.send(request).await.0, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_store_is_always_ready() {
    let app = spawn_app(&[]).await;
    assert_eq!(app.get("/readyz").await.0, StatusCode::OK);
    let token = app.open(Some(60)).await;
    assert!(app.verify(&token).await);
    app.close(&token).await;
    assert!(!app.verify(&token).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_content_type_is_accepted_and_answers_are_json() {
    let (_redis, app) = spawn_redis_app().await;
    for content_type in [
        "application/x-www-form-urlencoded",
        "text/plain",
        "application/json",
    ] {
        let request = Request::post(app.url("/"))
            .header("content-type", content_type)
            .body(Full::new(Bytes::from_static(VERIFY.as_bytes())))
            .expect("request");
        let (status, headers, body) = app.send(request).await;
        assert_eq!(status, StatusCode::OK, "{content_type}");
        assert_eq!(headers["content-type"], "application/json");
        let answer: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(answer["result"]["active"], false);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_refused_with_413_before_it_is_read() {
    let app = spawn_app(&[("SESSIOND_MAX_BODY_BYTES", "1024")]).await;
    // Declared too large: refused without waiting for a body that never comes.
    let started = Instant::now();
    let answer = raw_exchange(
        &app,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n\r\n{\"jsonrpc\"",
        Duration::from_secs(5),
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(answer.contains("-32600"), "a JSON-RPC error body: {answer}");

    // Chunked, no length: refused once the limit is crossed.
    let mut stream = TcpStream::connect(app.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .expect("head");
    let chunk = format!("800\r\n{}\r\n", "a".repeat(0x800));
    stream.write_all(chunk.as_bytes()).expect("chunk");
    let answer = read_all(&mut stream);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // At the limit exactly: accepted (and judged as JSON).
    let body = format!("{VERIFY}{}", " ".repeat(1024 - VERIFY.len()));
    let (status, _) = app.post(body).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .post(format!("{VERIFY}{}", " ".repeat(1025 - VERIFY.len())))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off() {
    let app = spawn_app(&[
        ("SESSIOND_HEADER_TIMEOUT_MS", "300"),
        ("SESSIOND_BODY_TIMEOUT_MS", "300"),
    ])
    .await;
    // Headers that trickle and never finish: the connection is closed.
    let started = Instant::now();
    let answer = raw_exchange(
        &app,
        b"POST / HTTP/1.1\r\nHost: x\r\n",
        Duration::from_secs(5),
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "closed by the header timeout"
    );
    assert!(!answer.contains("200 OK"), "{answer}");
    // A body that never finishes: 408.
    let started = Instant::now();
    let answer = raw_exchange(
        &app,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"jsonrpc\"",
        Duration::from_secs(5),
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3));
    // The service still answers.
    assert_eq!(app.post(VERIFY).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1_0_and_pipelined_requests() {
    let app = spawn_app(&[]).await;
    let request = format!(
        "POST / HTTP/1.0\r\nContent-Length: {}\r\n\r\n{VERIFY}",
        VERIFY.len()
    );
    let answer = raw_exchange(&app, request.as_bytes(), Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    assert!(answer.contains(r#""result":{"active":false}"#), "{answer}");

    let one = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{VERIFY}",
        VERIFY.len()
    );
    let last = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{VERIFY}",
        VERIFY.len()
    );
    let pipelined = format!("{one}{one}{last}");
    let answer = raw_exchange(&app, pipelined.as_bytes(), Duration::from_secs(5));
    assert_eq!(answer.matches("HTTP/1.1 200").count(), 3, "{answer}");
    assert_eq!(answer.matches(r#""active":false"#).count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_with_prior_knowledge() {
    let (_redis, app) = spawn_redis_app().await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let request = Request::post(app.url("/"))
        .body(Full::new(Bytes::from_static(VERIFY.as_bytes())))
        .expect("request");
    let response = client.request(request).await.expect("h2 response");
    assert_eq!(response.version(), hyper::Version::HTTP_2);
    assert_eq!(response.status(), StatusCode::OK);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert!(String::from_utf8_lossy(&body).contains(r#""active":false"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_maximum_answer_only_probes_and_the_rest_are_served() {
    let app = spawn_app(&[("SESSIOND_MAX_CONNECTIONS", "2")]).await;
    let keep_alive = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{VERIFY}",
        VERIFY.len()
    );
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(app.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        stream.write_all(keep_alive.as_bytes()).expect("write");
        let mut buf = [0u8; 512];
        let n = stream.read(&mut buf).expect("answer");
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        held.push(stream);
    }
    // Beyond the limit a connection is let in for probes only: a call is refused with 503
    // and the connection closed; the liveness probe still gets its answer.
    let answer = raw_exchange(&app, keep_alive.as_bytes(), Duration::from_secs(5));
    assert!(
        answer.starts_with("HTTP/1.1 503") && answer.contains("connection: close"),
        "a call beyond the limit is refused: {answer}"
    );
    let probe = raw_exchange(
        &app,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(5),
    );
    assert!(
        probe.starts_with("HTTP/1.1 200"),
        "the liveness probe gets in: {probe}"
    );
    // The held connections still work.
    for stream in &mut held {
        stream.write_all(keep_alive.as_bytes()).expect("write");
        let mut buf = [0u8; 512];
        let n = stream.read(&mut buf).expect("answer");
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    }
    // Once one closes, a new connection is served again.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.post(VERIFY).await.0, StatusCode::OK);
}
