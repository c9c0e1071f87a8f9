//! The `sessiond` binary itself: bad configuration refused with one line and a non-zero exit,
//! graceful shutdown on SIGTERM and SIGINT with in-flight requests answered, and the
//! `healthcheck` probe mode; and its memory kept out of transparent huge pages.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::RedisServer;
use common::process::{
    get, json_body, post, sessiond, signal, start, stop_and_collect_logs, wait_exit,
};

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
    let token = json_body(&answer)["result"]["access_token"]
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
    let logs = stop_and_collect_logs(&mut child);
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

/// At the default level, a problem logged while a request is served (here: Redis cannot be
/// reached, and a call without a valid API key) carries the request's id, so that it can be
/// matched to the caller's own logs.
#[test]
fn a_problem_logged_during_a_request_carries_its_request_id() {
    let (mut child, port) = start(&[
        (
            "SESSIOND_REDIS_URL",
            &format!("redis://127.0.0.1:{}", common::free_port()),
        ),
        ("SESSIOND_REDIS_TIMEOUT_MS", "200"),
        ("SESSIOND_LOG_FORMAT", "json"),
        ("SESSIOND_API_KEYS", "gateway:let-me-in"),
    ]);
    let body = r#"{"jsonrpc":"2.0","method":"session.verify_session_token","params":{"token":"00000000-0000-4000-8000-000000000000"},"id":1}"#;
    let call = |request_id: &str, authorization: &str| {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let request = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nX-Request-Id: {request_id}\r\n{authorization}Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).expect("write");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        json_body(&answer)["error"]["code"].clone()
    };
    assert_eq!(
        call("trace-me-7", "Authorization: Bearer let-me-in\r\n"),
        -32000
    );
    assert_eq!(call("trace-me-8", ""), -32001);
    let logs = stop_and_collect_logs(&mut child);
    let logged = |message: &str| {
        logs.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find(|line| line["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?} logged: {logs}"))
    };
    let failure = logged("session store call failed");
    assert_eq!(failure["level"], "WARN");
    assert_eq!(failure["request_id"], "trace-me-7", "{failure}");
    let refused = logged("refused a call without a valid API key");
    assert_eq!(refused["level"], "INFO");
    assert_eq!(refused["request_id"], "trace-me-8", "{refused}");
}

/// Reads one HTTP/1.1 response (headers and a Content-Length body) from a keep-alive
/// connection. `Ok(None)` when the server closed the connection before sending anything.
fn read_response(
    stream: &mut std::io::BufReader<TcpStream>,
) -> std::io::Result<Option<(String, String)>> {
    use std::io::{BufRead, Read};
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line)? == 0 {
            if head.is_empty() {
                return Ok(None);
            }
            return Err(std::io::Error::other(format!("truncated head: {head}")));
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_owned())
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body)?;
    Ok(Some((head, String::from_utf8_lossy(&body).into_owned())))
}

