//! Why a session method failed. The caller never did anything wrong here (its input was
//! checked before); the mapping to JSON-RPC errors and HTTP statuses is in
//! `calls::errors`.

use crate::store::StoreError;

/// A session method's failure.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The store failed, timed out or answered something unexpected.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Every freshly drawn token collided with a live session: the random source is broken.
    #[error(
        "{0} freshly drawn tokens all collided with live sessions; the random source is broken"
    )]
    RandomSource(usize),
}
