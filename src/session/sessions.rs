//! What each session method does against the store: open (`SET … EX … NX`, drawing a new
//! token on the astronomically rare collision), verify (`EXISTS`), close (`DEL`). Every store
//! call is bounded by the configured timeout and counted; failures are returned as
//! [`SessionError`], never answered here.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::error::SessionError;
use super::expiry::ExpiryLimits;
use super::record::{self, Record};
use super::token;
use crate::metrics::{Metrics, Operation};
use crate::store::key::{SessionKey, SubjectKey};
use crate::store::{Closing, IndexEntry, SessionStore, StoreError, Stored};

/// How many tokens `open` draws before giving up; a second draw alone is already beyond
/// astronomically unlikely with 122 random bits.
const OPEN_ATTEMPTS: usize = 3;

/// A deadline beyond any run (about 30 years), for store timeouts too large to add to now.
const NEVER: Duration = Duration::from_secs(30 * 365 * 86_400);

/// A session just opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The new token, handed out once and never stored.
    pub access_token: String,
    /// Seconds granted.
    pub expires_in: u64,
}

/// What a live session says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Introspection {
    /// The session's id (hex SHA-256 of its token).
    pub session_id: String,
    /// Seconds left.
    pub expires_in: u64,
    /// Its stored data.
    pub record: Record,
}

impl Introspection {
    /// What the store holds for `key`, read.
    fn of(key: &SessionKey, stored: &Stored) -> Self {
        Self {
            session_id: key.id(),
            expires_in: stored.ttl,
            record: Record::decode(&stored.value),
        }
    }
}

/// A session's owner and data, given when it is opened.
#[derive(Debug, Clone, Default)]
pub struct Owner {
    /// Whom it belongs to.
    pub subject: Option<String>,
    /// A JSON object, compact.
    pub metadata: Option<String>,
}

/// Which of a subject's sessions to close.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Keep this token's session.
    pub except_token: Option<String>,
    /// Close only these session ids.
    pub session_ids: Option<Vec<String>>,
}

/// A batch's verify answers: `Some(active)` per token, `None` for those the failed store call
/// was asked about (all of them, then, but tokens of the wrong shape, which are inactive
/// without asking), with the failure.
pub struct Verdicts {
    /// One per token, in order.
    pub answers: Vec<Option<bool>>,
    /// Why the `None` answers have none.
    pub failure: Option<SessionError>,
}

