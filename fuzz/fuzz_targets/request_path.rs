//! The whole request path, body in and answer out, over the in-memory store: decoding,
//! batches, notifications, the methods themselves. Nothing may panic or hang, and every
//! answer must be a valid JSON-RPC 2.0 response (or a batch of them), or nothing.

#![no_main]

use std::cell::RefCell;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde_json::value::RawValue;
use sessiond::calls::dispatch::handle_body;
use sessiond::metrics::Metrics;
use sessiond::session::Sessions;
use sessiond::session::expiry::ExpiryLimits;
use sessiond::store::MemoryStore;

const MAX_BATCH: usize = 16;
/// Sessions opened by the fuzzer live up to a year; a fresh store every so many runs keeps
/// memory flat.
const RUNS_PER_STORE: u32 = 50_000;

struct State {
    runtime: tokio::runtime::Runtime,
    sessions: Sessions<MemoryStore>,
    runs: u32,
}

fn sessions() -> Sessions<MemoryStore> {
    Sessions::new(
        MemoryStore::new(),
        ExpiryLimits {
            default: 2_592_000,
            max: 31_536_000,
            max_lifetime: None,
        },
        Duration::from_secs(1),
        std::sync::Arc::new(Metrics::default()),
    )
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State {
        runtime: tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime"),
        sessions: sessions(),
        runs: 0,
    });
}

fuzz_target!(|data: &[u8]| {
    STATE.with(|state| {
        let mut state = state.borrow_mut();
        state.runs += 1;
        if state.runs % RUNS_PER_STORE == 0 {
            state.sessions = sessions();
        }
        let answer = state
            .runtime
            .block_on(handle_body(&state.sessions, data, MAX_BATCH));
        if let Some(answer) = answer {
            check_answer(&answer);
        }
    });
});

/// One response object; the id is kept as raw text, since it is echoed as sent and may be a
/// number no float can hold (`1e400`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Response<'a> {
    jsonrpc: &'a str,
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
    #[serde(default)]
    error: Option<ErrorObject<'a>>,
    #[serde(borrow)]
    id: &'a RawValue,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ErrorObject<'a> {
    code: i64,
    #[serde(borrow)]
    message: std::borrow::Cow<'a, str>,
}

fn check_answer(answer: &[u8]) {
    let text = std::str::from_utf8(answer).expect("the answer is UTF-8");
    if text.starts_with('[') {
        let entries: Vec<&RawValue> = serde_json::from_str(text).expect("a JSON array");
        assert!(!entries.is_empty(), "an empty batch answer");
        assert!(entries.len() <= MAX_BATCH);
        entries.iter().for_each(|e| check_response(e.get()));
    } else {
        check_response(text);
    }
}

fn check_response(text: &str) {
    let response: Response<'_> = serde_json::from_str(text).expect("a response object");
    assert_eq!(response.jsonrpc, "2.0");
    let id = response.id.get();
    assert!(
        matches!(id.as_bytes()[0], b'"' | b'-' | b'0'..=b'9') || id == "null",
        "id {id}"
    );
    match (response.result, response.error) {
        (Some(_), None) => {}
        (None, Some(error)) => {
            // The memory store never fails, so -32000 and -32603 would be bugs here.
            assert!(
                [-32700, -32600, -32601, -32602].contains(&error.code),
                "code {}",
                error.code
            );
            assert!(!error.message.is_empty());
        }
        _ => panic!("not exactly one of result and error: {text}"),
    }
}
