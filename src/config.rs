//! Settings: read from `SESSIOND_*` environment variables and, optionally, a TOML file named
//! by `SESSIOND_CONFIG` (the environment wins), then checked once at start-up.
//!
//! Every value is read as text and parsed here, so that a bad value is refused with one line
//! that names the variable and says what is allowed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use redis::IntoConnectionInfo;
use serde::Deserialize;

use crate::auth::ApiKeys;
use crate::redact::redact_url;

/// Everything the service needs to know at start-up.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address the HTTP server binds (`SESSIOND_LISTEN`).
    pub listen: SocketAddr,
    /// Which session store to use.
    pub store: StoreSettings,
    /// Prefix of every store key (`SESSIOND_KEY_PREFIX`).
    pub key_prefix: String,
    /// Seconds granted when `expires_in` is absent or null.
    pub default_expires_in: u64,
    /// Largest `expires_in` accepted.
    pub max_expires_in: u64,
    /// Bound on each store operation.
    pub redis_timeout: Duration,
    /// Log line format.
    pub log_format: LogFormat,
    /// Caller authentication (`SESSIOND_API_KEYS`); `None` means none.
    pub api_keys: Option<ApiKeys>,
    /// Whether `/metrics` requires an API key too (`SESSIOND_METRICS_AUTH`).
    pub metrics_auth: bool,
    /// Largest request body accepted; larger ones are 413.
    pub max_body_bytes: usize,
    /// Longest batch accepted; longer ones are -32600.
    pub max_batch: usize,
    /// Most connections served at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers.
    pub header_timeout: Duration,
    /// How long a client may take to send a request's body.
    pub body_timeout: Duration,
    /// How long in-flight requests may run after SIGTERM before the process exits anyway.
    pub shutdown_timeout: Duration,
    /// Worker threads (`SESSIOND_WORKER_THREADS`), each a single-threaded runtime with its own
    /// store connection; `None` means one per CPU (see `workers`).
    pub worker_threads: Option<usize>,
}

/// Where sessions live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSettings {
    /// In-process memory: one instance only, sessions lost on restart.
    Memory,
    /// Redis, in one of its deployment modes.
    Redis(RedisSettings),
}

/// How to reach Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// One URL (standalone) or comma-separated URLs (cluster seeds, sentinels). May hold
    /// credentials: never log it without [`redact_url`].
    pub urls: Vec<String>,
    /// Standalone, cluster or sentinel.
    pub mode: RedisMode,
    /// The master's name in sentinel mode.
    pub sentinel_master: Option<String>,
}

/// The Redis deployment mode (`SESSIOND_REDIS_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisMode {
    /// One Redis server (possibly with replicas the service does not talk to).
    Standalone,
    /// Redis Cluster: the URLs are seed nodes.
    Cluster,
    /// Redis Sentinel: the URLs are sentinels.
    Sentinel,
}

/// The log line format (`SESSIOND_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A setting that could not be used. Its text is the one line printed before exiting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A variable holds a value that is not allowed.
    #[error("{var}: {reason}")]
    Invalid {
        /// The variable's name, e.g. `SESSIOND_MAX_BATCH`.
        var: &'static str,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// The configuration file could not be read or parsed.
    #[error("SESSIOND_CONFIG: {0}")]
    File(String),
}

/// Every setting as text, as the `config` crate merged them.
#[derive(Debug, Default, Deserialize)]
struct RawSettings {
    listen: Option<String>,
    redis_url: Option<String>,
    redis_mode: Option<String>,
    redis_sentinel_master: Option<String>,
    key_prefix: Option<String>,
    default_expires_in: Option<String>,
    max_expires_in: Option<String>,
    redis_timeout_ms: Option<String>,
    log_format: Option<String>,
    api_keys: Option<String>,
    metrics_auth: Option<String>,
    max_body_bytes: Option<String>,
    max_batch: Option<String>,
    max_connections: Option<String>,
    header_timeout_ms: Option<String>,
    body_timeout_ms: Option<String>,
    shutdown_timeout_ms: Option<String>,
    worker_threads: Option<String>,
}

