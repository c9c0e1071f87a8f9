//! Issue 16 §1: a rolling restart loses no call. Three replicas of the real binary on one real
//! Redis, behind a real nginx; 16 clients send `session.verify_session_token` over keep-alive
//! connections to nginx for the whole test while each replica in turn gets SIGTERM, must exit 0,
//! is started again on the same address and is given a settle time. Every call a client sends
//! counts, once: any answer but HTTP 200 with `{"active":true}`, any connection error, any
//! timeout is a failure, and the clients never retry. The figures are printed
//! (`cargo test --test rolling_restart -- --nocapture` to see them on success).
//!
//! Two load balancers: a plain production nginx (an upstream block with keep-alive
//! connections, nginx's default retry rules), and the repository's own deploy/nginx.conf,
//! rendered for loopback with the fewest textual changes. The two tests run one after the other
//! (each needs the machine to itself to be sensitive) and take about 15 s each.

mod common;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::nginx::{FakeDns, Nginx, temp_path_directives};
use common::replica::{Replica, http_post};
use common::{RedisServer, free_port};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Client tasks, each on its own keep-alive connection to nginx, each sending its next call as
/// soon as the previous one is answered.
const CLIENTS: usize = 16;
/// Traffic before the first SIGTERM.
const WARM_UP: Duration = Duration::from_secs(2);
/// After a restarted replica is ready, before the next one is stopped.
const SETTLE: Duration = Duration::from_secs(4);
/// nginx's `fail_timeout` for the production upstream: shorter than `SETTLE`, so a restarted
/// replica is back in nginx's rotation before the next one goes down.
const FAIL_TIMEOUT_SECS: u64 = 3;
/// A call not answered within this is a failure.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on a replica's exit after SIGTERM, and on its readiness after a start.
const EXIT_WITHIN: Duration = Duration::from_secs(20);
const READY_WITHIN: Duration = Duration::from_secs(10);

/// One test at a time: the machine may have only two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_behind_a_production_nginx_loses_no_call() {
    let _serial = SERIAL.lock().await;
    let redis = RedisServer::start();
    let addrs: Vec<SocketAddr> = (0..3)
        .map(|_| SocketAddr::from(([127, 0, 0, 1], free_port())))
        .collect();
    let replicas = start_replicas(&addrs, &redis);
    let nginx = Nginx::start(|dir, port| production_config(dir, port, &addrs));
    rolling_restart(
        "production nginx (upstream, keepalive 32)",
        &nginx,
        replicas,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_behind_the_shipped_nginx_conf_loses_no_call() {
    let _serial = SERIAL.lock().await;
    let redis = RedisServer::start();
    // Docker gives each replica its own address, all on port 8080, and "sessiond" resolves to
    // all of them: here 127.0.0.1-3 on one port, and a DNS responder that says so.
    let port = free_port();
    let ips = [
        Ipv4Addr::new(127, 0, 0, 1),
        Ipv4Addr::new(127, 0, 0, 2),
        Ipv4Addr::new(127, 0, 0, 3),
    ];
    let addrs: Vec<SocketAddr> = ips.iter().map(|ip| SocketAddr::from((*ip, port))).collect();
    let replicas = start_replicas(&addrs, &redis);
    let dns = FakeDns::start("sessiond", ips.to_vec());
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx.conf"))
            .expect("deploy/nginx.conf");
    let nginx = Nginx::start(|dir, listen| shipped_config(&shipped, dir, listen, dns.addr, port));
    rolling_restart("deploy/nginx.conf", &nginx, replicas).await;
}

fn start_replicas(addrs: &[SocketAddr], redis: &RedisServer) -> Vec<Replica> {
    let url = redis.url();
    addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            Replica::start(
                &format!("replica-{} ({addr})", i + 1),
                *addr,
                &[
                    ("SESSIOND_REDIS_URL", &url),
                    ("SESSIOND_SHUTDOWN_TIMEOUT_MS", "10000"),
                    ("RUST_LOG", "info"),
                ],
            )
        })
        .collect()
}

/// A plain production nginx: the replicas in an upstream block with `keepalive 32`, HTTP/1.1
/// and no `Connection` header to them, the default retry rules (`error timeout`: a POST that
/// was sent is not retried) and the default `max_fails` (1).
fn production_config(dir: &Path, port: u16, backends: &[SocketAddr]) -> String {
    let servers: String = backends
        .iter()
        .map(|b| format!("        server {b} fail_timeout={FAIL_TIMEOUT_SECS}s;\n"))
        .collect();
    let temp = temp_path_directives(dir);
    format!(
        r#"worker_processes auto;

events {{
    worker_connections 1024;
}}

http {{
{temp}    access_log off;

    upstream sessiond {{
{servers}        keepalive 32;
    }}

    server {{
        listen 127.0.0.1:{port};

        location / {{
            proxy_pass http://sessiond;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_next_upstream error timeout;
        }}
    }}
}}
"#
    )
}

