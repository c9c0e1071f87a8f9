//! Sessions that know their owner, on Redis (standalone, Sentinel and Cluster alike): the
//! commands and Lua scripts behind open-with-subject, introspect, extend, list and
//! close-by-subject, written once over [`Exec`].
//!
//! Atomicity:
//! - One node (standalone, Sentinel): opening and indexing a session is one script, and so is
//!   closing a subject's sessions; no reader sees half of either.
//! - Cluster: the index and the sessions live in different slots, so no one command can touch
//!   both. A session is indexed first and stored second, so it is never live without being in
//!   its index (an index member whose session is missing is skipped and pruned by `list`).
//!   Closing reads the index, then deletes: a session opened while a close_sessions runs may
//!   survive it.
//! - Extend is one script on the session's own key everywhere (the lifetime cap is read and
//!   applied atomically); its index score is updated afterwards.

use std::future::Future;
use std::sync::LazyLock;

use futures_util::future::join_all;
use redis::{Cmd, FromRedisValue, Pipeline, Script, ScriptInvocation};

use super::key::{SessionKey, SubjectKey};
use super::{Closing, IndexEntry, StoreError, Stored};

/// What a backend sends.
#[derive(Clone, Copy)]
pub enum Request<'a> {
    /// One command.
    Cmd(&'a Cmd),
    /// A pipeline (all its keys in one slot in a cluster).
    Pipeline(&'a Pipeline),
    /// A Lua script (`EVALSHA`, loaded on `NOSCRIPT`).
    Script(&'a ScriptInvocation<'a>),
}

/// A Redis backend's way of sending a request.
pub trait Exec: Sync {
    /// Whether a script may name a session key and its subject's index together: true on one
    /// node, false in a cluster.
    const ONE_NODE: bool;

    /// The key prefix.
    fn prefix(&self) -> &str;

    /// Sends `request` and reads its answer.
    fn run<T: FromRedisValue + Send>(
        &self,
        request: Request<'_>,
    ) -> impl Future<Output = Result<T, StoreError>> + Send;

    /// A session's value and time left ([`read`]: `GET` and `TTL` in one round trip).
    /// Standalone Redis answers it from its coalesced reads instead (`redis.rs`).
    fn read_session(
        &self,
        key: &SessionKey,
    ) -> impl Future<Output = Result<Option<Stored>, StoreError>> + Send
    where
        Self: Sized,
    {
        read(self, key)
    }
}

/// The identity methods of `SessionStore` for a backend that implements [`Exec`]: each calls
/// this module's function of the same name. Invoked inside the backend's `impl SessionStore`.
/// (A session opened and resent after a broken connection finds its key and reports a
/// collision; the caller draws another token, and the first key, whose token nobody holds,
/// expires.)
macro_rules! delegate {
    () => {
        async fn create_with(
            &self,
            key: &$crate::store::key::SessionKey,
            ttl_secs: u64,
            value: &str,
            index: Option<&$crate::store::IndexEntry>,
        ) -> Result<bool, $crate::store::StoreError> {
            $crate::store::identity::create_with(self, key, ttl_secs, value, index).await
        }

        async fn read(
            &self,
            key: &$crate::store::key::SessionKey,
        ) -> Result<Option<$crate::store::Stored>, $crate::store::StoreError> {
            $crate::store::identity::Exec::read_session(self, key).await
        }

        async fn extend(
            &self,
            key: &$crate::store::key::SessionKey,
            ttl_secs: u64,
            cap: Option<u64>,
            now: u64,
        ) -> Result<Option<(u64, String)>, $crate::store::StoreError> {
            $crate::store::identity::extend(self, key, ttl_secs, cap, now).await
        }

        async fn reindex(
            &self,
            entry: &$crate::store::IndexEntry,
        ) -> Result<(), $crate::store::StoreError> {
            $crate::store::identity::reindex(self, entry).await
        }

        async fn list(
            &self,
            subject: &$crate::store::key::SubjectKey,
            now: u64,
        ) -> Result<
            Vec<($crate::store::key::SessionKey, $crate::store::Stored)>,
            $crate::store::StoreError,
        > {
            $crate::store::identity::list(self, subject, now).await
        }

        async fn close_subject(
            &self,
            closing: &$crate::store::Closing<'_>,
        ) -> Result<u64, $crate::store::StoreError> {
            $crate::store::identity::close_subject(self, closing).await
        }
    };
}
pub(crate) use delegate;

/// The scripts, each hashed once (`EVALSHA` names a script by its SHA-1).
static OPEN_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(OPEN));
static INDEX_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(INDEX));
static EXTEND_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(EXTEND));
static CLOSE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(CLOSE));

/// KEYS[1] session, KEYS[2] index; ARGV value, ttl, session id, expiry (unix), now (unix).
const OPEN: &str = r"
if not redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2], 'NX') then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
local top = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
redis.call('EXPIREAT', KEYS[2], top[2])
return 1
";

