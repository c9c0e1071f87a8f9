//! What each session method does against the store: open (`SET … EX … NX`, drawing a new
//! token on the astronomically rare collision), verify (`EXISTS`), close (`DEL`). Every store
//! call is bounded by the configured timeout, and every store failure becomes the one
//! "session store unavailable" server error.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::methods::{ExpiryLimits, Method};
use crate::metrics::{Metrics, Operation};
use crate::openrpc;
use crate::request_id;
use crate::rpc::RpcError;
use crate::rpc::response::{JsonResult, write_json_string};
use crate::store::{SessionStore, StoreError};
use crate::token::{self, SessionKey};

/// How many tokens `open` draws before giving up; a second draw alone is already beyond
/// astronomically unlikely with 122 random bits.
const OPEN_ATTEMPTS: usize = 3;

/// A deadline beyond any run (about 30 years), for store timeouts too large to add to now.
const NEVER: Duration = Duration::from_secs(30 * 365 * 86_400);

/// A method's successful result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `{"access_token": …, "expires_in": …}`
    Opened {
        /// The new token, handed out once and never stored.
        access_token: String,
        /// Seconds granted.
        expires_in: u64,
    },
    /// `{"active": …}`
    Active(bool),
    /// `true`
    Closed,
    /// The OpenRPC document, as JSON text.
    Document(&'static str),
}

impl JsonResult for Reply {
    fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Self::Opened {
                access_token,
                expires_in,
            } => {
                out.extend_from_slice(b"{\"access_token\":");
                write_json_string(out, access_token);
                out.extend_from_slice(b",\"expires_in\":");
                out.extend_from_slice(expires_in.to_string().as_bytes());
                out.push(b'}');
            }
            Self::Active(true) => out.extend_from_slice(b"{\"active\":true}"),
            Self::Active(false) => out.extend_from_slice(b"{\"active\":false}"),
            Self::Closed => out.extend_from_slice(b"true"),
            Self::Document(json) => out.extend_from_slice(json.as_bytes()),
        }
    }
}

/// The session methods over a store.
pub struct Sessions<S> {
    store: S,
    limits: ExpiryLimits,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

impl<S: SessionStore> Sessions<S> {
    /// Sessions kept in `store`, each store call bounded by `timeout`.
    pub fn new(store: S, limits: ExpiryLimits, timeout: Duration) -> Self {
        Self {
            store,
            limits,
            timeout,
            metrics: Arc::new(Metrics::default()),
        }
    }

    /// Records store operations (and, through [`Sessions::metrics`], calls) in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Where calls and store operations are counted.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The bounds `expires_in` is checked against.
    pub fn limits(&self) -> &ExpiryLimits {
        &self.limits
    }

    /// The store behind the methods.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Runs one call.
    ///
    /// # Errors
    /// `-32000` when the store fails or does not answer within the timeout.
    pub async fn call(&self, method: Method<'_>) -> Result<Reply, RpcError> {
        let outcome = match method {
            Method::OpenSession { expires_in } => self.open(expires_in).await,
            Method::VerifySessionToken { token } => self.verify(&token).await,
            Method::CloseSession { token } => self.close(&token).await,
            Method::Discover => Ok(Reply::Document(openrpc::DOCUMENT)),
        };
        outcome.map_err(store_failure)
    }

    /// Whether the store answers within the timeout.
    pub async fn ready(&self) -> bool {
        match self.bounded(Operation::ping, self.store.ping()).await {
            Ok(()) => true,
            Err(err) => {
                request_id::with_current(|id| {
                    tracing::warn!(request_id = id, error = %err, "session store is not ready");
                });
                false
            }
        }
    }

    async fn open(&self, expires_in: u64) -> Result<Reply, StoreError> {
        for _ in 0..OPEN_ATTEMPTS {
            let access_token = token::generate();
            let key = SessionKey::of(&access_token);
            if self
                .bounded(Operation::create, self.store.create(&key, expires_in))
                .await?
            {
                return Ok(Reply::Opened {
                    access_token,
                    expires_in,
                });
            }
            request_id::with_current(|id| {
                tracing::warn!(
                    request_id = id,
                    "a freshly drawn token collided with a live session; drawing again"
                );
            });
        }
        Err(StoreError::Unsupported(
            "could not draw an unused token; the random source is broken".to_owned(),
        ))
    }