/// deploy/nginx.conf for loopback: its `listen` port, its resolver (Docker's DNS) and the
/// upstream's server line (what Docker's DNS resolves it to) replaced; its `pid` line dropped (the harness sets one with `-g`); temporary
/// file paths added in `http`. Every other directive is the shipped one.
fn shipped_config(
    shipped: &str,
    dir: &Path,
    listen: u16,
    dns: SocketAddr,
    backend_port: u16,
) -> String {
    let conf: String = shipped
        .lines()
        .map(|line| {
            if line.trim_start().starts_with("pid ") {
                "# pid: set by the test harness (-g)\n".to_owned()
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    let conf = replace_once(
        &conf,
        "listen 8080;",
        &format!("listen 127.0.0.1:{listen};"),
    );
    let conf = replace_once(&conf, "resolver 127.0.0.11 ", &format!("resolver {dns} "));
    // Debian's nginx 1.22 does not know `resolve` in an upstream (1.27.3 does): the one
    // server line that Docker's DNS would expand becomes the three replicas it names, each
    // with the line's other parameters (`fail_timeout`).
    const SERVER: &str = "server sessiond:8080 resolve";
    let params = conf
        .lines()
        .find_map(|line| line.trim().strip_prefix(SERVER))
        .and_then(|rest| rest.strip_suffix(';'))
        .expect("deploy/nginx.conf changed: no `server sessiond:8080 resolve ...;` line");
    let replicas: Vec<String> = (1..=3)
        .map(|i| format!("server 127.0.0.{i}:{backend_port}{params};"))
        .collect();
    let conf = replace_once(
        &conf,
        &format!("{SERVER}{params};"),
        &replicas.join("\n        "),
    );
    replace_once(
        &conf,
        "http {\n",
        &format!("http {{\n{}", temp_path_directives(dir)),
    )
}

fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "deploy/nginx.conf changed: expected exactly one {from:?} in it; update the test's rendering"
    );
    text.replacen(from, to, 1)
}

/// What the clients saw.
#[derive(Default)]
struct Tally {
    calls: AtomicU64,
    failures: AtomicU64,
    kinds: Mutex<BTreeMap<String, u64>>,
    first: Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, at: Duration, kind: String, detail: String) {
        self.failures.fetch_add(1, Ordering::SeqCst);
        let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
        if first.len() < 20 {
            first.push(format!("{:7.3} s  {kind}: {detail}", at.as_secs_f64()));
        }
        *self
            .kinds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(kind)
            .or_default() += 1;
    }

    fn snapshot(&self) -> (u64, u64) {
        (
            self.calls.load(Ordering::SeqCst),
            self.failures.load(Ordering::SeqCst),
        )
    }
}

/// One replica's restart.
struct Restart {
    name: String,
    signalled_at: Duration,
    drain: Duration,
    ready: Duration,
    calls: u64,
    failures: u64,
}

