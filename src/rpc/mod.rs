//! JSON-RPC 2.0: the envelope and nothing about sessions.
//!
//! - [`lenient`]: the one leniency the API page needs (a trailing comma before `}` or `]`).
//! - [`envelope`]: turning a body into single or batch requests, each judged on its own.
//! - [`fast`]: the common request decoded in one pass (the general path decides the rest).
//! - [`error`]: the error object and its codes.
//! - [`response`]: writing response objects.
//! - [`dispatch`]: the whole path from a body to the bytes answered.

pub mod dispatch;
pub mod envelope;
pub mod error;
pub mod fast;
pub mod lenient;
pub mod response;

pub use self::error::RpcError;
