//! Issue 15: real gateways in front of an application, asking sessiond (on a real Redis) through
//! `/auth`: nginx (`auth_request`, Debian's nginx-light) and Caddy (`forward_auth`, Debian's
//! caddy). The configurations are the ones docs/GATEWAYS.md documents, read from it between
//! its `gateways-test` markers with only the addresses and ports changed, so the documented
//! configuration is the tested one. The application is a small HTTP server written here that
//! answers with the request it received (method, path, headers, body) and counts requests.
//!
//! What each gateway does with sessiond's answers (asserted below):
//! - 200: the request reaches the application with `X-Session-Subject`/`X-Session-Id` set
//!   from sessiond, replacing any client-sent copy;
//! - 401: both return 401 with sessiond's `WWW-Authenticate`;
//! - 403 (wrong gateway key pair): both return 403;
//! - 503 (Redis down): nginx answers 500 (auth_request turns anything but 2xx/401/403 into
//!   500), Caddy passes the 503 on; neither reaches the application.

mod common;

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::caddy::{Caddy, TEST_GLOBAL_OPTIONS};
use common::nginx::{Nginx, temp_path_directives};
use common::{RedisServer, open_session, rpc, spawn_app};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// The secret the documented configurations carry for the key named `gateway`.
const DOCUMENTED_SECRET: &str = "REPLACE_WITH_THE_GATEWAY_SECRET";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Nginx,
    Caddy,
}

impl Kind {
    /// The status the gateway answers when sessiond answers 503.
    fn status_for_503(self) -> u16 {
        match self {
            Self::Nginx => 500,
            Self::Caddy => 503,
        }
    }
}

/// The fenced block of docs/GATEWAYS.md between `<!-- gateways-test:<name>:begin -->` and
/// `...:end -->`, without its fence lines.
fn documented(name: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/GATEWAYS.md");
    let doc = std::fs::read_to_string(path).expect("docs/GATEWAYS.md");
    let begin = format!("<!-- gateways-test:{name}:begin -->");
    let end = format!("<!-- gateways-test:{name}:end -->");
    let start = doc
        .find(&begin)
        .unwrap_or_else(|| panic!("docs/GATEWAYS.md has no {begin}"))
        + begin.len();
    let stop = start
        + doc[start..]
            .find(&end)
            .unwrap_or_else(|| panic!("docs/GATEWAYS.md has no {end}"));
    let block: Vec<&str> = doc[start..stop]
        .lines()
        .filter(|line| !line.trim_start().starts_with("```"))
        .collect();
    block.join("\n")
}

/// `text` with each `from` replaced by its `to`; each must be there (the documented
/// configuration uses exactly these placeholders).
fn substitute(name: &str, text: &str, pairs: &[(&str, String)]) -> String {
    let mut text = text.to_owned();
    for (from, to) in pairs {
        assert!(
            text.contains(from),
            "docs/GATEWAYS.md's {name} block no longer contains {from:?}:\n{text}"
        );
        text = text.replace(from, to);
    }
    assert!(
        text.contains(DOCUMENTED_SECRET),
        "docs/GATEWAYS.md's {name} block no longer sends the gateway key {DOCUMENTED_SECRET}"
    );
    text
}

/// A running gateway.
enum Gateway {
    Nginx(Nginx),
    Caddy(Caddy),
}

/// Whether nginx caches the check (docs/GATEWAYS.md's `nginx-cache` block).
#[derive(Clone, Copy, PartialEq)]
enum Cache {
    /// The plain configuration.
    Off,
    /// The documented cache.
    Documented,
    /// The documented cache without its `proxy_ignore_headers` line.
    HonouringCacheControl,
}

