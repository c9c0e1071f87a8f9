//! Session calls over JSON-RPC: decoding a request's method and params ([`methods`]), running
//! calls and batches and writing the answer ([`dispatch`]), results as JSON ([`reply`]), and
//! the one place failures become error objects and statuses ([`errors`]).

pub mod dispatch;
pub mod errors;
pub mod methods;
pub mod reply;

pub use self::reply::Reply;
