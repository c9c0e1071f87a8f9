//! The whole JSON-RPC path: a body in, the bytes to answer (or nothing) out. A batch's entries
//! are judged one by one; its verify calls go to the store together (one `exists_many` call), its
//! other calls run concurrently; notifications run but are never answered.

use std::time::Instant;

use futures_util::future::{join, join_all};
use serde_json::value::RawValue;

use super::envelope::{Incoming, parse_body, parse_request};
use super::error::{METHOD_NOT_FOUND, RpcError};
use super::fast;
use super::response::{error_body, write};
use crate::methods::{ALL, ExpiryLimits, Method};
use crate::sessions::{Reply, Sessions};
use crate::store::SessionStore;

/// Answers a request body. `None` means there is nothing to answer (only notifications).
pub async fn handle_body<S: SessionStore>(
    sessions: &Sessions<S>,
    body: &[u8],
    max_batch: usize,
) -> Option<Vec<u8>> {
    let started = Instant::now();
    // Nearly every body is one request of the common shape: decode it in one pass.
    if let Some(call) = std::str::from_utf8(body)
        .ok()
        .and_then(|text| fast::decode(text, sessions.limits()))
    {
        let outcome = run(sessions, call.method, started).await;
        return call.id.map(|id| single(id, &outcome));
    }
    let mut scratch = Vec::new();
    let incoming = match parse_body(body, &mut scratch, max_batch) {
        Ok(incoming) => incoming,
        Err(error) => {
            sessions
                .metrics()
                .call("invalid", error.code_label(), Default::default());
            return Some(error_body(&error));
        }
    };
    match incoming {
        Incoming::Single(entry) => {
            let outcome = match decode(entry, sessions.limits()) {
                Decoded::Call { id, method } => (id, run(sessions, method, started).await),
                Decoded::Refused { id, name, error } => {
                    let outcome = Err(error);
                    record(sessions, name, &outcome, started);
                    (id, outcome)
                }
            };
            let (id, outcome) = outcome;
            id.map(|id| single(id, &outcome))
        }
        Incoming::Batch(entries) => {
            sessions.metrics().batch_size.observe(entries.len() as f64);
            let answers = batch(sessions, entries, started).await;
            let mut out = Vec::with_capacity(answers.len() * 96 + 2);
            out.push(b'[');
            for (id, outcome) in answers.iter().flatten() {
                if out.len() > 1 {
                    out.push(b',');
                }
                write(&mut out, id, outcome);
            }
            out.push(b']');
            (out.len() > 2).then_some(out)
        }
    }
}

fn single(id: &RawValue, outcome: &Result<Reply, RpcError>) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    write(&mut out, id, outcome);
    out
}

/// One entry, judged.
enum Decoded<'a> {
    /// A valid call; `id` is `None` for a notification.
    Call {
        id: Option<&'a RawValue>,
        method: Method<'a>,
    },
    /// An entry answered with an error without running; `id` is `None` for a notification.
    Refused {
        id: Option<&'a RawValue>,
        name: &'static str,
        error: RpcError,
    },
}

fn decode<'a>(entry: &'a RawValue, limits: &ExpiryLimits) -> Decoded<'a> {
    if let Some(call) = fast::decode(entry.get(), limits) {
        return Decoded::Call {
            id: call.id,
            method: call.method,
        };
    }
    let request = match parse_request(entry) {
        Ok(request) => request,
        Err(rejected) => {
            return Decoded::Refused {
                id: Some(rejected.id),
                name: "invalid",
                error: rejected.error,
            };
        }
    };
    match Method::parse(&request.method, request.params, limits) {
        Ok(method) => Decoded::Call {
            id: request.id,
            method,
        },
        Err(error) => Decoded::Refused {
            id: request.id,
            name: if error.code == METHOD_NOT_FOUND {
                "unknown"
            } else {
                known_name(&request.method)
            },
            error,
        },
    }
}

/// Runs one call and records it.
async fn run<S: SessionStore>(
    sessions: &Sessions<S>,
    method: Method<'_>,
    started: Instant,
) -> Result<Reply, RpcError> {
    let name = method.name();
    let outcome = sessions.call(method).await;
    record(sessions, name, &outcome, started);
    outcome
}

type Answer<'a> = Option<(&'a RawValue, Result<Reply, RpcError>)>;

/// Answers a batch's entries in order (`None` for notifications). Its verify calls reach the
/// store as one call; every other call runs alongside them.
async fn batch<'a, S: SessionStore>(
    sessions: &Sessions<S>,
    entries: Vec<&'a RawValue>,
    started: Instant,
) -> Vec<Answer<'a>> {
    let decoded: Vec<Decoded<'a>> = entries
        .into_iter()
        .map(|entry| decode(entry, sessions.limits()))
        .collect();
    let tokens: Vec<&str> = decoded
        .iter()
        .filter_map(|d| match d {
            Decoded::Call {
                method: Method::VerifySessionToken { token },
                ..
            } => Some(token.as_ref()),
            _ => None,
        })
        .collect();
    let others = decoded.iter().filter_map(|d| match d {
        Decoded::Call { method, .. } if !matches!(method, Method::VerifySessionToken { .. }) => {
            Some(sessions.call(method.clone()))
        }
        _ => None,
    });
    let (verified, others) = join(sessions.verify_many(&tokens), join_all(others)).await;
    let (mut verified, mut others) = (verified.into_iter(), others.into_iter());
    decoded
        .into_iter()
        .map(|d| {
            let (id, name, outcome) = match d {
                Decoded::Call { id, method } => {
                    let next = match method {
                        Method::VerifySessionToken { .. } => verified.next(),
                        _ => others.next(),
                    };
                    // One outcome was made per call above, in the same order.
                    let outcome = next.unwrap_or_else(|| Err(RpcError::internal()));
                    (id, method.name(), outcome)
                }
                Decoded::Refused { id, name, error } => (id, name, Err(error)),
            };
            record(sessions, name, &outcome, started);
            id.map(|id| (id, outcome))
        })
        .collect()
}

/// The static name of a method the service has, for labels.
fn known_name(name: &str) -> &'static str {
    ALL.into_iter().find(|m| *m == name).unwrap_or("unknown")
}

/// Counts and logs one call. Never logs params: they hold tokens.
fn record<S: SessionStore>(
    sessions: &Sessions<S>,
    method: &'static str,
    outcome: &Result<Reply, RpcError>,
    started: Instant,
) {
    let took = started.elapsed();
    let label = match outcome {
        Ok(_) => "result",
        Err(error) => error.code_label(),
    };
    sessions.metrics().call(method, label, took);
    tracing::debug!(
        rpc.method = method,
        outcome = label,
        micros = took.as_micros() as u64,
        "call"
    );
}
