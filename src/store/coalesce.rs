//! Calls that arrive together, sent to Redis as one command (DataLoader-style): each call
//! joins a queue and waits for its own answer; one flush task per queue sends what waits as
//! one multi-key command, and while that command is in flight the calls arriving meanwhile
//! wait for it and form the next one. So under load the batches grow with the load instead of
//! the commands, and an idle service sends each call at once (figures in
//! docs/BENCHMARKS.md, round two). The Redis backend (`redis.rs`) has two queues: verify
//! (`MGET`) and close (`DEL`).

use std::sync::Mutex;

use tokio::sync::oneshot;

use super::StoreError;

/// The most keys one coalesced command names; more waiting go in the next one.
pub const MAX_BATCH: usize = 512;

/// Where a call's answer goes: for verify whether its key exists; for close, `true`.
pub type Answer = oneshot::Sender<Result<bool, StoreError>>;

/// One call: its key and where its answer goes.
pub type Waiting = (Vec<u8>, Answer);

/// A queue of calls for one kind of command.
#[derive(Default)]
pub struct Queue {
    inner: Mutex<Waiters>,
}

#[derive(Default)]
struct Waiters {
    waiting: Vec<Waiting>,
    /// A flush task is running: it takes what waits as soon as its command in flight is
    /// answered, so the calls that arrive meanwhile need not start another.
    flushing: bool,
}

impl Queue {
    /// Adds a call. The receiver gets its answer; `true` means no flush task is running and
    /// the caller must start one.
    pub fn join(&self, key: Vec<u8>) -> (oneshot::Receiver<Result<bool, StoreError>>, bool) {
        let (answer, answered) = oneshot::channel();
        let mut inner = self.lock();
        inner.waiting.push((key, answer));
        let start = !std::mem::replace(&mut inner.flushing, true);
        (answered, start)
    }

    /// The next batch for the flush task (at most [`MAX_BATCH`] calls, oldest first), or
    /// `None` when nothing waits: the flush task then ends, and the next call starts another.
    pub fn next_batch(&self) -> Option<Vec<Waiting>> {
        let mut inner = self.lock();
        if inner.waiting.is_empty() {
            inner.flushing = false;
            return None;
        }
        let rest = inner.waiting.len().saturating_sub(MAX_BATCH);
        let mut batch = std::mem::take(&mut inner.waiting);
        inner.waiting = batch.split_off(batch.len() - rest);
        Some(batch)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiters> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Answers every call of a batch: each its own verdict, or all the same failure.
pub fn answer_all(answers: Vec<Answer>, outcome: Result<Vec<bool>, StoreError>) {
    match outcome {
        Ok(verdicts) => {
            for (answer, verdict) in answers.into_iter().zip(verdicts) {
                let _ = answer.send(Ok(verdict));
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
pub async fn answered(
    receiver: oneshot::Receiver<Result<bool, StoreError>>,
) -> Result<bool, StoreError> {
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
    fn the_first_call_starts_the_flush_and_later_ones_join_it() {
        let queue = Queue::default();
        let (_a, start_a) = queue.join(b"a".to_vec());
        let (_b, start_b) = queue.join(b"b".to_vec());
        assert!(start_a && !start_b);
        let batch = queue.next_batch().expect("two wait");
        assert_eq!(batch.len(), 2);
        // Nothing waits: the flush task ends, and the next call starts a new one.
        assert!(queue.next_batch().is_none());
        let (_c, start_c) = queue.join(b"c".to_vec());
        assert!(start_c);
    }

    #[test]
    fn a_batch_names_at_most_max_batch_keys_oldest_first() {
        let queue = Queue::default();
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
