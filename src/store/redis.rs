//! The Redis backend: one multiplexed connection per worker that pipelines its concurrent
//! calls on one socket. Open is `SET key value EX ttl NX`, close `DEL`, readiness `ROLE`.
//!
//! Verify, close and read calls are coalesced (`coalesce.rs`): the calls that arrive together
//! on a worker (from different connections) share one `MGET` (verify) or one `DEL` (close)
//! naming all their keys, or one pipeline of `GET` and `TTL` (reads: `/auth`, introspect, the
//! OAuth2 introspection), at most two of each in flight at a time, so Redis answers one
//! command (or one write) instead of many (figures in docs/BENCHMARKS.md). Each caller keeps
//! its own timeout; a failure reaches every call of the batch and nothing else, and an error
//! reply to one read fails that read only. A batch request's verify calls are one `MGET` too.
//! Where `MGET` is refused (an ACL user without `+get`, or a sharding endpoint refusing keys
//! of several slots) the old path answers: one multi-key `EXISTS`, then single-key ones in a
//! pipeline.
//!
//! The connection is replaced, not trusted: when it breaks (the next call connects again and
//! the broken call is sent once more on the new one) and when a call times out (a Redis that
//! moved without resetting the old socket would otherwise leave every call timing out until
//! the kernel gives up on it, ~15 minutes). The socket has `TCP_NODELAY`, keep-alive probes
//! and `TCP_USER_TIMEOUT` ([`super::tcp_settings`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, FromRedisValue, IntoConnectionInfo, Role};
use tokio::time::Instant;

use super::coalesce::{self, Queue, Waiting};
use super::identity::{self, Exec, Request};
use super::key::SessionKey;
use super::{SessionStore, StoreError, Stored, tcp_settings};

/// After a connect fails, calls fail at once for this long instead of connecting again: a
/// Redis that is down must not turn every call into a connect attempt.
const CONNECT_BACKOFF: Duration = Duration::from_millis(50);

/// Redis standalone store. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

impl std::ops::Deref for RedisStore {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.inner
    }
}

/// A kind of coalesced call: its queue, and how one batch of it is sent.
trait Coalesced: Copy + Send + Sync + 'static {
    /// What each call is answered.
    type Answer: Send + 'static;

    fn queue(self, inner: &Inner) -> &Queue<Self::Answer>;

    /// Whether a call whose caller gave up (its own timeout) is sent even so: a close is (it
    /// was asked for, and its caller was told the outcome is unknown); a lookup is not.
    fn sent_when_abandoned(self) -> bool;

    /// One command (or pipeline) for the batch's keys: each key's answer, or the failure
    /// they all share.
    fn send(
        self,
        inner: &Inner,
        keys: &[Vec<u8>],
    ) -> impl Future<Output = Result<Vec<Result<Self::Answer, StoreError>>, StoreError>> + Send;
}

/// Verify (one `MGET`) and close (one `DEL`).
#[derive(Clone, Copy)]
enum Batched {
    Exists,
    Delete,
}

impl Coalesced for Batched {
    type Answer = bool;

    fn queue(self, inner: &Inner) -> &Queue<bool> {
        match self {
            Self::Exists => &inner.verifying,
            Self::Delete => &inner.closing,
        }
    }

    fn sent_when_abandoned(self) -> bool {
        matches!(self, Self::Delete)
    }

    async fn send(
        self,
        inner: &Inner,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Result<bool, StoreError>>, StoreError> {
        let answers = match self {
            Self::Exists => {
                if let Some(sizes) = &inner.batch_sizes {
                    sizes.observe(keys.len() as f64);
                }
                inner.lookup(keys).await?
            }
            Self::Delete => {
                inner.delete_all(keys).await?;
                vec![true; keys.len()]
            }
        };
        Ok(answers.into_iter().map(Ok).collect())
    }
}

/// Reads (`/auth`, introspect): one pipeline of `GET` and `TTL` per key, each answered on its
/// own (an error reply for one key fails that call only).
#[derive(Clone, Copy)]
struct Reads;

impl Coalesced for Reads {
    type Answer = Option<Stored>;

    fn queue(self, inner: &Inner) -> &Queue<Option<Stored>> {
        &inner.reading
    }

    fn sent_when_abandoned(self) -> bool {
        false
    }

