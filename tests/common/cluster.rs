//! A Redis Cluster of three masters with one replica each on loopback (built with
//! `redis-cli --cluster create`), for the cluster tests.
//!
//! Every node runs on free loopback ports in the helper's own temporary directory, with a
//! short `cluster-node-timeout` so that a failover takes seconds, and is killed when the
//! helper is dropped, also when a test panics. Every wait is bounded.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::acl;
use super::redis_nodes::{
    Process, SETUP_LIMIT, base_args, connect, find_binary, free_ports, info, on_fresh_ports,
    temp_dir, url_for, wait_until,
};

/// `cluster-node-timeout` of the test clusters: how long a master may be unreachable before
/// the others mark it failed and its replica is promoted.
pub const CLUSTER_NODE_TIMEOUT_MS: u64 = 1_000;

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
            acl::setuser(port, self.password.as_deref(), user, password, rules);
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
