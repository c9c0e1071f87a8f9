//! Calls that arrive together, sent to Redis as one command (DataLoader-style): each call
//! joins a queue and waits for its own answer; a flush task sends what waits as one
//! multi-key command. A queue runs at most two flush tasks (so two commands in flight), and
//! the calls arriving while both are out wait and form the next one. So under load the batches grow with the load instead of
//! the commands, and an idle service sends each call at once (figures in
//! docs/BENCHMARKS.md, round two). The Redis backend (`redis.rs`) has three queues: verify
//! (`MGET`), close (`DEL`) and read (`/auth`, introspect: one pipeline of `GET` and `TTL`).

use std::sync::Mutex;

use tokio::sync::oneshot;

use super::StoreError;

/// The most keys one coalesced command names; more waiting go in the next one.
pub const MAX_BATCH: usize = 512;

/// The most flush tasks (so commands) one queue has running at once. One would put Redis's
/// lookup time on every call's path (with 10M keys stored it is longer, and the service
/// waits for it); two overlap one command's trip with the next one's (the 10M store row in
/// docs/BENCHMARKS.md, round two), and the calls arriving while both are out still wait and
/// go together.
pub const MAX_IN_FLIGHT: usize = 2;

/// Where a call's answer goes: for verify whether its key exists; for close, `true`; for a
/// read, the session's value and time left.
pub type Answer<T> = oneshot::Sender<Result<T, StoreError>>;

/// One call: its key and where its answer goes.
pub type Waiting<T> = (Vec<u8>, Answer<T>);

/// A queue of calls for one kind of command.
pub struct Queue<T> {
    inner: Mutex<Waiters<T>>,
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Waiters {
                waiting: Vec::new(),
                flushing: 0,
            }),
        }
    }
}

struct Waiters<T> {
    waiting: Vec<Waiting<T>>,
    /// How many flush tasks run (at most [`MAX_IN_FLIGHT`]): each takes what waits as soon
    /// as its command in flight is answered, so the calls that arrive meanwhile need not
    /// start another.
    flushing: usize,
}

impl<T> Queue<T> {
    /// Adds a call. The receiver gets its answer; `true` means fewer than [`MAX_IN_FLIGHT`]
    /// flush tasks are running and the caller must start one.
    pub fn join(&self, key: Vec<u8>) -> (oneshot::Receiver<Result<T, StoreError>>, bool) {
        let (answer, answered) = oneshot::channel();
        let mut inner = self.lock();
        inner.waiting.push((key, answer));
        let start = inner.flushing < MAX_IN_FLIGHT;
        if start {
            inner.flushing += 1;
        }
        (answered, start)
    }

    /// The next batch for the flush task (at most [`MAX_BATCH`] calls, oldest first), or
    /// `None` when nothing waits: the flush task then ends, and the next call may start
    /// another.
    pub fn next_batch(&self) -> Option<Vec<Waiting<T>>> {
        let mut inner = self.lock();
        if inner.waiting.is_empty() {
            inner.flushing -= 1;
            return None;
        }
        let rest = inner.waiting.len().saturating_sub(MAX_BATCH);
        let mut batch = std::mem::take(&mut inner.waiting);
        inner.waiting = batch.split_off(batch.len() - rest);
        Some(batch)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiters<T>> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Answers every call of a batch: each its own answer (or its own failure), or all the same
/// failure.
pub fn answer_all<T>(
    answers: Vec<Answer<T>>,
    outcome: Result<Vec<Result<T, StoreError>>, StoreError>,
) {
    match outcome {
        Ok(verdicts) => {
            for (answer, verdict) in answers.into_iter().zip(verdicts) {
                let _ = answer.send(verdict);
            }
        }
        Err(err) => {
            for answer in answers {
                let _ = answer.send(Err(err.copy()));
            }
        }
    }
}

/// What a caller gets from its receiver: its answer, or an error if the flush task was
/// dropped without answering (the runtime shutting down).
pub async fn answered<T>(
    receiver: oneshot::Receiver<Result<T, StoreError>>,
) -> Result<T, StoreError> {
    receiver.await.unwrap_or_else(|_| {
        Err(StoreError::Unexpected(
            "a batched call was dropped unanswered".to_owned(),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_calls_start_flushes_up_to_the_limit_and_later_ones_join_them() {
        let queue = Queue::<bool>::default();
        let starts: Vec<bool> = (0..MAX_IN_FLIGHT + 2)
            .map(|i| queue.join(i.to_string().into_bytes()).1)
            .collect();
        assert_eq!(starts.iter().filter(|&&s| s).count(), MAX_IN_FLIGHT);
        assert!(starts[..MAX_IN_FLIGHT].iter().all(|&s| s), "{starts:?}");
        let batch = queue.next_batch().expect("all wait");
        assert_eq!(batch.len(), MAX_IN_FLIGHT + 2);
        // One flush task finds nothing waiting and ends: a call may start another in its
        // place, and then the next one waits again.
        assert!(queue.next_batch().is_none());
        assert!(
            queue.join(b"c".to_vec()).1,
            "below the limit: this call starts one"
        );
        assert!(
            !queue.join(b"d".to_vec()).1,
            "at the limit: this call waits"
        );
    }

    #[test]
    fn a_batch_names_at_most_max_batch_keys_oldest_first() {
        let queue = Queue::<bool>::default();
        let receivers: Vec<_> = (0..MAX_BATCH + 3)
            .map(|i| queue.join(i.to_string().into_bytes()).0)
            .collect();
        let first = queue.next_batch().expect("a batch");
        assert_eq!(first.len(), MAX_BATCH);
        assert_eq!(first[0].0, b"0");
        let second = queue.next_batch().expect("the rest");
        assert_eq!(second.len(), 3);
        assert_eq!(second[0].0, MAX_BATCH.to_string().into_bytes());
        drop(receivers);
    }
}
