//! The session store: a small trait (create if absent with a TTL, exists, delete, ping) and
//! its backends, one file each. [`Backend`] picks one from the configuration.

mod memory;
mod redis;

use std::future::Future;
use std::time::Duration;

pub use self::memory::MemoryStore;
pub use self::redis::RedisStore;
use crate::config::{RedisMode, Settings, StoreSettings};
use crate::token::SessionKey;

/// Why a store operation failed. Every variant means "the store could not answer", never
/// "the caller did something wrong".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The operation took longer than the configured bound.
    #[error("session store did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis answered with an error or could not be reached.
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// The configured mode is not available.
    #[error("{0}")]
    Unsupported(String),
}

/// What every backend can do. Keys are already hashed; a backend never sees a token.
pub trait SessionStore: Send + Sync + 'static {
    /// Stores `key` with a time-to-live of `ttl_secs` seconds unless it already exists.
    /// Returns `true` when the key was created, `false` when it was already there.
    fn create(
        &self,
        key: &SessionKey,
        ttl_secs: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Whether `key` exists and has not expired.
    fn exists(&self, key: &SessionKey) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Removes `key`; removing a missing key is not an error.
    fn delete(&self, key: &SessionKey) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Checks that the store answers.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The backend chosen by configuration.
pub enum Backend {
    /// In-process memory (development, one instance).
    Memory(MemoryStore),
    /// Redis standalone.
    Redis(RedisStore),
}

impl Backend {
    /// Builds the configured backend. It does not wait for Redis: a Redis that is down at
    /// start-up is connected to as soon as it answers.
    ///
    /// # Errors
    /// [`StoreError`] when the Redis settings cannot be turned into a client.
    pub fn from_settings(settings: &Settings) -> Result<Self, StoreError> {
        match &settings.store {
            StoreSettings::Memory => Ok(Self::Memory(MemoryStore::new())),
            StoreSettings::Redis(redis) => match redis.mode {
                RedisMode::Standalone => Ok(Self::Redis(RedisStore::new(
                    &redis.urls[0],
                    &settings.key_prefix,
                    settings.redis_timeout,
                )?)),
                mode => Err(StoreError::Unsupported(format!(
                    "SESSIOND_REDIS_MODE={mode:?} is not supported by this build"
                ))),
            },
        }
    }

    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Memory(_) => "memory",
            Self::Redis(_) => "redis",
        }
    }
}

impl SessionStore for Backend {
    async fn create(&self, key: &SessionKey, ttl_secs: u64) -> Result<bool, StoreError> {
        match self {
            Self::Memory(s) => s.create(key, ttl_secs).await,
            Self::Redis(s) => s.create(key, ttl_secs).await,
        }
    }

    async fn exists(&self, key: &SessionKey) -> Result<bool, StoreError> {
        match self {
            Self::Memory(s) => s.exists(key).await,
            Self::Redis(s) => s.exists(key).await,
        }
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), StoreError> {
        match self {
            Self::Memory(s) => s.delete(key).await,
            Self::Redis(s) => s.delete(key).await,
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Self::Memory(s) => s.ping().await,
            Self::Redis(s) => s.ping().await,
        }
    }
}
