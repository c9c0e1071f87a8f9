//! The `sessiond` binary: read settings, set up logs, build the app, serve until SIGTERM or
//! Ctrl-C. `sessiond healthcheck` probes a running instance instead.

use std::process::ExitCode;
use std::time::Duration;

use sessiond::app::App;
use sessiond::config::Settings;
use sessiond::{healthcheck, server, shutdown, telemetry};

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
    let mut builder = match settings.worker_threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(n);
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("sessiond: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(settings))
}

async fn run(settings: Settings) -> ExitCode {
    let app = match App::from_settings(&settings) {
        Ok(app) => app,
        Err(err) => {
            eprintln!("sessiond: cannot set up the session store: {err}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(settings.listen).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("sessiond: cannot listen on {}: {err}", settings.listen);
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(listen = %settings.listen, store = app.sessions.store().kind(), version = env!("CARGO_PKG_VERSION"), "sessiond is listening");
    server::serve(listener, app, shutdown::signal()).await;
    ExitCode::SUCCESS
}
