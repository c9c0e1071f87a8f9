//! Property-based tests of the request decoder (envelope, lenient trailing commas, batches)
//! and of the whole body-to-answer path over the in-memory store: any bytes get a valid
//! JSON-RPC answer or none and never a panic; JSON values and request envelopes are answered
//! by the rules; the trailing-comma repair accepts exactly trailing commas; ids come back byte
//! for byte. Case counts are kept small so the whole file runs in a few seconds in CI; the
//! cargo-fuzz targets in `fuzz/` explore the same code for as long as they are given.

mod common;

use std::time::Duration;

use common::requests::verify_positional;
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sessiond::calls::dispatch::handle_body;
use sessiond::calls::methods::Method;
use sessiond::metrics::Metrics;
use sessiond::rpc::envelope::{Incoming, parse_body, parse_request};
use sessiond::rpc::lenient::strip_trailing_commas;
use sessiond::session::Sessions;
use sessiond::session::expiry::ExpiryLimits;
use sessiond::store::MemoryStore;

const MAX_BATCH: usize = 8;
const LIMITS: ExpiryLimits = ExpiryLimits {
    default: 2_592_000,
    max: 31_536_000,
    max_lifetime: None,
};
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;
const METHODS: [&str; 3] = [
    "session.open_session",
    "session.verify_session_token",
    "session.close_session",
];

fn config(cases: u32) -> Config {
    Config {
        cases,
        // Nothing written into the source tree; a failure prints its minimal input.
        failure_persistence: None,
        ..Config::default()
    }
}

/// The whole JSON-RPC path over a memory store, on a current-thread runtime per test thread.
fn answer(body: &[u8]) -> Option<Vec<u8>> {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        static SESSIONS: Sessions<MemoryStore> = Sessions::new(
            MemoryStore::new(),
            LIMITS,
            Duration::from_secs(1),
            std::sync::Arc::new(Metrics::default()),
        );
    }
    RUNTIME.with(|rt| SESSIONS.with(|sessions| rt.block_on(handle_body(sessions, body, MAX_BATCH))))
}

/// One response object, its id kept as the exact text sent back.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Response<'a> {
    jsonrpc: String,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error: Option<ErrorObject>,
    #[serde(borrow)]
    id: &'a RawValue,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ErrorObject {
    code: i64,
    message: String,
}

/// What one response said: `Ok(result)` or `Err(code)`, with its id text.
type Said = (Result<Value, i64>, String);

fn said(r: Response<'_>) -> Result<Said, String> {
    if r.jsonrpc != "2.0" {
        return Err(format!("jsonrpc {:?}", r.jsonrpc));
    }
    let id = r.id.get();
    if !(id.starts_with('"')
        || id.starts_with('-')
        || id.as_bytes()[0].is_ascii_digit()
        || id == "null")
    {
        return Err(format!("id {id}"));
    }
    match (r.result, r.error) {
        (Some(result), None) => Ok((Ok(result), id.to_owned())),
        (None, Some(e)) => {
            if ![
                PARSE_ERROR,
                INVALID_REQUEST,
                METHOD_NOT_FOUND,
                INVALID_PARAMS,
            ]
            .contains(&e.code)
            {
                return Err(format!("unexpected code {}", e.code));
            }
            if e.message.is_empty() {
                return Err("empty message".to_owned());
            }
            Ok((Err(e.code), id.to_owned()))
        }
        _ => Err("not exactly one of result and error".to_owned()),
    }
}

/// The answer as a list of responses (`Single` and `Batch` told apart), or why it is not a
/// valid JSON-RPC answer.
#[derive(Debug, PartialEq)]
enum Answer {
    Nothing,
    Single(Said),
    Batch(Vec<Said>),
}

