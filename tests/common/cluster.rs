//! Multi-process Redis topologies on loopback for the cluster and sentinel tests: a Redis
//! Cluster of three masters with one replica each (built with `redis-cli --cluster create`),
//! and one master with one replica watched by three sentinels.
//!
//! Every process runs on free loopback ports in the helper's own temporary directory, with
//! short failure-detection timeouts so that a failover takes seconds, and is killed when the
//! helper is dropped, also when a test panics. Every wait is bounded.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// `cluster-node-timeout` of the test clusters: how long a master may be unreachable before
/// the others mark it failed and its replica is promoted.
pub const CLUSTER_NODE_TIMEOUT_MS: u64 = 1_000;
/// `down-after-milliseconds` of the test sentinels: how long the master may be unreachable
/// before a sentinel considers it down.
pub const SENTINEL_DOWN_AFTER_MS: u64 = 1_000;
/// `failover-timeout` of the test sentinels (also how soon a failed election is retried:
/// twice this).
pub const SENTINEL_FAILOVER_TIMEOUT_MS: u64 = 2_000;
/// The name the sentinels know the master by.
pub const SENTINEL_MASTER_NAME: &str = "sessiond-master";

/// How long building a topology may take before the test gives up.
const SETUP_LIMIT: Duration = Duration::from_secs(30);

