//! Log set-up: text or JSON lines on standard output, the level from `RUST_LOG` (default
//! `info`). Lines are handed to a background writer thread: a slow pipe on stdout never blocks
//! a worker (when the writer falls 128k lines behind, further lines are dropped rather than
//! waited for). Nothing logged anywhere carries a token or a credential.

use std::io::IsTerminal;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Lines the writer may fall behind by before further ones are dropped.
const BUFFERED_LINES: usize = 128 * 1024;

/// Installs the global subscriber. Keep the guard until the process ends: dropping it
/// flushes the lines still buffered. A second call installs nothing.
pub fn init(format: LogFormat) -> WorkerGuard {
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(BUFFERED_LINES)
        .thread_name("sessiond-log")
        .finish(std::io::stdout());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stdout().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
    guard
}