impl Settings {
    /// Reads the process environment (and the file named by `SESSIOND_CONFIG`).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first variable whose value cannot be used.
    pub fn load() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// Reads settings from the given variables instead of the process environment.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first variable whose value cannot be used.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let vars: HashMap<String, String> = vars
            .into_iter()
            .filter(|(name, _)| name.starts_with("SESSIOND_") && name != "SESSIOND_CONFIG")
            .collect();
        let file = std::env::var("SESSIOND_CONFIG").ok();
        Self::from_sources(vars, file.as_deref())
    }

    fn from_sources(
        vars: HashMap<String, String>,
        file: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let mut builder = Config::builder();
        if let Some(path) = file.filter(|p| !p.is_empty()) {
            builder = builder.add_source(File::new(path, FileFormat::Toml).required(true));
        }
        builder = builder.add_source(
            Environment::with_prefix("SESSIOND")
                .prefix_separator("_")
                .ignore_empty(true)
                .source(Some(vars)),
        );
        let raw: RawSettings = builder
            .build()
            .and_then(Config::try_deserialize)
            .map_err(|e| ConfigError::File(e.to_string()))?;
        Self::from_raw(raw)
    }

    fn from_raw(raw: RawSettings) -> Result<Self, ConfigError> {
        let listen = match raw.listen.as_deref() {
            None => SocketAddr::from(([0, 0, 0, 0], 8080)),
            Some(text) => text.trim().parse().map_err(|_| ConfigError::Invalid {
                var: "SESSIOND_LISTEN",
                reason: format!(
                    "{text:?} is not an address; expected ip:port such as 0.0.0.0:8080"
                ),
            })?,
        };
        let max_expires_in = positive("SESSIOND_MAX_EXPIRES_IN", raw.max_expires_in, 31_536_000)?;
        let default_expires_in = positive(
            "SESSIOND_DEFAULT_EXPIRES_IN",
            raw.default_expires_in,
            2_592_000,
        )?;
        if default_expires_in > max_expires_in {
            return Err(ConfigError::Invalid {
                var: "SESSIOND_DEFAULT_EXPIRES_IN",
                reason: format!(
                    "{default_expires_in} is larger than SESSIOND_MAX_EXPIRES_IN ({max_expires_in})"
                ),
            });
        }
        Ok(Self {
            listen,
            store: store_settings(raw.redis_url, raw.redis_mode, raw.redis_sentinel_master)?,
            key_prefix: raw.key_prefix.unwrap_or_else(|| "sessiond:".to_owned()),
            default_expires_in,
            max_expires_in,
            redis_timeout: millis("SESSIOND_REDIS_TIMEOUT_MS", raw.redis_timeout_ms, 1_000)?,
            log_format: match raw.log_format.as_deref().map(str::trim) {
                None | Some("text") => LogFormat::Text,
                Some("json") => LogFormat::Json,
                Some(other) => {
                    return Err(ConfigError::Invalid {
                        var: "SESSIOND_LOG_FORMAT",
                        reason: format!("{other:?} is not a log format; expected text or json"),
                    });
                }
            },
            api_keys: raw
                .api_keys
                .filter(|keys| !keys.trim().is_empty())
                .map(|keys| {
                    ApiKeys::parse(&keys).map_err(|reason| ConfigError::Invalid {
                        var: "SESSIOND_API_KEYS",
                        reason,
                    })
                })
                .transpose()?,
            metrics_auth: boolean("SESSIOND_METRICS_AUTH", raw.metrics_auth, false)?,
            max_body_bytes: size("SESSIOND_MAX_BODY_BYTES", raw.max_body_bytes, 1_048_576)?,
            max_batch: size("SESSIOND_MAX_BATCH", raw.max_batch, 1_000)?,
            max_connections: size("SESSIOND_MAX_CONNECTIONS", raw.max_connections, 10_000)?,
            header_timeout: millis("SESSIOND_HEADER_TIMEOUT_MS", raw.header_timeout_ms, 10_000)?,
            body_timeout: millis("SESSIOND_BODY_TIMEOUT_MS", raw.body_timeout_ms, 10_000)?,
            shutdown_timeout: millis(
                "SESSIOND_SHUTDOWN_TIMEOUT_MS",
                raw.shutdown_timeout_ms,
                10_000,
            )?,
            worker_threads: match raw.worker_threads {
                None => None,
                Some(n) => Some(size("SESSIOND_WORKER_THREADS", Some(n), 1)?),
            },
        })
    }
}