    async fn send(
        self,
        inner: &Inner,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Result<Option<Stored>, StoreError>>, StoreError> {
        let mut pipe = redis::Pipeline::with_capacity(keys.len() * 2);
        pipe.ignore_errors();
        for key in keys {
            identity::get_and_ttl(&mut pipe, key);
        }
        let replies: Vec<redis::Value> = inner.query(Request::Pipeline(&pipe)).await?;
        if replies.len() != keys.len() * 2 {
            return Err(StoreError::Unexpected(format!(
                "a pipeline reading {} keys answered {} replies",
                keys.len(),
                replies.len()
            )));
        }
        Ok(replies
            .chunks_exact(2)
            .map(|pair| read_reply(&pair[0], &pair[1]))
            .collect())
    }
}

/// One key's `GET` and `TTL` replies, as a session or its own failure.
fn read_reply(get: &redis::Value, ttl: &redis::Value) -> Result<Option<Stored>, StoreError> {
    fn parse<T: FromRedisValue>(reply: &redis::Value) -> Result<T, StoreError> {
        if let redis::Value::ServerError(err) = reply {
            return Err(StoreError::Redis(err.clone().into()));
        }
        redis::from_redis_value_ref(reply).map_err(|err| StoreError::Redis(err.into()))
    }
    Ok(identity::stored(parse(get)?, parse(ttl)?))
}

/// The connection and what is sent on it.
pub struct Inner {
    client: redis::Client,
    config: AsyncConnectionConfig,
    prefix: String,
    timeout: Duration,
    /// The connection in use and when it was made.
    current: Mutex<Option<(MultiplexedConnection, Instant)>>,
    /// Held while connecting; the last failed connect.
    connecting: tokio::sync::Mutex<Option<(Instant, String)>>,
    /// Verify calls waiting for the next `MGET`.
    verifying: Queue<bool>,
    /// Close calls waiting for the next `DEL`.
    closing: Queue<bool>,
    /// Reads waiting for the next pipeline of `GET` and `TTL`.
    reading: Queue<Option<Stored>>,
    /// Set once `MGET` was refused: the `EXISTS` path answers from then on.
    mget_refused: AtomicBool,
    /// Where the size of each coalesced batch is observed.
    batch_sizes: Option<prometheus_client::metrics::histogram::Histogram>,
}

impl RedisStore {
    /// A store for the Redis at `url` whose keys start with `prefix`. It connects lazily: a
    /// Redis that is down now is used as soon as it answers.
    ///
    /// # Errors
    /// [`StoreError::Redis`] when the URL is not a usable Redis URL.
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> Result<Self, StoreError> {
        let info = url
            .into_connection_info()?
            .set_tcp_settings(tcp_settings(timeout));
        let client = redis::Client::open(info)?;
        // No response timeout of the client's own: the store timeout (`Sessions`) is the one
        // bound, so that a hung Redis is classified once, as a timeout.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(None);
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                config,
                prefix: prefix.to_owned(),
                timeout,
                current: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(None),
                verifying: Queue::default(),
                closing: Queue::default(),
                reading: Queue::default(),
                mget_refused: AtomicBool::new(false),
                batch_sizes: None,
            }),
        })
    }

    /// Observes the size of each coalesced verify batch in `histogram`.
    #[must_use]
    pub fn with_batch_sizes(
        mut self,
        histogram: prometheus_client::metrics::histogram::Histogram,
    ) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.batch_sizes = Some(histogram);
        }
        self
    }
}

impl Inner {
    fn key(&self, key: &SessionKey) -> Vec<u8> {
        key.prefixed(&self.prefix)
    }

    fn current(&self) -> Option<(MultiplexedConnection, Instant)> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The connection, made now if there is none.
    async fn connection(&self) -> Result<(MultiplexedConnection, Instant), StoreError> {
        if let Some(current) = self.current() {
            return Ok(current);
        }
        let mut last_failure = self.connecting.lock().await;
        if let Some(current) = self.current() {
            return Ok(current);
        }
        if let Some((at, reason)) = last_failure.as_ref()
            && at.elapsed() < CONNECT_BACKOFF
        {
            return Err(StoreError::Redis(redis::RedisError::from((
                redis::ErrorKind::Io,
                "could not connect to Redis moments ago",
                reason.clone(),
            ))));
        }
        let made = tokio::time::timeout(
            self.timeout,
            self.client
                .get_multiplexed_async_connection_with_config(&self.config),
        )
        .await
        .map_err(|_| StoreError::Timeout(self.timeout))
        .and_then(|made| made.map_err(StoreError::from));
        match made {
            Ok(conn) => {
                *last_failure = None;
                let current = (conn, Instant::now());
                *self
                    .current
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(current.clone());
                Ok(current)
            }
            Err(err) => {
                *last_failure = Some((Instant::now(), err.to_string()));
                Err(err)
            }
        }
    }

