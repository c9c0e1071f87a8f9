//! The Redis Sentinel backend: the sentinels name the master, and sessions live on that
//! master through one multiplexed connection (redis-rs's `redis::sentinel`).
//!
//! Failover is followed: when the master's connection breaks, times out or answers
//! `READONLY` (it was demoted to a replica), the connection is dropped and the sentinels are
//! asked again. The sentinels are asked all at once, each bounded by the timeout, and the
//! first valid master wins, so one dead or hung sentinel costs nothing. Nothing is connected
//! at start-up: the first call discovers the master.
//!
//! The credentials, database and TLS scheme in the URLs are used both for the sentinels and
//! for the master (the sentinels themselves always use database 0).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::future::{FutureExt, select_ok};
use redis::aio::MultiplexedConnection;
use redis::sentinel::{Sentinel, SentinelNodeConnectionInfo};
use redis::{
    AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, ErrorKind, FromRedisValue,
    IntoConnectionInfo, RedisError, Role, ServerErrorKind, TlsMode,
};

use super::identity::{self, Exec, Request};
use super::key::SessionKey;
use super::{SessionStore, StoreError, tcp_settings};

/// After a discovery fails, calls fail at once for this long instead of asking the sentinels
/// again: a dead master under load must not turn every call into a round of sentinel queries.
const DISCOVERY_BACKOFF: Duration = Duration::from_millis(100);

/// How many times one call is sent: once, and once more to the newly discovered master when
/// the first answer showed that the master had changed.
const ATTEMPTS: usize = 2;

/// Redis Sentinel store. Keys are `<prefix><hex sha256>`, exactly as in standalone mode.
pub struct SentinelStore {
    /// One client per sentinel, so that they can be asked concurrently.
    sentinels: Vec<tokio::sync::Mutex<Sentinel>>,
    master_name: String,
    master_info: SentinelNodeConnectionInfo,
    config: AsyncConnectionConfig,
    prefix: String,
    timeout: Duration,
    /// The master in use, if one is known.
    current: Mutex<Option<Master>>,
    /// Held while the sentinels are asked, so that one discovery runs at a time.
    discovery: tokio::sync::Mutex<Discovery>,
}

/// A connection to the master, numbered so that a stale failure cannot drop a newer one.
#[derive(Clone)]
struct Master {
    conn: MultiplexedConnection,
    generation: u64,
    made: tokio::time::Instant,
}

#[derive(Default)]
struct Discovery {
    generation: u64,
    last_failure: Option<(Instant, String)>,
}

impl SentinelStore {
    /// A store for the master named `master_name` that the sentinels at `sentinel_urls`
    /// watch. Nothing is connected yet.
    ///
    /// # Errors
    /// [`StoreError::Redis`] when there is no URL or a URL is not usable.
    pub fn new(
        sentinel_urls: &[String],
        master_name: &str,
        prefix: &str,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let infos = sentinel_urls
            .iter()
            .map(|url| url.as_str().into_connection_info())
            .collect::<Result<Vec<ConnectionInfo>, RedisError>>()?;
        let Some(first) = infos.first() else {
            return Err(RedisError::from((
                ErrorKind::EmptySentinelList,
                "at least one sentinel URL is required",
            ))
            .into());
        };
        let mut master_info = SentinelNodeConnectionInfo::default()
            .set_redis_connection_info(first.redis_settings().clone())
            .set_tcp_settings(tcp_settings(timeout));
        if let ConnectionAddr::TcpTls { insecure, .. } = first.addr() {
            master_info = master_info.set_tls_mode(if *insecure {
                TlsMode::Insecure
            } else {
                TlsMode::Secure
            });
        }
        let sentinels = infos
            .into_iter()
            .map(|info| {
                // A sentinel has no databases: SELECT would fail there.
                let redis = info.redis_settings().clone().set_db(0);
                Sentinel::build(vec![info.set_redis_settings(redis)]).map(tokio::sync::Mutex::new)
            })
            .collect::<Result<Vec<_>, RedisError>>()?;
        Ok(Self {
            sentinels,
            master_name: master_name.to_owned(),
            master_info,
            // No response timeout of the client's own: the store timeout is the one bound,
            // and a call that runs into it drops the master's connection (`timed_out`).
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(None),
            prefix: prefix.to_owned(),
            timeout,
            current: Mutex::new(None),
            discovery: tokio::sync::Mutex::new(Discovery::default()),
        })
    }

    fn key(&self, key: &SessionKey) -> String {
        key.with_prefix(&self.prefix)
    }