fn store_settings(
    url: Option<String>,
    mode: Option<String>,
    sentinel_master: Option<String>,
) -> Result<StoreSettings, ConfigError> {
    let mode = match mode.as_deref().map(str::trim) {
        None | Some("standalone") => RedisMode::Standalone,
        Some("cluster") => RedisMode::Cluster,
        Some("sentinel") => RedisMode::Sentinel,
        Some(other) => {
            return Err(ConfigError::Invalid {
                var: "SESSIOND_REDIS_MODE",
                reason: format!(
                    "{other:?} is not a mode; expected standalone, cluster or sentinel"
                ),
            });
        }
    };
    let Some(url) = url.filter(|u| !u.trim().is_empty()) else {
        if mode != RedisMode::Standalone {
            return Err(ConfigError::Invalid {
                var: "SESSIOND_REDIS_URL",
                reason: "must be set when SESSIOND_REDIS_MODE is cluster or sentinel".to_owned(),
            });
        }
        return Ok(StoreSettings::Memory);
    };
    let urls: Vec<String> = url.split(',').map(|u| u.trim().to_owned()).collect();
    for one in &urls {
        let scheme_ok = one.starts_with("redis://") || one.starts_with("rediss://");
        if !scheme_ok || one.as_str().into_connection_info().is_err() {
            return Err(ConfigError::Invalid {
                var: "SESSIOND_REDIS_URL",
                reason: format!(
                    "{:?} is not a Redis URL; expected redis://[user:pass@]host:port[/db] or rediss://…",
                    redact_url(one)
                ),
            });
        }
    }
    if mode == RedisMode::Standalone && urls.len() > 1 {
        return Err(ConfigError::Invalid {
            var: "SESSIOND_REDIS_URL",
            reason: "holds several URLs; only cluster and sentinel modes take a list".to_owned(),
        });
    }
    let sentinel_master = sentinel_master.filter(|m| !m.trim().is_empty());
    if mode == RedisMode::Sentinel && sentinel_master.is_none() {
        return Err(ConfigError::Invalid {
            var: "SESSIOND_REDIS_SENTINEL_MASTER",
            reason: "must name the master when SESSIOND_REDIS_MODE is sentinel".to_owned(),
        });
    }
    Ok(StoreSettings::Redis(RedisSettings {
        urls,
        mode,
        sentinel_master,
    }))
}

fn positive(var: &'static str, raw: Option<String>, default: u64) -> Result<u64, ConfigError> {
    let Some(text) = raw else {
        return Ok(default);
    };
    match text.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(ConfigError::Invalid {
            var,
            reason: format!("{text:?} is not allowed; expected a positive whole number"),
        }),
    }
}

fn size(var: &'static str, raw: Option<String>, default: usize) -> Result<usize, ConfigError> {
    let n = positive(var, raw, default as u64)?;
    usize::try_from(n).map_err(|_| ConfigError::Invalid {
        var,
        reason: format!("{n} is too large for this machine"),
    })
}

fn millis(var: &'static str, raw: Option<String>, default: u64) -> Result<Duration, ConfigError> {
    positive(var, raw, default).map(Duration::from_millis)
}

