//! The in-process store for single-instance development: the same semantics as Redis (create
//! only if absent, TTL enforced on every read, subject indexes pruned as in Redis), with
//! expired entries reclaimed by a sweeper. Every operation holds one lock, so each is atomic.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::key::{SessionKey, SubjectKey};
use super::{Closing, IndexEntry, SessionStore, StoreError, Stored};
use crate::session::record::Record;

/// How often the sweeper looks for expired entries.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// At most this many entries are reclaimed per lock, so that a sweep never stalls callers.
const SWEEP_CHUNK: usize = 10_000;

/// Sessions in a hash map, with an ordered index of expiry times for the sweeper, and the
/// subject indexes (session → expiry in unix seconds).
#[derive(Default)]
struct Entries {
    sessions: HashMap<SessionKey, (Instant, String)>,
    by_expiry: BTreeSet<(Instant, SessionKey)>,
    subjects: HashMap<SubjectKey, HashMap<SessionKey, u64>>,
}

impl Entries {
    fn live(&self, key: &SessionKey, now: Instant) -> Option<&(Instant, String)> {
        self.sessions.get(key).filter(|(at, _)| *at > now)
    }

    fn remove(&mut self, key: &SessionKey) -> bool {
        match self.sessions.remove(key) {
            Some((at, _)) => {
                self.by_expiry.remove(&(at, *key));
                true
            }
            None => false,
        }
    }

    fn set_expiry(&mut self, key: &SessionKey, at: Instant) {
        if let Some((old, _)) = self.sessions.get_mut(key) {
            self.by_expiry.remove(&(*old, *key));
            *old = at;
            self.by_expiry.insert((at, *key));
        }
    }

    fn index(&mut self, entry: &IndexEntry) {
        let members = self.subjects.entry(entry.subject).or_default();
        members.retain(|_, expires_at| *expires_at > entry.now);
        members.insert(entry.session, entry.expires_at);
    }

    /// The sessions `subject`'s index names.
    fn members(&self, subject: &SubjectKey) -> Vec<SessionKey> {
        self.subjects
            .get(subject)
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Takes `removed` and the members scored at or before `now` out of `subject`'s index, and
    /// the index itself once it is empty (as a Redis index disappears with its last member).
    fn prune(&mut self, subject: &SubjectKey, now: u64, removed: &[SessionKey]) {
        if let Some(index) = self.subjects.get_mut(subject) {
            index.retain(|session, expires_at| *expires_at > now && !removed.contains(session));
            if index.is_empty() {
                self.subjects.remove(subject);
            }
        }
    }

    /// Removes up to `limit` expired entries; returns how many it removed.
    fn reclaim(&mut self, now: Instant, limit: usize) -> usize {
        let mut removed = 0;
        while removed < limit {
            match self.by_expiry.first() {
                Some(&(at, key)) if at <= now => {
                    self.by_expiry.pop_first();
                    self.sessions.remove(&key);
                    removed += 1;
                }
                _ => break,
            }
        }
        removed
    }
}

/// Seconds left until `at`, at least 1.
fn seconds_left(at: Instant, now: Instant) -> u64 {
    (at - now).as_secs_f64().ceil().max(1.0) as u64
}

/// In-process session store. Cheap to clone; clones share the same sessions.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    entries: Mutex<Entries>,
    sweeper: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(handle) = self.sweeper.get_mut().ok().and_then(Option::take) {
            handle.abort();
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store. When called inside a Tokio runtime it also starts the sweeper that
    /// reclaims expired entries (reads never see them either way).
    pub fn new() -> Self {
        let store = Self {
            inner: Arc::new(Inner {
                entries: Mutex::new(Entries::default()),
                sweeper: Mutex::new(None),
            }),
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&store.inner);
            let handle = runtime.spawn(async move {
                let mut tick = tokio::time::interval(SWEEP_EVERY);
                loop {
                    tick.tick().await;
                    let Some(inner) = weak.upgrade() else { return };
                    MemoryStore { inner }.sweep();
                }
            });
            if let Ok(mut slot) = store.inner.sweeper.lock() {
                *slot = Some(handle);
            }
        }
        store
    }

    /// Reclaims every expired entry now; returns how many were removed. Empty subject
    /// indexes go too (as a Redis index expires with its last session).
    pub fn sweep(&self) -> usize {
        let mut total = 0;
        loop {
            let removed = self.lock().reclaim(Instant::now(), SWEEP_CHUNK);
            total += removed;
            if removed < SWEEP_CHUNK {
                break;
            }
        }
        let now = crate::session::record::now();
        self.lock().subjects.retain(|_, members| {
            members.retain(|_, expires_at| *expires_at > now);
            !members.is_empty()
        });
        total
    }

