//! Settings: read from `SESSIOND_*` environment variables and, optionally, a TOML file named
//! by `SESSIOND_CONFIG` (the environment wins), then checked once at start-up.
//!
//! Both sources reach the same parsers as text ([`parse`]), so a value is accepted or refused
//! identically wherever it is written; an empty value is unset in both; a key in the file that
//! is not a setting is an error naming it. A bad value is refused with one line naming the
//! variable and saying what is allowed.

pub mod parse;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use config::{Config, File, FileFormat, ValueKind};
use redis::IntoConnectionInfo;

use self::parse::{Raw, ceiling};
use crate::http::api_keys::ApiKeys;
use crate::redact::redact_url;
use crate::session::expiry::ExpiryLimits;

/// Every setting's name, as a TOML key; the variable is `SESSIOND_` and the upper-cased key.
pub const KEYS: &[&str] = &[
    "listen",
    "redis_url",
    "redis_mode",
    "redis_sentinel_master",
    "key_prefix",
    "default_expires_in",
    "max_expires_in",
    "max_session_lifetime",
    "redis_timeout_ms",
    "log_format",
    "api_keys",
    "metrics_auth",
    "max_body_bytes",
    "max_batch",
    "max_connections",
    "header_timeout_ms",
    "body_timeout_ms",
    "shutdown_timeout_ms",
    "drain_ms",
    "worker_threads",
    "h2_max_streams",
    "auth_cookie",
    "auth_cache_max_age",
];

/// Everything the service needs to know at start-up.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The HTTP server: address, limits, timeouts, shutdown.
    pub http: HttpSettings,
    /// The bounds of `expires_in`.
    pub expiry: ExpiryLimits,
    /// Where sessions live.
    pub store: StoreSettings,
    /// Who may call.
    pub auth: AuthSettings,
    /// Log line format (`SESSIOND_LOG_FORMAT`).
    pub log_format: LogFormat,
    /// Worker threads (`SESSIOND_WORKER_THREADS`), each a single-threaded runtime with its own
    /// store connection; `None` means one per CPU.
    pub worker_threads: Option<usize>,
}

/// The HTTP server's address, limits and timeouts.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Address the server binds (`SESSIOND_LISTEN`).
    pub listen: SocketAddr,
    /// Largest request body accepted; larger ones are 413.
    pub max_body_bytes: usize,
    /// Longest batch accepted; longer ones are -32600.
    pub max_batch: usize,
    /// Most client connections served at once (probes of `/healthz` excepted).
    pub max_connections: usize,
    /// Time a client may take to send a request's headers (and an h2 connection may sit
    /// without a stream).
    pub header_timeout: Duration,
    /// Time a client may take to send a request's body, or to read a response.
    pub body_timeout: Duration,
    /// After SIGTERM, how long idle connections stay open for a last request (answered with
    /// `Connection: close`).
    pub drain: Duration,
    /// After SIGTERM, when the process exits even with requests still running.
    pub shutdown_timeout: Duration,
    /// Concurrent streams per HTTP/2 connection.
    pub h2_max_streams: u32,
    /// The cookie `/auth` reads a token from when there is no Bearer header.
    pub auth_cookie: Option<String>,
    /// Seconds a gateway may cache a 200 from `/auth` (0: `no-store`).
    pub auth_cache_max_age: u64,
}

/// Where sessions live and how each store call is bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSettings {
    /// Memory or Redis.
    pub kind: StoreKind,
    /// Prefix of every store key (`SESSIOND_KEY_PREFIX`).
    pub key_prefix: String,
    /// Bound on each store operation (`SESSIOND_REDIS_TIMEOUT_MS`).
    pub timeout: Duration,
}

/// The session store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKind {
    /// In-process memory: one instance only, sessions lost on restart.
    Memory,
    /// Redis, in one of its deployment modes.
    Redis(RedisSettings),
}

/// How to reach Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// One URL (standalone) or several (cluster seeds, sentinels). May hold credentials:
    /// never log it without [`redact_url`].
    pub urls: Vec<String>,
    /// Standalone, cluster or sentinel.
    pub mode: RedisMode,
}

/// The Redis deployment mode (`SESSIOND_REDIS_MODE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisMode {
    /// One Redis server (possibly with replicas the service does not talk to).
    Standalone,
    /// Redis Cluster: the URLs are seed nodes.
    Cluster,
    /// Redis Sentinel: the URLs are sentinels watching the master named `master`.
    Sentinel {
        /// `SESSIOND_REDIS_SENTINEL_MASTER`.
        master: String,
    },
}

