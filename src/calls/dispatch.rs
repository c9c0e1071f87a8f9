//! The whole JSON-RPC path: a body in, the bytes to answer (or nothing) out. The body is
//! decoded once (`rpc::envelope`), each entry's params once (`methods`). A batch's entries are
//! judged one by one; its verify calls go to the store together (one `exists_many` call), its
//! other calls run concurrently; notifications run but are never answered; `rpc.discover` is
//! answered once per batch, so a small body cannot ask for a response thousands of times
//! larger.

use std::time::Instant;

use futures_util::future::{join, join_all};
use serde_json::value::RawValue;

use super::errors::to_rpc;
use super::methods::{DISCOVER, Method, known};
use super::reply::Reply;
use crate::openrpc;
use crate::rpc::RpcError;
use crate::rpc::envelope::{Entry, Incoming, parse_body};
use crate::rpc::error::METHOD_NOT_FOUND;
use crate::rpc::response::{error_body, write};
use crate::session::{Owner, Selection, SessionError, Sessions};
use crate::store::SessionStore;

/// Answers a request body. `None` means there is nothing to answer (only notifications).
pub async fn handle_body<S: SessionStore>(
    sessions: &Sessions<S>,
    body: &[u8],
    max_batch: usize,
) -> Option<Vec<u8>> {
    let started = Instant::now();
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
            let (id, outcome) = match decode(entry, sessions) {
                Decoded::Call { id, method } => (id, run(sessions, method, started).await),
                Decoded::Refused { id, name, error } => {
                    let outcome = Err(error);
                    record(sessions, name, &outcome, started.elapsed());
                    (id, outcome)
                }
            };
            id.map(|id| {
                let mut out = Vec::with_capacity(128);
                write(&mut out, id, &outcome);
                out
            })
        }
        Incoming::Batch(entries) => {
            sessions.metrics().batch_size.observe(entries.len() as f64);
            // Boxed: a batch's future is several times a single call's, and only batches
            // should carry it.
            let answers = Box::pin(batch(sessions, entries, started)).await;
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

fn decode<'a, S: SessionStore>(entry: Entry<'a>, sessions: &Sessions<S>) -> Decoded<'a> {
    let request = match entry {
        Ok(request) => request,
        Err(rejected) => {
            return Decoded::Refused {
                id: Some(rejected.id),
                name: "invalid",
                error: rejected.error,
            };
        }
    };
    match Method::parse(&request.method, request.params, sessions.limits()) {
        Ok(method) => Decoded::Call {
            id: request.id,
            method,
        },
        Err(error) => Decoded::Refused {
            id: request.id,
            name: if error.code == METHOD_NOT_FOUND {
                "unknown"
            } else {
                known(&request.method).unwrap_or("unknown")
            },
            error,
        },
    }
}

/// Runs one call.
async fn call<S: SessionStore>(
    sessions: &Sessions<S>,
    method: &Method<'_>,
) -> Result<Reply, RpcError> {
    // Verify, the call made most, is awaited in place; every other call's future is boxed,
    // so that this future (and every connection's in-flight request, which holds it) is the
    // size of verify's rather than of the largest store operation's: the difference was
    // copied on every request and kept per connection (docs/BENCHMARKS.md, round two).
    let outcome = match method {
        Method::VerifySessionToken { token } => sessions.verify(token).await.map(Reply::Active),
        other => Box::pin(call_other(sessions, other)).await,
    };
    outcome.map_err(|err| to_rpc(&err))
}

/// Every call but verify.
async fn call_other<S: SessionStore>(
    sessions: &Sessions<S>,
    method: &Method<'_>,
) -> Result<Reply, SessionError> {
    match method {
        Method::OpenSession {
            expires_in,
            subject,
            metadata,
        } => {
            let owner = Owner {
                subject: subject.as_deref().map(str::to_owned),
                metadata: metadata.clone(),
            };
            sessions.open(*expires_in, owner).await.map(Reply::Opened)
        }
        Method::VerifySessionToken { token } => sessions.verify(token).await.map(Reply::Active),
        Method::CloseSession { token } => sessions.close(token).await.map(|()| Reply::Closed),
        Method::IntrospectSession { token } => {
            sessions.introspect(token).await.map(Reply::Introspected)
        }
        Method::ExtendSession { token, expires_in } => sessions
            .extend(token, *expires_in)
            .await
            .map(Reply::Extended),
        Method::ListSessions { subject } => sessions.list(subject).await.map(Reply::Listed),
        Method::CloseSessions {
            subject,
            except_token,
            session_ids,
        } => {
            let selection = Selection {
                except_token: except_token.as_deref().map(str::to_owned),
                session_ids: session_ids.clone(),
            };
            sessions
                .close_sessions(subject, selection)
                .await
                .map(Reply::ClosedMany)
        }
        Method::Discover => Ok(Reply::Document(openrpc::document(sessions.limits()))),
    }
}

/// Runs one call and records it.
async fn run<S: SessionStore>(
    sessions: &Sessions<S>,
    method: Method<'_>,
    started: Instant,
) -> Result<Reply, RpcError> {
    let outcome = call(sessions, &method).await;
    record(sessions, method.name(), &outcome, started.elapsed());
    outcome
}

type Answer<'a> = Option<(&'a RawValue, Result<Reply, RpcError>)>;

/// Answers a batch's entries in order (`None` for notifications). Its verify calls reach the
/// store as one call; every other call runs alongside them.
async fn batch<'a, S: SessionStore>(
    sessions: &Sessions<S>,
    entries: Vec<Entry<'a>>,
    started: Instant,
) -> Vec<Answer<'a>> {
    let mut discovered = false;
    let decoded: Vec<Decoded<'a>> = entries
        .into_iter()
        .map(|entry| match decode(entry, sessions) {
            Decoded::Call {
                id,
                method: Method::Discover,
            } if std::mem::replace(&mut discovered, true) => Decoded::Refused {
                id,
                name: DISCOVER,
                error: RpcError::invalid_request("rpc.discover is answered once per batch"),
            },
            decoded => decoded,
        })
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
            Some(call(sessions, method))
        }
        _ => None,
    });
    let (verdicts, others) = join(sessions.verify_many(&tokens), join_all(others)).await;
    let failure = verdicts.failure.as_ref().map(to_rpc);
    let mut verified = verdicts.answers.into_iter().map(|answer| match answer {
        Some(active) => Ok(Reply::Active(active)),
        None => Err(failure.clone().unwrap_or_else(RpcError::internal)),
    });
    let mut others = others.into_iter();
    // One clock reading for the whole batch: its calls were answered together.
    let took = started.elapsed();
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
            record(sessions, name, &outcome, took);
            id.map(|id| (id, outcome))
        })
        .collect()
}

/// Counts and logs one call. Never logs params: they hold tokens.
fn record<S: SessionStore>(
    sessions: &Sessions<S>,
    method: &'static str,
    outcome: &Result<Reply, RpcError>,
    took: std::time::Duration,
) {
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