    fn current(&self) -> Option<Master> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The master's connection, discovering the master first when none is known.
    async fn master(&self) -> Result<Master, StoreError> {
        if let Some(master) = self.current() {
            return Ok(master);
        }
        let mut discovery = self.discovery.lock().await;
        // Another call may have found the master while this one waited.
        if let Some(master) = self.current() {
            return Ok(master);
        }
        if let Some((at, reason)) = &discovery.last_failure
            && at.elapsed() < DISCOVERY_BACKOFF
        {
            return Err(RedisError::from((
                ErrorKind::Io,
                "no Redis master found by the sentinels moments ago",
                reason.clone(),
            ))
            .into());
        }
        match self.discover().await {
            Ok(conn) => {
                discovery.generation += 1;
                discovery.last_failure = None;
                let master = Master {
                    conn,
                    generation: discovery.generation,
                    made: tokio::time::Instant::now(),
                };
                *self
                    .current
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(master.clone());
                Ok(master)
            }
            Err(err) => {
                discovery.last_failure = Some((Instant::now(), err.to_string()));
                Err(err)
            }
        }
    }

    /// Asks every sentinel at once for the master (each checks with `ROLE` that the node it
    /// names is a master), then connects to the first one named.
    async fn discover(&self) -> Result<MultiplexedConnection, StoreError> {
        let lookups = self.sentinels.iter().map(|sentinel| {
            async move {
                let mut sentinel = sentinel.lock().await;
                tokio::time::timeout(
                    self.timeout,
                    sentinel.async_master_for(&self.master_name, Some(&self.master_info)),
                )
                .await
                .map_err(|_| StoreError::Timeout(self.timeout))?
                .map_err(StoreError::from)
            }
            .boxed()
        });
        let (client, _) = select_ok(lookups).await?;
        let conn = tokio::time::timeout(
            self.timeout,
            client.get_multiplexed_async_connection_with_config(&self.config),
        )
        .await
        .map_err(|_| StoreError::Timeout(self.timeout))??;
        tracing::info!(
            master = %client.get_connection_info().addr(),
            name = %self.master_name,
            "connected to the Redis master named by the sentinels"
        );
        Ok(conn)
    }

    /// Drops the connection of `generation` (unless a newer one replaced it already), so that
    /// the next call asks the sentinels again.
    fn forget(&self, generation: u64, err: &RedisError) {
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.as_ref().is_some_and(|m| m.generation == generation) {
            *current = None;
            tracing::warn!(error = %err, name = %self.master_name, "lost the Redis master; asking the sentinels again");
        }
    }

    /// Sends `cmd` to the master. When the answer shows that the master changed (`READONLY`,
    /// an answer that `check` refuses, or the connection broke or timed out), the master is
    /// rediscovered and the command sent once more. (A master demoted by the sentinels closes
    /// its clients' connections, so the first sign of a failover is often a broken pipe.)
    async fn query<T: FromRedisValue>(
        &self,
        request: Request<'_>,
        check: fn(&T) -> Result<(), RedisError>,
    ) -> Result<T, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let master = self.master().await?;
            let mut conn = master.conn.clone();
            let sent = match request {
                Request::Cmd(cmd) => cmd.query_async(&mut conn).await,
                Request::Pipeline(pipe) => pipe.query_async(&mut conn).await,
                Request::Script(script) => script.invoke_async(&mut conn).await,
            };
            let err = match sent {
                Ok(value) => match check(&value) {
                    Ok(()) => return Ok(value),
                    Err(err) => err,
                },
                Err(err) => err,
            };
            let readonly = err.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly);
            let broken = err.is_io_error() || err.is_unrecoverable_error();
            if readonly || broken {
                self.forget(master.generation, &err);
            }
            if !(readonly || broken) || attempt >= ATTEMPTS {
                return Err(err.into());
            }
        }
    }
}

impl Exec for SentinelStore {
    const ONE_NODE: bool = true;

    fn prefix(&self) -> &str {
        &self.prefix
    }

    async fn run<T: FromRedisValue + Send>(&self, request: Request<'_>) -> Result<T, StoreError> {
        self.query(request, accept).await
    }
}

impl SessionStore for SentinelStore {
    identity::delegate!();

    async fn exists(&self, key: &SessionKey) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(self.key(key));
        let count: u64 = self.query(Request::Cmd(&cmd), accept).await?;
        Ok(count > 0)
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.key(key));
        let _: u64 = self.query(Request::Cmd(&cmd), accept).await?;
        Ok(())
    }

    /// `ROLE` rather than `PING`: a master demoted while its connection stayed open answers
    /// `PING` but not writes, so readiness checks the role and rediscovers when it changed.
    async fn ping(&self) -> Result<(), StoreError> {
        let _: Role = self
            .query(Request::Cmd(&redis::cmd("ROLE")), still_master)
            .await?;
        Ok(())
    }

    fn timed_out(&self, started: tokio::time::Instant) {
        if let Some(master) = self.current()
            && master.made <= started
        {
            let err = RedisError::from((ErrorKind::Io, "a call timed out on the connection"));
            self.forget(master.generation, &err);
        }
    }
}

fn accept<T>(_: &T) -> Result<(), RedisError> {
    Ok(())
}

fn still_master(role: &Role) -> Result<(), RedisError> {
    match role {
        Role::Primary { .. } => Ok(()),
        _ => Err(RedisError::from((
            ErrorKind::Server(ServerErrorKind::ReadOnly),
            "the node the sentinels named is no longer a master",
        ))),
    }
}
