//! The session store: a small trait (create if absent with a TTL, exists, delete, ping) and
//! its backends, one file each; [`key`] is the key format. [`Backend`] picks one from the
//! configuration.

mod cluster;
pub mod key;
mod memory;
mod redis;
mod sentinel;

use std::future::Future;
use std::time::Duration;

pub use self::cluster::ClusterStore;
use self::key::SessionKey;
pub use self::memory::MemoryStore;
pub use self::redis::RedisStore;
pub use self::sentinel::SentinelStore;
use crate::config::{RedisMode, StoreKind, StoreSettings};

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
    /// The store answered something this program did not expect of it.
    #[error("unexpected answer from the session store: {0}")]
    Unexpected(String),
}

impl StoreError {
    /// Whether the store did not answer in time (rather than answering with an error).
    pub fn is_timeout(&self) -> bool {
        match self {
            Self::Timeout(_) => true,
            Self::Redis(err) => err.is_timeout(),
            Self::Unexpected(_) => false,
        }
    }
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

    /// Whether each of `keys` exists, in order: a batch's verify calls in one store call.
    /// Backends that can send them in one round trip override this; by default each key is
    /// asked about on its own, all at once.
    fn exists_many(
        &self,
        keys: &[SessionKey],
    ) -> impl Future<Output = Result<Vec<bool>, StoreError>> + Send {
        async move {
            futures_util::future::join_all(keys.iter().map(|key| self.exists(key)))
                .await
                .into_iter()
                .collect()
        }
    }

    /// Removes `key`; removing a missing key is not an error.
    fn delete(&self, key: &SessionKey) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Checks that the store answers and takes writes.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A call started at `started` ran out of time: the connection it used may be dead
    /// without knowing it (a Redis that moved without resetting the socket), so a backend
    /// replaces it. By default nothing is done.
    fn timed_out(&self, started: tokio::time::Instant) {
        let _ = started;
    }
}

/// The socket options of every Redis connection: `TCP_NODELAY` (a pipelined batch is not held
/// back by Nagle's algorithm waiting for an acknowledgement), keep-alive probes, and
/// `TCP_USER_TIMEOUT` so that unacknowledged data fails the socket after
/// max(3 × the store timeout, 10 s) instead of the kernel's ~15 minutes.
pub fn tcp_settings(timeout: Duration) -> ::redis::io::tcp::TcpSettings {
    use ::redis::io::tcp::socket2::TcpKeepalive;
    let keepalive = TcpKeepalive::new()
        .with_time(Duration::from_secs(10))
        .with_interval(Duration::from_secs(5))
        .with_retries(3);
    ::redis::io::tcp::TcpSettings::default()
        .set_nodelay(true)
        .set_keepalive(keepalive)
        .set_user_timeout(timeout.saturating_mul(3).max(Duration::from_secs(10)))
}

/// The backend chosen by configuration.
pub enum Backend {
    /// In-process memory (development, one instance).
    Memory(MemoryStore),
    /// Redis standalone.
    Redis(RedisStore),
    /// Redis Cluster.
    Cluster(ClusterStore),
    /// Redis Sentinel.
    Sentinel(SentinelStore),
}

impl Backend {
    /// Builds the configured backend. It does not wait for Redis: a Redis that is down at
    /// start-up is connected to as soon as it answers.
    ///
    /// # Errors
    /// [`StoreError`] when the Redis settings cannot be turned into a client.
    pub fn from_settings(settings: &StoreSettings) -> Result<Self, StoreError> {
        let (prefix, timeout) = (&settings.key_prefix, settings.timeout);
        let StoreKind::Redis(redis) = &settings.kind else {
            return Ok(Self::Memory(MemoryStore::new()));
        };
        Ok(match &redis.mode {
            RedisMode::Standalone => Self::Redis(RedisStore::new(&redis.urls[0], prefix, timeout)?),
            RedisMode::Cluster => Self::Cluster(ClusterStore::new(&redis.urls, prefix, timeout)?),
            RedisMode::Sentinel { master } => {
                Self::Sentinel(SentinelStore::new(&redis.urls, master, prefix, timeout)?)
            }
        })
    }
}

// The cluster and sentinel stores' futures are boxed: they are kilobytes (the sentinel one
// holds a whole failover retry), and an enum's future is as large as its largest variant's.
// Unboxed, every standalone or memory call would build and move that much (perf put the
// copies at about 5 % of sessiond's CPU per verify); one allocation per call costs those two
// modes much less than their own work.
impl SessionStore for Backend {
    async fn create(&self, key: &SessionKey, ttl_secs: u64) -> Result<bool, StoreError> {
        match self {
            Self::Memory(s) => s.create(key, ttl_secs).await,
            Self::Redis(s) => s.create(key, ttl_secs).await,
            Self::Cluster(s) => Box::pin(s.create(key, ttl_secs)).await,
            Self::Sentinel(s) => Box::pin(s.create(key, ttl_secs)).await,
        }
    }

    async fn exists(&self, key: &SessionKey) -> Result<bool, StoreError> {
        match self {
            Self::Memory(s) => s.exists(key).await,
            Self::Redis(s) => s.exists(key).await,
            Self::Cluster(s) => Box::pin(s.exists(key)).await,
            Self::Sentinel(s) => Box::pin(s.exists(key)).await,
        }
    }

    async fn exists_many(&self, keys: &[SessionKey]) -> Result<Vec<bool>, StoreError> {
        match self {
            Self::Memory(s) => s.exists_many(keys).await,
            Self::Redis(s) => s.exists_many(keys).await,
            Self::Cluster(s) => Box::pin(s.exists_many(keys)).await,
            Self::Sentinel(s) => Box::pin(s.exists_many(keys)).await,
        }
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), StoreError> {
        match self {
            Self::Memory(s) => s.delete(key).await,
            Self::Redis(s) => s.delete(key).await,
            Self::Cluster(s) => Box::pin(s.delete(key)).await,
            Self::Sentinel(s) => Box::pin(s.delete(key)).await,
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Self::Memory(s) => s.ping().await,
            Self::Redis(s) => s.ping().await,
            Self::Cluster(s) => Box::pin(s.ping()).await,
            Self::Sentinel(s) => Box::pin(s.ping()).await,
        }
    }

    fn timed_out(&self, started: tokio::time::Instant) {
        match self {
            Self::Memory(s) => s.timed_out(started),
            Self::Redis(s) => s.timed_out(started),
            Self::Cluster(s) => s.timed_out(started),
            Self::Sentinel(s) => s.timed_out(started),
        }
    }
}
