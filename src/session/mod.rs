//! Sessions: what each method does against the store ([`sessions`]), its errors ([`error`]),
//! tokens ([`token`]) and the bounds of `expires_in` ([`expiry`]). Nothing here knows about
//! JSON-RPC or HTTP.

pub mod error;
pub mod expiry;
pub mod record;
pub mod sessions;
pub mod token;

pub use self::error::SessionError;
pub use self::sessions::{Introspection, Opened, Owner, Selection, Sessions};
