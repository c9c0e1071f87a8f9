//! The request decoder on any bytes: the trailing-comma repair, the body's split into single
//! and batch requests, each entry's envelope and the method with its params. Nothing may
//! panic, and what comes out must obey the decoder's own rules (checked below). A request is
//! judged the same whether it is the whole body or a batch entry.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use sessiond::calls::methods::Method;
use sessiond::rpc::envelope::{Entry, Incoming, parse_body, parse_request};
use sessiond::rpc::lenient::strip_trailing_commas;
use sessiond::session::expiry::ExpiryLimits;

const MAX_BATCH: usize = 16;
const LIMITS: ExpiryLimits = ExpiryLimits {
    default: 2_592_000,
    max: 31_536_000,
    max_lifetime: None,
};

fuzz_target!(|data: &[u8]| {
    lenient(data);
    if let Ok(text) = std::str::from_utf8(data) {
        alone_and_in_a_batch_agree(text);
    }

    let mut scratch = Vec::new();
    // (from_slice would skip the UTF-8 check inside strings it ignores.)
    let strictly_json = std::str::from_utf8(data)
        .is_ok_and(|text| serde_json::from_str::<IgnoredAny>(text).is_ok());
    match parse_body(data, &mut scratch, MAX_BATCH) {
        Ok(Incoming::Single(judged)) => entry(judged),
        Ok(Incoming::Batch(entries)) => {
            assert!(!entries.is_empty() && entries.len() <= MAX_BATCH);
            for judged in entries {
                entry(judged);
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

/// A request decoded as the whole body and as a batch entry is judged the same.
fn alone_and_in_a_batch_agree(text: &str) {
    let mut scratch = Vec::new();
    let Ok(Incoming::Single(whole)) = parse_body(text.as_bytes(), &mut scratch, MAX_BATCH) else {
        return;
    };
    let Ok(raw) = serde_json::from_str::<&RawValue>(text) else {
        return;
    };
    let summary = |entry: Entry<'_>| match entry {
        Ok(request) => (
            request.id.map(|id| id.get().to_owned()),
            Method::parse(&request.method, request.params, &LIMITS)
                .map(Method::into_owned)
                .map_err(|e| e.code),
        ),
        Err(rejected) => (Some(rejected.id.get().to_owned()), Err(rejected.error.code)),
    };
    assert_eq!(summary(whole), summary(parse_request(raw)));
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

/// One judged entry: when accepted as a request, its id and params have allowed shapes and
/// its method decodes without panicking.
fn entry(judged: Entry<'_>) {
    match judged {
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
