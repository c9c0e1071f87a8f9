//! Issue 15: the OAuth 2.0 token endpoints (`/oauth2/introspect`, RFC 7662; `/oauth2/revoke`,
//! RFC 7009) driven by a real OAuth 2.0 client library, authlib (tests/python/oauth2_client.py,
//! run with the virtualenv scripts/test makes under target/); hand-written requests for what a
//! library would never send; the edges of `/auth`; and the logs of the binary, which must name
//! the requests but carry no token, cookie, secret or Basic credential.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use common::process::{start, stop_and_collect_logs};
use common::{RedisServer, open_session, rpc, spawn_app};
use serde_json::{Value, json};

/// The gateway key's secret: characters that read the same form-encoded or not.
const SECRET: &str = "gw-Secret_0.9~x";
/// The login service's key, which opens sessions.
const LOGIN: &str = "login-secret-4f1c";

/// The Python of the virtualenv with authlib: `$SESSIOND_TEST_PYTHON` (scripts/test sets it),
/// else target/py-venv/bin/python. Missing is a failure, not a skip.
fn python() -> PathBuf {
    let path = std::env::var_os("SESSIOND_TEST_PYTHON").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/py-venv/bin/python"),
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "{} is missing: the OAuth2 tests need a Python virtualenv with authlib and requests. \
         Run scripts/test, which creates it (python3 -m venv target/py-venv && \
         target/py-venv/bin/pip install authlib requests), or set SESSIOND_TEST_PYTHON",
        path.display()
    );
    path
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// One HTTP/1.1 answer read from a raw connection.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// Writes `request` as it is on a fresh connection and reads until the server closes it (or
/// fails the test after 10 s). Whatever arrived before a reset counts.
fn exchange(addr: SocketAddr, request: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _ = stream.write_all(request);
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                panic!(
                    "no complete answer within 10 s; got {:?}",
                    String::from_utf8_lossy(&raw)
                )
            }
            Err(_) => break,
        }
    }
    parse(&raw)
}

fn parse(raw: &[u8]) -> Answer {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.get(9..12))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&raw[split + 4..]).into_owned(),
    }
}

/// A complete request with `Connection: close`, the given extra header lines and body.
fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: sessiond\r\nConnection: close\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        text.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    text.push_str("\r\n");
    text.push_str(body);
    text.into_bytes()
}

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