async fn rolling_restart(label: &str, nginx: &Nginx, replicas: Vec<Replica>) {
    // A session opened through nginx, so that the whole chain is known to work first.
    let opened = http_post(
        nginx.addr(),
        r#"{"jsonrpc":"2.0","method":"session.open_session","params":{"expires_in":3600},"id":1}"#,
    );
    let token = opened
        .as_ref()
        .and_then(|(status, body)| {
            let value: Value = serde_json::from_str(body).ok()?;
            (*status == 200).then(|| value["result"]["access_token"].as_str().map(str::to_owned))?
        })
        .unwrap_or_else(|| {
            panic!(
                "open_session through nginx: {opened:?}; nginx's error log:\n{}",
                nginx.error_log()
            )
        });
    let body = json!({
        "jsonrpc": "2.0",
        "method": "session.verify_session_token",
        "params": {"token": token},
        "id": 1
    })
    .to_string();
    let request: Arc<[u8]> = format!(
        "POST / HTTP/1.1\r\nHost: sessiond\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
    .into();

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            tokio::spawn(client(
                nginx.addr(),
                request.clone(),
                stop.clone(),
                tally.clone(),
                t0,
            ))
        })
        .collect();
    let rollout = {
        let tally = tally.clone();
        tokio::task::spawn_blocking(move || {
            let mut replicas = replicas;
            let restarts = roll(&mut replicas, &tally, t0);
            (replicas, restarts)
        })
        .await
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.expect("client task");
    }
    let elapsed = t0.elapsed();
    let (replicas, restarts) = rollout.unwrap_or_else(|err| {
        eprintln!("nginx's error log:\n{}", tail(&nginx.error_log(), 40));
        std::panic::resume_unwind(err.into_panic())
    });
    drop(replicas);

    let (calls, failures) = tally.snapshot();
    println!(
        "rolling restart behind {label}: {calls} calls from {CLIENTS} keep-alive clients in \
         {:.1} s ({:.0}/s), {failures} failed",
        elapsed.as_secs_f64(),
        calls as f64 / elapsed.as_secs_f64()
    );
    for r in &restarts {
        println!(
            "  {}: SIGTERM at {:.2} s, exit 0 after {} ms, restarted and ready in {} ms; \
             from SIGTERM to the end of its {} s settle: {} calls, {} failed",
            r.name,
            r.signalled_at.as_secs_f64(),
            r.drain.as_millis(),
            r.ready.as_millis(),
            SETTLE.as_secs(),
            r.calls,
            r.failures
        );
    }
    let access = access_statuses(&nginx.stdout_log());
    if !access.is_empty() {
        println!("  nginx access log, by status: {access:?}");
    }
    if failures > 0 {
        let kinds = tally.kinds.lock().unwrap_or_else(|e| e.into_inner());
        println!("  failures by kind:");
        for (kind, count) in kinds.iter() {
            println!("    {count:6}  {kind}");
        }
        println!("  first failures:");
        for line in tally.first.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            println!("    {line}");
        }
        let log = nginx.error_log();
        println!("  nginx's error log, by message:");
        for (message, count) in error_log_messages(&log) {
            println!("    {count:6}  {message}");
        }
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| !l.contains("while connecting to upstream"))
            .collect();
        println!(
            "  nginx's error log (not counting the failed connects, which nginx retries):\n{}",
            tail(&lines.join("\n"), 30)
        );
    }
    assert_eq!(
        failures, 0,
        "a rolling restart behind {label} lost {failures} of {calls} calls (details above)"
    );
}

/// Stops and restarts each replica in turn, while the clients run.
fn roll(replicas: &mut [Replica], tally: &Tally, t0: Instant) -> Vec<Restart> {
    std::thread::sleep(WARM_UP);
    let mut restarts = Vec::new();
    for replica in replicas.iter_mut() {
        let (calls_before, failures_before) = tally.snapshot();
        let signalled_at = t0.elapsed();
        let signalled = Instant::now();
        replica.sigterm();
        let status = replica.wait_exit(EXIT_WITHIN);
        let drain = signalled.elapsed();
        assert_eq!(
            status.code(),
            Some(0),
            "{} exited with {status} after SIGTERM; its logs:\n{}",
            replica.name,
            replica.logs()
        );
        replica.spawn();
        let ready = replica.wait_ready(READY_WITHIN);
        std::thread::sleep(SETTLE);
        let (calls_after, failures_after) = tally.snapshot();
        restarts.push(Restart {
            name: replica.name.clone(),
            signalled_at,
            drain,
            ready,
            calls: calls_after - calls_before,
            failures: failures_after - failures_before,
        });
    }
    restarts
}

/// A failed call: what kind of failure (for counting), and the detail.
type CallError = (String, String);

/// Sends calls one after the other on a persistent connection, until `stop`. A new connection
/// is made only at the start, after a failure, or when nginx announced `Connection: close`.
async fn client(
    nginx: SocketAddr,
    request: Arc<[u8]>,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
    t0: Instant,
) {
    let mut connection: Option<BufReader<TcpStream>> = None;
    while !stop.load(Ordering::SeqCst) {
        tally.calls.fetch_add(1, Ordering::SeqCst);
        let answer = tokio::time::timeout(CALL_TIMEOUT, call(&mut connection, nginx, &request))
            .await
            .unwrap_or_else(|_| Err(("no answer in time".to_owned(), format!("{CALL_TIMEOUT:?}"))));
        if let Err((kind, detail)) = answer {
            connection = None;
            tally.fail(t0.elapsed(), kind, detail);
        }
    }
}

