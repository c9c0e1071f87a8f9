//! A server program the tests start in its own process group (nginx, Caddy): wait until it
//! listens, and stop it with its workers.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Waits up to `within` until something listens on loopback `port`. `false` (and the child
/// taken) when it exits first; `false` (and the group stopped) when time runs out.
pub fn wait_listening(child: &mut Option<Child>, port: u16, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        let exited = child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_some());
        if exited {
            *child = None;
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop(child);
    false
}

/// SIGTERM, then SIGKILL to the whole group after a bound.
pub fn stop(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && child.try_wait().ok().flatten().is_none() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stderr(Stdio::null())
            .status();
        let _ = child.kill();
        let _ = child.wait();
    }
}
