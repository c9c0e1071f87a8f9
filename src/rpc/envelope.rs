//! Turning a request body into JSON-RPC requests: single or batch, each entry judged on its
//! own, ids kept as the exact JSON text the caller sent so they are echoed unchanged.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};
use serde_json::error::Category;
use serde_json::value::RawValue;

use super::error::RpcError;
use super::lenient::strip_trailing_commas;

/// The body's shape, before its entries are judged.
#[derive(Debug)]
pub enum Incoming<'a> {
    /// One request object (or something that is not one).
    Single(&'a RawValue),
    /// A non-empty batch.
    Batch(Vec<&'a RawValue>),
}

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
/// `-32600` for an empty batch or one longer than `max_batch`, and for a top-level value that
/// is neither an object nor an array.
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
    let syntax = |e: serde_json::Error| match e.classify() {
        Category::Data => Failure::Rejected(RpcError::invalid_request(e.to_string())),
        _ => Failure::Syntax,
    };
    match text.trim_start().as_bytes().first() {
        Some(b'[') => {
            let entries: Vec<&RawValue> = serde_json::from_str(text).map_err(syntax)?;
            if entries.is_empty() {
                return Err(Failure::Rejected(RpcError::invalid_request(
                    "an empty batch",
                )));
            }
            if entries.len() > max_batch {
                return Err(Failure::Rejected(RpcError::invalid_request(format!(
                    "a batch of {} requests; at most {max_batch} are allowed",
                    entries.len()
                ))));
            }
            Ok(Incoming::Batch(entries))
        }
        _ => {
            let raw: &RawValue = serde_json::from_str(text).map_err(syntax)?;
            Ok(Incoming::Single(raw))
        }
    }
}

/// The members of a request object, each kept as raw JSON so that `null` and absent differ.
#[derive(Deserialize)]
struct RawRequest<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    jsonrpc: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    method: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    params: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
}

/// `Some` for a member that is present, `null` included (which the field's type then
/// refuses unless it can hold it), so that absent and `null` stay different.
pub(super) fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// Judges one entry (the whole body, or one element of a batch).
///
/// # Errors
/// [`Rejected`] with `-32600` when the entry is not a valid request object.
pub fn parse_request(entry: &RawValue) -> Result<Request<'_>, Rejected<'_>> {
    let reject = |id: &'static RawValue, reason: Cow<'static, str>| Rejected {
        id,
        error: RpcError::invalid_request(reason),
    };
    if !entry.get().starts_with('{') {
        return Err(reject(
            RawValue::NULL,
            "a request must be a JSON object".into(),
        ));
    }
    let raw: RawRequest<'_> = serde_json::from_str(entry.get())
        .map_err(|e| reject(RawValue::NULL, e.to_string().into()))?;
    let id = match raw.id {
        None => None,
        Some(id) if is_valid_id(id) => Some(id),
        Some(_) => {
            return Err(reject(
                RawValue::NULL,
                "id must be a string, a number or null".into(),
            ));
        }
    };
    let answer_id = id.unwrap_or(RawValue::NULL);
    let invalid = |reason: &'static str| Rejected {
        id: answer_id,
        error: RpcError::invalid_request(reason),
    };
    if raw.jsonrpc.and_then(json_str).as_deref() != Some("2.0") {
        return Err(invalid("\"jsonrpc\" must be exactly \"2.0\""));
    }
    let Some(method) = raw.method.and_then(json_str) else {
        return Err(invalid("\"method\" must be a string"));
    };
    if let Some(params) = raw.params {
        if !matches!(first_byte(params), b'[' | b'{') {
            return Err(invalid("\"params\" must be an array or an object"));
        }
    }
    Ok(Request {
        id,
        method,
        params: raw.params,
    })
}

/// Whether `id` may be a request's id: a string, a number or null.
pub(super) fn is_valid_id(id: &RawValue) -> bool {
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
            "null"
        );
        assert_eq!(rejected("[1]"), "null");
        assert_eq!(rejected("\"x\""), "null");
    }
}