/// KEYS[1] index; ARGV session id, expiry (unix), now (unix).
const INDEX: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('EXPIREAT', KEYS[1], top[2])
return 1
";

/// KEYS[1] session; ARGV ttl, cap (0: none), now (unix). The value starts with the issue time
/// (`session::record`); a value without one (written before it was kept) is not capped.
/// Returns nil when the session is not live, else {seconds granted, value}.
const EXTEND: &str = r"
local value = redis.call('GET', KEYS[1])
if not value then return nil end
local ttl = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local issued = tonumber(string.match(value, '^%d+'))
if cap > 0 and issued and issued >= 1000000000 then
  local limit = issued + cap - tonumber(ARGV[3])
  if limit <= 0 then return {redis.call('TTL', KEYS[1]), value} end
  if limit < ttl then ttl = limit end
end
redis.call('EXPIRE', KEYS[1], ttl)
return {ttl, value}
";

/// KEYS[1] index; ARGV prefix, now (unix), kept id (or ''), 'all' or 'some', ids…
/// Closes the chosen members' sessions; returns how many were live.
const CLOSE: &str = r"
local wanted = nil
if ARGV[4] == 'some' then
  wanted = {}
  for i = 5, #ARGV do wanted[ARGV[i]] = true end
end
local closed = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if id ~= ARGV[3] and (wanted == nil or wanted[id]) then
    closed = closed + redis.call('DEL', ARGV[1] .. id)
    redis.call('ZREM', KEYS[1], id)
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
return closed
";

fn session_key(prefix: &str, key: &SessionKey) -> Vec<u8> {
    key.prefixed(prefix)
}

/// `SET <session> <value> EX <ttl> NX`: whether the key was created.
async fn set_nx<E: Exec>(
    exec: &E,
    key: &SessionKey,
    ttl_secs: u64,
    value: &str,
) -> Result<bool, StoreError> {
    let mut cmd = redis::cmd("SET");
    cmd.arg(session_key(exec.prefix(), key))
        .arg(value)
        .arg("EX")
        .arg(ttl_secs)
        .arg("NX");
    let reply: Option<String> = exec.run(Request::Cmd(&cmd)).await?;
    Ok(reply.is_some())
}

/// Queues `GET` and `TTL` of one session (its full key name) on `pipe`.
pub(super) fn get_and_ttl(pipe: &mut redis::Pipeline, name: &[u8]) {
    pipe.cmd("GET").arg(name).cmd("TTL").arg(name);
}

/// A session read by [`get_and_ttl`]: `None` when it is gone (no value, or TTL -2 because
/// it expired between the two commands).
pub(super) fn stored(value: Option<String>, ttl: i64) -> Option<Stored> {
    value.filter(|_| ttl != -2).map(|value| Stored {
        value,
        ttl: u64::try_from(ttl).unwrap_or(1).max(1),
    })
}

/// `SET … NX`, indexing the session first when it has a subject.
pub async fn create_with<E: Exec>(
    exec: &E,
    key: &SessionKey,
    ttl_secs: u64,
    value: &str,
    index: Option<&IndexEntry>,
) -> Result<bool, StoreError> {
    let prefix = exec.prefix();
    let Some(entry) = index else {
        return set_nx(exec, key, ttl_secs, value).await;
    };
    if E::ONE_NODE {
        let mut invocation = OPEN_SCRIPT.prepare_invoke();
        invocation
            .key(session_key(prefix, key))
            .key(entry.subject.prefixed(prefix))
            .arg(value)
            .arg(ttl_secs)
            .arg(key.id())
            .arg(entry.expires_at)
            .arg(entry.now);
        let created: i64 = exec.run(Request::Script(&invocation)).await?;
        return Ok(created == 1);
    }
    reindex(exec, entry).await?;
    let created = set_nx(exec, key, ttl_secs, value).await?;
    if !created {
        // A collision: the index names a session that is not this one's; take it out.
        let mut zrem = redis::cmd("ZREM");
        zrem.arg(entry.subject.prefixed(prefix)).arg(key.id());
        let _: i64 = exec.run(Request::Cmd(&zrem)).await?;
    }
    Ok(created)
}

/// `GET` and `TTL` of one key, in one round trip.
pub async fn read<E: Exec>(exec: &E, key: &SessionKey) -> Result<Option<Stored>, StoreError> {
    let mut pipe = redis::pipe();
    get_and_ttl(&mut pipe, &session_key(exec.prefix(), key));
    let (value, ttl): (Option<String>, i64) = exec.run(Request::Pipeline(&pipe)).await?;
    Ok(stored(value, ttl))
}