fn basic(name: &str, secret: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{name}:{secret}"));
    format!("Basic {encoded}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authlib_introspects_and_revokes_with_client_secret_basic() {
    let python = python();
    let redis = RedisServer::start();
    let app = spawn_app(&[
        ("SESSIOND_REDIS_URL", &redis.url()),
        (
            "SESSIOND_API_KEYS",
            &format!("gateway:{SECRET},login:{LOGIN},odd:p+q%2Fr:s"),
        ),
    ])
    .await;
    let before = now();
    let token = open_session(&app, Some(LOGIN), Some("alice"), 600).await;
    let after = now();

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/oauth2_client.py");
    let mut child = Command::new(&python)
        .arg(&script)
        .args([&format!("http://{}", app.addr), "gateway", SECRET, &token])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{} did not start ({e}): run scripts/test", python.display()));
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the authlib script did not finish within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let output = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the authlib script failed (if authlib is missing, run scripts/test):\n{stderr}"
    );
    let steps: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));

    let introspect = &steps["introspect"];
    assert_eq!(introspect["status"], 200, "{introspect}");
    assert_eq!(introspect["content_type"], "application/json");
    let body = &introspect["body"];
    let keys: Vec<&str> = body
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 5, "{body}");
    assert_eq!(body["active"], true);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["sub"], "alice");
    let iat = body["iat"].as_u64().expect("iat");
    let exp = body["exp"].as_u64().expect("exp");
    assert!(
        (before..=after).contains(&iat),
        "iat {iat} not in {before}..={after}"
    );
    assert!(
        (iat + 598..=iat + 601).contains(&exp),
        "exp {exp} is not iat {iat} + 600"
    );
    assert_eq!(steps["introspect_with_hint"]["body"]["active"], true);

    for step in ["introspect_wrong_secret", "revoke_wrong_secret"] {
        let wrong = &steps[step];
        assert_eq!(wrong["status"], 401, "{step}: {wrong}");
        assert_eq!(wrong["body"], json!({"error": "invalid_client"}), "{step}");
        assert!(
            wrong["www_authenticate"]
                .as_str()
                .is_some_and(|v| v.starts_with("Basic")),
            "{step}: {wrong}"
        );
    }
    // The refused revocation did nothing: a caller with `Bearer <secret>` still sees it live.
    let bearer = &steps["introspect_bearer_caller"];
    assert_eq!(bearer["status"], 200, "{bearer}");
    assert_eq!(bearer["body"]["active"], true, "{bearer}");
    assert_eq!(bearer["body"]["sub"], "alice");

    let revoke = &steps["revoke"];
    assert_eq!(revoke["status"], 200, "{revoke}");
    assert_eq!(revoke["body"], "", "{revoke}");
    let after_revoke = &steps["introspect_after_revoke"];
    assert_eq!(after_revoke["status"], 200);
    assert_eq!(after_revoke["body"], json!({"active": false}), "exactly");
    assert_eq!(steps["revoke_again"]["status"], 200, "RFC 7009 §2.2");
    let verify = rpc(
        &app,
        Some(LOGIN),
        "session.verify_session_token",
        json!({"token": token}),
    )
    .await;
    assert_eq!(verify["active"], false, "revoked for JSON-RPC too");

    // Hand-written caller credentials. RFC 6749 §2.3.1: the name and secret are form-encoded
    // before Basic (the key `odd` has the secret `p+q%2Fr:s`).
    let live = open_session(&app, Some(LOGIN), Some("bob"), 600).await;
    let form = format!("token={live}");
    let introspect_as = |authorization: String| {
        let form = form.clone();
        let addr = app.addr;
        move || {
            exchange(
                addr,
                &request(
                    "POST",
                    "/oauth2/introspect",
                    &[FORM, ("Authorization", &authorization)],
                    &form,
                ),
            )
        }
    };
    let answer = introspect_as(basic("odd", "p%2Bq%252Fr%3As"))();
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.json()["sub"], "bob");
    for (what, authorization) in [
        ("no credentials", String::new()),
        (
            "a login key by Basic under another name",
            basic("gateway", LOGIN),
        ),
        ("a Bearer that is no key", "Bearer not-a-key".to_owned()),
        ("the user's token as Bearer", format!("Bearer {live}")),
        ("a Basic that is not base64", "Basic !!!".to_owned()),
    ] {
        let answer = if authorization.is_empty() {
            exchange(
                app.addr,
                &request("POST", "/oauth2/introspect", &[FORM], &form),
            )
        } else {
            introspect_as(authorization)()
        };
        assert_eq!(answer.status, 401, "{what}: {answer:?}");
        assert_eq!(answer.json(), json!({"error": "invalid_client"}), "{what}");
        assert!(
            answer
                .header("www-authenticate")
                .is_some_and(|v| v.starts_with("Basic")),
            "{what}: {answer:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_requests_that_are_not_right_are_refused() {
    let redis = RedisServer::start();
    let app = spawn_app(&[
        ("SESSIOND_REDIS_URL", &redis.url()),
        ("SESSIOND_MAX_BODY_BYTES", "4096"),
    ])
    .await;
    let token = open_session(&app, None, Some("alice"), 600).await;
    let invalid = json!({"error": "invalid_request"});

    for path in ["/oauth2/introspect", "/oauth2/revoke"] {
        for (what, headers, body) in [
            (
                "no token",
                vec![FORM],
                "token_type_hint=access_token".to_owned(),
            ),
            ("an empty token", vec![FORM], "token=".to_owned()),
            ("an empty body", vec![FORM], String::new()),
            (
                "a repeated token",
                vec![FORM],
                format!("token={token}&token={token}"),
            ),
            (
                "a JSON body",
                vec![("Content-Type", "application/json")],
                format!(r#"{{"token":"{token}"}}"#),
            ),
            ("no content type", vec![], format!("token={token}")),
        ] {
            let answer = exchange(app.addr, &request("POST", path, &headers, &body));
            assert_eq!(answer.status, 400, "{path}, {what}: {answer:?}");
            assert_eq!(answer.json(), invalid, "{path}, {what}");
            assert_eq!(answer.header("cache-control"), Some("no-store"));
        }
        for method in ["GET", "PUT", "DELETE"] {
            let answer = exchange(app.addr, &request(method, path, &[], ""));
            assert_eq!(answer.status, 405, "{method} {path}: {answer:?}");
            assert_eq!(answer.header("allow"), Some("POST"));
        }
        // Over SESSIOND_MAX_BODY_BYTES: declared (answered before the body is sent) and chunked.
        let started = Instant::now();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: sessiond\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 10000000\r\n\r\ntoken="
        );
        let answer = exchange(app.addr, head.as_bytes());
        assert_eq!(answer.status, 413, "{path}, declared: {answer:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(answer.header("connection"), Some("close"));
        let padding = "a".repeat(5000);
        let chunked = format!(
            "POST {path} HTTP/1.1\r\nHost: sessiond\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\ntoken={token}&pad={padding}\r\n0\r\n\r\n",
            "token=&pad=".len() + token.len() + padding.len()
        );
        let answer = exchange(app.addr, chunked.as_bytes());
        assert_eq!(answer.status, 413, "{path}, chunked: {answer:?}");
    }

    // A charset parameter and a hint are fine; an unknown token is inactive, and revoking it
    // is 200 all the same.
    let answer = exchange(
        app.addr,
        &request(
            "POST",
            "/oauth2/introspect",
            &[(
                "Content-Type",
                "application/x-www-form-urlencoded; charset=UTF-8",
            )],
            &format!("token_type_hint=refresh_token&token={token}"),
        ),
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.json()["sub"], "alice");
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    let unknown = "token=00000000-0000-4000-8000-000000000000";
    let answer = exchange(
        app.addr,
        &request("POST", "/oauth2/introspect", &[FORM], unknown),
    );
    assert_eq!(answer.json(), json!({"active": false}));
    let answer = exchange(
        app.addr,
        &request("POST", "/oauth2/revoke", &[FORM], unknown),
    );
    assert_eq!((answer.status, answer.body.as_str()), (200, ""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_takes_any_method_and_path_and_reads_no_body() {
    let redis = RedisServer::start();
    let app = spawn_app(&[
        ("SESSIOND_REDIS_URL", &redis.url()),
        ("SESSIOND_MAX_BODY_BYTES", "4096"),
        ("SESSIOND_AUTH_COOKIE", "sid"),
    ])
    .await;
    let live = open_session(&app, None, Some("alice"), 600).await;
    let closed = open_session(&app, None, Some("bob"), 600).await;
    app.close(&closed).await;
    let live_bearer = format!("Bearer {live}");

    // Never 404 or 429: every method, every path under /auth.
    for method in [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND",
    ] {
        for path in ["/auth", "/auth/", "/auth/anything/deep", "/auth/x?y=z"] {
            let answer = exchange(
                app.addr,
                &request(method, path, &[("Authorization", &live_bearer)], ""),
            );
            assert_eq!(answer.status, 200, "{method} {path}: {answer:?}");
            assert_eq!(answer.header("x-session-subject"), Some("alice"));
            let answer = exchange(app.addr, &request(method, path, &[], ""));
            assert_eq!(
                answer.status, 401,
                "{method} {path} without token: {answer:?}"
            );
        }
    }
    assert_eq!(
        exchange(app.addr, &request("GET", "/authx", &[], "")).status,
        404,
        "only /auth and paths under /auth/"
    );

    // A body larger than the limit is not read: the answer comes without it, and the
    // connection is closed.
    let started = Instant::now();
    let head = format!(
        "POST /auth/upload HTTP/1.1\r\nHost: sessiond\r\nAuthorization: {live_bearer}\r\nContent-Length: 10000000\r\n\r\n"
    );
    let answer = exchange(app.addr, head.as_bytes());
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.header("connection"), Some("close"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // The Authorization header wins over the cookie.
    let answer = exchange(
        app.addr,
        &request(
            "GET",
            "/auth",
            &[
                ("Authorization", &format!("Bearer {closed}")),
                ("Cookie", &format!("sid={live}")),
            ],
            "",
        ),
    );
    assert_eq!(
        answer.status, 401,
        "a closed Bearer, a live cookie: {answer:?}"
    );
    let answer = exchange(
        app.addr,
        &request(
            "GET",
            "/auth",
            &[
                ("Authorization", &live_bearer),
                ("Cookie", &format!("sid={closed}")),
            ],
            "",
        ),
    );
    assert_eq!(
        answer.status, 200,
        "a live Bearer, a closed cookie: {answer:?}"
    );

    // A 64 KB cookie: a clear 4xx from hyper or a normal answer, within the bound.
    let cookie = format!("junk={}; sid={live}", "x".repeat(64 * 1024));
    let started = Instant::now();
    let answer = exchange(
        app.addr,
        &request("GET", "/auth", &[("Cookie", &cookie)], ""),
    );
    assert!(
        answer.status == 200 || (400..500).contains(&answer.status),
        "a 64 KB cookie: {answer:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // A control character in a header value: hyper's 400.
    let answer = exchange(
        app.addr,
        &request(
            "GET",
            "/auth",
            &[("Authorization", &live_bearer), ("X-Note", "a\u{1}b")],
            "",
        ),
    );
    assert_eq!(answer.status, 400, "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_every_door_answers_503() {
    let mut redis = RedisServer::start();
    let app = spawn_app(&[
        ("SESSIOND_REDIS_URL", &redis.url()),
        ("SESSIOND_REDIS_TIMEOUT_MS", "500"),
    ])
    .await;
    let token = open_session(&app, None, Some("alice"), 600).await;
    redis.kill();
    let form = format!("token={token}");
    for path in ["/oauth2/introspect", "/oauth2/revoke"] {
        let answer = exchange(app.addr, &request("POST", path, &[FORM], &form));
        assert_eq!(answer.status, 503, "{path}: {answer:?}");
        assert!(
            answer
                .header("retry-after")
                .is_some_and(|v| v.parse::<u64>().is_ok()),
            "{path}: {answer:?}"
        );
    }
    let answer = exchange(
        app.addr,
        &request(
            "GET",
            "/auth",
            &[("Authorization", &format!("Bearer {token}"))],
            "",
        ),
    );
    assert_eq!(answer.status, 503, "{answer:?}");
}

/// The binary at `debug` with JSON logs: /auth, /oauth2/introspect and /oauth2/revoke are
/// logged, and no token, cookie value, secret or Basic credential is.
#[test]
fn logs_name_the_requests_but_carry_no_token_cookie_or_credential() {
    let redis = RedisServer::start();
    let (mut child, port) = start(&[
        ("SESSIOND_REDIS_URL", &redis.url()),
        ("RUST_LOG", "debug"),
        ("SESSIOND_LOG_FORMAT", "json"),
        ("SESSIOND_AUTH_COOKIE", "sid"),
        (
            "SESSIOND_API_KEYS",
            &format!("gateway:{SECRET},login:{LOGIN}"),
        ),
    ]);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let rpc_open = |subject: &str| {
        let body = format!(
            r#"{{"jsonrpc":"2.0","method":"session.open_session","params":{{"expires_in":600,"subject":"{subject}"}},"id":1}}"#
        );
        let answer = exchange(
            addr,
            &request(
                "POST",
                "/",
                &[
                    ("Authorization", &format!("Bearer {LOGIN}")),
                    ("Content-Type", "application/json"),
                ],
                &body,
            ),
        );
        answer.json()["result"]["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("open: {answer:?}"))
            .to_owned()
    };
    let by_header = rpc_open("alice");
    let by_cookie = rpc_open("carol");
    let wrong_secret = "wrong-Secret-77aa";
    let good_basic = basic("gateway", SECRET);
    let wrong_basic = basic("gateway", wrong_secret);
    let pair = [("APIKey", "gateway"), ("Secret", SECRET)];

    fn with<'a>(
        pair: &[(&'a str, &'a str)],
        extra: &[(&'a str, &'a str)],
    ) -> Vec<(&'a str, &'a str)> {
        [pair, extra].concat()
    }
    let header_bearer = format!("Bearer {by_header}");
    let cookie = format!("theme=dark; sid={by_cookie}");
    let answer = exchange(
        addr,
        &request(
            "GET",
            "/auth",
            &with(&pair, &[("Authorization", &header_bearer)]),
            "",
        ),
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    let answer = exchange(
        addr,
        &request(
            "GET",
            "/auth/app/page",
            &with(&pair, &[("Cookie", &cookie)]),
            "",
        ),
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    let answer = exchange(
        addr,
        &request(
            "GET",
            "/auth",
            &[
                ("APIKey", "gateway"),
                ("Secret", wrong_secret),
                ("Authorization", &header_bearer),
            ],
            "",
        ),
    );
    assert_eq!(answer.status, 403, "{answer:?}");
    for (path, authorization, status) in [
        ("/oauth2/introspect", good_basic.as_str(), 200),
        ("/oauth2/introspect", wrong_basic.as_str(), 401),
        ("/oauth2/introspect", &format!("Bearer {SECRET}"), 200),
        ("/oauth2/revoke", good_basic.as_str(), 200),
    ] {
        let answer = exchange(
            addr,
            &request(
                "POST",
                path,
                &[FORM, ("Authorization", authorization)],
                &format!("token={by_header}"),
            ),
        );
        assert_eq!(answer.status, status, "{path} {authorization}: {answer:?}");
    }

    let logs = stop_and_collect_logs(&mut child);
    let lines: Vec<Value> = logs
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for path in [
        "/auth",
        "/auth/app/page",
        "/oauth2/introspect",
        "/oauth2/revoke",
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.to_string().contains("request finished") && l.to_string().contains(path)),
            "no \"request finished\" line for {path}:\n{logs}"
        );
    }
    for message in ["gateway check", "oauth2 request"] {
        assert!(logs.contains(message), "no {message:?} line:\n{logs}");
    }
    let basic_credentials = |header: &str| header.trim_start_matches("Basic ").to_owned();
    for (what, secret) in [
        ("the header token", by_header.as_str()),
        ("the cookie token", by_cookie.as_str()),
        ("the gateway secret", SECRET),
        ("the login secret", LOGIN),
        ("a wrong secret", wrong_secret),
        ("a Basic credential", &basic_credentials(&good_basic)),
        ("a wrong Basic credential", &basic_credentials(&wrong_basic)),
    ] {
        assert!(!logs.contains(secret), "{what} is in the logs:\n{logs}");
    }
    // Nor a recognisable part of a token (its first 8 hex digits, say).
    for token in [&by_header, &by_cookie] {
        assert!(
            !logs.contains(&token[..8]),
            "part of a token is in the logs"
        );
    }
}