/// Caller authentication.
#[derive(Debug, Clone, Default)]
pub struct AuthSettings {
    /// `SESSIOND_API_KEYS`; `None` lets every caller in.
    pub api_keys: Option<ApiKeys>,
    /// Whether `/metrics` needs a key too (`SESSIOND_METRICS_AUTH`).
    pub metrics_auth: bool,
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
    /// The configuration file could not be read or parsed, or holds an unknown key.
    #[error("SESSIOND_CONFIG: {0}")]
    File(String),
}

impl StoreSettings {
    /// The store's short name, for logs and metrics: `memory`, `redis`, `redis-cluster` or
    /// `redis-sentinel`.
    pub fn name(&self) -> &'static str {
        match &self.kind {
            StoreKind::Memory => "memory",
            StoreKind::Redis(redis) => match redis.mode {
                RedisMode::Standalone => "redis",
                RedisMode::Cluster => "redis-cluster",
                RedisMode::Sentinel { .. } => "redis-sentinel",
            },
        }
    }
}

/// The merged settings as text, by key.
type Sources = HashMap<&'static str, Raw>;

impl Settings {
    /// Reads the process environment (and the file named by `SESSIOND_CONFIG`).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first variable whose value cannot be used.
    pub fn load() -> Result<Self, ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// Reads settings from the given variables instead of the process environment (the
    /// file, if any, is still named by the process's `SESSIOND_CONFIG`).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first variable whose value cannot be used.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let vars: HashMap<String, String> = vars.into_iter().collect();
        let file = vars
            .get("SESSIOND_CONFIG")
            .cloned()
            .or_else(|| std::env::var("SESSIOND_CONFIG").ok());
        Self::from_sources(&vars, file.as_deref())
    }

    fn from_sources(
        vars: &HashMap<String, String>,
        file: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let mut sources = match file.filter(|p| !p.trim().is_empty()) {
            Some(path) => read_file(path)?,
            None => Sources::new(),
        };
        for key in KEYS {
            let var = format!("SESSIOND_{}", key.to_ascii_uppercase());
            // An empty variable is unset, as an empty string in the file is.
            if let Some(text) = vars.get(&var).filter(|t| !t.trim().is_empty()) {
                sources.insert(
                    key,
                    Raw {
                        text: text.clone(),
                        file_key: None,
                    },
                );
            }
        }
        Self::from_raw(&sources)
    }

    fn from_raw(raw: &Sources) -> Result<Self, ConfigError> {
        let get = |key: &str| raw.get(key);
        let max = parse::positive(
            "SESSIOND_MAX_EXPIRES_IN",
            get("max_expires_in"),
            31_536_000,
            ceiling::SECONDS,
        )?;
        let default = parse::positive(
            "SESSIOND_DEFAULT_EXPIRES_IN",
            get("default_expires_in"),
            2_592_000,
            ceiling::SECONDS,
        )?;
        if default > max {
            return Err(ConfigError::Invalid {
                var: "SESSIOND_DEFAULT_EXPIRES_IN",
                reason: format!("{default} is larger than SESSIOND_MAX_EXPIRES_IN ({max})"),
            });
        }
        let max_lifetime = match get("max_session_lifetime") {
            None => None,
            some => Some(parse::positive(
                "SESSIOND_MAX_SESSION_LIFETIME",
                some,
                0,
                ceiling::SECONDS,
            )?),
        };
        let http = http_settings(raw)?;
        let auth = AuthSettings {
            api_keys: get("api_keys")
                .map(|keys| {
                    ApiKeys::parse(&keys.text)
                        .map_err(|reason| parse::invalid("SESSIOND_API_KEYS", keys, reason))
                })
                .transpose()?,
            metrics_auth: parse::boolean("SESSIOND_METRICS_AUTH", get("metrics_auth"), false)?,
        };
        if auth.metrics_auth && auth.api_keys.is_none() {
            return Err(ConfigError::Invalid {
                var: "SESSIOND_METRICS_AUTH",
                reason: "is true but SESSIOND_API_KEYS is unset: /metrics would be open to \
                         everyone; set keys or turn it off"
                    .to_owned(),
            });
        }
        Ok(Self {
            http,
            expiry: ExpiryLimits {
                default,
                max,
                max_lifetime,
            },
            store: StoreSettings {
                kind: store_kind(raw)?,
                key_prefix: get("key_prefix")
                    .map_or_else(|| "sessiond:".to_owned(), |p| p.text.clone()),
                timeout: parse::millis(
                    "SESSIOND_REDIS_TIMEOUT_MS",
                    get("redis_timeout_ms"),
                    1_000,
                )?,
            },
            auth,
            log_format: parse::choice(
                "SESSIOND_LOG_FORMAT",
                get("log_format"),
                LogFormat::Text,
                &[("text", LogFormat::Text), ("json", LogFormat::Json)],
            )?,
            worker_threads: match get("worker_threads") {
                None => None,
                some => Some(parse::count(
                    "SESSIOND_WORKER_THREADS",
                    some,
                    1,
                    ceiling::WORKERS,
                )?),
            },
        })
    }
}