fn find_binary(name: &str, env: &str) -> PathBuf {
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

fn temp_dir(kind: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sessiond-test-{kind}-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// `count` distinct ports that nothing listens on right now.
/// Starts `what` on `count` free ports, trying fresh ones when a port was taken between
/// choosing and binding it (tests run in parallel).
fn on_fresh_ports<T>(count: usize, what: &str, start: impl Fn(&[u16]) -> Result<T, String>) -> T {
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

/// Before anything answers on the configured addresses: `/readyz` is 503 and a call fails
/// with the store-unavailable error within the store timeout (plus a second of slack).
pub async fn assert_unready_and_failing_fast(app: &super::TestApp, timeout_ms: u64) {
    let (status, _) = app.get("/readyz").await;
    assert_eq!(status, hyper::StatusCode::SERVICE_UNAVAILABLE);
    let started = Instant::now();
    let answer = app
        .call("session.open_session", serde_json::json!({}))
        .await;
    assert_eq!(answer["error"]["code"], -32000, "{answer}");
    assert!(
        started.elapsed() < Duration::from_millis(timeout_ms + 1_000),
        "failed within the timeout: {:?}",
        started.elapsed()
    );
}

/// Polls `/readyz` until it is 200, then opens and verifies a session; panics after `within`.
pub async fn assert_ready_within(app: &super::TestApp, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (status, _) = app.get("/readyz").await;
        if status == hyper::StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token = app.open(None).await;
    assert!(app.verify(&token).await);
}

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
fn url_for(port: u16, password: Option<&str>) -> String {
    match password {
        Some(password) => format!("redis://:{password}@127.0.0.1:{port}"),
        None => format!("redis://127.0.0.1:{port}"),
    }
}

/// A synchronous connection whose every read and write is bounded.
fn connect(port: u16, password: Option<&str>) -> redis::RedisResult<redis::Connection> {
    let conn = redis::Client::open(url_for(port, password))?
        .get_connection_with_timeout(Duration::from_secs(2))?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    conn.set_write_timeout(Some(Duration::from_secs(5)))?;
    Ok(conn)
}

/// Polls `ready` every 50 ms until it holds or `within` has passed.
fn wait_until(within: Duration, mut ready: impl FnMut() -> bool) -> bool {
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
fn info(
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

/// `ACL SETUSER <user> reset on ><password> <rules…>` on the node at `port`.
fn acl_setuser(
    port: u16,
    admin_password: Option<&str>,
    user: &str,
    password: &str,
    rules: &[&str],
) {
    let mut conn =
        connect(port, admin_password).unwrap_or_else(|e| panic!("connect to node {port}: {e}"));
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(user)
        .arg("reset")
        .arg("on")
        .arg(format!(">{password}"))
        .arg(rules)
        .query(&mut conn)
        .unwrap_or_else(|e| panic!("ACL SETUSER {user} {rules:?} on {port}: {e}"));
}

/// One `redis-server` process, killed on drop.
struct Process {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

impl Process {
    /// Starts `redis-server <args>` with its log in `dir` and waits until it answers on
    /// `port`. Fails when it exits (e.g. a port was taken meanwhile) or another process
    /// answers on `port`.
    fn start(
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

    fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL, then wait for the process to go.
    fn kill(&mut self) {
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
fn base_args(port: u16, dir: &Path, password: Option<&str>) -> Vec<String> {
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

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone)]
pub struct ClusterNode {
    /// The node's id.
    pub id: String,
    /// Its client port.
    pub port: u16,
    /// Whether it is a master now.
    pub master: bool,
    /// Whether the cluster has marked it failed (or possibly failed).
    pub failed: bool,
    /// For a replica, its master's id.
    pub master_id: Option<String>,
    /// Whether it serves slots.
    pub has_slots: bool,
}

/// A 3-master / 3-replica Redis Cluster on loopback.
pub struct RedisCluster {
    nodes: Vec<Process>,
    dir: PathBuf,
    password: Option<String>,
}

impl RedisCluster {
    /// A cluster on six free ports, without a password.
    pub fn start() -> Self {
        Self::start_on_free_ports(None)
    }

    /// A cluster on six free ports whose nodes require `password`.
    pub fn start_with_password(password: &str) -> Self {
        Self::start_on_free_ports(Some(password))
    }

    fn start_on_free_ports(password: Option<&str>) -> Self {
        on_fresh_ports(6, "a cluster", |ports| Self::try_start_on(ports, password))
    }

    /// A cluster on the given six ports (chosen in advance, e.g. to start the app first).
    pub fn start_on(ports: &[u16], password: Option<&str>) -> Self {
        Self::try_start_on(ports, password).unwrap_or_else(|why| panic!("{why}"))
    }

    fn try_start_on(ports: &[u16], password: Option<&str>) -> Result<Self, String> {
        assert_eq!(ports.len(), 6, "three masters and three replicas");
        let dir = temp_dir("cluster");
        let mut cluster = Self {
            nodes: Vec::new(),
            dir,
            password: password.map(str::to_owned),
        };
        for &port in ports {
            let node = cluster.start_node(port, ports)?;
            cluster.nodes.push(node);
        }
        cluster.create();
        Ok(cluster)
    }

    /// Starts one cluster node on `port`. The cluster bus port defaults to port + 10000,
    /// which may be past 65535 for an ephemeral port, so each node gets a free bus port of its
    /// own, chosen again if another test took it first.
    fn start_node(&self, port: u16, ports: &[u16]) -> Result<Process, String> {
        let node_dir = self.dir.join(port.to_string());
        let mut failures = Vec::new();
        for _ in 0..3 {
            let _ = std::fs::remove_dir_all(&node_dir);
            std::fs::create_dir_all(&node_dir).expect("node dir");
            let bus_port = free_ports(ports.len() + 1)
                .into_iter()
                .find(|p| !ports.contains(p))
                .expect("a free bus port");
            let mut args = base_args(port, &node_dir, self.password.as_deref());
            args.extend([
                "--cluster-enabled".into(),
                "yes".into(),
                "--cluster-config-file".into(),
                "nodes.conf".into(),
                "--cluster-node-timeout".into(),
                CLUSTER_NODE_TIMEOUT_MS.to_string(),
                "--cluster-port".into(),
                bus_port.to_string(),
            ]);
            match Process::start(&self.dir, port, self.password.as_deref(), &args) {
                Ok(node) => return Ok(node),
                Err(why) => failures.push(why),
            }
        }
        Err(failures.join("\n"))
    }

    /// `redis-cli --cluster create … --cluster-replicas 1`, then waits until every node
    /// sees all 16384 slots served and every replica is in sync.
    fn create(&self) {
        let mut cli = Command::new(find_binary("redis-cli", "REDIS_CLI"));
        cli.arg("--cluster").arg("create");
        for node in &self.nodes {
            cli.arg(format!("127.0.0.1:{}", node.port));
        }
        cli.args(["--cluster-replicas", "1", "--cluster-yes"]);
        if let Some(password) = &self.password {
            cli.env("REDISCLI_AUTH", password);
        }
        let output = cli
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let stable = wait_until(SETUP_LIMIT, || self.is_stable());
        assert!(
            stable,
            "the cluster did not become stable: {:?}",
            self.nodes()
        );
    }

    /// Every live node reports `cluster_state:ok` with all slots served and six known
    /// nodes, and every replica's link to its master is up.
    pub fn is_stable(&self) -> bool {
        self.nodes.iter().filter(|n| n.is_running()).all(|node| {
            let Ok(mut conn) = connect(node.port, self.password.as_deref()) else {
                return false;
            };
            let Ok(text) = redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut conn) else {
                return false;
            };
            let ok = text.contains("cluster_state:ok")
                && text.contains("cluster_slots_ok:16384")
                && text.contains("cluster_known_nodes:6");
            let replication = info(&mut conn, "replication").unwrap_or_default();
            let synced = match replication.get("role").map(String::as_str) {
                Some("master") => true,
                Some("slave") => {
                    replication.get("master_link_status").map(String::as_str) == Some("up")
                }
                _ => false,
            };
            ok && synced
        })
    }

    /// The ports of all six nodes, running or not.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    /// A node's URL (with the password, if any).
    pub fn url(&self, port: u16) -> String {
        url_for(port, self.password.as_deref())
    }

    /// Every node as a seed, comma-separated, as `SESSIOND_REDIS_URL` takes them.
    pub fn seed_urls(&self) -> String {
        self.ports()
            .into_iter()
            .map(|port| self.url(port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A synchronous connection to one node.
    pub fn connection(&self, port: u16) -> redis::Connection {
        connect(port, self.password.as_deref())
            .unwrap_or_else(|e| panic!("connect to node {port}: {e}"))
    }

    /// Adds the ACL user `user` with `rules` on every node (ACLs are per node, not
    /// replicated) and returns every node as a seed URL that logs in as that user.
    pub fn add_user(&self, user: &str, password: &str, rules: &[&str]) -> String {
        for port in self.ports() {
            acl_setuser(port, self.password.as_deref(), user, password, rules);
        }
        self.ports()
            .into_iter()
            .map(|port| format!("redis://{user}:{password}@127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `CLUSTER NODES` as seen by the first running node.
    pub fn nodes(&self) -> Vec<ClusterNode> {
        let Some(node) = self.nodes.iter().find(|n| n.is_running()) else {
            return Vec::new();
        };
        let Ok(mut conn) = connect(node.port, self.password.as_deref()) else {
            return Vec::new();
        };
        let text: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query(&mut conn)
            .unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let (id, addr, flags, master) = (
                    fields.first()?,
                    fields.get(1)?,
                    fields.get(2)?,
                    fields.get(3)?,
                );
                let port = addr.split('@').next()?.rsplit(':').next()?.parse().ok()?;
                let flags: Vec<&str> = flags.split(',').collect();
                Some(ClusterNode {
                    id: (*id).to_owned(),
                    port,
                    master: flags.contains(&"master"),
                    failed: flags.contains(&"fail") || flags.contains(&"fail?"),
                    master_id: (*master != "-").then(|| (*master).to_owned()),
                    has_slots: fields.len() > 8,
                })
            })
            .collect()
    }

    /// The ports of the masters that serve slots and are not failed, sorted.
    pub fn masters(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .nodes()
            .into_iter()
            .filter(|n| n.master && n.has_slots && !n.failed)
            .map(|n| n.port)
            .collect();
        ports.sort_unstable();
        ports
    }

    /// The port of `master`'s replica.
    pub fn replica_of(&self, master: u16) -> u16 {
        let nodes = self.nodes();
        let id = nodes
            .iter()
            .find(|n| n.port == master)
            .map(|n| n.id.clone())
            .unwrap_or_else(|| panic!("no node on port {master}: {nodes:?}"));
        nodes
            .iter()
            .find(|n| n.master_id.as_deref() == Some(id.as_str()))
            .map(|n| n.port)
            .unwrap_or_else(|| panic!("no replica of {master}: {nodes:?}"))
    }

    /// SIGSTOP to the node on `port`: it keeps its sockets open but answers nothing.
    pub fn pause(&self, port: u16) {
        self.signal(port, "-STOP");
    }

    /// SIGCONT to the node on `port`.
    pub fn resume(&self, port: u16) {
        self.signal(port, "-CONT");
    }

    fn signal(&self, port: u16, sig: &str) {
        let child = self
            .nodes
            .iter()
            .find(|n| n.port == port)
            .and_then(|n| n.child.as_ref())
            .unwrap_or_else(|| panic!("no running node on port {port}"));
        super::process::signal(child, sig);
    }

    /// Kills the node on `port` with SIGKILL.
    pub fn kill(&mut self, port: u16) {
        if let Some(node) = self.nodes.iter_mut().find(|n| n.port == port) {
            node.kill();
        }
    }

    /// Waits until `replica` has been promoted and reports `cluster_state:ok`; returns how
    /// long that took, or `None` after `within`.
    pub fn wait_for_promotion(&self, replica: u16, within: Duration) -> Option<Duration> {
        let start = Instant::now();
        let promoted = wait_until(within, || {
            let Ok(mut conn) = connect(replica, self.password.as_deref()) else {
                return false;
            };
            let role = info(&mut conn, "replication")
                .ok()
                .and_then(|i| i.get("role").cloned());
            let state: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query(&mut conn)
                .unwrap_or_default();
            role.as_deref() == Some("master") && state.contains("cluster_state:ok")
        });
        promoted.then(|| start.elapsed())
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One master and one replica on loopback, watched by three sentinels (quorum 2).
pub struct SentinelGroup {
    master: Process,
    replica: Process,
    sentinels: Vec<Process>,
    dir: PathBuf,
    password: Option<String>,
}

impl SentinelGroup {
    /// A group on free ports, without passwords.
    pub fn start() -> Self {
        Self::start_on_free_ports(None)
    }

    /// A group on free ports whose master, replica and sentinels all require `password`.
    pub fn start_with_password(password: &str) -> Self {
        Self::start_on_free_ports(Some(password))
    }

    fn start_on_free_ports(password: Option<&str>) -> Self {
        on_fresh_ports(5, "the sentinel group", |ports| {
            Self::try_start_on(ports, password)
        })
    }

    /// A group on the given ports: master, replica, then the three sentinels.
    pub fn start_on(ports: &[u16], password: Option<&str>) -> Self {
        Self::try_start_on(ports, password).unwrap_or_else(|why| panic!("{why}"))
    }

    fn try_start_on(ports: &[u16], password: Option<&str>) -> Result<Self, String> {
        assert_eq!(ports.len(), 5, "master, replica and three sentinels");
        let dir = temp_dir("sentinel");
        let group = Self::build(dir.clone(), ports, password);
        if group.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        group
    }

    fn build(dir: PathBuf, ports: &[u16], password: Option<&str>) -> Result<Self, String> {
        let (master_port, replica_port) = (ports[0], ports[1]);

        let master_dir = dir.join("master");
        std::fs::create_dir_all(&master_dir).expect("master dir");
        let master = Process::start(
            &dir,
            master_port,
            password,
            &base_args(master_port, &master_dir, password),
        )?;

        let replica_dir = dir.join("replica");
        std::fs::create_dir_all(&replica_dir).expect("replica dir");
        let mut args = base_args(replica_port, &replica_dir, password);
        args.extend([
            "--replicaof".into(),
            "127.0.0.1".into(),
            master_port.to_string(),
        ]);
        let replica = Process::start(&dir, replica_port, password, &args)?;

        let mut group = Self {
            master,
            replica,
            sentinels: Vec::new(),
            dir,
            password: password.map(str::to_owned),
        };
        for &port in &ports[2..] {
            let config = group.dir.join(format!("sentinel-{port}.conf"));
            let mut text = format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                 sentinel monitor {name} 127.0.0.1 {master_port} 2\n\
                 sentinel down-after-milliseconds {name} {SENTINEL_DOWN_AFTER_MS}\n\
                 sentinel failover-timeout {name} {SENTINEL_FAILOVER_TIMEOUT_MS}\n\
                 sentinel parallel-syncs {name} 1\n",
                dir = group.dir.display(),
                name = SENTINEL_MASTER_NAME,
            );
            if let Some(password) = password {
                text.push_str(&format!(
                    "sentinel auth-pass {SENTINEL_MASTER_NAME} {password}\n\
                     requirepass {password}\nsentinel sentinel-pass {password}\n"
                ));
            }
            std::fs::write(&config, text).expect("sentinel config");
            let args = vec![config.display().to_string(), "--sentinel".to_owned()];
            group
                .sentinels
                .push(Process::start(&group.dir, port, password, &args)?);
        }
        let ready = wait_until(SETUP_LIMIT, || group.is_ready());
        assert!(
            ready,
            "the sentinels did not find the replica and each other"
        );
        Ok(group)
    }

    /// The replica is in sync and every sentinel knows the master, the replica and the
    /// two other sentinels.
    fn is_ready(&self) -> bool {
        let synced = connect(self.replica.port, self.password.as_deref())
            .and_then(|mut c| info(&mut c, "replication"))
            .is_ok_and(|i| i.get("master_link_status").map(String::as_str) == Some("up"));
        synced
            && self.sentinels.iter().all(|s| {
                let Ok(mut conn) = connect(s.port, self.password.as_deref()) else {
                    return false;
                };
                let state: HashMap<String, String> = redis::cmd("SENTINEL")
                    .arg("MASTER")
                    .arg(SENTINEL_MASTER_NAME)
                    .query(&mut conn)
                    .unwrap_or_default();
                state.get("num-slaves").map(String::as_str) == Some("1")
                    && state.get("num-other-sentinels").map(String::as_str) == Some("2")
            })
    }

    /// The sentinels' URLs, comma-separated, as `SESSIOND_REDIS_URL` takes them.
    pub fn sentinel_urls(&self) -> String {
        self.sentinels
            .iter()
            .map(|s| url_for(s.port, self.password.as_deref()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Adds the ACL user `user` on the master and the replica with `data_rules`, and on every
    /// sentinel with `sentinel_rules` (ACLs are per node), and returns the sentinels' URLs
    /// logging in as that user.
    pub fn add_user(
        &self,
        user: &str,
        password: &str,
        data_rules: &[&str],
        sentinel_rules: &[&str],
    ) -> String {
        let admin = self.password.as_deref();
        for port in [self.master.port, self.replica.port] {
            acl_setuser(port, admin, user, password, data_rules);
        }
        for sentinel in &self.sentinels {
            acl_setuser(sentinel.port, admin, user, password, sentinel_rules);
        }
        self.sentinels
            .iter()
            .map(|s| format!("redis://{user}:{password}@127.0.0.1:{}", s.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The port of the node that was master at start-up.
    pub fn master_port(&self) -> u16 {
        self.master.port
    }

    /// The port of the node that was replica at start-up.
    pub fn replica_port(&self) -> u16 {
        self.replica.port
    }

    /// A synchronous connection to the master or the replica.
    pub fn connection(&self, port: u16) -> redis::Connection {
        connect(port, self.password.as_deref())
            .unwrap_or_else(|e| panic!("connect to node {port}: {e}"))
    }

    /// The `role` field of `INFO replication` on `port` (`master` or `slave`), if it answers.
    pub fn role(&self, port: u16) -> Option<String> {
        connect(port, self.password.as_deref())
            .and_then(|mut c| info(&mut c, "replication"))
            .ok()
            .and_then(|i| i.get("role").cloned())
    }

    /// Kills the master with SIGKILL.
    pub fn kill_master(&mut self) {
        self.master.kill();
    }

    /// `SENTINEL FAILOVER`: the sentinels promote the replica and demote the master, which
    /// stays up (as a replica of the new master).
    pub fn manual_failover(&self) {
        let sentinel = self.sentinels.first().expect("a sentinel");
        let mut conn = connect(sentinel.port, self.password.as_deref()).expect("sentinel");
        let _: () = redis::cmd("SENTINEL")
            .arg("FAILOVER")
            .arg(SENTINEL_MASTER_NAME)
            .query(&mut conn)
            .expect("SENTINEL FAILOVER");
    }

    /// Waits until the replica is master and every sentinel names it; returns how long that
    /// took, or `None` after `within`.
    pub fn wait_for_promotion(&self, within: Duration) -> Option<Duration> {
        let start = Instant::now();
        let replica = self.replica.port;
        let promoted = wait_until(within, || {
            let role = connect(replica, self.password.as_deref())
                .and_then(|mut c| info(&mut c, "replication"))
                .ok()
                .and_then(|i| i.get("role").cloned());
            role.as_deref() == Some("master")
                && self.sentinels.iter().all(|s| {
                    connect(s.port, self.password.as_deref())
                        .and_then(|mut c| {
                            redis::cmd("SENTINEL")
                                .arg("GET-MASTER-ADDR-BY-NAME")
                                .arg(SENTINEL_MASTER_NAME)
                                .query::<(String, u16)>(&mut c)
                        })
                        .is_ok_and(|(_, port)| port == replica)
                })
        });
        promoted.then(|| start.elapsed())
    }
}

impl Drop for SentinelGroup {
    fn drop(&mut self) {
        for sentinel in &mut self.sentinels {
            sentinel.kill();
        }
        self.master.kill();
        self.replica.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One call made by a [`Load`] worker.
#[derive(Debug, Clone)]
pub struct Call {
    /// When the call was sent.
    pub started: Instant,
    /// When its answer came.
    pub finished: Instant,
    /// Whether it got a result (not an error).
    pub ok: bool,
}

/// What a [`Load`] saw: every call, and every session it opened with when it was opened.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Every open and verify, in no particular order.
    pub calls: Vec<Call>,
    /// Tokens of the sessions opened, with when each open was sent.
    pub opened: Vec<(Instant, String)>,
}

impl LoadReport {
    /// The calls answered before `until`, as (succeeded, failed).
    pub fn counts_until(&self, until: Instant) -> (usize, usize) {
        let answered = self.calls.iter().filter(|c| c.finished < until);
        let ok = answered.clone().filter(|c| c.ok).count();
        (ok, answered.count() - ok)
    }

    /// The calls sent at or after `from`, as (succeeded, failed).
    pub fn counts_since(&self, from: Instant) -> (usize, usize) {
        let sent = self.calls.iter().filter(|c| c.started >= from);
        let ok = sent.clone().filter(|c| c.ok).count();
        (ok, sent.count() - ok)
    }

    /// When the last failed call was sent, if any failed at or after `from`.
    pub fn last_failure_since(&self, from: Instant) -> Option<Instant> {
        self.calls
            .iter()
            .filter(|c| !c.ok && c.started >= from)
            .map(|c| c.started)
            .max()
    }
}

/// Workers that open a session and verify it, over and over, until stopped.
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<LoadReport>>,
}

impl Load {
    /// Starts `workers` workers against `app`, each pausing `pause` between rounds.
    pub fn start(app: std::sync::Arc<super::TestApp>, workers: usize, pause: Duration) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let workers = (0..workers)
            .map(|_| {
                let (app, stop) = (app.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut report = LoadReport::default();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let started = Instant::now();
                        let answer = app
                            .call("session.open_session", serde_json::json!({}))
                            .await;
                        let token = answer["result"]["access_token"].as_str().map(str::to_owned);
                        report.calls.push(Call {
                            started,
                            finished: Instant::now(),
                            ok: token.is_some(),
                        });
                        if let Some(token) = token {
                            let started_verify = Instant::now();
                            let answer = app
                                .call(
                                    "session.verify_session_token",
                                    serde_json::json!({ "token": token }),
                                )
                                .await;
                            report.calls.push(Call {
                                started: started_verify,
                                finished: Instant::now(),
                                ok: answer.get("result").is_some(),
                            });
                            report.opened.push((started, token));
                        }
                        tokio::time::sleep(pause).await;
                    }
                    report
                })
            })
            .collect();
        Self { stop, workers }
    }

    /// Stops the workers and merges what they saw.
    pub async fn stop(self) -> LoadReport {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut all = LoadReport::default();
        for worker in self.workers {
            let report = worker.await.expect("load worker");
            all.calls.extend(report.calls);
            all.opened.extend(report.opened);
        }
        all
    }
}

/// A process that only speaks TLS (a `redis-server` or a sentinel), killed on drop.
struct TlsProcess(Child);

impl Drop for TlsProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Redis nodes that speak only TLS, with a password, in a directory of their own that also
/// holds the certificates: one cluster node serving all 16384 slots (`tls-cluster yes`),
/// or one master watched by one sentinel (`tls-replication yes`).
pub struct TlsTopology {
    processes: Vec<TlsProcess>,
    dir: PathBuf,
    password: String,
    /// The cluster node's port, or the master's.
    pub data_port: u16,
    /// The sentinel's port, if there is one.
    pub sentinel_port: Option<u16>,
}

impl TlsTopology {
    fn new(kind: &str, password: &str) -> Self {
        let dir = temp_dir(kind);
        super::tls::make_certificates(&dir);
        Self {
            processes: Vec::new(),
            dir,
            password: password.to_owned(),
            data_port: 0,
            sentinel_port: None,
        }
    }

    /// The TLS arguments every process gets (as `--name value` or config-file lines).
    fn tls_settings(&self, port: u16) -> Vec<(&'static str, String)> {
        vec![
            ("port", "0".to_owned()),
            ("tls-port", port.to_string()),
            ("tls-cert-file", self.file("server.crt")),
            ("tls-key-file", self.file("server.key")),
            ("tls-ca-cert-file", self.file("ca.crt")),
            ("tls-auth-clients", "no".to_owned()),
            ("bind", "127.0.0.1".to_owned()),
            ("dir", self.dir.display().to_string()),
            ("requirepass", self.password.clone()),
        ]
    }

    fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// The CA certificate that signed the servers' certificates.
    pub fn ca_file(&self) -> String {
        self.file("ca.crt")
    }

    /// Starts `redis-server <args>` and waits until `port` accepts connections.
    fn spawn(&mut self, args: &[String], port: u16) {
        let child = Command::new(find_binary("redis-server", "REDIS_SERVER"))
            .args(args)
            .arg("--logfile")
            .arg(self.dir.join(format!("redis-{port}.log")))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.processes.push(TlsProcess(child));
        let listening = wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(listening, "redis-server did not listen on {port}");
    }

    /// `redis-cli --tls … -p <port> <args>`: its output, trimmed.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        let output = Command::new(find_binary("redis-cli", "REDIS_CLI"))
            .args(["--tls", "--cacert"])
            .arg(self.ca_file())
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .env("REDISCLI_AUTH", &self.password)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// One cluster node, TLS only, serving every slot.
    pub fn cluster(password: &str) -> Self {
        let mut topology = Self::new("tls-cluster", password);
        let ports = free_ports(2);
        let (port, bus) = (ports[0], ports[1]);
        let mut args: Vec<String> = topology
            .tls_settings(port)
            .into_iter()
            .flat_map(|(k, v)| [format!("--{k}"), v])
            .collect();
        args.extend(
            [
                "--tls-cluster",
                "yes",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-port",
                &bus.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ]
            .map(str::to_owned),
        );
        topology.spawn(&args, port);
        topology.data_port = port;
        assert_eq!(
            topology.cli(port, &["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]),
            "OK"
        );
        let ok = wait_until(SETUP_LIMIT, || {
            topology
                .cli(port, &["CLUSTER", "INFO"])
                .contains("cluster_state:ok")
        });
        assert!(ok, "the one-node TLS cluster is not ok");
        topology
    }

    /// One master and one sentinel (quorum 1), TLS only.
    pub fn sentinel(password: &str) -> Self {
        let mut topology = Self::new("tls-sentinel", password);
        let ports = free_ports(2);
        let (master, sentinel) = (ports[0], ports[1]);
        let mut args: Vec<String> = topology
            .tls_settings(master)
            .into_iter()
            .flat_map(|(k, v)| [format!("--{k}"), v])
            .collect();
        args.extend(["--save", "", "--appendonly", "no"].map(str::to_owned));
        topology.spawn(&args, master);
        topology.data_port = master;

        let mut config: String = topology
            .tls_settings(sentinel)
            .into_iter()
            .map(|(k, v)| format!("{k} {v}\n"))
            .collect();
        config.push_str(&format!(
            "tls-replication yes\n\
             sentinel monitor {SENTINEL_MASTER_NAME} 127.0.0.1 {master} 1\n\
             sentinel auth-pass {SENTINEL_MASTER_NAME} {password}\n\
             sentinel down-after-milliseconds {SENTINEL_MASTER_NAME} {SENTINEL_DOWN_AFTER_MS}\n"
        ));
        let file = topology.dir.join("sentinel.conf");
        std::fs::write(&file, config).expect("sentinel.conf");
        topology.spawn(
            &[file.display().to_string(), "--sentinel".to_owned()],
            sentinel,
        );
        topology.sentinel_port = Some(sentinel);
        // Ready once the sentinel has reached the master over TLS and sees it as up.
        let ok = wait_until(SETUP_LIMIT, || {
            let state = topology.cli(sentinel, &["SENTINEL", "MASTER", SENTINEL_MASTER_NAME]);
            let mut lines = state.lines();
            std::iter::from_fn(|| Some((lines.next()?, lines.next()?)))
                .any(|(k, v)| k == "flags" && v == "master")
        });
        assert!(ok, "the sentinel did not reach the TLS master");
        topology
    }
}

impl Drop for TlsTopology {
    fn drop(&mut self) {
        self.processes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs the binary with `vars` (mode and `rediss://` URLs holding `password`): with the test
/// CA trusted through `SSL_CERT_FILE`, sessions open, verify and close and `/readyz` is 200;
/// without it, every call is `-32000` within the timeout and `/readyz` is 503. The password
/// appears in no log line either way.
pub fn sessions_over_tls(vars: &[(&str, &str)], ca: &str, password: &str) {
    use super::process::{get_status, json_body, post, start, stop_and_collect_logs};
    let open =
        r#"{"jsonrpc":"2.0","method":"session.open_session","params":{"expires_in":60},"id":1}"#;
    let call = |method: &str, token: &str| {
        format!(r#"{{"jsonrpc":"2.0","method":"{method}","params":{{"token":"{token}"}},"id":2}}"#)
    };

    let mut trusted = vars.to_vec();
    trusted.push(("SSL_CERT_FILE", ca));
    trusted.push(("RUST_LOG", "debug"));
    let (mut child, http) = start(&trusted);
    let opened = json_body(&post(http, open));
    let token = opened["result"]["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{opened}"))
        .to_owned();
    let verify = call("session.verify_session_token", &token);
    assert_eq!(json_body(&post(http, &verify))["result"]["active"], true);
    assert_eq!(get_status(http, "/readyz"), 200);
    let closed = json_body(&post(http, &call("session.close_session", &token)));
    assert_eq!(closed["result"], true, "{closed}");
    assert_eq!(json_body(&post(http, &verify))["result"]["active"], false);
    let logs = stop_and_collect_logs(&mut child);
    assert!(!logs.contains(password), "password in the logs:\n{logs}");

    let mut untrusted = vars.to_vec();
    untrusted.push(("SESSIOND_REDIS_TIMEOUT_MS", "500"));
    untrusted.push(("RUST_LOG", "debug"));
    let (mut child, http) = start(&untrusted);
    let started = Instant::now();
    let refused = json_body(&post(http, open));
    assert_eq!(refused["error"]["code"], -32000, "{refused}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(get_status(http, "/readyz"), 503);
    let logs = stop_and_collect_logs(&mut child);
    assert!(!logs.contains(password), "password in the logs:\n{logs}");
}