/// One call: the request written once, its response read and checked.
async fn call(
    connection: &mut Option<BufReader<TcpStream>>,
    nginx: SocketAddr,
    request: &[u8],
) -> Result<(), CallError> {
    if connection.is_none() {
        let stream = TcpStream::connect(nginx)
            .await
            .map_err(|e| (format!("connect to nginx: {:?}", e.kind()), e.to_string()))?;
        let _ = stream.set_nodelay(true);
        *connection = Some(BufReader::new(stream));
    }
    let stream = connection.as_mut().expect("connected");
    stream
        .get_mut()
        .write_all(request)
        .await
        .map_err(|e| (format!("write to nginx: {:?}", e.kind()), e.to_string()))?;
    let (status, close, body) = read_response(stream).await?;
    if close {
        *connection = None;
    }
    let text = String::from_utf8_lossy(&body)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if status != 200 {
        return Err((format!("HTTP {status}"), text));
    }
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| ("not JSON".to_owned(), format!("{e}: {text}")))?;
    if value["result"] != json!({"active": true}) || value["id"] != 1 {
        return Err(("wrong answer".to_owned(), text));
    }
    Ok(())
}

/// Reads one HTTP/1.1 response: its status, whether it said `Connection: close`, its body.
async fn read_response(
    stream: &mut BufReader<TcpStream>,
) -> Result<(u16, bool, Vec<u8>), CallError> {
    let mut line = String::new();
    read_line(stream, &mut line, "status line").await?;
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| ("malformed status line".to_owned(), line.clone()))?;
    let (mut length, mut chunked, mut close) = (None, false, false);
    loop {
        line.clear();
        read_line(stream, &mut line, "headers").await?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| ("malformed header".to_owned(), header.to_owned()))?;
        let value = value.trim().to_ascii_lowercase();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse::<usize>().ok(),
            "transfer-encoding" => chunked = value.contains("chunked"),
            "connection" => close = value.contains("close"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            read_line(stream, &mut line, "chunk size").await?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| ("malformed chunk size".to_owned(), line.clone()))?;
            if size == 0 {
                loop {
                    line.clear();
                    read_line(stream, &mut line, "trailers").await?;
                    if line.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size + 2, 0);
            read_exact(stream, &mut body[start..]).await?;
            body.truncate(start + size);
        }
    } else {
        let length = length.ok_or_else(|| {
            (
                "a response without a length".to_owned(),
                format!("HTTP {status}"),
            )
        })?;
        body.resize(length, 0);
        read_exact(stream, &mut body).await?;
    }
    Ok((status, close, body))
}

async fn read_line(
    stream: &mut BufReader<TcpStream>,
    line: &mut String,
    what: &str,
) -> Result<(), CallError> {
    match stream.read_line(line).await {
        Ok(0) => Err((
            format!("connection closed by nginx before the response's {what}"),
            "after the request was written".to_owned(),
        )),
        Ok(_) => Ok(()),
        Err(e) => Err((format!("read from nginx: {:?}", e.kind()), e.to_string())),
    }
}

async fn read_exact(stream: &mut BufReader<TcpStream>, buf: &mut [u8]) -> Result<(), CallError> {
    stream.read_exact(buf).await.map(|_| ()).map_err(|e| {
        (
            format!("read body from nginx: {:?}", e.kind()),
            e.to_string(),
        )
    })
}

/// Counts of the statuses in an access log whose lines hold `"<request>" <status>`.
fn access_statuses(log: &str) -> BTreeMap<u16, u64> {
    let mut statuses = BTreeMap::new();
    for line in log.lines() {
        let status = line
            .rsplit_once("HTTP/1.1\" ")
            .and_then(|(_, rest)| rest.split(' ').next())
            .and_then(|s| s.parse::<u16>().ok());
        if let Some(status) = status {
            *statuses.entry(status).or_default() += 1;
        }
    }
    statuses
}

/// nginx's error-log lines counted by message (without the time, pid and connection number,
/// and without the client and upstream details).
fn error_log_messages(log: &str) -> BTreeMap<String, u64> {
    let mut messages = BTreeMap::new();
    for line in log.lines() {
        let message = line
            .split_once("] ")
            .map_or(line, |(_, m)| m)
            .split_once(", client:")
            .map_or_else(|| line.to_owned(), |(m, _)| m.to_owned());
        let level = line
            .split_once('[')
            .and_then(|(_, rest)| rest.split_once(']'))
            .map_or("", |(level, _)| level);
        let message = message
            .split_once(": *")
            .and_then(|(_, m)| m.split_once(' '))
            .map_or(message.clone(), |(_, m)| m.to_owned());
        let message = format!("[{level}] {message}");
        *messages.entry(message).or_default() += 1;
    }
    messages
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
