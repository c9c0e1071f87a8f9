//! Redis nodes that speak only TLS, with a password, for the `rediss://` tests of the cluster
//! and sentinel modes; the certificates are made by `tls.rs`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::redis_nodes::{SETUP_LIMIT, find_binary, free_ports, temp_dir, wait_until};
use super::sentinel::{SENTINEL_DOWN_AFTER_MS, SENTINEL_MASTER_NAME};

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
    use super::requests::{close_as, quoted, verify_as};
    let open = &super::requests::open("60");

    let mut trusted = vars.to_vec();
    trusted.push(("SSL_CERT_FILE", ca));
    trusted.push(("RUST_LOG", "debug"));
    let (mut child, http) = start(&trusted);
    let opened = json_body(&post(http, open));
    let token = opened["result"]["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{opened}"))
        .to_owned();
    let verify = verify_as(&quoted(&token), "2");
    assert_eq!(json_body(&post(http, &verify))["result"]["active"], true);
    assert_eq!(get_status(http, "/readyz"), 200);
    let closed = json_body(&post(http, &close_as(&quoted(&token), "2")));
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
