//! One Redis master with one replica on loopback, watched by three sentinels, for the
//! sentinel tests.
//!
//! Every process runs on free loopback ports in the helper's own temporary directory, with
//! short failure-detection timeouts so that a failover takes seconds, and is killed when the
//! helper is dropped, also when a test panics. Every wait is bounded.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::acl;
use super::redis_nodes::{
    Process, SETUP_LIMIT, base_args, connect, info, on_fresh_ports, temp_dir, url_for, wait_until,
};

/// `down-after-milliseconds` of the test sentinels: how long the master may be unreachable
/// before a sentinel considers it down.
pub const SENTINEL_DOWN_AFTER_MS: u64 = 1_000;
/// `failover-timeout` of the test sentinels (also how soon a failed election is retried:
/// twice this).
pub const SENTINEL_FAILOVER_TIMEOUT_MS: u64 = 2_000;
/// The name the sentinels know the master by.
pub const SENTINEL_MASTER_NAME: &str = "sessiond-master";

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
            acl::setuser(port, admin, user, password, data_rules);
        }
        for sentinel in &self.sentinels {
            acl::setuser(sentinel.port, admin, user, password, sentinel_rules);
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