    /// How many entries are held, expired ones not yet reclaimed included.
    pub fn len(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        // A panic while holding the lock cannot leave the maps inconsistent in a way that
        // matters more than losing the service, so a poisoned lock is used as it is.
        self.inner
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl SessionStore for MemoryStore {
    async fn create_with(
        &self,
        key: &SessionKey,
        ttl_secs: u64,
        value: &str,
        index: Option<&IndexEntry>,
    ) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.live(key, now).is_some() {
            return Ok(false);
        }
        entries.remove(key);
        let at = now + Duration::from_secs(ttl_secs);
        entries.sessions.insert(*key, (at, value.to_owned()));
        entries.by_expiry.insert((at, *key));
        if let Some(entry) = index {
            entries.index(entry);
        }
        Ok(true)
    }

    async fn exists(&self, key: &SessionKey) -> Result<bool, StoreError> {
        Ok(self.lock().live(key, Instant::now()).is_some())
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), StoreError> {
        self.lock().remove(key);
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn read(&self, key: &SessionKey) -> Result<Option<Stored>, StoreError> {
        let now = Instant::now();
        Ok(self.lock().live(key, now).map(|(at, value)| Stored {
            value: value.clone(),
            ttl: seconds_left(*at, now),
        }))
    }

    async fn extend(
        &self,
        key: &SessionKey,
        ttl_secs: u64,
        cap: Option<u64>,
        now_unix: u64,
    ) -> Result<Option<(u64, String)>, StoreError> {
        let now = Instant::now();
        let mut entries = self.lock();
        let Some((at, value)) = entries.live(key, now).cloned() else {
            return Ok(None);
        };
        let issued_at = Record::decode(&value).issued_at;
        let granted = match (cap, issued_at) {
            (Some(cap), Some(issued_at)) => {
                let limit = (issued_at + cap).saturating_sub(now_unix);
                if limit == 0 {
                    return Ok(Some((seconds_left(at, now), value)));
                }
                ttl_secs.min(limit)
            }
            _ => ttl_secs,
        };
        entries.set_expiry(key, now + Duration::from_secs(granted));
        Ok(Some((granted, value)))
    }

    async fn reindex(&self, entry: &IndexEntry) -> Result<(), StoreError> {
        self.lock().index(entry);
        Ok(())
    }

    async fn list(
        &self,
        subject: &SubjectKey,
        now_unix: u64,
    ) -> Result<Vec<(SessionKey, Stored)>, StoreError> {
        let now = Instant::now();
        let mut entries = self.lock();
        let members = entries.members(subject);
        let mut live = Vec::new();
        let mut dead = Vec::new();
        for session in members {
            match entries.live(&session, now) {
                Some((at, value)) => live.push((
                    session,
                    Stored {
                        value: value.clone(),
                        ttl: seconds_left(*at, now),
                    },
                )),
                None => dead.push(session),
            }
        }
        entries.prune(subject, now_unix, &dead);
        Ok(live)
    }

    async fn close_subject(&self, closing: &Closing<'_>) -> Result<u64, StoreError> {
        let now = Instant::now();
        let mut entries = self.lock();
        let members = entries.members(&closing.subject);
        let mut closed = 0;
        let mut gone = Vec::new();
        for session in members {
            let wanted = closing.except != Some(session)
                && closing.only.is_none_or(|only| only.contains(&session));
            if !wanted {
                continue;
            }
            if entries.live(&session, now).is_some() {
                closed += 1;
            }
            entries.remove(&session);
            gone.push(session);
        }
        entries.prune(&closing.subject, closing.now, &gone);
        Ok(closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn expired_entries_are_invisible_then_reclaimed() {
        let store = MemoryStore::new();
        let key = SessionKey::of("a");
        assert!(store.create(&key, 5).await.expect("create"));
        assert!(!store.create(&key, 5).await.expect("second create"));
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(store.exists(&key).await.expect("exists"));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(!store.exists(&key).await.expect("exists"));
        tokio::time::sleep(SWEEP_EVERY * 2).await;
        assert!(store.is_empty(), "the sweeper reclaimed it");
        // An expired key may be created again.
        assert!(store.create(&key, 5).await.expect("recreate"));
    }

    #[tokio::test(start_paused = true)]
    async fn delete_removes_the_expiry_index_too() {
        let store = MemoryStore::new();
        for i in 0..100 {
            store
                .create(&SessionKey::of(&i.to_string()), 60)
                .await
                .expect("create");
        }
        for i in 0..100 {
            store
                .delete(&SessionKey::of(&i.to_string()))
                .await
                .expect("delete");
        }
        assert!(store.is_empty());
        assert!(store.lock().by_expiry.is_empty());
    }
}
