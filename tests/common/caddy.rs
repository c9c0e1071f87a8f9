//! A real Caddy (Debian's `caddy`) in front of test servers: `caddy run` in the foreground with
//! a given Caddyfile on a free loopback port, in its own temporary directory (HOME and the XDG
//! directories point there, so nothing is written elsewhere; its log goes to a file there), and
//! stopped when dropped. The admin endpoint is off, so several can run at once.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::free_port;

/// The caddy binary: `$CADDY`, else `caddy` on `PATH`, else `/usr/bin/caddy`.
pub fn caddy_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CADDY") {
        return PathBuf::from(path);
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':').chain([
        "/usr/bin",
        "/usr/sbin",
        "/usr/local/bin",
    ]) {
        let candidate = PathBuf::from(dir).join("caddy");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "caddy not found: the gateway tests need a real Caddy. Install it \
         (apt-get install caddy) or run scripts/test, which does"
    );
}

/// Global options for a test Caddy: no admin endpoint (several Caddys at once), no automatic
/// HTTPS, and every listener on loopback. Put them before the site blocks.
pub const TEST_GLOBAL_OPTIONS: &str =
    "{\n\tadmin off\n\tauto_https off\n\tdefault_bind 127.0.0.1\n}\n\n";

/// A `caddy run` process in a process group of its own.
pub struct Caddy {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
}

impl Caddy {
    /// Starts Caddy with the Caddyfile `render(dir, port)` returns, where `dir` is its private
    /// directory and `port` a free loopback port it must listen on; waits until the port
    /// accepts connections.
    pub fn start(render: impl Fn(&Path, u16) -> String) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "sessiond-test-caddy-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("caddy dir");
        let mut caddy = Self {
            child: None,
            port: 0,
            dir,
        };
        for _ in 0..5 {
            caddy.port = free_port();
            let config = render(&caddy.dir, caddy.port);
            if caddy.launch(&config) {
                return caddy;
            }
        }
        panic!("could not start caddy; its log:\n{}", caddy.log());
    }

    fn launch(&mut self, config: &str) -> bool {
        let file = self.dir.join("Caddyfile");
        std::fs::write(&file, config).expect("write Caddyfile");
        let log = std::fs::File::create(self.dir.join("caddy.log")).expect("caddy.log");
        let log2 = log.try_clone().expect("caddy.log");
        let child = Command::new(caddy_binary())
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&file)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &self.dir)
            .env("XDG_DATA_HOME", self.dir.join("data"))
            .env("XDG_CONFIG_HOME", self.dir.join("config"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .process_group(0)
            .spawn()
            .expect("spawn caddy");
        self.child = Some(child);
        super::group::wait_listening(&mut self.child, self.port, Duration::from_secs(15))
    }

    /// `127.0.0.1:<port>`
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Everything Caddy wrote (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("caddy.log")).unwrap_or_default()
    }

    /// SIGTERM, then SIGKILL to the whole group after a bound.
    fn stop(&mut self) {
        super::group::stop(&mut self.child);
    }
}

impl Drop for Caddy {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