fn http_settings(raw: &Sources) -> Result<HttpSettings, ConfigError> {
    let get = |key: &str| raw.get(key);
    let shutdown_timeout = parse::millis(
        "SESSIOND_SHUTDOWN_TIMEOUT_MS",
        get("shutdown_timeout_ms"),
        10_000,
    )?;
    // By default the drain takes half the shutdown time, at most 5 s.
    let default_drain = (shutdown_timeout.as_millis() as u64 / 2).min(5_000);
    let drain = parse::millis_or_zero("SESSIOND_DRAIN_MS", get("drain_ms"), default_drain)?;
    if drain >= shutdown_timeout {
        return Err(ConfigError::Invalid {
            var: "SESSIOND_DRAIN_MS",
            reason: format!(
                "{} must be shorter than SESSIOND_SHUTDOWN_TIMEOUT_MS ({}): requests answered \
                 during the drain need time to finish",
                drain.as_millis(),
                shutdown_timeout.as_millis()
            ),
        });
    }
    Ok(HttpSettings {
        listen: parse::address(
            "SESSIOND_LISTEN",
            get("listen"),
            SocketAddr::from(([0, 0, 0, 0], 8080)),
        )?,
        max_body_bytes: parse::count(
            "SESSIOND_MAX_BODY_BYTES",
            get("max_body_bytes"),
            1_048_576,
            ceiling::BODY_BYTES,
        )?,
        max_batch: parse::count(
            "SESSIOND_MAX_BATCH",
            get("max_batch"),
            1_000,
            ceiling::BATCH,
        )?,
        max_connections: parse::count(
            "SESSIOND_MAX_CONNECTIONS",
            get("max_connections"),
            10_000,
            ceiling::CONNECTIONS,
        )?,
        header_timeout: parse::millis(
            "SESSIOND_HEADER_TIMEOUT_MS",
            get("header_timeout_ms"),
            10_000,
        )?,
        body_timeout: parse::millis("SESSIOND_BODY_TIMEOUT_MS", get("body_timeout_ms"), 10_000)?,
        drain,
        shutdown_timeout,
        h2_max_streams: u32::try_from(parse::positive(
            "SESSIOND_H2_MAX_STREAMS",
            get("h2_max_streams"),
            16,
            ceiling::H2_STREAMS,
        )?)
        .unwrap_or(16),
        auth_cookie: get("auth_cookie")
            .map(|raw| {
                let name = raw.text.trim();
                // RFC 6265: a cookie name is an RFC 7230 token.
                let token = name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
                if token {
                    Ok(name.to_owned())
                } else {
                    Err(parse::invalid(
                        "SESSIOND_AUTH_COOKIE",
                        raw,
                        format!(
                            "{name:?} is not a cookie name (letters, digits and !#$%&'*+-.^_`|~)"
                        ),
                    ))
                }
            })
            .transpose()?,
        auth_cache_max_age: parse::number(
            "SESSIOND_AUTH_CACHE_MAX_AGE",
            get("auth_cache_max_age"),
            0,
            (0, ceiling::SECONDS),
        )?,
    })
}

fn store_kind(raw: &Sources) -> Result<StoreKind, ConfigError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mode {
        Standalone,
        Cluster,
        Sentinel,
    }
    let mode = parse::choice(
        "SESSIOND_REDIS_MODE",
        raw.get("redis_mode"),
        Mode::Standalone,
        &[
            ("standalone", Mode::Standalone),
            ("cluster", Mode::Cluster),
            ("sentinel", Mode::Sentinel),
        ],
    )?;
    let Some(url) = raw.get("redis_url") else {
        if mode != Mode::Standalone {
            return Err(ConfigError::Invalid {
                var: "SESSIOND_REDIS_URL",
                reason: "must be set when SESSIOND_REDIS_MODE is cluster or sentinel".to_owned(),
            });
        }
        return Ok(StoreKind::Memory);
    };
    let urls: Vec<String> = url.text.split(',').map(|u| u.trim().to_owned()).collect();
    for one in &urls {
        let scheme_ok = one.starts_with("redis://") || one.starts_with("rediss://");
        if !scheme_ok || one.as_str().into_connection_info().is_err() {
            return Err(parse::invalid(
                "SESSIOND_REDIS_URL",
                url,
                format!(
                    "{:?} is not a Redis URL; expected redis://[user:pass@]host:port[/db] or rediss://…",
                    redact_url(one)
                ),
            ));
        }
    }
    let mode = match mode {
        Mode::Standalone if urls.len() > 1 => {
            return Err(ConfigError::Invalid {
                var: "SESSIOND_REDIS_URL",
                reason: "holds several URLs; only cluster and sentinel modes take a list"
                    .to_owned(),
            });
        }
        Mode::Standalone => RedisMode::Standalone,
        Mode::Cluster => RedisMode::Cluster,
        Mode::Sentinel => match raw.get("redis_sentinel_master") {
            Some(master) => RedisMode::Sentinel {
                master: master.text.trim().to_owned(),
            },
            None => {
                return Err(ConfigError::Invalid {
                    var: "SESSIOND_REDIS_SENTINEL_MASTER",
                    reason: "must name the master when SESSIOND_REDIS_MODE is sentinel".to_owned(),
                });
            }
        },
    };
    Ok(StoreKind::Redis(RedisSettings { urls, mode }))
}

