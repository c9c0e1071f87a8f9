//! The `sessiond` binary: read settings, set up logs, serve on the worker threads until SIGTERM
//! or Ctrl-C (`workers`). `sessiond healthcheck` probes a running instance instead.

use std::process::ExitCode;
use std::time::Duration;

use sessiond::config::Settings;
use sessiond::{healthcheck, telemetry, workers};

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
            return if healthcheck::probe(settings.listen, Duration::from_secs(2)) {
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
    telemetry::init(settings.log_format);
    workers::run(settings)
}
