//! Turning one setting's text into its value, within the bounds the program can honour. The
//! environment and the TOML file both reach these parsers as text, so a value is accepted or
//! refused the same way wherever it comes from.

use std::net::SocketAddr;
use std::time::Duration;

use super::ConfigError;

/// A setting's text and where it came from, for the error line.
#[derive(Debug, Clone)]
pub struct Raw {
    /// The value as text (trimmed by the parsers).
    pub text: String,
    /// `Some(key)` when it came from the file named by `SESSIOND_CONFIG`.
    pub file_key: Option<String>,
}

/// The largest value each kind of number may take. Beyond them the program could not honour
/// the setting (a semaphore of 2^61 permits panics; Redis refuses `SET EX` past ~9.2e15 s).
pub mod ceiling {
    /// 100 years of seconds: any `expires_in` or lifetime.
    pub const SECONDS: u64 = 100 * 365 * 86_400;
    /// One hour of milliseconds: any timeout or drain period.
    pub const MILLIS: u64 = 3_600_000;
    /// 1 GiB: the request body limit.
    pub const BODY_BYTES: u64 = 1 << 30;
    /// Calls in one batch.
    pub const BATCH: u64 = 100_000;
    /// Connections served at once.
    pub const CONNECTIONS: u64 = 1_000_000;
    /// Worker threads.
    pub const WORKERS: u64 = 1_024;
    /// Concurrent HTTP/2 streams per connection.
    pub const H2_STREAMS: u64 = 1_000;
}

pub(super) fn invalid(var: &'static str, raw: &Raw, reason: String) -> ConfigError {
    let reason = match &raw.file_key {
        Some(key) => format!("{reason} (key {key:?} in the SESSIOND_CONFIG file)"),
        None => reason,
    };
    ConfigError::Invalid { var, reason }
}

/// A whole number from `min` to `max`; `default` when unset.
pub fn number(
    var: &'static str,
    raw: Option<&Raw>,
    default: u64,
    (min, max): (u64, u64),
) -> Result<u64, ConfigError> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    let text = raw.text.trim();
    let value = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse::<u64>().ok()
    } else {
        None
    };
    match value {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(invalid(
            var,
            raw,
            format!("{text:?} is not allowed; expected a whole number from {min} to {max}"),
        )),
    }
}

/// A positive whole number up to `max`.
pub fn positive(
    var: &'static str,
    raw: Option<&Raw>,
    default: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    number(var, raw, default, (1, max))
}

/// A count that must fit in memory (`usize`).
pub fn count(
    var: &'static str,
    raw: Option<&Raw>,
    default: u64,
    max: u64,
) -> Result<usize, ConfigError> {
    let n = positive(var, raw, default, max)?;
    // Every ceiling is far below usize::MAX on the 64-bit targets this builds for.
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// Milliseconds, from 1 to an hour.
pub fn millis(var: &'static str, raw: Option<&Raw>, default: u64) -> Result<Duration, ConfigError> {
    positive(var, raw, default, ceiling::MILLIS).map(Duration::from_millis)
}

/// Milliseconds, from 0 to an hour.
pub fn millis_or_zero(
    var: &'static str,
    raw: Option<&Raw>,
    default: u64,
) -> Result<Duration, ConfigError> {
    number(var, raw, default, (0, ceiling::MILLIS)).map(Duration::from_millis)
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
pub fn boolean(var: &'static str, raw: Option<&Raw>, default: bool) -> Result<bool, ConfigError> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    match raw.text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        other => Err(invalid(
            var,
            raw,
            format!("{other:?} is not allowed; expected true or false"),
        )),
    }
}

/// An `ip:port` address.
pub fn address(
    var: &'static str,
    raw: Option<&Raw>,
    default: SocketAddr,
) -> Result<SocketAddr, ConfigError> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    let text = raw.text.trim();
    text.parse().map_err(|_| {
        invalid(
            var,
            raw,
            format!("{text:?} is not an address; expected ip:port such as 0.0.0.0:8080"),
        )
    })
}

/// One of `choices`.
pub fn choice<T: Copy>(
    var: &'static str,
    raw: Option<&Raw>,
    default: T,
    choices: &[(&str, T)],
) -> Result<T, ConfigError> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    let text = raw.text.trim();
    match choices.iter().find(|(name, _)| *name == text) {
        Some((_, value)) => Ok(*value),
        None => {
            let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
            Err(invalid(
                var,
                raw,
                format!("{text:?} is not allowed; expected {}", names.join(" or ")),
            ))
        }
    }
}
