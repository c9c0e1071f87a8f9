//! Redis over TLS (`rediss://`, certificates generated here with openssl) and Redis ACL users,
//! through the real binary: sessions work, an untrusted certificate or a wrong password is a
//! -32000 (never a hang), and no credential appears in any log line.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::free_port;
use common::process::{get_status, json_body, post, start, stop_and_collect_logs};
use common::requests::{quoted, verify_as};
use common::tls::make_certificates;

const OPEN: &str =
    r#"{"jsonrpc":"2.0","method":"session.open_session","params":{"expires_in":60},"id":1}"#;

/// A redis-server started with arbitrary arguments, killed on drop.
struct Server(Child, PathBuf);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sessiond-{name}-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

fn start_redis(dir: &Path, args: &[&str], port: u16) -> Server {
    let child = Command::new("redis-server")
        .args([
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
        ])
        .arg(dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Server(child, dir.to_owned())
}

#[test]
fn sessions_over_tls_with_a_trusted_ca() {
    let dir = scratch_dir("tls");
    make_certificates(&dir);
    let port = free_port();
    let tls_port = port.to_string();
    let _redis = start_redis(
        &dir,
        &[
            "--port",
            "0",
            "--tls-port",
            &tls_port,
            "--tls-cert-file",
            "server.crt",
            "--tls-key-file",
            "server.key",
            "--tls-ca-cert-file",
            "ca.crt",
            "--tls-auth-clients",
            "no",
        ],
        port,
    );
    let ca = dir.join("ca.crt");
    let ca = ca.to_str().expect("path");

    // Trusted through SSL_CERT_FILE: sessions work over TLS.
    for host in ["127.0.0.1", "localhost"] {
        let url = format!("rediss://{host}:{port}");
        let (mut child, http) = start(&[("SESSIOND_REDIS_URL", &url), ("SSL_CERT_FILE", ca)]);
        let opened = json_body(&post(http, OPEN));
        let token = opened["result"]["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("{opened}"));
        assert_eq!(
            json_body(&post(http, &verify_as(&quoted(token), "2")))["result"]["active"],
            true
        );
        assert_eq!(get_status(http, "/readyz"), 200);
        stop_and_collect_logs(&mut child);
    }

    // Not trusted: every call is the store-unavailable error, quickly.
    let url = format!("rediss://127.0.0.1:{port}");
    let (mut child, http) = start(&[
        ("SESSIOND_REDIS_URL", &url),
        ("SESSIOND_REDIS_TIMEOUT_MS", "500"),
    ]);
    let started = Instant::now();
    let refused = json_body(&post(http, OPEN));
    assert_eq!(refused["error"]["code"], -32000, "{refused}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(get_status(http, "/readyz"), 503);
    stop_and_collect_logs(&mut child);

    // A plain redis:// URL against the TLS port does not work either.
    let (mut child, http) = start(&[
        ("SESSIOND_REDIS_URL", &format!("redis://127.0.0.1:{port}")),
        ("SESSIOND_REDIS_TIMEOUT_MS", "500"),
    ]);
    assert_eq!(json_body(&post(http, OPEN))["error"]["code"], -32000);
    stop_and_collect_logs(&mut child);
}

#[test]
fn an_acl_user_limited_to_the_key_prefix_and_the_four_commands() {
    let dir = scratch_dir("acl");
    let port = free_port();
    let _redis = start_redis(
        &dir,
        &[
            "--port",
            &port.to_string(),
            "--user",
            "default",
            "off",
            "--user",
            "sessiond",
            "on",
            ">Sup3r-s3cret",
            "~sessiond:*",
            "-@all",
            "+set",
            "+exists",
            "+del",
            "+ping",
        ],
        port,
    );
    let url = format!("redis://sessiond:Sup3r-s3cret@127.0.0.1:{port}");
    let (mut child, http) = start(&[("SESSIOND_REDIS_URL", &url), ("RUST_LOG", "debug")]);
    let opened = json_body(&post(http, OPEN));
    let token = opened["result"]["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{opened}"))
        .to_owned();
    assert_eq!(
        json_body(&post(http, &verify_as(&quoted(&token), "2")))["result"]["active"],
        true
    );
    assert_eq!(get_status(http, "/readyz"), 200);
    let logs = stop_and_collect_logs(&mut child);
    assert!(!logs.contains("Sup3r-s3cret"), "{logs}");
    assert!(!logs.contains(&token));

    // A wrong password: -32000, readiness 503, and neither password in the logs.
    let url = format!("redis://sessiond:Wr0ng-pa55@127.0.0.1:{port}");
    let (mut child, http) = start(&[
        ("SESSIOND_REDIS_URL", &url),
        ("RUST_LOG", "trace"),
        ("SESSIOND_REDIS_TIMEOUT_MS", "500"),
    ]);
    assert_eq!(json_body(&post(http, OPEN))["error"]["code"], -32000);
    assert_eq!(get_status(http, "/readyz"), 503);
    let logs = stop_and_collect_logs(&mut child);
    assert!(
        logs.contains("sessions live in Redis"),
        "logs captured: {logs}"
    );
    assert!(
        logs.contains("redis://sessiond:***@127.0.0.1"),
        "the URL is logged redacted: {logs}"
    );
    assert!(!logs.contains("Wr0ng-pa55"), "{logs}");

    // A prefix outside the user's key pattern is refused by Redis: -32000, not a false answer.
    let url = format!("redis://sessiond:Sup3r-s3cret@127.0.0.1:{port}");
    let (mut child, http) = start(&[
        ("SESSIOND_REDIS_URL", &url),
        ("SESSIOND_KEY_PREFIX", "other:"),
    ]);
    assert_eq!(json_body(&post(http, OPEN))["error"]["code"], -32000);
    stop_and_collect_logs(&mut child);
}
