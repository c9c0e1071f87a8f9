//! The application: the configured store behind the session methods, and the HTTP limits.
//! Built once at start-up and shared by every connection.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::ApiKeys;
use crate::config::Settings;
use crate::methods::ExpiryLimits;
use crate::metrics::Metrics;
use crate::redact::redact_url;
use crate::sessions::Sessions;
use crate::store::{Backend, StoreError};

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
    /// Builds the application from settings. Does not wait for Redis.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be set up from the settings.
    pub fn from_settings(settings: &Settings) -> Result<Arc<Self>, StoreError> {
        let backend = Backend::from_settings(settings)?;
        match &settings.store {
            crate::config::StoreSettings::Memory => tracing::warn!(
                "SESSIOND_REDIS_URL is unset: sessions live in this process's memory, are lost \
                 on restart and are not shared; run one instance only"
            ),
            crate::config::StoreSettings::Redis(redis) => tracing::info!(
                mode = ?redis.mode,
                url = %redact_url(&redis.urls.join(",")),
                "sessions live in Redis"
            ),
        }
        let limits = ExpiryLimits {
            default: settings.default_expires_in,
            max: settings.max_expires_in,
        };
        let metrics = Arc::new(Metrics::new(backend.kind()));
        if let Some(keys) = &settings.api_keys {
            let names: Vec<&str> = keys.names().collect();
            tracing::info!(?names, "callers must present an API key");
        }
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
