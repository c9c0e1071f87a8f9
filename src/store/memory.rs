//! The in-process store for single-instance development: the same semantics as Redis (create
//! only if absent, TTL enforced on every read), with expired entries reclaimed by a sweeper.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::key::SessionKey;
use super::{SessionStore, StoreError};

/// How often the sweeper looks for expired entries.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// At most this many entries are reclaimed per lock, so that a sweep never stalls callers.
const SWEEP_CHUNK: usize = 10_000;

/// Sessions in a hash map, with an ordered index of expiry times for the sweeper.
#[derive(Default)]
struct Entries {
    expires_at: HashMap<SessionKey, Instant>,
    by_expiry: BTreeSet<(Instant, SessionKey)>,
}

impl Entries {
    fn live(&self, key: &SessionKey, now: Instant) -> bool {
        self.expires_at.get(key).is_some_and(|&at| at > now)
    }

    fn remove(&mut self, key: &SessionKey) {
        if let Some(at) = self.expires_at.remove(key) {
            self.by_expiry.remove(&(at, *key));
        }
    }

    /// Removes up to `limit` expired entries; returns how many it removed.
    fn reclaim(&mut self, now: Instant, limit: usize) -> usize {
        let mut removed = 0;
        while removed < limit {
            match self.by_expiry.first() {
                Some(&(at, key)) if at <= now => {
                    self.by_expiry.pop_first();
                    self.expires_at.remove(&key);
                    removed += 1;
                }
                _ => break,
            }
        }
        removed
    }
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

    /// Reclaims every expired entry now; returns how many were removed.
    pub fn sweep(&self) -> usize {
        let mut total = 0;
        loop {
            let removed = self.lock().reclaim(Instant::now(), SWEEP_CHUNK);
            total += removed;
            if removed < SWEEP_CHUNK {
                return total;
            }
        }
    }

    /// How many entries are held, expired ones not yet reclaimed included.
    pub fn len(&self) -> usize {
        self.lock().expires_at.len()
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
    async fn create(&self, key: &SessionKey, ttl_secs: u64) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.live(key, now) {
            return Ok(false);
        }
        entries.remove(key);
        let at = now + Duration::from_secs(ttl_secs);
        entries.expires_at.insert(*key, at);
        entries.by_expiry.insert((at, *key));
        Ok(true)
    }

    async fn exists(&self, key: &SessionKey) -> Result<bool, StoreError> {
        Ok(self.lock().live(key, Instant::now()))
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), StoreError> {
        self.lock().remove(key);
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
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
