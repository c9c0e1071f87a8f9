//! One `sessiond` replica: the real binary as a child process on a fixed loopback address,
//! which can be sent SIGTERM, waited for (with a bound) and started again on the same address,
//! as a rolling restart does. Its logs go to a file that a failing test can print; the process
//! is killed when the replica is dropped.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A `sessiond` child process serving on `addr`.
pub struct Replica {
    pub name: String,
    pub addr: SocketAddr,
    vars: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

impl Replica {
    /// Starts `sessiond` on `addr` with these `SESSIOND_*` variables (`SESSIOND_LISTEN` is set
    /// from `addr`) and waits until `/readyz` answers 200.
    pub fn start(name: &str, addr: SocketAddr, vars: &[(&str, &str)]) -> Self {
        let log = std::env::temp_dir().join(format!(
            "sessiond-test-replica-{}-{}-{}.log",
            std::process::id(),
            addr.ip(),
            addr.port()
        ));
        let _ = std::fs::remove_file(&log);
        let mut replica = Self {
            name: name.to_owned(),
            addr,
            vars: vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            log,
            child: None,
        };
        replica.spawn();
        replica.wait_ready(Duration::from_secs(10));
        replica
    }

    /// Starts the process (again) on the same address; does not wait for it.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "{} is still running", self.name);
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("replica log file");
        let err = out.try_clone().expect("replica log file");
        let child = Command::new(env!("CARGO_BIN_EXE_sessiond"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .env("SESSIOND_LISTEN", self.addr.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn sessiond");
        self.child = Some(child);
    }

    /// Polls `GET /readyz` until it answers 200; returns how long that took. Panics (with the
    /// replica's logs) when the process exits first or `within` passes.
    pub fn wait_ready(&mut self, within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            if matches!(http_get(self.addr, "/readyz"), Some((200, _))) {
                return started.elapsed();
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!(
                    "{} exited ({status}) before it was ready; its logs:\n{}",
                    self.name,
                    self.logs()
                );
            }
            assert!(
                started.elapsed() < within,
                "{} not ready within {within:?}; its logs:\n{}",
                self.name,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends SIGTERM (`kill -TERM <pid>`).
    pub fn sigterm(&self) {
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -TERM {pid}");
    }

    /// Waits for the process to exit; after `within` it is killed and the test fails.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        let child = self.child.as_mut().expect("running");
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                self.child = None;
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                self.child = None;
                panic!(
                    "{} did not exit within {within:?} of SIGTERM; its logs:\n{}",
                    self.name,
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Everything the replica wrote to stdout and stderr, over all its runs.
    pub fn logs(&self) -> String {
        let mut logs = String::new();
        if let Ok(mut file) = File::open(&self.log) {
            let _ = file.read_to_string(&mut logs);
        }
        logs
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// `GET path` on a fresh connection: the status and body, or `None` when nothing answered.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    exchange(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: sessiond\r\nConnection: close\r\n\r\n"),
    )
}

/// `POST /` with a JSON body on a fresh connection: the status and body.
pub fn http_post(addr: SocketAddr, body: &str) -> Option<(u16, String)> {
    exchange(
        addr,
        &format!(
            "POST / HTTP/1.1\r\nHost: sessiond\r\nContent-Type: application/json\r\n\
             Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

fn exchange(addr: SocketAddr, request: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let status = answer.get(9..12)?.parse().ok()?;
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}
