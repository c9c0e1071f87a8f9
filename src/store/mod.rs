//! The session store: a small trait (create if absent with a TTL, exists, delete, ping) and
//! its backends, one file each; [`key`] is the key format. [`Backend`] picks one from the
//! configuration.

mod cluster;
mod coalesce;
mod identity;
pub mod key;
mod memory;
mod redis;
mod sentinel;

use std::future::Future;
use std::time::Duration;

pub use self::cluster::ClusterStore;
use self::key::{SessionKey, SubjectKey};
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
    /// The same failure again, for each call of a batch that shared it.
    pub fn copy(&self) -> Self {
        match self {
            Self::Timeout(after) => Self::Timeout(*after),
            Self::Redis(err) => Self::Redis(::redis::RedisError::from((
                err.kind(),
                "a batched call failed",
                err.to_string(),
            ))),
            Self::Unexpected(what) => Self::Unexpected(what.clone()),
        }
    }

    /// Whether the store did not answer in time (rather than answering with an error).
    pub fn is_timeout(&self) -> bool {
        match self {
            Self::Timeout(_) => true,
            Self::Redis(err) => err.is_timeout(),
            Self::Unexpected(_) => false,
        }
    }
}

/// A session's entry in its subject's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// The subject's index.
    pub subject: SubjectKey,
    /// The session.
    pub session: SessionKey,
    /// When the session expires (unix seconds): the member's score.
    pub expires_at: u64,
    /// Now (unix seconds): members scored before it are pruned.
    pub now: u64,
}

/// A session as stored: its value (see `session::record`) and the seconds it has left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The stored value.
    pub value: String,
    /// Seconds left (at least 1).
    pub ttl: u64,
}

/// Which of a subject's sessions `close_subject` closes.
#[derive(Debug, Clone, Copy)]
pub struct Closing<'a> {
    /// The subject's index.
    pub subject: SubjectKey,
    /// Keep this one open ("sign out everywhere else").
    pub except: Option<SessionKey>,
    /// Close only these ("sign out that device"); `None`: all.
    pub only: Option<&'a [SessionKey]>,
    /// Now (unix seconds).
    pub now: u64,
}