    async fn verify(&self, token: &str) -> Result<Reply, StoreError> {
        if !token::is_well_formed(token) {
            return Ok(Reply::Active(false));
        }
        let key = SessionKey::of(token);
        self.bounded(Operation::exists, self.store.exists(&key))
            .await
            .map(Reply::Active)
    }

    /// Verifies a batch's tokens with one store call ([`SessionStore::exists_many`]),
    /// answering each in order. Tokens of the wrong shape are inactive without asking the
    /// store; when the store fails, every token it was asked about gets the store-unavailable
    /// error.
    pub async fn verify_many(&self, tokens: &[&str]) -> Vec<Result<Reply, RpcError>> {
        let shaped: Vec<Option<SessionKey>> = tokens
            .iter()
            .map(|token| token::is_well_formed(token).then(|| SessionKey::of(token)))
            .collect();
        let keys: Vec<SessionKey> = shaped.iter().flatten().copied().collect();
        let found = match keys.as_slice() {
            [] => Ok(Vec::new()),
            [key] => self
                .bounded(Operation::exists, self.store.exists(key))
                .await
                .map(|found| vec![found]),
            _ => {
                self.bounded(Operation::exists_batch, self.store.exists_many(&keys))
                    .await
            }
        };
        let mut found = match found {
            Ok(found) if found.len() == keys.len() => Ok(found.into_iter()),
            Ok(found) => Err(StoreError::Unsupported(format!(
                "asked about {} keys, told about {}",
                keys.len(),
                found.len()
            ))),
            Err(err) => Err(err),
        }
        .map_err(store_failure);
        shaped
            .iter()
            .map(|key| match (key, &mut found) {
                (None, _) => Ok(Reply::Active(false)),
                (Some(_), Ok(found)) => Ok(Reply::Active(found.next().unwrap_or(false))),
                (Some(_), Err(error)) => Err(error.clone()),
            })
            .collect()
    }

    async fn close(&self, token: &str) -> Result<Reply, StoreError> {
        if token::is_well_formed(token) {
            let key = SessionKey::of(token);
            self.bounded(Operation::delete, self.store.delete(&key))
                .await?;
        }
        Ok(Reply::Closed)
    }

    /// Runs a store operation under the timeout, and counts it. Not an `async fn`: the store's
    /// future goes straight into the timeout instead of being kept as an argument and moved
    /// again, and the one clock reading gives both the deadline and the start.
    fn bounded<T>(
        &self,
        operation: Operation,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> impl Future<Output = Result<T, StoreError>> {
        // tokio's clock, not std's: the same in production, and it follows a paused test clock.
        let started = tokio::time::Instant::now();
        let timed = tokio::time::timeout_at(deadline(started, self.timeout), call);
        async move {
            let outcome = timed
                .await
                .unwrap_or(Err(StoreError::Timeout(self.timeout)));
            let failure = match &outcome {
                Ok(_) => None,
                Err(StoreError::Timeout(_)) => Some("timeout"),
                Err(_) => Some("error"),
            };
            self.metrics
                .store_operation(operation, started.elapsed(), failure);
            outcome
        }
    }
}

/// `timeout` after `started`; a timeout too large to add to it (the setting is any number of
/// milliseconds) is a deadline that never comes.
fn deadline(started: tokio::time::Instant, timeout: Duration) -> tokio::time::Instant {
    started
        .checked_add(timeout)
        .unwrap_or_else(|| started + NEVER)
}

/// The one place a store failure becomes a JSON-RPC error: logged with its cause, answered
/// as a generic server error.
fn store_failure(err: StoreError) -> RpcError {
    request_id::with_current(|id| {
        tracing::warn!(request_id = id, error = %err, "session store call failed");
    });
    RpcError::store_unavailable()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_timeout_too_large_to_add_is_a_deadline_that_never_comes() {
        let now = tokio::time::Instant::now();
        assert_eq!(
            deadline(now, Duration::from_millis(1_500)),
            now + Duration::from_millis(1_500)
        );
        // Duration::MAX cannot be added to any instant: `now + timeout` would panic.
        assert_eq!(deadline(now, Duration::MAX), now + NEVER);
    }
}