/// The documented nginx configuration for loopback, in a complete nginx.conf.
fn nginx_config(
    dir: &Path,
    port: u16,
    sessiond: SocketAddr,
    app: SocketAddr,
    cache: Cache,
) -> String {
    let mut server = substitute(
        "nginx",
        &documented("nginx"),
        &[
            ("listen 80;", format!("listen 127.0.0.1:{port};")),
            ("sessiond:8080", sessiond.to_string()),
            ("app:3000", app.to_string()),
        ],
    );
    let mut http_level = String::new();
    if cache != Cache::Off {
        let block = documented("nginx-cache");
        let cache_dir = dir.join("cache");
        let block = block.replace(
            "/var/cache/nginx/sessiond",
            &cache_dir.display().to_string(),
        );
        let (outer, inner) = block
            .split_once("# in location")
            .expect("the nginx-cache block has an http part and a location part");
        assert!(outer.contains("proxy_cache_path") && inner.contains("proxy_cache "));
        http_level = outer.to_owned();
        let mut directives: Vec<&str> = inner.lines().skip(1).collect();
        if cache == Cache::HonouringCacheControl {
            let before = directives.len();
            directives.retain(|line| !line.trim_start().starts_with("proxy_ignore_headers"));
            assert_eq!(
                directives.len(),
                before - 1,
                "one proxy_ignore_headers line"
            );
        }
        let anchor = "internal;";
        assert!(server.contains(anchor), "the auth location is internal");
        server = server.replacen(anchor, &format!("{anchor}\n{}", directives.join("\n")), 1);
    }
    format!(
        "events {{}}\nhttp {{\n{}    access_log {}/access.log;\n{http_level}\n{server}\n}}\n",
        temp_path_directives(dir),
        dir.display()
    )
}

impl Gateway {
    fn start(kind: Kind, sessiond: SocketAddr, app: SocketAddr) -> Self {
        match kind {
            Kind::Nginx => Self::start_nginx(sessiond, app, Cache::Off),
            Kind::Caddy => {
                let block = documented("caddy");
                Self::Caddy(Caddy::start(|_, port| {
                    let site = substitute(
                        "caddy",
                        &block,
                        &[
                            (":80 {", format!(":{port} {{")),
                            ("sessiond:8080", sessiond.to_string()),
                            ("app:3000", app.to_string()),
                        ],
                    );
                    format!("{TEST_GLOBAL_OPTIONS}{site}\n")
                }))
            }
        }
    }

    fn start_nginx(sessiond: SocketAddr, app: SocketAddr, cache: Cache) -> Self {
        Self::Nginx(Nginx::start(|dir, port| {
            nginx_config(dir, port, sessiond, app, cache)
        }))
    }

    fn addr(&self) -> SocketAddr {
        match self {
            Self::Nginx(nginx) => nginx.addr(),
            Self::Caddy(caddy) => caddy.addr(),
        }
    }

    fn log(&self) -> String {
        match self {
            Self::Nginx(nginx) => nginx.error_log(),
            Self::Caddy(caddy) => caddy.log(),
        }
    }
}

/// The application behind the gateway: answers every request with a JSON echo of it and counts
/// the requests. On its own thread and runtime; stopped when dropped.
struct Upstream {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Upstream {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind upstream");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("upstream addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        let (stop, mut stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("upstream runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            let hits = counted.clone();
                            tokio::spawn(async move {
                                let service = service_fn(move |req| echo(req, hits.clone()));
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            });
                        }
                    }
                }
            });
        });
        Self {
            addr,
            hits,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn echo(
    req: Request<Incoming>,
    hits: Arc<AtomicUsize>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    hits.fetch_add(1, Ordering::SeqCst);
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let mut headers = serde_json::Map::new();
    for (name, value) in req.headers() {
        let values = headers
            .entry(name.as_str())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(values) = values {
            values.push(Value::String(
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            ));
        }
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let echo = json!({
        "method": method,
        "path": path,
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    let mut response = Response::new(Full::new(Bytes::from(echo.to_string())));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// One HTTP/1.1 answer.
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

    /// The application's echo of the request it received.
    fn echo(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not the application's echo ({e}): {}", self.body))
    }
}

/// Sends one request on a fresh connection (`Connection: close`) and reads the whole answer.
fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut stream = TcpStream::connect(addr).expect("connect to the gateway");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).expect("write");
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .expect("the gateway answered within 15 s");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head: {}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.get(9..12))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&data[start..(start + size).min(data.len())]);
        data = &data[(start + size + 2).min(data.len())..];
    }
    out
}

