//! The `sessiond` binary itself: bad configuration refused with one line and a non-zero exit,
//! graceful shutdown on SIGTERM and SIGINT with in-flight requests answered, and the
//! `healthcheck` probe mode.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{RedisServer, free_port};

fn sessiond() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sessiond"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    command
}

fn start(vars: &[(&str, &str)]) -> (Child, u16) {
    let port = free_port();
    let child = sessiond()
        .env("SESSIOND_LISTEN", format!("127.0.0.1:{port}"))
        .envs(vars.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sessiond");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "sessiond did not start listening"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, port)
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sessiond did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn post(port: u16, body: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let request = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("write");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

#[test]
fn bad_configuration_stops_start_up_with_one_clear_line() {
    let cases = [
        ("SESSIOND_LISTEN", "not-an-address"),
        ("SESSIOND_REDIS_URL", "mysql://user:hunter2@db"),
        ("SESSIOND_DEFAULT_EXPIRES_IN", "zero"),
        ("SESSIOND_MAX_EXPIRES_IN", "-1"),
        ("SESSIOND_REDIS_TIMEOUT_MS", "0"),
        ("SESSIOND_LOG_FORMAT", "yaml"),
        ("SESSIOND_MAX_BODY_BYTES", "lots"),
        ("SESSIOND_MAX_BATCH", "0"),
        ("SESSIOND_REDIS_MODE", "ring"),
    ];
    for (var, value) in cases {
        let output = sessiond().env(var, value).output().expect("run");
        assert_eq!(output.status.code(), Some(2), "{var}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{var}={value}: {stderr}");
        assert!(stderr.contains(var), "{var}={value}: {stderr}");
        assert!(!stderr.contains("hunter2"), "no credentials: {stderr}");
    }
    let output = sessiond()
        .env("SESSIOND_CONFIG", "/nonexistent/sessiond.toml")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("SESSIOND_CONFIG"));
}

#[test]
fn a_port_in_use_is_a_clear_failure() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = holder.local_addr().expect("addr").port();
    let output = sessiond()
        .env("SESSIOND_LISTEN", format!("127.0.0.1:{port}"))
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot listen"));
}

#[test]
fn sigterm_drains_in_flight_requests_and_exits_zero() {
    let redis = RedisServer::start();
    let (mut child, port) = start(&[
        ("SESSIOND_REDIS_URL", &redis.url()),
        ("SESSIOND_REDIS_TIMEOUT_MS", "3000"),
    ]);
    // Hold a request in flight: Redis is paused, so the call waits on it.
    redis.pause();
    let in_flight = std::thread::spawn(move || {
        post(
            port,
            r#"{"jsonrpc":"2.0","method":"session.open_session","params":{"expires_in":60},"id":1}"#,
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "-TERM");
    std::thread::sleep(Duration::from_millis(300));
    // New connections are refused once the shutdown started.
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "stopped accepting"
    );
    redis.resume();
    let answer = in_flight.join().expect("request thread");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("access_token"), "the full answer: {answer}");
    let status = wait_exit(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
}

#[test]
fn ctrl_c_stops_an_idle_server_with_exit_zero() {
    let (mut child, _port) = start(&[]);
    signal(&child, "-INT");
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(10)).code(),
        Some(0)
    );
}

#[test]
fn the_healthcheck_mode_probes_the_running_server() {
    let (mut child, port) = start(&[]);
    let listen = format!("127.0.0.1:{port}");
    let probe = sessiond()
        .arg("healthcheck")
        .env("SESSIOND_LISTEN", &listen)
        .status()
        .expect("probe");
    assert!(probe.success());
    signal(&child, "-TERM");
    wait_exit(&mut child, Duration::from_secs(10));
    let probe = sessiond()
        .arg("healthcheck")
        .env("SESSIOND_LISTEN", &listen)
        .status()
        .expect("probe");
    assert_eq!(probe.code(), Some(1));
}

#[test]
fn logs_carry_no_token_and_no_credentials() {
    let redis = RedisServer::start_with(&[
        "--save",
        "",
        "--appendonly",
        "no",
        "--requirepass",
        "hunter2",
    ]);
    let url = format!("redis://:hunter2@127.0.0.1:{}", redis.port);
    let (mut child, port) = start(&[
        ("SESSIOND_REDIS_URL", &url),
        ("RUST_LOG", "trace"),
        ("SESSIOND_LOG_FORMAT", "json"),
    ]);
    let answer = post(
        port,
        r#"{"jsonrpc":"2.0","method":"session.open_session","params":{"expires_in":60},"id":1}"#,
    );
    let body = answer.split("\r\n\r\n").nth(1).expect("body");
    let token =
        serde_json::from_str::<serde_json::Value>(body).expect("json")["result"]["access_token"]
            .as_str()
            .expect("token")
            .to_owned();
    for method in ["session.verify_session_token", "session.close_session"] {
        let answer = post(
            port,
            &format!(
                r#"{{"jsonrpc":"2.0","method":"{method}","params":{{"token":"{token}"}},"id":2}}"#
            ),
        );
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    signal(&child, "-TERM");
    wait_exit(&mut child, Duration::from_secs(10));
    let mut logs = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut logs)
        .expect("logs");
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut logs)
        .expect("logs");
    assert!(
        logs.contains("sessiond is listening"),
        "logs were captured: {logs}"
    );
    assert!(!logs.contains(&token), "a token in the logs");
    assert!(!logs.contains("hunter2"), "a password in the logs");
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
}
