//! Test helpers: a real `redis-server` on a free port (stopped when dropped), the app served
//! on port 0 through the same code the binary runs, and a small HTTP client.

#![allow(dead_code)]

pub mod acl;
pub mod caddy;
pub mod cluster;
pub mod failover;
pub mod group;
pub mod nginx;
pub mod process;
pub mod redis_nodes;
pub mod relay;
pub mod replica;
pub mod requests;
pub mod sentinel;
pub mod tls;
pub mod tls_topology;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use sessiond::config::Settings;
use tokio::sync::oneshot;

/// Logs go to the test output only when `TEST_LOG` is set.
pub fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        std::mem::forget(sessiond::telemetry::init(sessiond::config::LogFormat::Text));
    }
}

fn redis_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("REDIS_SERVER") {
        return PathBuf::from(path);
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':').chain([
        "/usr/bin",
        "/usr/sbin",
        "/usr/local/bin",
    ]) {
        let candidate = PathBuf::from(dir).join("redis-server");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "redis-server not found: the tests need a real Redis. Install it \
         (apt-get install redis-server) or run scripts/test, which does"
    );
}

/// The SHA-256 of `s` in lower-case hex: how a token is kept (its Redis key after the prefix,
/// its session id) and how an API key's hash is written. Computed here, not by sessiond's own
/// code, so the tests check the format rather than repeat it.
pub fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A `redis-server` child process on loopback.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    args: Vec<String>,
}

impl RedisServer {
    /// Starts a Redis with no persistence.
    pub fn start() -> Self {
        Self::start_with(&["--save", "", "--appendonly", "no"])
    }

    /// Starts a Redis with no persistence on a given port.
    pub fn start_at(port: u16) -> Self {
        let mut server = Self::new(&["--save", "", "--appendonly", "no"]);
        server.port = port;
        assert!(server.launch(), "redis-server on port {port}");
        server
    }

