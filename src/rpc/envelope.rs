//! Turning a request body into JSON-RPC requests, in one pass: single or batch, each entry
//! judged on its own, ids kept as the exact JSON text the caller sent so they are echoed
//! unchanged. A batch longer than the limit is refused as soon as the limit is crossed,
//! before the rest of it is read.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::error::Category;
use serde_json::value::RawValue;

use super::error::RpcError;
use super::lenient::strip_trailing_commas;

/// The body's requests.
#[derive(Debug)]
pub enum Incoming<'a> {
    /// One request (or something that is not one).
    Single(Entry<'a>),
    /// A non-empty batch.
    Batch(Vec<Entry<'a>>),
}

/// One entry: a valid request, or why it is not one.
pub type Entry<'a> = Result<Request<'a>, Rejected<'a>>;

/// A valid request.
#[derive(Debug)]
pub struct Request<'a> {
    /// The id exactly as sent; `None` for a notification.
    pub id: Option<&'a RawValue>,
    /// The method's name.
    pub method: Cow<'a, str>,
    /// The params, an array or an object, when given.
    pub params: Option<&'a RawValue>,
}

/// An entry that is not a valid request, with the id to answer it under (null if unknown).
#[derive(Debug)]
pub struct Rejected<'a> {
    /// The id to echo.
    pub id: &'a RawValue,
    /// Why it was rejected.
    pub error: RpcError,
}

/// Parses a body. `scratch` holds the body with its trailing commas removed when the strict
/// parse fails and that repair is needed.
///
/// # Errors
/// The single error object the whole body is answered with: `-32700` when it is not JSON,
/// `-32600` for an empty batch or one longer than `max_batch`.
pub fn parse_body<'a>(
    body: &'a [u8],
    scratch: &'a mut Vec<u8>,
    max_batch: usize,
) -> Result<Incoming<'a>, RpcError> {
    let strict = std::str::from_utf8(body).map_err(|_| RpcError::parse_error())?;
    match parse_text(strict, max_batch) {
        Err(Failure::Syntax) => {
            let Some(fixed) = strip_trailing_commas(body) else {
                return Err(RpcError::parse_error());
            };
            *scratch = fixed;
            let text = std::str::from_utf8(scratch).map_err(|_| RpcError::parse_error())?;
            parse_text(text, max_batch).map_err(Failure::into_error)
        }
        other => other.map_err(Failure::into_error),
    }
}

enum Failure {
    Syntax,
    Rejected(RpcError),
}

impl Failure {
    fn into_error(self) -> RpcError {
        match self {
            Self::Syntax => RpcError::parse_error(),
            Self::Rejected(error) => error,
        }
    }
}

fn parse_text(text: &str, max_batch: usize) -> Result<Incoming<'_>, Failure> {
    let refused = Cell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = Body {
        max_batch,
        refused: &refused,
    }
    .deserialize(&mut de)
    .and_then(|incoming| de.end().map(|()| incoming));
    match parsed {
        Ok(Incoming::Batch(entries)) if entries.is_empty() => Err(Failure::Rejected(
            RpcError::invalid_request("an empty batch"),
        )),
        Ok(incoming) => Ok(incoming),
        Err(e) => match refused.take() {
            Some(error) => Err(Failure::Rejected(error)),
            None if e.classify() == Category::Data => {
                Err(Failure::Rejected(RpcError::invalid_request(e.to_string())))
            }
            None => Err(Failure::Syntax),
        },
    }
}

/// The whole body: an object, a batch, or another value (an entry that is not a request).
struct Body<'r> {
    max_batch: usize,
    /// Why the body is refused whole, when it is (an empty or too long batch).
    refused: &'r Cell<Option<RpcError>>,
}

impl<'de> DeserializeSeed<'de> for Body<'_> {
    type Value = Incoming<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Body<'_> {
    type Value = Incoming<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON-RPC request or batch")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        EntryVisitor.visit_map(map).map(Incoming::Single)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = seq.next_element_seed(EntrySeed)? {
            if entries.len() == self.max_batch {
                self.refused.set(Some(RpcError::invalid_request(format!(
                    "a batch of more than {} requests; at most {} are allowed",
                    self.max_batch, self.max_batch
                ))));
                return Err(de::Error::custom("batch too long"));
            }
            entries.push(entry);
        }
        // An empty batch is refused once the whole body is known to be JSON.
        Ok(Incoming::Batch(entries))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Incoming::Single(not_an_object()))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Incoming::Single(not_an_object()))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Incoming::Single(not_an_object()))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Incoming::Single(not_an_object()))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Incoming::Single(not_an_object()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Incoming::Single(not_an_object()))
    }
}

