//! JSON-RPC 2.0: the envelope and nothing about sessions.
//!
//! - [`lenient`]: the one leniency the API page needs (a trailing comma before `}` or `]`).
//! - [`envelope`]: a body to single or batch requests, in one pass, each judged on its own.
//! - [`error`]: the error object and its codes.
//! - [`response`]: writing response objects.

pub mod envelope;
pub mod error;
pub mod lenient;
pub mod response;

pub use self::error::RpcError;