/// The extend script.
pub async fn extend<E: Exec>(
    exec: &E,
    key: &SessionKey,
    ttl_secs: u64,
    cap: Option<u64>,
    now: u64,
) -> Result<Option<(u64, String)>, StoreError> {
    let mut invocation = EXTEND_SCRIPT.prepare_invoke();
    invocation
        .key(session_key(exec.prefix(), key))
        .arg(ttl_secs)
        .arg(cap.unwrap_or(0))
        .arg(now);
    let reply: Option<(i64, String)> = exec.run(Request::Script(&invocation)).await?;
    Ok(reply.map(|(granted, value)| (u64::try_from(granted).unwrap_or(1).max(1), value)))
}

/// The index script.
pub async fn reindex<E: Exec>(exec: &E, entry: &IndexEntry) -> Result<(), StoreError> {
    let mut invocation = INDEX_SCRIPT.prepare_invoke();
    invocation
        .key(entry.subject.prefixed(exec.prefix()))
        .arg(entry.session.id())
        .arg(entry.expires_at)
        .arg(entry.now);
    let _: i64 = exec.run(Request::Script(&invocation)).await?;
    Ok(())
}

/// The index's members scored after now, each read; dead members pruned.
pub async fn list<E: Exec>(
    exec: &E,
    subject: &SubjectKey,
    now: u64,
) -> Result<Vec<(SessionKey, Stored)>, StoreError> {
    let index = subject.prefixed(exec.prefix());
    let mut members = redis::cmd("ZRANGEBYSCORE");
    members.arg(&index).arg(format!("({now}")).arg("+inf");
    let ids: Vec<String> = exec.run(Request::Cmd(&members)).await?;
    let keys: Vec<SessionKey> = ids
        .iter()
        .filter_map(|id| SessionKey::from_id(id))
        .collect();
    let read: Vec<Option<Stored>> = if E::ONE_NODE {
        let mut pipe = redis::pipe();
        for key in &keys {
            get_and_ttl(&mut pipe, &session_key(exec.prefix(), key));
        }
        let replies: Vec<(Option<String>, i64)> = if keys.is_empty() {
            Vec::new()
        } else {
            // An answer of another type (an error reply) fails the call: read as "gone", it
            // would prune a live session from its index.
            exec.run(Request::Pipeline(&pipe)).await?
        };
        replies
            .into_iter()
            .map(|(value, ttl)| stored(value, ttl))
            .collect()
    } else {
        join_all(keys.iter().map(|key| read(exec, key)))
            .await
            .into_iter()
            .collect::<Result<_, _>>()?
    };
    let mut live = Vec::new();
    let mut dead = Vec::new();
    for (key, stored) in keys.into_iter().zip(read) {
        match stored {
            Some(stored) => live.push((key, stored)),
            None => dead.push(key.id()),
        }
    }
    if !dead.is_empty() {
        let mut zrem = redis::cmd("ZREM");
        zrem.arg(&index).arg(dead);
        let _: i64 = exec.run(Request::Cmd(&zrem)).await?;
    }
    Ok(live)
}

/// The close script on one node; read, then delete, in a cluster.
pub async fn close_subject<E: Exec>(exec: &E, closing: &Closing<'_>) -> Result<u64, StoreError> {
    let prefix = exec.prefix();
    let index = closing.subject.prefixed(prefix);
    let except = closing.except.map(|k| k.id()).unwrap_or_default();
    if E::ONE_NODE {
        let mut invocation = CLOSE_SCRIPT.prepare_invoke();
        invocation
            .key(&index)
            .arg(prefix)
            .arg(closing.now)
            .arg(&except)
            .arg(if closing.only.is_some() {
                "some"
            } else {
                "all"
            });
        for key in closing.only.unwrap_or_default() {
            invocation.arg(key.id());
        }
        let closed: u64 = exec.run(Request::Script(&invocation)).await?;
        return Ok(closed);
    }
    let mut members = redis::cmd("ZRANGE");
    members.arg(&index).arg(0).arg(-1);
    let ids: Vec<String> = exec.run(Request::Cmd(&members)).await?;
    let chosen: Vec<SessionKey> = ids
        .iter()
        .filter_map(|id| SessionKey::from_id(id))
        .filter(|key| closing.except != Some(*key))
        .filter(|key| closing.only.is_none_or(|only| only.contains(key)))
        .collect();
    let deleted = join_all(chosen.iter().map(|key| async move {
        let mut del = redis::cmd("DEL");
        del.arg(session_key(prefix, key));
        exec.run::<u64>(Request::Cmd(&del)).await
    }))
    .await;
    let mut closed = 0;
    for one in deleted {
        closed += one?;
    }
    let mut tidy = redis::pipe();
    if !chosen.is_empty() {
        tidy.cmd("ZREM")
            .arg(&index)
            .arg(chosen.iter().map(SessionKey::id).collect::<Vec<_>>())
            .ignore();
    }
    tidy.cmd("ZREMRANGEBYSCORE")
        .arg(&index)
        .arg("-inf")
        .arg(closing.now)
        .ignore();
    let () = exec.run(Request::Pipeline(&tidy)).await?;
    Ok(closed)
}