/// What every backend can do. Keys are already hashed; a backend never sees a token.
pub trait SessionStore: Send + Sync + 'static {
    /// Stores `key` with `value` and a time-to-live of `ttl_secs` seconds unless it already
    /// exists, and adds it to `index` (its subject's) when given. Returns `true` when the key
    /// was created, `false` when it was already there.
    fn create_with(
        &self,
        key: &SessionKey,
        ttl_secs: u64,
        value: &str,
        index: Option<&IndexEntry>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// [`SessionStore::create_with`] a plain session issued now.
    fn create(
        &self,
        key: &SessionKey,
        ttl_secs: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        async move {
            let value = crate::session::record::Record::plain().encode();
            self.create_with(key, ttl_secs, &value, None).await
        }
    }

    /// The session's value and seconds left, or `None` when it is not live.
    fn read(
        &self,
        key: &SessionKey,
    ) -> impl Future<Output = Result<Option<Stored>, StoreError>> + Send;

    /// Sets a live session's time-to-live to `ttl_secs`, but never past its `issued_at` plus
    /// `cap` seconds (`now` in unix seconds), in one atomic step. `None` when it is not live
    /// (it is never revived); otherwise the seconds granted and the value.
    fn extend(
        &self,
        key: &SessionKey,
        ttl_secs: u64,
        cap: Option<u64>,
        now: u64,
    ) -> impl Future<Output = Result<Option<(u64, String)>, StoreError>> + Send;

    /// Adds (or re-scores) a session in its subject's index, prunes expired members, and makes
    /// the index expire with its last session.
    fn reindex(&self, entry: &IndexEntry) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The live sessions of a subject, each with its value and seconds left; members whose
    /// session has ended are pruned from the index.
    fn list(
        &self,
        subject: &SubjectKey,
        now: u64,
    ) -> impl Future<Output = Result<Vec<(SessionKey, Stored)>, StoreError>> + Send;

    /// Closes a subject's sessions as `closing` says; the number of live sessions closed.
    fn close_subject(
        &self,
        closing: &Closing<'_>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

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
    pub fn from_settings(
        settings: &StoreSettings,
        metrics: &crate::metrics::Metrics,
    ) -> Result<Self, StoreError> {
        let (prefix, timeout) = (&settings.key_prefix, settings.timeout);
        let StoreKind::Redis(redis) = &settings.kind else {
            return Ok(Self::Memory(MemoryStore::new()));
        };
        let first = redis.urls.first().map_or("", String::as_str);
        Ok(match &redis.mode {
            RedisMode::Standalone => Self::Redis(
                RedisStore::new(first, prefix, timeout)?
                    .with_batch_sizes(metrics.coalesced_batch_size.clone()),
            ),
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
    async fn create_with(
        &self,
        key: &SessionKey,
        ttl_secs: u64,
        value: &str,
        index: Option<&IndexEntry>,
    ) -> Result<bool, StoreError> {
        match self {
            Self::Memory(s) => s.create_with(key, ttl_secs, value, index).await,
            Self::Redis(s) => s.create_with(key, ttl_secs, value, index).await,
            Self::Cluster(s) => Box::pin(s.create_with(key, ttl_secs, value, index)).await,
            Self::Sentinel(s) => Box::pin(s.create_with(key, ttl_secs, value, index)).await,
        }
    }

    async fn read(&self, key: &SessionKey) -> Result<Option<Stored>, StoreError> {
        match self {
            Self::Memory(s) => s.read(key).await,
            Self::Redis(s) => Box::pin(s.read(key)).await,
            Self::Cluster(s) => Box::pin(s.read(key)).await,
            Self::Sentinel(s) => Box::pin(s.read(key)).await,
        }
    }

    async fn extend(
        &self,
        key: &SessionKey,
        ttl_secs: u64,
        cap: Option<u64>,
        now: u64,
    ) -> Result<Option<(u64, String)>, StoreError> {
        match self {
            Self::Memory(s) => s.extend(key, ttl_secs, cap, now).await,
            Self::Redis(s) => Box::pin(s.extend(key, ttl_secs, cap, now)).await,
            Self::Cluster(s) => Box::pin(s.extend(key, ttl_secs, cap, now)).await,
            Self::Sentinel(s) => Box::pin(s.extend(key, ttl_secs, cap, now)).await,
        }
    }

    async fn reindex(&self, entry: &IndexEntry) -> Result<(), StoreError> {
        match self {
            Self::Memory(s) => s.reindex(entry).await,
            Self::Redis(s) => Box::pin(s.reindex(entry)).await,
            Self::Cluster(s) => Box::pin(s.reindex(entry)).await,
            Self::Sentinel(s) => Box::pin(s.reindex(entry)).await,
        }
    }

    async fn list(
        &self,
        subject: &SubjectKey,
        now: u64,
    ) -> Result<Vec<(SessionKey, Stored)>, StoreError> {
        match self {
            Self::Memory(s) => s.list(subject, now).await,
            Self::Redis(s) => Box::pin(s.list(subject, now)).await,
            Self::Cluster(s) => Box::pin(s.list(subject, now)).await,
            Self::Sentinel(s) => Box::pin(s.list(subject, now)).await,
        }
    }

    async fn close_subject(&self, closing: &Closing<'_>) -> Result<u64, StoreError> {
        match self {
            Self::Memory(s) => s.close_subject(closing).await,
            Self::Redis(s) => Box::pin(s.close_subject(closing)).await,
            Self::Cluster(s) => Box::pin(s.close_subject(closing)).await,
            Self::Sentinel(s) => Box::pin(s.close_subject(closing)).await,
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