fn boolean(var: &'static str, raw: Option<String>, default: bool) -> Result<bool, ConfigError> {
    match raw.as_deref().map(|t| t.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(t) if matches!(t.as_str(), "true" | "1" | "yes" | "on") => Ok(true),
        Some(t) if matches!(t.as_str(), "false" | "0" | "no" | "off") => Ok(false),
        Some(t) => Err(ConfigError::Invalid {
            var,
            reason: format!("{t:?} is not allowed; expected true or false"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let vars = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_sources(vars, None)
    }

    #[test]
    fn defaults_match_the_spec() {
        let s = load(&[]).expect("defaults load");
        assert_eq!(s.listen, "0.0.0.0:8080".parse().expect("addr"));
        assert_eq!(s.store, StoreSettings::Memory);
        assert_eq!(s.key_prefix, "sessiond:");
        assert_eq!(s.default_expires_in, 2_592_000);
        assert_eq!(s.max_expires_in, 31_536_000);
        assert_eq!(s.redis_timeout, Duration::from_millis(1000));
        assert_eq!(s.log_format, LogFormat::Text);
        assert_eq!(s.max_body_bytes, 1_048_576);
        assert_eq!(s.max_batch, 1000);
        assert!(s.api_keys.is_none());
    }

    #[test]
    fn every_variable_is_read() {
        let s = load(&[
            ("SESSIOND_LISTEN", "127.0.0.1:9000"),
            ("SESSIOND_REDIS_URL", "redis://u:p@localhost:6390/2"),
            ("SESSIOND_KEY_PREFIX", "x:"),
            ("SESSIOND_DEFAULT_EXPIRES_IN", "60"),
            ("SESSIOND_MAX_EXPIRES_IN", "120"),
            ("SESSIOND_REDIS_TIMEOUT_MS", "250"),
            ("SESSIOND_LOG_FORMAT", "json"),
            ("SESSIOND_MAX_BODY_BYTES", "4096"),
            ("SESSIOND_MAX_BATCH", "7"),
            ("SESSIOND_API_KEYS", "gw:secret"),
        ])
        .expect("loads");
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(
            s.store,
            StoreSettings::Redis(RedisSettings {
                urls: vec!["redis://u:p@localhost:6390/2".into()],
                mode: RedisMode::Standalone,
                sentinel_master: None
            })
        );
        assert_eq!(s.key_prefix, "x:");
        assert_eq!((s.default_expires_in, s.max_expires_in), (60, 120));
        assert_eq!(s.redis_timeout, Duration::from_millis(250));
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!((s.max_body_bytes, s.max_batch), (4096, 7));
        let keys = s.api_keys.expect("keys");
        assert_eq!(keys.names().collect::<Vec<_>>(), ["gw"]);
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("SESSIOND_LISTEN", "nowhere")], "SESSIOND_LISTEN:"),
            (&[("SESSIOND_MAX_BATCH", "0")], "SESSIOND_MAX_BATCH:"),
            (
                &[("SESSIOND_MAX_BODY_BYTES", "-5")],
                "SESSIOND_MAX_BODY_BYTES:",
            ),
            (
                &[("SESSIOND_REDIS_TIMEOUT_MS", "1s")],
                "SESSIOND_REDIS_TIMEOUT_MS:",
            ),
            (&[("SESSIOND_LOG_FORMAT", "xml")], "SESSIOND_LOG_FORMAT:"),
            (&[("SESSIOND_REDIS_MODE", "ring")], "SESSIOND_REDIS_MODE:"),
            (&[("SESSIOND_REDIS_URL", "http://x")], "SESSIOND_REDIS_URL:"),
            (
                &[
                    ("SESSIOND_DEFAULT_EXPIRES_IN", "100"),
                    ("SESSIOND_MAX_EXPIRES_IN", "10"),
                ],
                "SESSIOND_DEFAULT_EXPIRES_IN:",
            ),
            (
                &[
                    ("SESSIOND_REDIS_MODE", "sentinel"),
                    ("SESSIOND_REDIS_URL", "redis://h:1"),
                ],
                "SESSIOND_REDIS_SENTINEL_MASTER:",
            ),
            (&[("SESSIOND_REDIS_MODE", "cluster")], "SESSIOND_REDIS_URL:"),
            (&[("SESSIOND_API_KEYS", "nameonly")], "SESSIOND_API_KEYS:"),
            (
                &[("SESSIOND_METRICS_AUTH", "maybe")],
                "SESSIOND_METRICS_AUTH:",
            ),
            (
                &[("SESSIOND_REDIS_URL", "redis://h:1,redis://h:2")],
                "SESSIOND_REDIS_URL:",
            ),
        ];
        for (vars, prefix) in cases {
            let err = load(vars).expect_err("must be refused").to_string();
            assert!(err.starts_with(prefix), "{vars:?} gave {err:?}");
            assert!(!err.contains('\n'), "one line: {err:?}");
        }
    }

    #[test]
    fn a_bad_url_is_reported_without_its_password() {
        let err = load(&[("SESSIOND_REDIS_URL", "redis://u:hunter2@host:notaport")])
            .expect_err("refused")
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn unrelated_sessiond_variables_are_ignored() {
        // Kubernetes service links inject SESSIOND_PORT and friends into pods.
        let s = load(&[
            ("SESSIOND_PORT", "tcp://10.0.0.1:8080"),
            ("SESSIOND_SERVICE_HOST", "x"),
        ]);
        assert!(s.is_ok());
    }

    #[test]
    fn a_toml_file_is_read_and_the_environment_wins() {
        let dir = std::env::temp_dir().join(format!("sessiond-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("sessiond.toml");
        std::fs::write(
            &path,
            "max_batch = 5\nkey_prefix = \"file:\"\nredis_timeout_ms = 300\n",
        )
        .expect("write");
        let vars = [("SESSIOND_KEY_PREFIX".to_owned(), "env:".to_owned())]
            .into_iter()
            .collect();
        let s = Settings::from_sources(vars, path.to_str()).expect("loads");
        assert_eq!(s.max_batch, 5);
        assert_eq!(s.redis_timeout, Duration::from_millis(300));
        assert_eq!(s.key_prefix, "env:");
        let missing = Settings::from_sources(HashMap::new(), Some("/nonexistent/x.toml"));
        assert!(matches!(missing, Err(ConfigError::File(_))));
    }
}
