//! What a request needs: the session methods over this worker's own store connection, the
//! settings, the metrics shared by the whole process, and whether a shutdown has begun. Built
//! once per worker thread and shared by every connection that worker serves.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::Settings;
use crate::metrics::Metrics;
use crate::session::Sessions;
use crate::store::{Backend, StoreError};

/// Everything a request needs.
pub struct App {
    /// The session methods over this worker's store.
    pub sessions: Sessions<Backend>,
    /// The settings, as loaded.
    pub settings: Arc<Settings>,
    /// The metrics registry of the whole process.
    pub metrics: Arc<Metrics>,
    /// Set once SIGTERM (or the given shutdown) arrives: `/readyz` answers 503 and every
    /// HTTP/1 response closes its connection.
    pub draining: Arc<AtomicBool>,
}

impl App {
    /// Builds a worker's app with its own store connection. Does not wait for Redis.
    ///
    /// # Errors
    /// [`StoreError`] when the store cannot be set up from the settings.
    pub fn build(
        settings: Arc<Settings>,
        metrics: Arc<Metrics>,
        draining: Arc<AtomicBool>,
    ) -> Result<Arc<Self>, StoreError> {
        let backend = Backend::from_settings(&settings.store, &metrics)?;
        let sessions = Sessions::new(
            backend,
            settings.expiry,
            settings.store.timeout,
            metrics.clone(),
        );
        Ok(Arc::new(Self {
            sessions,
            settings,
            metrics,
            draining,
        }))
    }

    /// Whether a shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}
