//! The request decoder on any bytes: the trailing-comma repair, the body's split into single
//! and batch requests, each entry's envelope and the method with its params. Nothing may
//! panic, and what comes out must obey the decoder's own rules (checked below). The one-pass
//! decoder of the common request (`rpc::fast`) must never accept what the general path would
//! answer otherwise.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use sessiond::methods::{ExpiryLimits, Method};
use sessiond::rpc::envelope::{Incoming, parse_body, parse_request};
use sessiond::rpc::fast;
use sessiond::rpc::lenient::strip_trailing_commas;

const MAX_BATCH: usize = 16;
const LIMITS: ExpiryLimits = ExpiryLimits {
    default: 2_592_000,
    max: 31_536_000,
};

fuzz_target!(|data: &[u8]| {
    lenient(data);
    if let Ok(text) = std::str::from_utf8(data) {
        fast_agrees(text);
    }

    let mut scratch = Vec::new();
    // (from_slice would skip the UTF-8 check inside strings it ignores.)
    let strictly_json = std::str::from_utf8(data)
        .is_ok_and(|text| serde_json::from_str::<IgnoredAny>(text).is_ok());
    match parse_body(data, &mut scratch, MAX_BATCH) {
        Ok(Incoming::Single(raw)) => entry(raw),
        Ok(Incoming::Batch(entries)) => {
            assert!(!entries.is_empty() && entries.len() <= MAX_BATCH);
            for raw in entries {
                entry(raw);
            }
        }
        Err(error) => {
            assert!(error.code == -32700 || error.code == -32600, "{error:?}");
            // JSON the strict parser accepts is never a parse error.
            assert!(
                !(strictly_json && error.code == -32700),
                "valid JSON refused as -32700"
            );
        }
    }
});

/// What the one-pass decoder accepts, the general path accepts as the same call and id.
fn fast_agrees(text: &str) {
    let Some(call) = fast::decode(text, &LIMITS) else {
        return;
    };
    let raw: &RawValue = serde_json::from_str(text).expect("fast accepted non-JSON");
    let request = parse_request(raw).expect("fast accepted an invalid request");
    let method =
        Method::parse(&request.method, request.params, &LIMITS).expect("fast accepted bad params");
    assert_eq!(call.id.map(RawValue::get), request.id.map(RawValue::get));
    assert_eq!(call.method, method);
}

/// The repair only ever removes commas, and removes every trailing one at once.
fn lenient(data: &[u8]) {
    let Some(fixed) = strip_trailing_commas(data) else {
        return;
    };
    assert!(fixed.len() < data.len());
    let mut rest = fixed.iter();
    let mut next = rest.next();
    for &b in data {
        if next == Some(&b) {
            next = rest.next();
        } else {
            assert_eq!(b, b',', "the repair removed something other than a comma");
        }
    }
    assert!(next.is_none(), "the repair added bytes");
    assert_eq!(
        strip_trailing_commas(&fixed),
        None,
        "the repair is not idempotent"
    );
}

/// One entry: valid JSON; when accepted as a request, its id and params have allowed shapes
/// and its method decodes without panicking.
fn entry(raw: &RawValue) {
    assert!(serde_json::from_str::<IgnoredAny>(raw.get()).is_ok());
    match parse_request(raw) {
        Ok(request) => {
            if let Some(id) = request.id {
                let first = id.get().as_bytes()[0];
                assert!(
                    matches!(first, b'"' | b'-' | b'0'..=b'9' | b'n'),
                    "id {}",
                    id.get()
                );
            }
            if let Some(params) = request.params {
                assert!(matches!(params.get().as_bytes()[0], b'[' | b'{'));
            }
            if let Err(error) = Method::parse(&request.method, request.params, &LIMITS) {
                assert!(error.code == -32601 || error.code == -32602, "{error:?}");
            }
        }
        Err(rejected) => {
            assert_eq!(rejected.error.code, -32600);
            let first = rejected.id.get().as_bytes()[0];
            assert!(matches!(first, b'"' | b'-' | b'0'..=b'9' | b'n'));
        }
    }
}
