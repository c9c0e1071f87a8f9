//! The Redis Cluster backend: redis-rs's async cluster client. One multiplexed connection
//! per node; commands are routed by hash slot, MOVED/ASK redirections are followed and the
//! slot map is refreshed when the topology changes (a failover, a resharding). Every call
//! touches exactly one key, so every command goes to exactly one shard.
//!
//! The connection is made on first use, not at start-up: a cluster that is not reachable yet
//! is used as soon as it answers. A failed or slow connect is bounded by the configured
//! timeout and tried again on the next call. A call that times out drops the whole cluster
//! connection, so that nodes that moved without resetting their sockets are connected to
//! afresh (the client's own response timeout is twice the store's, so the store's timeout is
//! the one that fires and a hung node is classified once, as a timeout).

use std::time::Duration;

use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo};
use redis::{ErrorKind, FromRedisValue, IntoConnectionInfo, RedisError};
use tokio::time::Instant;

use super::identity::{self, Exec, Request};
use super::key::SessionKey;
use super::{SessionStore, StoreError, tcp_settings};

/// How often one call is retried inside the client (after a redirection, a lost connection
/// or a `CLUSTERDOWN`/`TRYAGAIN`), all within the one timeout of the call.
const RETRIES: u32 = 6;
/// Shortest wait before such a retry, in milliseconds.
const MIN_RETRY_WAIT_MS: u64 = 10;
/// Longest wait before such a retry, in milliseconds.
const MAX_RETRY_WAIT_MS: u64 = 200;
/// How long a successful readiness check is remembered.
const READY_FOR: Duration = Duration::from_secs(1);

/// Redis Cluster store. Keys are `<prefix><hex sha256>`, exactly as in standalone mode.
pub struct ClusterStore {
    client: ClusterClient,
    /// The connection in use and when it was made.
    conn: std::sync::Mutex<Option<(ClusterConnection, Instant)>>,
    /// Held while connecting.
    connecting: tokio::sync::Mutex<()>,
    /// When readiness last succeeded.
    ready_at: std::sync::Mutex<Option<Instant>>,
    prefix: String,
    timeout: Duration,
}

impl ClusterStore {
    /// A store for the cluster that any of `seeds` belongs to (the slot map is learnt from
    /// the first seed that answers). Credentials and TLS come from the URLs, as in standalone
    /// mode, and must be the same in every seed URL. Nothing is connected yet.
    ///
    /// # Errors
    /// [`StoreError::Redis`] when a URL is not usable, names a database other than 0 (a
    /// cluster has no other, and every connection would fail on `SELECT`), or the URLs
    /// disagree on credentials or TLS.
    pub fn new(seeds: &[String], prefix: &str, timeout: Duration) -> Result<Self, StoreError> {
        for seed in seeds {
            if seed.as_str().into_connection_info()?.redis_settings().db() != 0 {
                return Err(RedisError::from((
                    ErrorKind::InvalidClientConfig,
                    "a Redis Cluster has only database 0; remove the /<db> from the seed URLs",
                ))
                .into());
            }
        }
        let client = ClusterClient::builder(seeds.iter().map(String::as_str))
            .connection_timeout(timeout)
            .response_timeout(timeout.saturating_mul(2))
            .tcp_settings(tcp_settings(timeout))
            .retries(RETRIES)
            .min_retry_wait(MIN_RETRY_WAIT_MS)
            .max_retry_wait(MAX_RETRY_WAIT_MS)
            .build()?;
        Ok(Self {
            client,
            conn: std::sync::Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            ready_at: std::sync::Mutex::new(None),
            prefix: prefix.to_owned(),
            timeout,
        })
    }

    fn current(&self) -> Option<(ClusterConnection, Instant)> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The cluster connection, made now if there is none. The connect is bounded by the
    /// timeout.
    async fn connection(&self) -> Result<ClusterConnection, StoreError> {
        if let Some((conn, _)) = self.current() {
            return Ok(conn);
        }
        let _connecting = self.connecting.lock().await;
        if let Some((conn, _)) = self.current() {
            return Ok(conn);
        }
        let conn = tokio::time::timeout(self.timeout, self.client.get_async_connection())
            .await
            .map_err(|_| StoreError::Timeout(self.timeout))??;
        tracing::info!("connected to the Redis Cluster");
        *self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((conn.clone(), Instant::now()));
        Ok(conn)
    }

    fn key(&self, key: &SessionKey) -> String {
        key.with_prefix(&self.prefix)
    }
}

impl Exec for ClusterStore {
    const ONE_NODE: bool = false;

    fn prefix(&self) -> &str {
        &self.prefix
    }

    async fn run<T: FromRedisValue + Send>(&self, request: Request<'_>) -> Result<T, StoreError> {
        let mut conn = self.connection().await?;
        Ok(match request {
            Request::Cmd(cmd) => cmd.query_async(&mut conn).await?,
            Request::Pipeline(pipe) => pipe.query_async(&mut conn).await?,
            Request::Script(script) => script.invoke_async(&mut conn).await?,
        })
    }
}

impl SessionStore for ClusterStore {
    identity::delegate!();

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

    /// `PING` to every master, answered by the first that replies: ready means the slot map
    /// is known and some master answers. (The client's default for `PING` waits for every
    /// master, so one dead or hung master would make every pod unready at once and take all
    /// the keys out of service, not only its own.)
    ///
    /// A success is remembered for [`READY_FOR`]: probes from many places (kubelet, load
    /// balancers) then cost one round of PINGs a second, not one each.
    async fn ping(&self) -> Result<(), StoreError> {
        let fresh = self
            .ready_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some_and(|at| at.elapsed() < READY_FOR);
        if fresh {
            return Ok(());
        }
        let reply = self
            .connection()
            .await?
            .route_command(
                redis::cmd("PING"),
                RoutingInfo::MultiNode((
                    MultipleNodeRoutingInfo::AllMasters,
                    Some(ResponsePolicy::OneSucceeded),
                )),
            )
            .await?;
        let _: String = redis::from_redis_value(reply).map_err(RedisError::from)?;
        *self
            .ready_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
        Ok(())
    }

    fn timed_out(&self, started: Instant) {
        let mut conn = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if conn.as_ref().is_some_and(|(_, made)| *made <= started) {
            *conn = None;
            tracing::warn!("a call to the Redis Cluster timed out; connecting to it afresh");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeds(urls: &[&str]) -> Vec<String> {
        urls.iter().map(|u| (*u).to_owned()).collect()
    }

    #[test]
    fn seed_urls_are_checked_before_anything_connects() {
        let timeout = Duration::from_secs(1);
        let ok = seeds(&["redis://:pw@10.0.0.1:6379", "redis://:pw@10.0.0.2:6379/0"]);
        assert!(ClusterStore::new(&ok, "p:", timeout).is_ok());

        let db = seeds(&["redis://10.0.0.1:6379", "redis://10.0.0.2:6379/3"]);
        let err = ClusterStore::new(&db, "p:", timeout)
            .err()
            .expect("database 3");
        assert!(err.to_string().contains("only database 0"), "{err}");

        let passwords = seeds(&["redis://:a@10.0.0.1:6379", "redis://:b@10.0.0.2:6379"]);
        assert!(ClusterStore::new(&passwords, "p:", timeout).is_err());
        let tls = seeds(&["rediss://10.0.0.1:6379", "redis://10.0.0.2:6379"]);
        assert!(ClusterStore::new(&tls, "p:", timeout).is_err());
        assert!(ClusterStore::new(&seeds(&["http://10.0.0.1"]), "p:", timeout).is_err());
    }
}
