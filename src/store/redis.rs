//! The Redis backend: one multiplexed connection (redis-rs's `ConnectionManager`) that
//! pipelines concurrent calls on one socket and reconnects by itself after Redis restarts.
//! Each method is one Redis command: `SET key 1 EX ttl NX`, `EXISTS`, `DEL`, `PING`; a batch's
//! verify calls are one multi-key `EXISTS`, then a pipeline of single-key ones only when its
//! count says that some of the keys are live and some are not.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{SessionStore, StoreError};
use crate::token::SessionKey;

/// Redis standalone store. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
}

impl RedisStore {
    /// A store for the Redis at `url` whose keys start with `prefix`. It connects lazily: a
    /// Redis that is down now is used as soon as it answers.
    ///
    /// # Errors
    /// [`StoreError::Redis`] when the URL is not a usable Redis URL.
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(timeout);
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
        })
    }

    fn key(&self, key: &SessionKey) -> Vec<u8> {
        key.prefixed(&self.prefix)
    }
}

impl SessionStore for RedisStore {
    async fn create(&self, key: &SessionKey, ttl_secs: u64) -> Result<bool, StoreError> {
        let reply: Option<String> = redis::cmd("SET")
            .arg(self.key(key))
            .arg(1)
            .arg("EX")
            .arg(ttl_secs)
            .arg("NX")
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(reply.is_some())
    }

    async fn exists(&self, key: &SessionKey) -> Result<bool, StoreError> {
        let count: u64 = redis::cmd("EXISTS")
            .arg(self.key(key))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(count > 0)
    }

    /// First one `EXISTS` naming every key: its count answers the whole batch when all the
    /// keys are live (the count is their number; a key named twice counts twice) or none is
    /// (zero). Only a batch of both needs each key's answer, and gets it from one pipeline of
    /// single-key `EXISTS`: one more round trip, in the same timeout. So does a batch whose
    /// multi-key `EXISTS` the server refuses. One multi-key command costs Redis far less than
    /// as many commands (BENCHMARKS.md).
    async fn exists_many(&self, keys: &[SessionKey]) -> Result<Vec<bool>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut all = redis::cmd("EXISTS");
        for key in keys {
            all.arg(self.key(key));
        }
        match all.query_async::<usize>(&mut self.conn.clone()).await {
            Ok(live) if live == 0 || live == keys.len() => return Ok(vec![live > 0; keys.len()]),
            Ok(_) => {}
            // An error reply: a Redis-compatible endpoint that refuses one command naming keys
            // of different hash slots (a sharding proxy, a one-node cluster) says CROSSSLOT or
            // the like. Asked key by key, it answers; any other refusal comes back again from
            // the pipeline. A connection failure or a timeout is not asked twice.
            Err(err) if matches!(err.kind(), redis::ErrorKind::Server(_)) => {
                tracing::debug!(error = %err, "multi-key EXISTS refused; asking key by key");
            }
            Err(err) => return Err(err.into()),
        }
        let mut pipe = redis::Pipeline::with_capacity(keys.len());
        for key in keys {
            pipe.cmd("EXISTS").arg(self.key(key));
        }
        let counts: Vec<u64> = pipe.query_async(&mut self.conn.clone()).await?;
        Ok(counts.into_iter().map(|n| n > 0).collect())
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), StoreError> {
        let _: u64 = redis::cmd("DEL")
            .arg(self.key(key))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let _: String = redis::cmd("PING")
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }
}