fn not_an_object<'a>() -> Entry<'a> {
    Err(Rejected {
        id: RawValue::NULL,
        error: RpcError::invalid_request("a request must be a JSON object"),
    })
}

/// One batch entry: any JSON value, judged.
struct EntrySeed;

impl<'de> DeserializeSeed<'de> for EntrySeed {
    type Value = Entry<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(AnyEntry)
    }
}

/// A batch entry read in the same pass as the batch: an object is judged as a request,
/// anything else is skipped and refused.
struct AnyEntry;

impl<'de> Visitor<'de> for AnyEntry {
    type Value = Entry<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a batch entry")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        EntryVisitor.visit_map(map)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(not_an_object())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(not_an_object())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(not_an_object())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(not_an_object())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(not_an_object())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(not_an_object())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(not_an_object())
    }
}

use serde::Deserialize;

/// Judges one entry (a batch element) given as raw JSON.
pub fn parse_request(entry: &RawValue) -> Entry<'_> {
    let mut de = serde_json::Deserializer::from_str(entry.get());
    de.deserialize_map(EntryVisitor).unwrap_or_else(|e| {
        Err(Rejected {
            id: RawValue::NULL,
            error: RpcError::invalid_request(e.to_string()),
        })
    })
}

/// A request object's members, read once: each kept as raw JSON so that `null` and absent
/// differ; a member given twice is noted (and the id still read, to answer under it); other
/// members are skipped.
struct EntryVisitor;

#[derive(Clone, Copy)]
enum Member {
    Jsonrpc,
    Method,
    Params,
    Id,
    Other,
}

impl<'de> Deserialize<'de> for Member {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MemberVisitor;
        impl Visitor<'_> for MemberVisitor {
            type Value = Member;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<Member, E> {
                Ok(match name {
                    "jsonrpc" => Member::Jsonrpc,
                    "method" => Member::Method,
                    "params" => Member::Params,
                    "id" => Member::Id,
                    _ => Member::Other,
                })
            }
        }
        d.deserialize_str(MemberVisitor)
    }
}

impl<'de> Visitor<'de> for EntryVisitor {
    type Value = Entry<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a request object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut slots: [Option<&'de RawValue>; 4] = [None; 4];
        let mut twice: Option<&'static str> = None;
        while let Some(member) = map.next_key::<Member>()? {
            let (slot, name) = match member {
                Member::Jsonrpc => (0, "jsonrpc"),
                Member::Method => (1, "method"),
                Member::Params => (2, "params"),
                Member::Id => (3, "id"),
                Member::Other => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            let value: &'de RawValue = map.next_value()?;
            if slots[slot].is_some() {
                twice.get_or_insert(name);
            } else {
                slots[slot] = Some(value);
            }
        }
        let [jsonrpc, method, params, id] = slots;
        Ok(judge(jsonrpc, method, params, id, twice))
    }
}

fn judge<'a>(
    jsonrpc: Option<&'a RawValue>,
    method: Option<&'a RawValue>,
    params: Option<&'a RawValue>,
    id: Option<&'a RawValue>,
    twice: Option<&'static str>,
) -> Entry<'a> {
    let id = match id {
        None => None,
        Some(id) if is_valid_id(id) => Some(id),
        Some(_) => {
            return Err(Rejected {
                id: RawValue::NULL,
                error: RpcError::invalid_request("\"id\" must be a string, a number or null"),
            });
        }
    };
    let invalid = |reason: Cow<'static, str>| Rejected {
        id: id.unwrap_or(RawValue::NULL),
        error: RpcError::invalid_request(reason),
    };
    if let Some(name) = twice {
        return Err(invalid(format!("\"{name}\" is given twice").into()));
    }
    if jsonrpc.is_none_or(|v| v.get() != "\"2.0\"" && json_str(v).as_deref() != Some("2.0")) {
        return Err(invalid("\"jsonrpc\" must be exactly \"2.0\"".into()));
    }
    let Some(method) = method.and_then(json_str) else {
        return Err(invalid("\"method\" must be a string".into()));
    };
    if let Some(params) = params {
        if !matches!(first_byte(params), b'[' | b'{') {
            return Err(invalid("\"params\" must be an array or an object".into()));
        }
    }
    Ok(Request { id, method, params })
}