#[test]
fn sigterm_under_load_answers_every_received_request_and_exits_zero() {
    use std::io::Write;
    let redis = RedisServer::start();
    let (mut child, port) = start(&[
        ("SESSIOND_REDIS_URL", &redis.url()),
        ("SESSIOND_SHUTDOWN_TIMEOUT_MS", "5000"),
        // Several workers even on a one-CPU machine: the drain must hold across them.
        ("SESSIOND_WORKER_THREADS", "3"),
    ]);
    let request = {
        let body = r#"{"jsonrpc":"2.0","method":"session.open_session","params":{"expires_in":60},"id":1}"#;
        format!(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let request = request.clone();
            std::thread::spawn(move || {
                let mut answered = 0u32;
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while std::time::Instant::now() < deadline {
                    let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) else {
                        return answered; // the listener is closed: shutdown has begun
                    };
                    stream
                        .set_read_timeout(Some(Duration::from_secs(10)))
                        .expect("timeout");
                    let mut writer = stream.try_clone().expect("clone");
                    let mut reader = std::io::BufReader::new(stream);
                    // Every request sent is answered: the server closes a connection only
                    // after an answer that says so (`Connection: close`), never under a
                    // request it has not read.
                    loop {
                        writer
                            .write_all(request.as_bytes())
                            .expect("the connection is open: no close was announced");
                        match read_response(&mut reader) {
                            Ok(Some((head, body))) => {
                                assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                                let answer: serde_json::Value =
                                    serde_json::from_str(&body).expect("a complete JSON body");
                                assert!(answer["result"]["access_token"].is_string(), "{answer}");
                                answered += 1;
                                if head.to_ascii_lowercase().contains("connection: close") {
                                    break;
                                }
                            }
                            Ok(None) => panic!("closed without answering a request it was sent"),
                            Err(e) => panic!("a response was cut off: {e}"),
                        }
                    }
                }
                answered
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    signal(&child, "-TERM");
    let status = wait_exit(&mut child, Duration::from_secs(10));
    let answered: u32 = workers.into_iter().map(|w| w.join().expect("worker")).sum();
    assert!(answered > 50, "the load ran: {answered} answers");
    assert_eq!(status.code(), Some(0));
}

/// With several worker threads (each its own runtime and Redis connection, all accepting on
/// one port), a session opened through any connection is active through every other, and
/// `/metrics` counts the calls of every worker.
#[test]
fn worker_threads_share_the_port_the_sessions_and_the_metrics() {
    const CALLS: usize = 40;
    let redis = RedisServer::start();
    let (mut child, port) = start(&[
        ("SESSIOND_REDIS_URL", &redis.url()),
        ("SESSIOND_WORKER_THREADS", "4"),
    ]);
    let open =
        r#"{"jsonrpc":"2.0","method":"session.open_session","params":{"expires_in":60},"id":1}"#;
    // Each call on its own connection, several at a time, so that every worker accepts some.
    let tokens: Vec<String> = std::thread::scope(|scope| {
        let calls: Vec<_> = (0..CALLS)
            .map(|_| scope.spawn(|| json_body(&post(port, open))))
            .collect();
        calls
            .into_iter()
            .map(|call| {
                let answer = call.join().expect("call");
                answer["result"]["access_token"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{answer}"))
                    .to_owned()
            })
            .collect()
    });
    for token in tokens.iter().rev() {
        let verify = format!(
            r#"{{"jsonrpc":"2.0","method":"session.verify_session_token","params":{{"token":"{token}"}},"id":2}}"#
        );
        assert_eq!(
            json_body(&post(port, &verify))["result"]["active"],
            true,
            "opened through one connection, active through another"
        );
    }

    let metrics = get(port, "/metrics");
    for method in ["session.open_session", "session.verify_session_token"] {
        let series = format!(r#"sessiond_rpc_calls_total{{method="{method}",outcome="result"}} "#);
        let count: f64 = metrics
            .lines()
            .find_map(|line| line.strip_prefix(&series))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("{series} in {metrics}"));
        assert_eq!(
            count, CALLS as f64,
            "every worker's calls are counted: {method}"
        );
    }
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(&mut redis.client())
        .expect("CLIENT LIST");
    let connections = clients.lines().count() - 1; // this connection
    assert!(
        (2..=4).contains(&connections),
        "one Redis connection per worker that served calls, not one in all: {connections}"
    );
    signal(&child, "-TERM");
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(10)).code(),
        Some(0)
    );
}

/// The host's transparent-huge-page mode (`always`, `madvise` or `never`), if it has one.
fn thp_mode() -> Option<String> {
    let modes = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").ok()?;
    let start = modes.find('[')? + 1;
    let end = start + modes[start..].find(']')?;
    Some(modes[start..end].to_owned())
}

/// `AnonHugePages` of a process, in KB.
fn anon_huge_pages_kb(pid: u32) -> u64 {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).expect("smaps");
    rollup
        .lines()
        .find_map(|line| line.strip_prefix("AnonHugePages:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("AnonHugePages in {rollup}"))
}

#[test]
fn memory_is_not_backed_by_transparent_huge_pages() {
    // With huge pages, a 2 MiB page became resident where an idle connection wrote a few KB:
    // 14-18 KB per idle connection instead of 8-11 (docs/BENCHMARKS.md, "Transparent huge
    // pages"). The build keeps mimalloc from asking for them (`madvise` mode); on a host in
    // `always` mode the documented setting the image carries turns them off.
    let env: &[(&str, &str)] = match thp_mode().as_deref() {
        Some("madvise") => &[("SESSIOND_WORKER_THREADS", "2")],
        Some("always") => &[
            ("SESSIOND_WORKER_THREADS", "2"),
            ("MIMALLOC_ALLOW_THP", "0"),
        ],
        other => {
            eprintln!("no transparent huge pages on this host ({other:?}): nothing to check");
            return;
        }
    };
    let (mut child, port) = start(env);
    // Connections held open, each after one call, as the idle-memory benchmark does.
    let verify = r#"{"jsonrpc":"2.0","method":"session.verify_session_token","params":{"token":"00000000-0000-4000-8000-000000000000"},"id":1}"#;
    let request = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{verify}",
        verify.len()
    );
    let mut held = Vec::new();
    for _ in 0..500 {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.write_all(request.as_bytes()).expect("send");
        let mut answer = [0u8; 512];
        let n = stream.read(&mut answer).expect("answer");
        assert!(answer[..n].starts_with(b"HTTP/1.1 200"), "answered");
        held.push(stream);
    }
    let huge = anon_huge_pages_kb(child.id());
    drop(held);
    stop_and_collect_logs(&mut child);
    assert_eq!(huge, 0, "KB of sessiond's memory in transparent huge pages");
}
