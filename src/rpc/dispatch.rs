//! The whole JSON-RPC path: a body in, the bytes to answer (or nothing) out. A batch's entries
//! run concurrently and are judged one by one; notifications run but are never answered.

use std::time::Instant;

use futures_util::future::join_all;
use serde_json::value::RawValue;

use super::envelope::{Incoming, parse_body, parse_request};
use super::error::{METHOD_NOT_FOUND, RpcError};
use super::response::{error_body, write};
use crate::methods::{ALL, Method};
use crate::sessions::{Reply, Sessions};
use crate::store::SessionStore;

/// Answers a request body. `None` means there is nothing to answer (only notifications).
pub async fn handle_body<S: SessionStore>(
    sessions: &Sessions<S>,
    body: &[u8],
    max_batch: usize,
) -> Option<Vec<u8>> {
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
            let (id, outcome) = answer(sessions, entry).await?;
            let mut out = Vec::with_capacity(128);
            write(&mut out, id, &outcome);
            Some(out)
        }
        Incoming::Batch(entries) => {
            sessions.metrics().batch_size.observe(entries.len() as f64);
            let answers = join_all(entries.into_iter().map(|e| answer(sessions, e))).await;
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

/// Runs one entry; `None` for a notification.
async fn answer<'a, S: SessionStore>(
    sessions: &Sessions<S>,
    entry: &'a RawValue,
) -> Option<(&'a RawValue, Result<Reply, RpcError>)> {
    let started = Instant::now();
    let request = match parse_request(entry) {
        Ok(request) => request,
        Err(rejected) => {
            record(sessions, "invalid", &Err(rejected.error.clone()), started);
            return Some((rejected.id, Err(rejected.error)));
        }
    };
    let (name, outcome) = match Method::parse(&request.method, request.params, sessions.limits()) {
        Ok(method) => (method.name(), sessions.call(method).await),
        Err(error) if error.code == METHOD_NOT_FOUND => ("unknown", Err(error)),
        Err(error) => (known_name(&request.method), Err(error)),
    };
    record(sessions, name, &outcome, started);
    request.id.map(|id| (id, outcome))
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