/// Whether `id` may be a request's id: a string, a number or null.
pub fn is_valid_id(id: &RawValue) -> bool {
    matches!(first_byte(id), b'"' | b'-' | b'0'..=b'9' | b'n')
}

fn first_byte(raw: &RawValue) -> u8 {
    raw.get().as_bytes().first().copied().unwrap_or(0)
}

/// The string a raw JSON value holds, or `None` when it is not a string.
pub fn json_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    if first_byte(raw) != b'"' {
        return None;
    }
    // A string without escapes is its text between the quotes: the raw value was already
    // checked to be valid JSON, so no decoder is needed.
    let text = raw.get();
    if !text.contains('\\') {
        return text.get(1..text.len().saturating_sub(1)).map(Cow::Borrowed);
    }
    match serde_json::from_str::<&str>(raw.get()) {
        Ok(s) => Some(Cow::Borrowed(s)),
        // Escapes need an owned copy; lone surrogates need replacing first.
        Err(_) => serde_json::from_str::<String>(raw.get())
            .or_else(|_| serde_json::from_str::<String>(&replace_lone_surrogates(raw.get())))
            .ok()
            .map(Cow::Owned),
    }
}

/// JSON's grammar allows a lone surrogate escape such as `\ud800`, but it is no Unicode
/// character, so decoders refuse it. Such a value is still a string: each lone surrogate
/// escape becomes `\ufffd`, the replacement character.
fn replace_lone_surrogates(text: &str) -> String {
    fn escape_at(bytes: &[u8], i: usize) -> Option<u16> {
        let six = bytes.get(i..i + 6)?;
        if six[0] != b'\\' || six[1] != b'u' {
            return None;
        }
        u16::from_str_radix(std::str::from_utf8(&six[2..]).ok()?, 16).ok()
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut i, mut copied) = (0, 0);
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        match escape_at(bytes, i) {
            // A proper pair: keep both escapes.
            Some(0xd800..=0xdbff) if matches!(escape_at(bytes, i + 6), Some(0xdc00..=0xdfff)) => {
                i += 12;
            }
            Some(0xd800..=0xdfff) => {
                out.push_str(&text[copied..i]);
                out.push_str("\\ufffd");
                i += 6;
                copied = i;
            }
            // Any other escape: skip the backslash and the escaped character, so `\\u` stays
            // a literal backslash followed by u.
            _ => i += 2,
        }
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::error::{INVALID_REQUEST, PARSE_ERROR};

    fn body(s: &str) -> Result<usize, i32> {
        let mut scratch = Vec::new();
        match parse_body(s.as_bytes(), &mut scratch, 3) {
            Ok(Incoming::Single(_)) => Ok(1),
            Ok(Incoming::Batch(b)) => Ok(b.len()),
            Err(e) => Err(e.code),
        }
    }

    #[test]
    fn bodies() {
        assert_eq!(body(r#"{"a":1}"#), Ok(1));
        assert_eq!(body(r#"[{"a":1}, 2]"#), Ok(2));
        assert_eq!(body(r#"{"a":1,}"#), Ok(1));
        assert_eq!(body(r#"[1,2,3,4]"#), Err(INVALID_REQUEST));
        assert_eq!(body("[]"), Err(INVALID_REQUEST));
        assert_eq!(body(" [ ] "), Err(INVALID_REQUEST));
        assert_eq!(body(""), Err(PARSE_ERROR));
        assert_eq!(body("{"), Err(PARSE_ERROR));
        assert_eq!(body("[1,,]"), Err(PARSE_ERROR));
        assert_eq!(body(r#"{"a":1} x"#), Err(PARSE_ERROR));
        assert_eq!(body("nul"), Err(PARSE_ERROR));
        assert_eq!(body("1"), Ok(1), "valid JSON: judged as an entry");
    }

    #[test]
    fn a_long_batch_is_refused_before_the_rest_is_read() {
        // The fourth entry is not even valid JSON: the limit (3) is crossed first.
        assert_eq!(body("[1,2,3,4,{"), Err(INVALID_REQUEST));
        let mut scratch = Vec::new();
        let err = parse_body(b"[0,0,0,0,0]", &mut scratch, 3).expect_err("too long");
        assert!(err.message.contains("at most 3"), "{}", err.message);
    }

    #[test]
    fn invalid_utf8_is_a_parse_error() {
        let mut scratch = Vec::new();
        let err = parse_body(b"{\"a\":\"\xff\"}", &mut scratch, 3).expect_err("not utf-8");
        assert_eq!(err.code, PARSE_ERROR);
    }

    fn entry(s: &str) -> Result<(Option<String>, String), (String, String)> {
        let raw: &RawValue = serde_json::from_str(s).expect("json");
        parse_request(raw)
            .map(|r| (r.id.map(|i| i.get().to_owned()), r.method.into_owned()))
            .map_err(|r| (r.id.get().to_owned(), r.error.message.into_owned()))
    }

    #[test]
    fn lone_surrogates_are_still_strings() {
        let decode = |s: &str| {
            let raw: &RawValue = serde_json::from_str(s).expect("json");
            json_str(raw).map(Cow::into_owned)
        };
        assert_eq!(decode(r#""\ud800""#).as_deref(), Some("\u{fffd}"));
        assert_eq!(decode(r#""a\udc00b""#).as_deref(), Some("a\u{fffd}b"));
        assert_eq!(decode(r#""\ud83d\ude00""#).as_deref(), Some("\u{1f600}"));
        assert_eq!(decode(r#""\ud83d\u0041""#).as_deref(), Some("\u{fffd}A"));
        assert_eq!(decode(r#""\\ud800""#).as_deref(), Some("\\ud800"));
        assert_eq!(decode(r#""x\"\ud800""#).as_deref(), Some("x\"\u{fffd}"));
        assert_eq!(decode("1"), None);
    }

    #[test]
    fn entries() {
        assert_eq!(
            entry(r#"{"jsonrpc":"2.0","method":"m","id":1.50}"#),
            Ok((Some("1.50".into()), "m".into()))
        );
        assert_eq!(
            entry(r#"{"jsonrpc":"2.0","method":"m","id":null}"#),
            Ok((Some("null".into()), "m".into()))
        );
        assert_eq!(
            entry(r#"{"jsonrpc":"2.0","method":"m"}"#),
            Ok((None, "m".into()))
        );
        assert_eq!(
            entry(r#"{"jsonrpc":"2\u002e0","method":"\u006d","id":"x"}"#),
            Ok((Some(r#""x""#.into()), "m".into()))
        );
        let rejected = |s| entry(s).expect_err("rejected").0;
        assert_eq!(rejected(r#"{"jsonrpc":"2.0","method":1,"id":7}"#), "7");
        assert_eq!(rejected(r#"{"jsonrpc":"1.0","method":"m","id":7}"#), "7");
        assert_eq!(rejected(r#"{"method":"m","id":"a"}"#), r#""a""#);
        assert_eq!(
            rejected(r#"{"jsonrpc":"2.0","method":"m","params":3,"id":7}"#),
            "7"
        );
        assert_eq!(
            rejected(r#"{"jsonrpc":"2.0","method":"m","id":{}}"#),
            "null"
        );
        assert_eq!(
            rejected(r#"{"jsonrpc":"2.0","method":"m","id":true}"#),
            "null"
        );
        assert_eq!(
            rejected(r#"{"jsonrpc":"2.0","method":"m","id":1,"id":2}"#),
            "1",
            "a member given twice is refused under the first id"
        );
        let message = |s| entry(s).expect_err("rejected").1;
        assert_eq!(
            message(r#"{"jsonrpc":"2.0","jsonrpc":"2.0","method":"m","id":1}"#),
            "Invalid Request: \"jsonrpc\" is given twice"
        );
        assert_eq!(rejected("[1]"), "null");
        assert_eq!(rejected("\"x\""), "null");
    }
}