/// The file's settings as text. Unknown keys, tables and arrays are refused; an empty string
/// is unset, as an empty variable is.
fn read_file(path: &str) -> Result<Sources, ConfigError> {
    let table = Config::builder()
        .add_source(File::new(path, FileFormat::Toml).required(true))
        .build()
        .and_then(|c| c.try_deserialize::<HashMap<String, config::Value>>())
        .map_err(|e| ConfigError::File(e.to_string()))?;
    let mut sources = Sources::new();
    for (key, value) in table {
        let Some(known) = KEYS.iter().copied().find(|k| *k == key) else {
            let hint = KEYS
                .iter()
                .find(|k| k.eq_ignore_ascii_case(&key.replace('-', "_")))
                .or_else(|| {
                    key.strip_prefix("SESSIOND_")
                        .and_then(|rest| KEYS.iter().find(|k| k.eq_ignore_ascii_case(rest)))
                })
                .map(|k| format!("; did you mean {k:?}?"))
                .unwrap_or_default();
            return Err(ConfigError::File(format!(
                "{path}: unknown key {key:?}{hint} (keys are the SESSIOND_ variables' names in \
                 lower case without the prefix)"
            )));
        };
        let text = match value.kind {
            ValueKind::Nil => continue,
            ValueKind::String(s) => s,
            ValueKind::Boolean(b) => b.to_string(),
            ValueKind::I64(n) => n.to_string(),
            ValueKind::I128(n) => n.to_string(),
            ValueKind::U64(n) => n.to_string(),
            ValueKind::U128(n) => n.to_string(),
            // Written as a float it stays one, and is refused as "1e6" in a variable is.
            ValueKind::Float(f) => format!("{f:?}"),
            ValueKind::Table(_) | ValueKind::Array(_) => {
                return Err(ConfigError::File(format!(
                    "{path}: {key:?} must be a single value, not a table or a list"
                )));
            }
        };
        if text.trim().is_empty() {
            continue;
        }
        sources.insert(
            known,
            Raw {
                text,
                file_key: Some(key),
            },
        );
    }
    Ok(sources)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let vars = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_sources(&vars, None)
    }

    #[test]
    fn defaults_match_the_spec() {
        let s = load(&[]).expect("defaults load");
        assert_eq!(s.http.listen, "0.0.0.0:8080".parse().expect("addr"));
        assert_eq!(s.store.kind, StoreKind::Memory);
        assert_eq!(s.store.key_prefix, "sessiond:");
        assert_eq!((s.expiry.default, s.expiry.max), (2_592_000, 31_536_000));
        assert_eq!(s.expiry.max_lifetime, None);
        assert_eq!(s.store.timeout, Duration::from_millis(1000));
        assert_eq!(s.log_format, LogFormat::Text);
        assert_eq!((s.http.max_body_bytes, s.http.max_batch), (1_048_576, 1000));
        assert_eq!(s.http.drain, Duration::from_secs(5));
        assert!(s.auth.api_keys.is_none());
    }

    #[test]
    fn the_sentinel_master_lives_in_the_sentinel_mode() {
        let s = load(&[
            ("SESSIOND_REDIS_MODE", "sentinel"),
            ("SESSIOND_REDIS_URL", "redis://h:1,redis://h:2"),
            ("SESSIOND_REDIS_SENTINEL_MASTER", "mymaster"),
        ])
        .expect("loads");
        assert_eq!(
            s.store.kind,
            StoreKind::Redis(RedisSettings {
                urls: vec!["redis://h:1".into(), "redis://h:2".into()],
                mode: RedisMode::Sentinel {
                    master: "mymaster".into()
                },
            })
        );
        let err = load(&[
            ("SESSIOND_REDIS_MODE", "sentinel"),
            ("SESSIOND_REDIS_URL", "redis://h:1"),
        ])
        .expect_err("no master");
        assert!(
            err.to_string()
                .starts_with("SESSIOND_REDIS_SENTINEL_MASTER:")
        );
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
        assert!(
            load(&[
                ("SESSIOND_PORT", "tcp://10.0.0.1:8080"),
                ("SESSIOND_SERVICE_HOST", "x"),
            ])
            .is_ok()
        );
    }
}