    /// Drops the connection made at `made` (unless a newer one replaced it already).
    fn forget(&self, made: Instant, why: &dyn std::fmt::Display) {
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.as_ref().is_some_and(|(_, at)| *at == made) {
            *current = None;
            tracing::warn!(reason = %why, "dropped the Redis connection; the next call connects again");
        }
    }

    /// Drops the connection when it was made before `started`: a call that began on it ran
    /// out of time, so it may be dead without knowing it.
    fn forget_if_older(&self, started: Instant, why: &dyn std::fmt::Display) {
        if let Some((_, made)) = self.current()
            && made <= started
        {
            self.forget(made, why);
        }
    }

    /// Sends a command (or pipeline); once more on a new connection when the first broke.
    async fn query<T: FromRedisValue>(&self, request: Request<'_>) -> Result<T, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (mut conn, made) = self.connection().await?;
            let sent = match request {
                Request::Cmd(cmd) => cmd.query_async(&mut conn).await,
                Request::Pipeline(pipe) => pipe.query_async(&mut conn).await,
                Request::Script(script) => script.invoke_async(&mut conn).await,
            };
            match sent {
                Ok(value) => return Ok(value),
                Err(err) if broken(&err) => {
                    self.forget(made, &err);
                    if attempt >= 2 {
                        return Err(err.into());
                    }
                }
                Err(err) => return Err(err.into()),
            }
        }
    }
}

impl Inner {
    /// Sends a queue's waiting calls as one command and answers each, then the calls that
    /// arrived while it was in flight as the next one, until none wait (`coalesce.rs`).
    async fn flush<K: Coalesced>(self: Arc<Self>, kind: K) {
        loop {
            // Behind the tasks already woken (the first time by being spawned): the calls
            // they make join this batch.
            tokio::task::yield_now().await;
            let Some(batch) = kind.queue(&self).next_batch() else {
                return;
            };
            self.send_batch(kind, batch).await;
        }
    }

    /// One coalesced command, within the store timeout (a hung Redis must not hold the
    /// batch, or its connection, forever), and the answer to each of its calls.
    async fn send_batch<K: Coalesced>(&self, kind: K, batch: Vec<Waiting<K::Answer>>) {
        let (keys, answers): (Vec<Vec<u8>>, Vec<_>) = if kind.sent_when_abandoned() {
            batch.into_iter().unzip()
        } else {
            batch
                .into_iter()
                .filter(|(_, answer)| !answer.is_closed())
                .unzip()
        };
        if keys.is_empty() {
            return;
        }
        let started = Instant::now();
        let outcome = match tokio::time::timeout(self.timeout, kind.send(self, &keys)).await {
            Ok(outcome) => outcome,
            Err(_) => {
                self.forget_if_older(started, &"a batched command timed out on it");
                Err(StoreError::Timeout(self.timeout))
            }
        };
        coalesce::answer_all(answers, outcome);
    }

    /// Deletes the keys: one `DEL` naming them all.
    async fn delete_all(&self, keys: &[Vec<u8>]) -> Result<(), StoreError> {
        let mut del = redis::cmd("DEL");
        for key in keys {
            del.arg(key);
        }
        let _: u64 = self.query(Request::Cmd(&del)).await?;
        Ok(())
    }

    /// Joins `kind`'s queue (starting a flush task when fewer than two run) and waits for
    /// the answer.
    async fn batched<K: Coalesced>(
        self: &Arc<Self>,
        kind: K,
        key: &SessionKey,
    ) -> Result<K::Answer, StoreError> {
        let (answered, start) = kind.queue(self).join(self.key(key));
        if start {
            tokio::spawn(self.clone().flush(kind));
        }
        coalesce::answered(answered).await
    }

