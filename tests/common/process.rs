//! Helpers for tests of the `sessiond` binary itself: start it on a free port with given
//! variables, talk raw HTTP to it, signal it and wait for its exit.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// `sessiond` with an empty environment but for `PATH`.
pub fn sessiond() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sessiond"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    command
}

/// Starts the binary on a free loopback port and waits until it listens.
pub fn start(vars: &[(&str, &str)]) -> (Child, u16) {
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

/// Sends a signal (`-TERM`, `-INT`, `-STOP`…) to a child process.
pub fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// Waits for the child to exit; kills it and fails the test after `within`.
pub fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
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

/// Stops the child with SIGTERM and returns everything it wrote to stdout and stderr.
pub fn stop_and_collect_logs(child: &mut Child) -> String {
    signal(child, "-TERM");
    wait_exit(child, Duration::from_secs(10));
    let mut logs = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut logs);
    }
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut logs);
    }
    logs
}

/// POSTs `body` to `/` on a fresh connection; returns the whole raw HTTP answer.
pub fn post(port: u16, body: &str) -> String {
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

/// The JSON body of a raw HTTP answer.
pub fn json_body(answer: &str) -> serde_json::Value {
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {answer}"))
}

/// GETs `path` on a fresh connection; returns the whole raw HTTP answer.
pub fn get(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("write");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

/// GETs `path`; returns the status code.
pub fn get_status(port: u16, path: &str) -> u16 {
    get(port, path)
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}