fn decode(answer: Option<Vec<u8>>) -> Result<Answer, String> {
    let Some(bytes) = answer else {
        return Ok(Answer::Nothing);
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| "answer not UTF-8".to_owned())?;
    if text.starts_with('[') {
        let entries: Vec<Response<'_>> =
            serde_json::from_str(text).map_err(|e| format!("{e}: {text}"))?;
        if entries.is_empty() {
            return Err("an empty batch answer".to_owned());
        }
        return entries
            .into_iter()
            .map(said)
            .collect::<Result<_, _>>()
            .map(Answer::Batch);
    }
    let one: Response<'_> = serde_json::from_str(text).map_err(|e| format!("{e}: {text}"))?;
    said(one).map(Answer::Single)
}

fn single_error(code: i64, id: &str) -> Answer {
    Answer::Single((Err(code), id.to_owned()))
}

// ---------------------------------------------------------------------------------------------
// Generators.

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((".{0,8}", inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// JSON text of a value, compact or pretty.
fn json_text() -> impl Strategy<Value = String> {
    (json_value(), any::<bool>()).prop_map(|(v, pretty)| {
        if pretty {
            serde_json::to_string_pretty(&v).expect("json")
        } else {
            v.to_string()
        }
    })
}

/// A JSON number as text, of any length.
fn number_text() -> impl Strategy<Value = String> {
    "-?(0|[1-9][0-9]{0,60})(\\.[0-9]{1,30})?([eE][+-]?[0-9]{1,5})?"
}

/// A JSON string literal, each character written raw or escaped in one of the allowed ways.
fn string_text() -> impl Strategy<Value = String> {
    prop::collection::vec((any::<char>(), 0u8..3), 0..24).prop_map(|chars| {
        let mut out = String::from("\"");
        for (c, how) in chars {
            let short = match c {
                '"' => Some("\\\""),
                '\\' => Some("\\\\"),
                '\n' => Some("\\n"),
                '\t' => Some("\\t"),
                '/' if how == 1 => Some("\\/"),
                _ => None,
            };
            if let Some(short) = short.filter(|_| how != 2) {
                out.push_str(short);
            } else if how == 2 || c.is_control() || c == '"' || c == '\\' {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            } else {
                out.push(c);
            }
        }
        out.push('"');
        out
    })
}

/// An id the service must echo: a string, a number or null.
fn id_text() -> impl Strategy<Value = String> {
    prop_oneof![string_text(), number_text(), Just("null".to_owned())]
}

/// A member of a request envelope: absent, or this JSON text.
type Member = Option<String>;

/// Envelopes built from valid and invalid parts, in any member order.
fn envelope() -> impl Strategy<Value = (Member, Member, Member, Member, Vec<usize>, bool)> {
    let jsonrpc = prop_oneof![
        4 => Just(Some("\"2.0\"".to_owned())),
        1 => Just(Some("\"1.0\"".to_owned())),
        1 => Just(Some("2.0".to_owned())),
        1 => Just(Some("\"2.0 \"".to_owned())),
        1 => Just(None),
    ];
    let method = prop_oneof![
        4 => prop::sample::select(METHODS.to_vec()).prop_map(|m| Some(format!("\"{m}\""))),
        2 => string_text().prop_map(Some),
        1 => json_text().prop_map(Some),
        1 => Just(None),
    ];
    let params = prop_oneof![
        2 => Just(None),
        2 => Just(Some(format!(r#"{{"token":"{NEVER_ISSUED}"}}"#))),
        2 => number_text().prop_map(|n| Some(format!("[{n}]"))),
        2 => json_text().prop_map(Some),
        1 => Just(Some("null".to_owned())),
    ];
    let id = prop_oneof![
        4 => id_text().prop_map(Some),
        2 => Just(None),
        1 => json_text().prop_map(Some),
    ];
    (
        jsonrpc,
        method,
        params,
        id,
        Just((0..4).collect::<Vec<usize>>()).prop_shuffle(),
        any::<bool>(),
    )
}

/// What an envelope must be answered with, by the rules of the README.
fn expected(jsonrpc: &Member, method: &Member, params: &Member, id: &Member) -> Expected {
    let first = |m: &Member| m.as_deref().and_then(|t| t.bytes().next());
    let id_ok = match first(id) {
        None => true,
        Some(b) => matches!(b, b'"' | b'-' | b'0'..=b'9' | b'n'),
    };
    if !id_ok {
        return Expected::Error(INVALID_REQUEST, "null".to_owned());
    }
    let answer_id = id.clone().unwrap_or_else(|| "null".to_owned());
    let method_name = method
        .as_deref()
        .and_then(|m| serde_json::from_str::<String>(m).ok());
    let params_ok = first(params).is_none_or(|b| b == b'[' || b == b'{');
    if jsonrpc.as_deref() != Some("\"2.0\"") || method_name.is_none() || !params_ok {
        return Expected::Error(INVALID_REQUEST, answer_id);
    }
    if id.is_none() {
        return Expected::Nothing;
    }
    let name = method_name.unwrap_or_default();
    if !METHODS.contains(&name.as_str()) {
        return Expected::Error(METHOD_NOT_FOUND, answer_id);
    }
    Expected::ResultOrInvalidParams(answer_id)
}

#[derive(Debug)]
enum Expected {
    Nothing,
    Error(i64, String),
    ResultOrInvalidParams(String),
}

fn check(expected: &Expected, got: &Answer) -> bool {
    match (expected, got) {
        (Expected::Nothing, Answer::Nothing) => true,
        (Expected::Error(code, id), Answer::Single((Err(c), i))) => c == code && i == id,
        (Expected::ResultOrInvalidParams(id), Answer::Single((outcome, i))) => {
            i == id && outcome.as_ref().err().is_none_or(|c| *c == INVALID_PARAMS)
        }
        _ => false,
    }
}

fn build(members: [(&str, &Member); 4], order: &[usize], trailing_comma: bool) -> String {
    let parts: Vec<String> = order
        .iter()
        .filter_map(|&i| {
            let (name, value) = members[i];
            value.as_ref().map(|v| format!("\"{name}\":{v}"))
        })
        .collect();
    let comma = if trailing_comma && !parts.is_empty() {
        ","
    } else {
        ""
    };
    format!("{{{}{comma}}}", parts.join(","))
}

/// Positions in `text` that are outside string literals (insertion points, `0..=len`).
fn outside_strings(text: &str) -> Vec<usize> {
    let mut positions = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    for (i, b) in text.bytes().enumerate() {
        if !in_string {
            positions.push(i);
        }
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        }
    }
    positions.push(text.len());
    positions
}

/// Whether a comma inserted at `at` is a trailing one: after a value, before `}` or `]`.
fn is_trailing(text: &str, at: usize) -> bool {
    let before = text[..at].bytes().rev().find(|b| !b.is_ascii_whitespace());
    let after = text[at..].bytes().find(|b| !b.is_ascii_whitespace());
    !matches!(before, None | Some(b'[' | b'{' | b',' | b':')) && matches!(after, Some(b']' | b'}'))
}

/// The body as the decoder judges it, as a JSON value (`Err(code)` when refused whole):
/// each entry's id, method and params, or the code it is refused with.
fn decoded(body: &str) -> Result<Value, i64> {
    fn judged(entry: &sessiond::rpc::envelope::Entry<'_>) -> Value {
        let parse = |raw: &RawValue| -> Value { serde_json::from_str(raw.get()).expect("JSON") };
        match entry {
            Ok(request) => serde_json::json!({
                "id": request.id.map(parse),
                "method": request.method.as_ref(),
                "params": request.params.map(parse),
            }),
            Err(rejected) => serde_json::json!({
                "id": parse(rejected.id),
                "refused": rejected.error.code,
            }),
        }
    }
    let mut scratch = Vec::new();
    match parse_body(body.as_bytes(), &mut scratch, usize::MAX) {
        Ok(Incoming::Single(entry)) => Ok(judged(&entry)),
        Ok(Incoming::Batch(entries)) => Ok(Value::Array(entries.iter().map(judged).collect())),
        Err(error) => Err(i64::from(error.code)),
    }
}

/// A token that was never issued.
const NEVER_ISSUED: &str = "00890640-ec03-4663-82ce-456ea993807d";

/// A valid request (with the page's trailing comma) that the mutation property starts from.
const SEED_REQUEST: &str = concat!(
    r#"{"jsonrpc":"2.0","method":"session.verify_session_token","#,
    r#""params":{"token":"00890640-ec03-4663-82ce-456ea993807d",},"id":[1,{"a":"\u00e9"}]}"#
);

fn any_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..256)
}

/// Bytes drawn from JSON's own punctuation and keywords, where the lenient path works.
fn json_soup() -> impl Strategy<Value = Vec<u8>> {
    let alphabet = b"{}[],:\" 0123456789.-eEtrufalsn\\\n".to_vec();
    prop::collection::vec(prop::sample::select(alphabet), 0..96)
}

/// Byte edits: (where, byte, 0 insert / 1 replace / 2 remove).
fn edits() -> impl Strategy<Value = Vec<(prop::sample::Index, u8, u8)>> {
    prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6)
}

fn apply(mut body: Vec<u8>, edits: Vec<(prop::sample::Index, u8, u8)>) -> Vec<u8> {
    for (at, byte, how) in edits {
        let i = at.index(body.len() + 1);
        match how {
            0 => body.insert(i, byte),
            1 if i < body.len() => body[i] = byte,
            2 if i < body.len() => {
                body.remove(i);
            }
            _ => {}
        }
    }
    body
}

/// Asserts that `body` gets a valid JSON-RPC answer or none.
fn answers_validly(body: &[u8]) -> Result<(), TestCaseError> {
    let got = decode(answer(body));
    prop_assert!(
        got.is_ok(),
        "{:?} for {:?}",
        got,
        String::from_utf8_lossy(body)
    );
    Ok(())
}

fn inactive_as(id: &str) -> Said {
    (Ok(serde_json::json!({"active": false})), id.to_owned())
}

/// A trailing comma inserted before every `]` and `}` that follows a value.
fn with_every_trailing_comma(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    let mut last = 0;
    for i in outside_strings(text) {
        let closes = text
            .as_bytes()
            .get(i)
            .is_some_and(|b| matches!(b, b']' | b'}'));
        if closes && is_trailing(text, i) {
            out.push_str(&text[last..i]);
            out.push(',');
            last = i;
        }
    }
    out.push_str(&text[last..]);
    out
}

/// How a batch of arbitrary JSON values must be answered: one answer per entry that is not a
/// valid notification, in order, each non-object entry being -32600 with id null.
fn check_batch(entries: &[Value], got: Answer) -> Result<(), TestCaseError> {
    let answered: Vec<&Value> = entries.iter().filter(|e| !is_notification(e)).collect();
    match got {
        Answer::Nothing => prop_assert!(answered.is_empty()),
        Answer::Batch(said) => {
            prop_assert_eq!(said.len(), answered.len());
            for (entry, (outcome, id)) in answered.iter().zip(&said) {
                if !entry.is_object() {
                    prop_assert_eq!(outcome, &Err(INVALID_REQUEST));
                    prop_assert_eq!(id.as_str(), "null");
                }
            }
        }
        single => prop_assert!(false, "a batch answered with {:?}", single),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Properties.

proptest! {
    #![proptest_config(config(512))]

    /// Any bytes at all: no panic, and the answer is nothing or valid JSON-RPC.
    #[test]
    fn arbitrary_bytes_get_a_valid_answer_or_none(body in any_bytes()) {
        answers_validly(&body)?;
        let mut scratch = Vec::new();
        if let Err(error) = parse_body(&body, &mut scratch, MAX_BATCH) {
            prop_assert!([PARSE_ERROR, INVALID_REQUEST].contains(&i64::from(error.code)));
        }
    }

    /// Bytes drawn from JSON's own punctuation, where the lenient path does its work.
    #[test]
    fn json_punctuation_soup_gets_a_valid_answer_or_none(body in json_soup()) {
        answers_validly(&body)?;
    }

    /// A valid request with bytes flipped, inserted or removed.
    #[test]
    fn mutated_requests_get_a_valid_answer_or_none(edits in edits()) {
        answers_validly(&apply(SEED_REQUEST.as_bytes().to_vec(), edits))?;
    }

    /// Any JSON value as the body is answered by the rules for its shape.
    #[test]
    fn json_values_are_answered_by_their_shape(text in json_text()) {
        let value: Value = serde_json::from_str(&text).expect("generated JSON");
        let got = decode(answer(text.as_bytes())).map_err(TestCaseError::fail)?;
        match &value {
            Value::Array(entries) if entries.is_empty() || entries.len() > MAX_BATCH => {
                prop_assert_eq!(got, single_error(INVALID_REQUEST, "null"));
            }
            Value::Array(entries) => check_batch(entries, got)?,
            Value::Object(_) if is_notification(&value) => prop_assert_eq!(got, Answer::Nothing),
            Value::Object(_) => prop_assert!(matches!(got, Answer::Single(_)), "{:?}", got),
            _ => prop_assert_eq!(got, single_error(INVALID_REQUEST, "null")),
        }
    }

    /// Envelopes of valid and invalid parts, in any order, with or without the page's
    /// trailing comma: each gets exactly the answer the rules give.
    #[test]
    fn envelopes_are_judged_by_the_rules(
        (jsonrpc, method, params, id, order, trailing) in envelope()
    ) {
        let members = [
            ("jsonrpc", &jsonrpc),
            ("method", &method),
            ("params", &params),
            ("id", &id),
        ];
        let body = build(members, &order, trailing);
        let want = expected(&jsonrpc, &method, &params, &id);
        let got = decode(answer(body.as_bytes())).map_err(TestCaseError::fail)?;
        prop_assert!(check(&want, &got), "{} → {:?}, expected {:?}", body, got, want);
    }

    /// One stray comma inserted anywhere outside a string: a trailing one is repaired to
    /// exactly the original value; any other that breaks the JSON stays a parse error.
    #[test]
    fn only_trailing_commas_are_repaired(
        text in json_text(),
        at in any::<prop::sample::Index>()
    ) {
        let positions = outside_strings(&text);
        let i = positions[at.index(positions.len())];
        let mutated = format!("{},{}", &text[..i], &text[i..]);
        let strictly_valid = serde_json::from_str::<IgnoredAny>(&mutated).is_ok();
        if is_trailing(&text, i) {
            prop_assert!(!strictly_valid);
            prop_assert_eq!(decoded(&mutated), decoded(&text), "{}", mutated);
        } else if !strictly_valid {
            prop_assert_eq!(decoded(&mutated), Err(PARSE_ERROR), "{}", mutated);
            prop_assert_eq!(strip_trailing_commas(mutated.as_bytes()), None, "{}", mutated);
        }
    }

    /// A trailing comma before every `]` and `}` that follows a value: the same value.
    #[test]
    fn every_trailing_comma_at_once_is_repaired(text in json_text()) {
        let mutated = with_every_trailing_comma(&text);
        prop_assert_eq!(decoded(&mutated), decoded(&text), "{}", mutated);
    }

    /// Ids come back exactly as sent, alone and in a batch.
    #[test]
    fn ids_round_trip_exactly(ids in prop::collection::vec(id_text(), 1..MAX_BATCH)) {
        let got = decode(answer(verify_positional(&ids[0]).as_bytes()))
            .map_err(TestCaseError::fail)?;
        prop_assert_eq!(got, Answer::Single(inactive_as(&ids[0])));
        let batch: Vec<String> = ids.iter().map(|id| verify_positional(id)).collect();
        let got = decode(answer(format!("[{}]", batch.join(",")).as_bytes()))
            .map_err(TestCaseError::fail)?;
        let want: Vec<Said> = ids.iter().map(|id| inactive_as(id)).collect();
        prop_assert_eq!(got, Answer::Batch(want));
    }
}

/// Requests near the common shape: every method name, params by name with the common members
/// and others, escapes, nulls, duplicates, and every id, in any member order.
fn near_common() -> impl Strategy<Value = String> {
    let method = prop_oneof![
        4 => prop::sample::select(vec![
            "session.open_session",
            "session.verify_session_token",
            "session.close_session",
            "rpc.discover",
        ])
        .prop_map(|m| format!("\"{m}\"")),
        1 => string_text(),
    ];
    let value = prop_oneof![
        2 => string_text(),
        2 => number_text(),
        3 => prop::sample::select(vec!["0", "1", "60", "31536000", "31536001", "-1", "1.0"])
            .prop_map(str::to_owned),
        3 => Just(format!("\"{NEVER_ISSUED}\"")),
        1 => Just("null".to_owned()),
        1 => json_text(),
    ];
    let name = prop_oneof![
        4 => prop::sample::select(vec!["token", "expires_in"]).prop_map(|n| format!("\"{n}\"")),
        1 => string_text(),
    ];
    let params = prop_oneof![
        1 => Just(None),
        4 => prop::collection::vec((name, value), 0..3).prop_map(|pairs| {
            let members: Vec<String> = pairs.iter().map(|(n, v)| format!("{n}:{v}")).collect();
            Some(format!("{{{}}}", members.join(",")))
        }),
        1 => json_text().prop_map(Some),
    ];
    let jsonrpc = prop_oneof![
        4 => Just(Some("\"2.0\"".to_owned())),
        1 => string_text().prop_map(Some),
        1 => Just(None),
    ];
    let id = prop_oneof![
        4 => id_text().prop_map(Some),
        1 => Just(None),
        1 => json_text().prop_map(Some),
    ];
    (
        jsonrpc,
        method.prop_map(Some),
        params,
        id,
        Just((0..4).collect::<Vec<usize>>()).prop_shuffle(),
    )
        .prop_map(|(jsonrpc, method, params, id, order)| {
            let members = [
                ("jsonrpc", &jsonrpc),
                ("method", &method),
                ("params", &params),
                ("id", &id),
            ];
            build(members, &order, false)
        })
}

/// A request decoded as a whole body and as a batch entry is judged the same: the same id,
/// the same call or the same refusal.
fn body_and_entry_agree(text: &str) -> Result<(), TestCaseError> {
    let mut scratch = Vec::new();
    let Ok(Incoming::Single(whole)) = parse_body(text.as_bytes(), &mut scratch, MAX_BATCH) else {
        return Ok(());
    };
    let Ok(raw) = serde_json::from_str::<&RawValue>(text) else {
        return Ok(());
    };
    let entry = parse_request(raw);
    let judge = |entry: Result<
        sessiond::rpc::envelope::Request<'_>,
        sessiond::rpc::envelope::Rejected<'_>,
    >| match entry {
        Ok(request) => (
            request.id.map(|id| id.get().to_owned()),
            Method::parse(&request.method, request.params, &LIMITS)
                .map(Method::into_owned)
                .map_err(|e| e.code),
        ),
        Err(rejected) => (Some(rejected.id.get().to_owned()), Err(rejected.error.code)),
    };
    prop_assert_eq!(judge(whole), judge(entry), "{}", text);
    Ok(())
}

proptest! {
    #![proptest_config(config(2048))]

    /// The body decoder and the batch-entry decoder judge a request alike.
    #[test]
    fn a_request_is_judged_alike_alone_and_in_a_batch(text in near_common()) {
        body_and_entry_agree(&text)?;
    }
}

/// Whether a batch entry is a valid notification (carried out, never answered).
fn is_notification(entry: &Value) -> bool {
    let Some(object) = entry.as_object() else {
        return false;
    };
    object.get("jsonrpc") == Some(&Value::String("2.0".into()))
        && object.get("method").is_some_and(Value::is_string)
        && object
            .get("params")
            .is_none_or(|p| p.is_array() || p.is_object())
        && !object.contains_key("id")
}
