//! The Redis Cluster backend: redis-rs's async cluster client. One multiplexed connection
//! per node; commands are routed by hash slot, MOVED/ASK redirections are followed and the
//! slot map is refreshed when the topology changes (a failover, a resharding). Every call
//! touches exactly one key, so every command goes to exactly one shard.
//!
//! The connection is made on first use, not at start-up: a cluster that is not reachable yet
//! is used as soon as it answers. A failed or slow first connect is bounded by the configured
//! timeout and tried again on the next call.

use std::time::Duration;

use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use tokio::sync::OnceCell;

use super::{SessionStore, StoreError};
use crate::token::SessionKey;

/// How often one call is retried inside the client (after a redirection, a lost connection
/// or a `CLUSTERDOWN`/`TRYAGAIN`), all within the one timeout of the call.
const RETRIES: u32 = 6;
/// Shortest wait before such a retry, in milliseconds.
const MIN_RETRY_WAIT_MS: u64 = 10;
/// Longest wait before such a retry, in milliseconds.
const MAX_RETRY_WAIT_MS: u64 = 200;

/// Redis Cluster store. Keys are `<prefix><hex sha256>`, exactly as in standalone mode.
pub struct ClusterStore {
    client: ClusterClient,
    conn: OnceCell<ClusterConnection>,
    prefix: String,
    timeout: Duration,
}

impl ClusterStore {
    /// A store for the cluster that any of `seeds` belongs to (the slot map is learnt from
    /// the first seed that answers). Credentials and TLS come from the URLs, as in standalone
    /// mode, and must be the same in every seed URL. Nothing is connected yet.
    ///
    /// # Errors
    /// [`StoreError::Redis`] when a URL is not usable or the URLs disagree on credentials,
    /// TLS or database.
    pub fn new(seeds: &[String], prefix: &str, timeout: Duration) -> Result<Self, StoreError> {
        let client = ClusterClient::builder(seeds.iter().map(String::as_str))
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(RETRIES)
            .min_retry_wait(MIN_RETRY_WAIT_MS)
            .max_retry_wait(MAX_RETRY_WAIT_MS)
            .build()?;
        Ok(Self {
            client,
            conn: OnceCell::new(),
            prefix: prefix.to_owned(),
            timeout,
        })
    }

    /// The cluster connection, made now if this is the first call (or every earlier attempt
    /// failed). The connect is bounded by the timeout.
    async fn connection(&self) -> Result<ClusterConnection, StoreError> {
        let conn = self
            .conn
            .get_or_try_init(|| async {
                let conn = tokio::time::timeout(self.timeout, self.client.get_async_connection())
                    .await
                    .map_err(|_| StoreError::Timeout(self.timeout))??;
                tracing::info!("connected to the Redis Cluster");
                Ok::<_, StoreError>(conn)
            })
            .await?;
        Ok(conn.clone())
    }

    fn key(&self, key: &SessionKey) -> String {
        key.with_prefix(&self.prefix)
    }
}

impl SessionStore for ClusterStore {
    async fn create(&self, key: &SessionKey, ttl_secs: u64) -> Result<bool, StoreError> {
        let reply: Option<String> = redis::cmd("SET")
            .arg(self.key(key))
            .arg(1)
            .arg("EX")
            .arg(ttl_secs)
            .arg("NX")
            .query_async(&mut self.connection().await?)
            .await?;
        Ok(reply.is_some())
    }

    async fn exists(&self, key: &SessionKey) -> Result<bool, StoreError> {
        let count: u64 = redis::cmd("EXISTS")
            .arg(self.key(key))
            .query_async(&mut self.connection().await?)
            .await?;
        Ok(count > 0)
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), StoreError> {
        let _: u64 = redis::cmd("DEL")
            .arg(self.key(key))
            .query_async(&mut self.connection().await?)
            .await?;
        Ok(())
    }

    /// `PING` goes to one node; readiness means the slot map is known and a node answers.
    async fn ping(&self) -> Result<(), StoreError> {
        let _: String = redis::cmd("PING")
            .query_async(&mut self.connection().await?)
            .await?;
        Ok(())
    }
}