    fn new(args: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "sessiond-test-redis-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("redis dir");
        Self {
            child: None,
            port: 0,
            dir,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    /// Starts a Redis with extra `redis-server` arguments.
    pub fn start_with(args: &[&str]) -> Self {
        let mut server = Self::new(args);
        for _ in 0..5 {
            server.port = free_port();
            if server.launch() {
                return server;
            }
        }
        panic!("could not start redis-server");
    }

    fn launch(&mut self) -> bool {
        let child = Command::new(redis_server_binary())
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--dir"])
            .arg(&self.dir)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        if wait_for_pong(self.port, Duration::from_secs(10)) {
            true
        } else {
            self.kill();
            false
        }
    }

    /// `redis://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A synchronous client for looking at what Redis holds.
    pub fn client(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .expect("connect to test redis")
    }

    /// SIGKILL, then wait for the process to go.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts Redis again on the same port and directory.
    pub fn restart(&mut self) {
        self.kill();
        assert!(
            self.launch(),
            "redis-server restarted on port {}",
            self.port
        );
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// SIGSTOP: Redis keeps its sockets open but answers nothing.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT.
    pub fn resume(&self) {
        self.signal("-CONT");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_ref() {
            // A paused Redis ignores SIGKILL until continued on some kernels' process states.
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
        }
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn wait_for_pong(port: u16, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
            let mut buf = [0u8; 7];
            if stream.write_all(b"PING\r\n").is_ok()
                && stream.read_exact(&mut buf).is_ok()
                && (&buf == b"+PONG\r\n" || buf.starts_with(b"-NOAUTH"))
            {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A running app on a loopback port, served by `sessiond::http::server::run` on its own
/// thread: the binary's serving path (workers, connection limit, drain) exactly.
pub struct TestApp {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<std::thread::JoinHandle<std::process::ExitCode>>,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// Starts the app with these `SESSIOND_*` settings (the listen address is always port 0).
/// Unless the test sets `SESSIOND_DRAIN_MS`, stopping does not wait for idle connections.
pub async fn spawn_app(vars: &[(&str, &str)]) -> TestApp {
    init_logs();
    let defaults = [("SESSIOND_DRAIN_MS", "0")]
        .into_iter()
        .filter(|(k, _)| !vars.iter().any(|(set, _)| set == k));
    let vars = vars
        .iter()
        .copied()
        .chain(defaults)
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .chain([("SESSIOND_LISTEN".to_owned(), "127.0.0.1:0".to_owned())]);
    let settings = Settings::from_vars(vars).expect("test settings");
    let listener = StdListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        sessiond::http::server::run(listener, settings, async {
            let _ = rx.await;
        })
    });
    TestApp {
        addr,
        shutdown: Some(tx),
        server: Some(server),
        client: Client::builder(TokioExecutor::new()).build_http(),
    }
}

/// Calls a JSON-RPC method on the app, with `Authorization: Bearer <api_key>` when given, and
/// returns its `result` (the call must answer 200).
pub async fn rpc(app: &TestApp, api_key: Option<&str>, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1});
    let mut request = Request::post(app.url("/"));
    if let Some(key) = api_key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let (status, _, text) = app
        .send(
            request
                .body(Full::new(Bytes::from(body.to_string())))
                .expect("request"),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).expect("JSON");
    answer["result"].clone()
}

/// Opens a session (of `subject`, when given) through [`rpc`]; its token.
pub async fn open_session(
    app: &TestApp,
    api_key: Option<&str>,
    subject: Option<&str>,
    expires_in: u64,
) -> String {
    let mut params = json!({"expires_in": expires_in});
    if let Some(subject) = subject {
        params["subject"] = json!(subject);
    }
    let result = rpc(app, api_key, "session.open_session", params).await;
    result["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("open failed: {result}"))
        .to_owned()
}

/// Starts a Redis and an app that uses it.
pub async fn spawn_redis_app() -> (RedisServer, TestApp) {
    let redis = RedisServer::start();
    let app = spawn_app(&[("SESSIOND_REDIS_URL", &redis.url())]).await;
    (redis, app)
}

impl TestApp {
    /// `http://127.0.0.1:<port><path>`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sends any request; returns the status, headers and body.
    pub async fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> (StatusCode, hyper::HeaderMap, String) {
        let response = self.client.request(request).await.expect("response");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    /// POSTs `body` to `/`.
    pub async fn post(&self, body: impl Into<Bytes>) -> (StatusCode, String) {
        let request = Request::post(self.url("/"))
            .body(Full::new(body.into()))
            .expect("request");
        let (status, _, body) = self.send(request).await;
        (status, body)
    }

    /// GETs `path`.
    pub async fn get(&self, path: &str) -> (StatusCode, String) {
        let request = Request::get(self.url(path))
            .body(Full::default())
            .expect("request");
        let (status, _, body) = self.send(request).await;
        (status, body)
    }

    /// Calls `method` with `params` (id 1) and returns the whole response object.
    pub async fn call(&self, method: &str, params: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1});
        let (status, text) = self.post(body.to_string()).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        serde_json::from_str(&text).expect("JSON response")
    }

    /// Opens a session and returns its token.
    pub async fn open(&self, expires_in: Option<u64>) -> String {
        let response = self
            .call("session.open_session", json!({"expires_in": expires_in}))
            .await;
        response["result"]["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("open failed: {response}"))
            .to_owned()
    }

    /// Whether `token` is active.
    pub async fn verify(&self, token: &str) -> bool {
        let response = self
            .call("session.verify_session_token", json!({"token": token}))
            .await;
        response["result"]["active"]
            .as_bool()
            .unwrap_or_else(|| panic!("verify failed: {response}"))
    }

    /// Closes `token`'s session.
    pub async fn close(&self, token: &str) {
        let response = self
            .call("session.close_session", json!({"token": token}))
            .await;
        assert_eq!(response["result"], json!(true), "{response}");
    }

    /// Starts the graceful shutdown and waits for the server to stop; its exit code.
    pub async fn stop(mut self) -> std::process::ExitCode {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let server = self.server.take().expect("running");
        tokio::task::spawn_blocking(move || server.join().expect("server thread"))
            .await
            .expect("join")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
