//! The pieces every multi-process Redis topology of the tests is built from: the Redis
//! binaries, free loopback ports, temporary directories, bounded connections and waits, and
//! one `redis-server` process that is killed when dropped. The topologies themselves are in
//! `cluster.rs`, `sentinel.rs` and `tls_topology.rs`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// How long building a topology may take before the test gives up.
pub const SETUP_LIMIT: Duration = Duration::from_secs(30);

pub fn find_binary(name: &str, env: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env) {
        return PathBuf::from(path);
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':').chain([
        "/usr/bin",
        "/usr/sbin",
        "/usr/local/bin",
    ]) {
        let candidate = PathBuf::from(dir).join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "{name} not found: the cluster and sentinel tests need real Redis binaries. Install \
         them (apt-get install redis-server redis-tools) or run scripts/test, which does"
    );
}

pub fn temp_dir(kind: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sessiond-test-{kind}-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Starts `what` on `count` free ports, trying fresh ones when a port was taken between
/// choosing and binding it (tests run in parallel).
pub fn on_fresh_ports<T>(
    count: usize,
    what: &str,
    start: impl Fn(&[u16]) -> Result<T, String>,
) -> T {
    let mut failures = Vec::new();
    for _ in 0..3 {
        match start(&free_ports(count)) {
            Ok(started) => return started,
            Err(why) => failures.push(why),
        }
    }
    panic!("could not start {what}: {failures:#?}");
}

/// `redis://127.0.0.1:<port>` for each port, comma-separated: seed or sentinel URLs.
pub fn loopback_urls(ports: &[u16]) -> String {
    ports
        .iter()
        .map(|p| format!("redis://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `count` distinct ports that nothing listens on right now.
pub fn free_ports(count: usize) -> Vec<u16> {
    let mut seen = HashSet::new();
    let mut ports = Vec::with_capacity(count);
    for _ in 0..count * 20 {
        let port = free_port();
        if seen.insert(port) {
            ports.push(port);
            if ports.len() == count {
                return ports;
            }
        }
    }
    panic!("could not find {count} distinct free ports");
}

/// `redis://[:password@]127.0.0.1:<port>`
pub fn url_for(port: u16, password: Option<&str>) -> String {
    match password {
        Some(password) => format!("redis://:{password}@127.0.0.1:{port}"),
        None => format!("redis://127.0.0.1:{port}"),
    }
}

/// A synchronous connection whose every read and write is bounded.
pub fn connect(port: u16, password: Option<&str>) -> redis::RedisResult<redis::Connection> {
    let conn = redis::Client::open(url_for(port, password))?
        .get_connection_with_timeout(Duration::from_secs(2))?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    conn.set_write_timeout(Some(Duration::from_secs(5)))?;
    Ok(conn)
}

/// Polls `ready` every 50 ms until it holds or `within` has passed.
pub fn wait_until(within: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if ready() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `INFO <section>` as a map of its `field:value` lines.
pub fn info(
    conn: &mut redis::Connection,
    section: &str,
) -> redis::RedisResult<HashMap<String, String>> {
    let text: String = redis::cmd("INFO").arg(section).query(conn)?;
    Ok(text
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect())
}

/// One `redis-server` process, killed on drop.
pub struct Process {
    pub child: Option<Child>,
    pub port: u16,
    log: PathBuf,
}

impl Process {
    /// Starts `redis-server <args>` with its log in `dir` and waits until it answers on
    /// `port`. Fails when it exits (e.g. a port was taken meanwhile) or another process
    /// answers on `port`.
    pub fn start(
        dir: &Path,
        port: u16,
        password: Option<&str>,
        args: &[String],
    ) -> Result<Self, String> {
        let log = dir.join(format!("redis-{port}.log"));
        let child = Command::new(find_binary("redis-server", "REDIS_SERVER"))
            .args(args)
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        let mut process = Self {
            child: Some(child),
            port,
            log,
        };
        let pid = process.child.as_ref().map(Child::id);
        let mut answered_by = None;
        let mut exited = false;
        wait_until(Duration::from_secs(10), || {
            if let Some(child) = process.child.as_mut() {
                exited = matches!(child.try_wait(), Ok(Some(_)));
            }
            answered_by = connect(port, password)
                .and_then(|mut c| info(&mut c, "server"))
                .ok()
                .and_then(|i| i.get("process_id").and_then(|p| p.parse::<u32>().ok()));
            exited || answered_by.is_some()
        });
        if answered_by.is_some() && answered_by == pid {
            return Ok(process);
        }
        let log = std::fs::read_to_string(&process.log).unwrap_or_default();
        process.kill();
        Err(match answered_by {
            Some(other) => format!("port {port} is taken by process {other}"),
            None => format!("redis-server on port {port} did not start:\n{log}"),
        })
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL, then wait for the process to go.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Arguments every test node gets: loopback, its own directory, no persistence.
pub fn base_args(port: u16, dir: &Path, password: Option<&str>) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--port".into(),
        port.to_string(),
        "--bind".into(),
        "127.0.0.1".into(),
        "--dir".into(),
        dir.display().to_string(),
        "--save".into(),
        String::new(),
        "--appendonly".into(),
        "no".into(),
    ];
    if let Some(password) = password {
        args.extend([
            "--requirepass".into(),
            password.to_owned(),
            "--masterauth".into(),
            password.to_owned(),
        ]);
    }
    args
}
