//! A real nginx in front of test replicas: started in the foreground (`daemon off`) with a
//! given configuration on a free loopback port, in its own temporary directory (pid file, error
//! log, stdout and stderr there), and stopped when dropped. Also a minimal DNS responder, for
//! configurations that resolve their backends by name at request time (Docker's DNS).

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::free_port;

/// The nginx binary: `$NGINX`, else `nginx` on `PATH`, else `/usr/sbin/nginx`.
pub fn nginx_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NGINX") {
        return PathBuf::from(path);
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':').chain([
        "/usr/sbin",
        "/usr/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
    ]) {
        let candidate = PathBuf::from(dir).join("nginx");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "nginx not found: the rolling-restart tests need a real nginx. Install it \
         (apt-get install nginx-light) or run scripts/test, which does"
    );
}

/// `*_temp_path` directives for the `http` block that keep nginx's temporary files in `dir`
/// (the compiled-in /var/lib/nginx is not writable without root). They change nothing else.
pub fn temp_path_directives(dir: &Path) -> String {
    let configure = Command::new(nginx_binary())
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .unwrap_or_default();
    let mut directives = String::new();
    for (directive, module) in [
        ("client_body_temp_path", None),
        ("proxy_temp_path", Some("proxy")),
        ("fastcgi_temp_path", Some("fastcgi")),
        ("uwsgi_temp_path", Some("uwsgi")),
        ("scgi_temp_path", Some("scgi")),
    ] {
        let compiled_out =
            module.is_some_and(|m| configure.contains(&format!("--without-http_{m}_module")));
        if !compiled_out {
            let name = directive.trim_end_matches("_temp_path");
            directives.push_str(&format!(
                "    {directive} {};\n",
                dir.join(format!("{name}_temp")).display()
            ));
        }
    }
    directives
}

/// An nginx master process (and its workers) in a process group of its own.
pub struct Nginx {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
}

impl Nginx {
    /// Starts nginx with the configuration `render(dir, port)` returns, where `dir` is its
    /// private directory and `port` a free loopback port it must listen on; waits until the
    /// port accepts connections.
    pub fn start(render: impl Fn(&Path, u16) -> String) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "sessiond-test-nginx-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("nginx dir");
        let mut nginx = Self {
            child: None,
            port: 0,
            dir,
        };
        for _ in 0..5 {
            nginx.port = free_port();
            let config = render(&nginx.dir, nginx.port);
            if nginx.launch(&config) {
                return nginx;
            }
        }
        panic!(
            "could not start nginx; its error log:\n{}",
            nginx.error_log()
        );
    }

    fn launch(&mut self, config: &str) -> bool {
        let conf = self.dir.join("nginx.conf");
        std::fs::write(&conf, config).expect("write nginx.conf");
        let dir = self.dir.display();
        let stdout = std::fs::File::create(self.dir.join("stdout.log")).expect("stdout.log");
        let stderr = std::fs::File::create(self.dir.join("stderr.log")).expect("stderr.log");
        let child = Command::new(nginx_binary())
            .arg("-p")
            .arg(&self.dir)
            .arg("-e")
            .arg(self.dir.join("error.log"))
            .arg("-c")
            .arg(&conf)
            .arg("-g")
            .arg(format!(
                "daemon off; pid {dir}/nginx.pid; error_log {dir}/error.log;"
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            // Its own group, so that the workers are killed with the master on drop.
            .process_group(0)
            .spawn()
            .expect("spawn nginx");
        self.child = Some(child);
        super::group::wait_listening(&mut self.child, self.port, Duration::from_secs(10))
    }

    /// `127.0.0.1:<port>`
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// nginx's error log (`-e` and `-g error_log`, level `error` and up).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// What nginx wrote to stderr (a configuration's own `error_log stderr`).
    pub fn stderr_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    /// What nginx wrote to stdout (a configuration's `access_log /dev/stdout`).
    pub fn stdout_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("stdout.log")).unwrap_or_default()
    }

    /// SIGTERM (nginx's fast shutdown), then SIGKILL to the whole group after a bound.
    fn stop(&mut self) {
        super::group::stop(&mut self.child);
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A DNS responder on a loopback UDP port that answers A queries for one name with a fixed
/// list of addresses (and NXDOMAIN for anything else): what Docker's embedded DNS does for a
/// service with several replicas. Stops when dropped.
pub struct FakeDns {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeDns {
    pub fn start(name: &str, addresses: Vec<Ipv4Addr>) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind DNS socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("DNS socket timeout");
        let addr = socket.local_addr().expect("DNS address");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let name = name.to_ascii_lowercase();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !stopped.load(Ordering::Relaxed) {
                let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(answer) = dns_answer(&buf[..n], &name, &addresses) {
                    let _ = socket.send_to(&answer, peer);
                }
            }
        });
        Self {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The answer to one DNS query (RFC 1035 §4.1), or `None` for something that is not one.
fn dns_answer(query: &[u8], name: &str, addresses: &[Ipv4Addr]) -> Option<Vec<u8>> {
    if query.len() < 12 || query[2] & 0x80 != 0 || query[4..6] != [0, 1] {
        return None;
    }
    // The question: labels up to the root label, then type and class.
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*query.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(at..at + len)?).to_ascii_lowercase());
        at += len;
    }
    let question = query.get(12..at + 4)?;
    let qtype = u16::from_be_bytes([query[at], query[at + 1]]);
    let found = labels.join(".") == name;
    let answers: &[Ipv4Addr] = if found && qtype == 1 { addresses } else { &[] };
    let mut answer = Vec::with_capacity(512);
    answer.extend_from_slice(&query[0..2]);
    // QR, the query's RD, RA; NOERROR or NXDOMAIN.
    answer.push(0x80 | (query[2] & 0x01));
    answer.push(if found { 0x80 } else { 0x83 });
    answer.extend_from_slice(&[0, 1]);
    answer.extend_from_slice(&u16::try_from(answers.len()).ok()?.to_be_bytes());
    answer.extend_from_slice(&[0, 0, 0, 0]);
    answer.extend_from_slice(question);
    for address in answers {
        // A pointer to the name in the question, type A, class IN, TTL 1 s, 4 bytes.
        answer.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4]);
        answer.extend_from_slice(&address.octets());
    }
    Some(answer)
}