/// The session methods over a store.
pub struct Sessions<S> {
    store: S,
    limits: ExpiryLimits,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

impl<S: SessionStore> Sessions<S> {
    /// Sessions kept in `store`, each store call bounded by `timeout` and counted in `metrics`.
    pub fn new(store: S, limits: ExpiryLimits, timeout: Duration, metrics: Arc<Metrics>) -> Self {
        Self {
            store,
            limits,
            timeout,
            metrics,
        }
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

    /// Opens a session lasting `expires_in` seconds (already checked against the limits;
    /// capped by the maximum lifetime), owned by `owner`.
    ///
    /// # Errors
    /// [`SessionError`] when the store fails, or every drawn token collided.
    pub async fn open(&self, expires_in: u64, owner: Owner) -> Result<Opened, SessionError> {
        let expires_in = self
            .limits
            .max_lifetime
            .map_or(expires_in, |cap| expires_in.min(cap));
        let now = record::now();
        let subject = owner.subject.as_deref().map(SubjectKey::of);
        let value = Record {
            issued_at: Some(now),
            subject: owner.subject,
            metadata: owner.metadata,
        }
        .encode();
        for _ in 0..OPEN_ATTEMPTS {
            let access_token = token::generate();
            let key = SessionKey::of(&access_token);
            let index = subject.map(|subject| IndexEntry {
                subject,
                session: key,
                // Rounded up: `now` is whole seconds, the TTL starts from the real moment.
                expires_at: now + expires_in + 1,
                now,
            });
            let created = self
                .store
                .create_with(&key, expires_in, &value, index.as_ref());
            if self.bounded(Operation::create, created).await? {
                return Ok(Opened {
                    access_token,
                    expires_in,
                });
            }
            crate::http::request_id::with_current(|id| {
                tracing::warn!(
                    request_id = id,
                    "a freshly drawn token collided with a live session; drawing again"
                );
            });
        }
        Err(SessionError::RandomSource(OPEN_ATTEMPTS))
    }

    /// Whether `token` names a live session. A token of the wrong shape is inactive without
    /// asking the store.
    ///
    /// # Errors
    /// [`SessionError`] when the store fails.
    pub async fn verify(&self, token: &str) -> Result<bool, SessionError> {
        let Some(key) = token::key_of(token) else {
            return Ok(false);
        };
        Ok(self
            .bounded(Operation::exists, self.store.exists(&key))
            .await?)
    }

    /// Verifies a batch's tokens with one store call ([`SessionStore::exists_many`]).
    pub async fn verify_many(&self, tokens: &[&str]) -> Verdicts {
        let shaped: Vec<Option<SessionKey>> = tokens.iter().map(|t| token::key_of(t)).collect();
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
        let found = match found {
            Ok(found) if found.len() == keys.len() => Ok(found),
            Ok(found) => Err(StoreError::Unexpected(format!(
                "asked about {} keys, told about {}",
                keys.len(),
                found.len()
            ))),
            Err(err) => Err(err),
        };
        match found {
            Ok(found) => {
                let mut found = found.into_iter();
                Verdicts {
                    answers: shaped
                        .iter()
                        .map(|key| Some(key.is_some() && found.next().unwrap_or(false)))
                        .collect(),
                    failure: None,
                }
            }
            Err(err) => Verdicts {
                answers: shaped
                    .iter()
                    .map(|key| key.is_none().then_some(false))
                    .collect(),
                failure: Some(err.into()),
            },
        }
    }

    /// Ends `token`'s session; ending one that was never issued or has ended is no error.
    ///
    /// # Errors
    /// [`SessionError`] when the store fails.
    pub async fn close(&self, token: &str) -> Result<(), SessionError> {
        if let Some(key) = token::key_of(token) {
            self.bounded(Operation::delete, self.store.delete(&key))
                .await?;
        }
        Ok(())
    }

    /// What a live session says about itself, or `None` when `token` names no live session.
    ///
    /// # Errors
    /// [`SessionError`] when the store fails.
    pub async fn introspect(&self, token: &str) -> Result<Option<Introspection>, SessionError> {
        let Some(key) = token::key_of(token) else {
            return Ok(None);
        };
        let stored = self.bounded(Operation::read, self.store.read(&key)).await?;
        Ok(stored.map(|stored| Introspection::of(&key, &stored)))
    }

    /// Sets a live session's time left to `expires_in` (checked against the limits), never
    /// past its issue time plus the maximum lifetime; `None` when it is not live (an ended
    /// session is never revived).
    ///
    /// # Errors
    /// [`SessionError`] when the store fails.
    pub async fn extend(&self, token: &str, expires_in: u64) -> Result<Option<u64>, SessionError> {
        let Some(key) = token::key_of(token) else {
            return Ok(None);
        };
        let now = record::now();
        let extended = self
            .store
            .extend(&key, expires_in, self.limits.max_lifetime, now);
        let Some((granted, value)) = self.bounded(Operation::extend, extended).await? else {
            return Ok(None);
        };
        if let Some(subject) = Record::decode(&value).subject {
            let entry = IndexEntry {
                subject: SubjectKey::of(&subject),
                session: key,
                // Rounded up: `now` is whole seconds, the TTL starts from the real moment.
                expires_at: now + granted + 1,
                now,
            };
            self.bounded(Operation::index, self.store.reindex(&entry))
                .await?;
        }
        Ok(Some(granted))
    }

    /// A subject's live sessions, newest first.
    ///
    /// # Errors
    /// [`SessionError`] when the store fails.
    pub async fn list(&self, subject: &str) -> Result<Vec<Introspection>, SessionError> {
        let index = SubjectKey::of(subject);
        let listed = self.store.list(&index, record::now());
        let mut sessions: Vec<Introspection> = self
            .bounded(Operation::list, listed)
            .await?
            .into_iter()
            .map(|(key, stored)| Introspection::of(&key, &stored))
            // Only this subject's: the index is keyed by a hash, and the value says whose it is.
            .filter(|s| s.record.subject.as_deref() == Some(subject))
            .collect();
        sessions.sort_by(|a, b| {
            b.record
                .issued_at
                .cmp(&a.record.issued_at)
                .then_with(|| a.session_id.cmp(&b.session_id))
        });
        Ok(sessions)
    }

    /// Closes a subject's sessions: all, all but one token's, or the listed ids; how many
    /// live sessions were closed.
    ///
    /// # Errors
    /// [`SessionError`] when the store fails.
    pub async fn close_sessions(
        &self,
        subject: &str,
        selection: Selection,
    ) -> Result<u64, SessionError> {
        let only: Option<Vec<SessionKey>> = selection.session_ids.map(|ids| {
            ids.iter()
                .filter_map(|id| SessionKey::from_id(id))
                .collect()
        });
        let closing = Closing {
            subject: SubjectKey::of(subject),
            except: selection.except_token.as_deref().and_then(token::key_of),
            only: only.as_deref(),
            now: record::now(),
        };
        Ok(self
            .bounded(Operation::close_subject, self.store.close_subject(&closing))
            .await?)
    }

    /// Whether the store answers within the timeout and can take writes.
    ///
    /// # Errors
    /// [`SessionError`] saying why not.
    pub async fn ready(&self) -> Result<(), SessionError> {
        Ok(self.bounded(Operation::ping, self.store.ping()).await?)
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
            let outcome = match timed.await {
                Ok(outcome) => outcome,
                Err(_) => {
                    self.store.timed_out(started);
                    Err(StoreError::Timeout(self.timeout))
                }
            };
            let failure = match &outcome {
                Ok(_) => None,
                Err(err) if err.is_timeout() => Some("timeout"),
                Err(_) => Some("error"),
            };
            self.metrics
                .store_operation(operation, started.elapsed(), failure);
            outcome
        }
    }
}

/// `timeout` after `started`; a timeout too large to add to it is a deadline that never comes.
fn deadline(started: tokio::time::Instant, timeout: Duration) -> tokio::time::Instant {
    started
        .checked_add(timeout)
        .unwrap_or_else(|| started + NEVER)
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
        assert_eq!(deadline(now, Duration::MAX), now + NEVER);
    }
}
