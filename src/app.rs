//! The application: the configured store behind the session methods, and the HTTP limits.
//! Built at start-up, once per worker thread (each with its own store connection), and shared by
//! every connection that worker serves.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::ApiKeys;
use crate::config::{Settings, StoreSettings};
use crate::methods::ExpiryLimits;
use crate::metrics::Metrics;
use crate::redact::redact_url;
use crate::sessions::Sessions;
use crate::store::{self, Backend, StoreError};

/// Limits on what a client may send and how long it may take.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Largest body accepted (413 beyond).
    pub max_body_bytes: usize,
    /// Longest batch accepted (-32600 beyond).
    pub max_batch: usize,
    /// Most connections served at once.
    pub max_connections: usize,
    /// Time allowed for a request's headers.
    pub header_timeout: Duration,
    /// Time allowed for a request's body.
    pub body_timeout: Duration,
    /// Time in-flight requests get after a shutdown starts.
    pub shutdown_timeout: Duration,
}

/// Everything a request needs.
pub struct App {
    /// The session methods over the configured store.
    pub sessions: Sessions<Backend>,
    /// Request limits.
    pub limits: HttpLimits,
    /// The metrics registry, shared with `sessions`.
    pub metrics: Arc<Metrics>,
    /// Caller authentication; `None` lets every caller in.
    pub auth: Option<ApiKeys>,
    /// Whether `/metrics` needs an API key too.
    pub metrics_auth: bool,
}

impl App {
    /// Builds the application from settings, logging what it serves from. Does not wait for
    /// Redis.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be set up from the settings.
    pub fn from_settings(settings: &Settings) -> Result<Arc<Self>, StoreError> {
        Self::describe(settings);
        Self::build(
            settings,
            Arc::new(Metrics::new(store::kind(&settings.store))),
        )
    }

    /// Logs, once per process, where sessions live and whether callers need a key.
    pub fn describe(settings: &Settings) {
        match &settings.store {
            StoreSettings::Memory => tracing::warn!(
                "SESSIOND_REDIS_URL is unset: sessions live in this process's memory, are lost \
                 on restart and are not shared; run one instance only"
            ),
            StoreSettings::Redis(redis) => tracing::info!(
                mode = ?redis.mode,
                url = %redact_url(&redis.urls.join(",")),
                "sessions live in Redis"
            ),
        }
        if let Some(keys) = &settings.api_keys {
            let names: Vec<&str> = keys.names().collect();
            tracing::info!(?names, "callers must present an API key");
        }
    }

    /// Builds the application with its own store connection, counting into `metrics` (which
    /// several apps in one process may share).
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be set up from the settings.
    pub fn build(settings: &Settings, metrics: Arc<Metrics>) -> Result<Arc<Self>, StoreError> {
        let backend = Backend::from_settings(settings)?;
        let limits = ExpiryLimits {
            default: settings.default_expires_in,
            max: settings.max_expires_in,
        };
        Ok(Arc::new(Self {
            sessions: Sessions::new(backend, limits, settings.redis_timeout)
                .with_metrics(metrics.clone()),
            metrics,
            auth: settings.api_keys.clone(),
            metrics_auth: settings.metrics_auth,
            limits: HttpLimits {
                max_body_bytes: settings.max_body_bytes,
                max_batch: settings.max_batch,
                max_connections: settings.max_connections,
                header_timeout: settings.header_timeout,
                body_timeout: settings.body_timeout,
                shutdown_timeout: settings.shutdown_timeout,
            },
        }))
    }
}