/// The values of `name` the application received.
fn received(echo: &Value, name: &str) -> Vec<String> {
    echo["headers"][name]
        .as_array()
        .map(|values| {
            values
                .iter()
                .map(|v| v.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A request the gateway must refuse with `status` without reaching the application.
fn assert_refused(
    gateway: &Gateway,
    upstream: &Upstream,
    what: &str,
    headers: &[(&str, &str)],
    status: u16,
) -> Answer {
    let before = upstream.hits();
    let answer = send(gateway.addr(), "GET", "/orders/7", headers, "");
    assert_eq!(
        answer.status,
        status,
        "{what}: {} {:?} {}\ngateway log:\n{}",
        answer.status,
        answer.headers,
        answer.body,
        gateway.log()
    );
    assert_eq!(
        upstream.hits(),
        before,
        "{what}: the application was reached"
    );
    answer
}

async fn live_sessions_pass_and_the_rest_is_refused(kind: Kind) {
    let mut redis = RedisServer::start();
    let app = spawn_app(&[
        ("SESSIOND_REDIS_URL", &redis.url()),
        ("SESSIOND_AUTH_COOKIE", "sid"),
        ("SESSIOND_REDIS_TIMEOUT_MS", "500"),
    ])
    .await;
    let upstream = Upstream::start();
    let gateway = Gateway::start(kind, app.addr, upstream.addr);

    let expiring = open_session(&app, None, Some("alice"), 1).await;
    let expiring_opened = Instant::now();
    let alice = open_session(&app, None, Some("alice"), 600).await;
    let anonymous = open_session(&app, None, None, 600).await;
    let closed = open_session(&app, None, Some("bob"), 600).await;
    app.close(&closed).await;
    let session_id = rpc(
        &app,
        None,
        "session.introspect_session",
        json!({"token": alice}),
    )
    .await["session_id"]
        .as_str()
        .expect("session_id")
        .to_owned();

    // A live token in the Authorization header; the client's own identity headers are replaced.
    let bearer = format!("Bearer {alice}");
    let answer = send(
        gateway.addr(),
        "GET",
        "/orders/7?x=1",
        &[
            ("Authorization", &bearer),
            ("X-Session-Subject", "mallory"),
            ("X-Session-Id", "forged"),
        ],
        "",
    );
    assert_eq!(answer.status, 200, "{}\n{}", answer.body, gateway.log());
    let echo = answer.echo();
    assert_eq!(echo["path"], "/orders/7");
    assert_eq!(received(&echo, "x-session-subject"), ["alice"], "{echo}");
    assert_eq!(
        received(&echo, "x-session-id"),
        [session_id.as_str()],
        "{echo}"
    );

    // The same through the cookie.
    let cookie = format!("theme=dark; sid={alice}");
    let answer = send(
        gateway.addr(),
        "GET",
        "/profile",
        &[("Cookie", &cookie), ("X-Session-Subject", "mallory")],
        "",
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        received(&answer.echo(), "x-session-subject"),
        ["alice"],
        "cookie"
    );

    // A subject outside ASCII arrives as the same UTF-8 bytes.
    let jose = open_session(&app, None, Some("josé"), 600).await;
    let answer = send(
        gateway.addr(),
        "GET",
        "/",
        &[("Authorization", &format!("Bearer {jose}"))],
        "",
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(received(&answer.echo(), "x-session-subject"), ["josé"]);

    // A request with a body reaches the application whole (the check itself gets none).
    let answer = send(
        gateway.addr(),
        "POST",
        "/orders",
        &[("Authorization", &bearer), ("Content-Type", "text/plain")],
        "two apples",
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let echo = answer.echo();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["body"], "two apples");
    assert_eq!(received(&echo, "x-session-subject"), ["alice"]);

    // A session without subject: the application sees an empty or no X-Session-Subject, never
    // the client's.
    let answer = send(
        gateway.addr(),
        "GET",
        "/",
        &[
            ("Authorization", &format!("Bearer {anonymous}")),
            ("X-Session-Subject", "mallory"),
        ],
        "",
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let subject = received(&answer.echo(), "x-session-subject");
    assert!(
        subject.is_empty() || subject == [""],
        "{kind:?} let a client-sent X-Session-Subject through: {subject:?}"
    );

    // Refusals, none of which reaches the application.
    let answer = assert_refused(&gateway, &upstream, "no token", &[], 401);
    assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
    let answer = assert_refused(
        &gateway,
        &upstream,
        "a client-sent subject without a token",
        &[("X-Session-Subject", "mallory")],
        401,
    );
    assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
    let closed_bearer = format!("Bearer {closed}");
    let answer = assert_refused(
        &gateway,
        &upstream,
        "a closed token",
        &[("Authorization", &closed_bearer)],
        401,
    );
    assert_eq!(
        answer.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
    assert_refused(
        &gateway,
        &upstream,
        "a closed token in the cookie",
        &[("Cookie", &format!("sid={closed}"))],
        401,
    );
    assert_refused(
        &gateway,
        &upstream,
        "a made-up token",
        &[(
            "Authorization",
            "Bearer 00000000-0000-4000-8000-000000000000",
        )],
        401,
    );
    let wait = Duration::from_millis(2_500).saturating_sub(expiring_opened.elapsed());
    tokio::time::sleep(wait).await;
    assert_refused(
        &gateway,
        &upstream,
        "an expired token",
        &[("Authorization", &format!("Bearer {expiring}"))],
        401,
    );

    // Redis down: sessiond answers 503 and the gateway refuses (fails closed).
    redis.kill();
    assert_refused(
        &gateway,
        &upstream,
        "a live token while Redis is down",
        &[("Authorization", &bearer)],
        kind.status_for_503(),
    );
    assert_refused(
        &gateway,
        &upstream,
        "a live cookie while Redis is down",
        &[("Cookie", &cookie)],
        kind.status_for_503(),
    );
}

async fn the_gateway_proves_itself_with_its_key_pair(kind: Kind) {
    let redis = RedisServer::start();
    let login = "login-secret-4f1c";
    let right = spawn_app(&[
        ("SESSIOND_REDIS_URL", &redis.url()),
        (
            "SESSIOND_API_KEYS",
            &format!("gateway:{DOCUMENTED_SECRET},login:{login}"),
        ),
    ])
    .await;
    let wrong = spawn_app(&[
        ("SESSIOND_REDIS_URL", &redis.url()),
        (
            "SESSIOND_API_KEYS",
            &format!("gateway:another-secret-9d2e,login:{login}"),
        ),
    ])
    .await;
    let upstream = Upstream::start();
    let accepted = Gateway::start(kind, right.addr, upstream.addr);
    let refused = Gateway::start(kind, wrong.addr, upstream.addr);
    let alice = open_session(&right, Some(login), Some("alice"), 600).await;
    let bearer = format!("Bearer {alice}");

    let answer = send(
        accepted.addr(),
        "GET",
        "/orders/7",
        &[("Authorization", &bearer)],
        "",
    );
    assert_eq!(answer.status, 200, "{}\n{}", answer.body, accepted.log());
    assert_eq!(received(&answer.echo(), "x-session-subject"), ["alice"]);
    let answer = assert_refused(&accepted, &upstream, "no token (right pair)", &[], 401);
    assert_eq!(answer.header("www-authenticate"), Some("Bearer"));

    // The configured pair is not the one sessiond knows: 403 from sessiond, which both
    // gateways pass on as 403, whatever the client sends under those names.
    assert_refused(
        &refused,
        &upstream,
        "a live token through a gateway with the wrong pair",
        &[("Authorization", &bearer)],
        403,
    );
    assert_refused(
        &refused,
        &upstream,
        "a client sending the right pair itself",
        &[
            ("Authorization", &bearer),
            ("APIKey", "gateway"),
            ("Secret", "another-secret-9d2e"),
        ],
        403,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_auth_request_lets_live_sessions_through_and_refuses_the_rest() {
    live_sessions_pass_and_the_rest_is_refused(Kind::Nginx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_forward_auth_lets_live_sessions_through_and_refuses_the_rest() {
    live_sessions_pass_and_the_rest_is_refused(Kind::Caddy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_auth_request_sends_the_gateway_key_pair() {
    the_gateway_proves_itself_with_its_key_pair(Kind::Nginx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_forward_auth_sends_the_gateway_key_pair() {
    the_gateway_proves_itself_with_its_key_pair(Kind::Caddy).await;
}

/// SESSIOND_AUTH_CACHE_MAX_AGE with the documented nginx cache: a closed session is still let
/// through until the cached answer's lifetime is over, then refused; another user's token is
/// never answered from the first one's entry. Without the cache, or with nginx honouring
/// sessiond's `Cache-Control: private`, a close is seen at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_caching_the_check_delays_a_revocation_by_at_most_its_lifetime() {
    let redis = RedisServer::start();
    let app = spawn_app(&[
        ("SESSIOND_REDIS_URL", &redis.url()),
        ("SESSIOND_AUTH_COOKIE", "sid"),
        ("SESSIOND_AUTH_CACHE_MAX_AGE", "5"),
    ])
    .await;
    let upstream = Upstream::start();
    let get = |gateway: &Gateway, token: &str| {
        send(
            gateway.addr(),
            "GET",
            "/",
            &[("Authorization", &format!("Bearer {token}"))],
            "",
        )
    };

    for cache in [Cache::Off, Cache::HonouringCacheControl] {
        let gateway = Gateway::start_nginx(app.addr, upstream.addr, cache);
        let token = open_session(&app, None, Some("alice"), 600).await;
        assert_eq!(get(&gateway, &token).status, 200);
        app.close(&token).await;
        assert_eq!(
            get(&gateway, &token).status,
            401,
            "a close is seen at once without the documented cache"
        );
    }

    let gateway = Gateway::start_nginx(app.addr, upstream.addr, Cache::Documented);
    let alice = open_session(&app, None, Some("alice"), 600).await;
    let bob = open_session(&app, None, Some("bob"), 600).await;
    let cached_at = Instant::now();
    let answer = get(&gateway, &alice);
    assert_eq!(answer.status, 200, "{}\n{}", answer.body, gateway.log());
    assert_eq!(received(&answer.echo(), "x-session-subject"), ["alice"]);
    let answer = get(&gateway, &bob);
    assert_eq!(answer.status, 200);
    assert_eq!(
        received(&answer.echo(), "x-session-subject"),
        ["bob"],
        "the cache key separates users"
    );
    app.close(&alice).await;
    let answer = get(&gateway, &alice);
    assert_eq!(
        answer.status, 200,
        "within its lifetime the cached answer lets a closed session through"
    );
    assert_eq!(received(&answer.echo(), "x-session-subject"), ["alice"]);
    assert!(
        cached_at.elapsed() < Duration::from_secs(4),
        "the test ran too slowly to tell"
    );
    tokio::time::sleep(Duration::from_secs(6).saturating_sub(cached_at.elapsed())).await;
    assert_refused(
        &gateway,
        &upstream,
        "a closed session after the cache lifetime",
        &[("Authorization", &format!("Bearer {alice}"))],
        401,
    );
    assert_eq!(get(&gateway, &bob).status, 200);
}
