//! The `sessiond` binary: read settings, set up logs, bind the listener and serve on the
//! worker threads until SIGTERM or Ctrl-C. `sessiond healthcheck` probes a running instance
//! instead.

use std::process::ExitCode;
use std::time::Duration;

use sessiond::config::Settings;
use sessiond::http::{health, server, shutdown};
use sessiond::telemetry;

/// mimalloc rather than glibc's malloc: less CPU per request (docs/BENCHMARKS.md, round two).
/// Built without transparent huge pages (`no_thp` in Cargo.toml): idle connections stay small.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("sessiond: configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    match std::env::args().nth(1).as_deref() {
        None => {}
        Some("healthcheck") => {
            return if health::probe(settings.http.listen, Duration::from_secs(2)) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
        Some("--version" | "-V") => {
            println!("sessiond {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!(
                "sessiond: unknown argument {other:?}; usage: sessiond [healthcheck | --version] \
                 (settings come from SESSIOND_* variables)"
            );
            return ExitCode::from(2);
        }
    }
    let _logs = telemetry::init(settings.log_format);
    let listener = match std::net::TcpListener::bind(settings.http.listen) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("sessiond: cannot listen on {}: {err}", settings.http.listen);
            return ExitCode::FAILURE;
        }
    };
    server::run(listener, settings, shutdown::signal())
}