    /// Whether each key exists: one `MGET` (nil or a value per key); where it is refused, one
    /// multi-key `EXISTS` whose count answers a batch that is all live or all absent, then a
    /// pipeline of single-key `EXISTS` for a mixed one.
    async fn lookup(&self, keys: &[Vec<u8>]) -> Result<Vec<bool>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        if !self.mget_refused.load(Ordering::Relaxed) {
            let mut mget = redis::cmd("MGET");
            for key in keys {
                mget.arg(key);
            }
            match self
                .query::<Vec<Option<redis::Value>>>(Request::Cmd(&mget))
                .await
            {
                Ok(values) if values.len() == keys.len() => {
                    return Ok(values.iter().map(Option::is_some).collect());
                }
                Ok(values) => {
                    return Err(StoreError::Unexpected(format!(
                        "MGET of {} keys answered {}",
                        keys.len(),
                        values.len()
                    )));
                }
                // An error reply: no `+get` for this ACL user, or a sharding endpoint that
                // refuses keys of different slots in one command.
                Err(StoreError::Redis(err))
                    if matches!(err.kind(), redis::ErrorKind::Server(_)) =>
                {
                    tracing::info!(error = %err, "MGET refused; verifying with EXISTS from now on");
                    self.mget_refused.store(true, Ordering::Relaxed);
                }
                Err(err) => return Err(err),
            }
        }
        let mut all = redis::cmd("EXISTS");
        for key in keys {
            all.arg(key);
        }
        match self.query::<usize>(Request::Cmd(&all)).await {
            Ok(live) if live == 0 || live == keys.len() => return Ok(vec![live > 0; keys.len()]),
            Ok(_) => {}
            Err(StoreError::Redis(err)) if matches!(err.kind(), redis::ErrorKind::Server(_)) => {
                tracing::debug!(error = %err, "multi-key EXISTS refused; asking key by key");
            }
            Err(err) => return Err(err),
        }
        let mut pipe = redis::Pipeline::with_capacity(keys.len());
        for key in keys {
            pipe.cmd("EXISTS").arg(key);
        }
        let counts: Vec<u64> = self.query(Request::Pipeline(&pipe)).await?;
        Ok(counts.into_iter().map(|n| n > 0).collect())
    }
}

/// Whether an error means the connection is unusable (rather than Redis refusing a command).
fn broken(err: &redis::RedisError) -> bool {
    err.is_io_error() || err.is_connection_dropped() || err.is_unrecoverable_error()
}

impl Exec for RedisStore {
    const ONE_NODE: bool = true;

    fn prefix(&self) -> &str {
        &self.prefix
    }

    async fn run<T: FromRedisValue + Send>(&self, request: Request<'_>) -> Result<T, StoreError> {
        self.query(request).await
    }

    /// Joins the reads waiting for the next pipeline of `GET` and `TTL`.
    async fn read_session(&self, key: &SessionKey) -> Result<Option<Stored>, StoreError> {
        self.inner.batched(Reads, key).await
    }
}

impl SessionStore for RedisStore {
    identity::delegate!();

    /// Joins the verify calls waiting for the next `MGET`.
    async fn exists(&self, key: &SessionKey) -> Result<bool, StoreError> {
        self.inner.batched(Batched::Exists, key).await
    }

    async fn exists_many(&self, keys: &[SessionKey]) -> Result<Vec<bool>, StoreError> {
        let keys: Vec<Vec<u8>> = keys.iter().map(|key| self.key(key)).collect();
        self.lookup(&keys).await
    }

    /// Joins the close calls waiting for the next `DEL`.
    async fn delete(&self, key: &SessionKey) -> Result<(), StoreError> {
        self.inner.batched(Batched::Delete, key).await.map(|_| ())
    }

    /// `ROLE`: ready means this Redis answers and takes writes; a read-only replica answers
    /// `PING` but refuses every open and close. An ACL user without `+role` gets `PING`
    /// (docs/DEPLOY.md asks for `+role`).
    async fn ping(&self) -> Result<(), StoreError> {
        let cmd = redis::cmd("ROLE");
        match self.query::<Role>(Request::Cmd(&cmd)).await {
            Ok(Role::Primary { .. }) => Ok(()),
            Ok(_) => Err(StoreError::Unexpected(
                "the configured Redis is a read-only replica; sessions cannot be opened or closed"
                    .to_owned(),
            )),
            Err(StoreError::Redis(err))
                if err.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm) =>
            {
                let ping = redis::cmd("PING");
                let _: String = self.query(Request::Cmd(&ping)).await?;
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    fn timed_out(&self, started: Instant) {
        self.forget_if_older(started, &"a call timed out on it");
    }
}
