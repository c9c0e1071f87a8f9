//! The common request decoded in one pass over its bytes: an object with `"jsonrpc":"2.0"`, a
//! method the service has, params by name (or none), and no escapes in the strings. That is
//! what nearly every caller sends, and the general path (`envelope` then `methods`) reads the
//! same bytes three times.
//!
//! This pass only ever accepts: anything it is unsure of — escapes, positional params,
//! duplicate or unknown members, an `expires_in` out of range, a method it does not know —
//! gives `None`, and the general path decides the answer. So every error, and every request
//! that is not of the common shape, is answered exactly as before; the table tests in
//! `tests/` hold both paths to that.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::envelope::{is_valid_id, present};
use crate::methods::{
    CLOSE_SESSION, DISCOVER, ExpiryLimits, Method, OPEN_SESSION, VERIFY_SESSION_TOKEN,
};

/// A request of the common shape.
#[derive(Debug)]
pub struct Call<'a> {
    /// The id exactly as sent; `None` for a notification.
    pub id: Option<&'a RawValue>,
    /// The decoded call.
    pub method: Method<'a>,
}

/// Decodes `text` when it is a request of the common shape; `None` otherwise.
pub fn decode<'a>(text: &'a str, limits: &ExpiryLimits) -> Option<Call<'a>> {
    let envelope: Envelope<'a> = serde_json::from_str(text).ok()?;
    if envelope.jsonrpc != "2.0" {
        return None;
    }
    if envelope.id.is_some_and(|id| !is_valid_id(id)) {
        return None;
    }
    let params = envelope.params;
    let method = match (envelope.method, params) {
        (OPEN_SESSION, None) => Method::OpenSession {
            expires_in: limits.default,
        },
        (
            OPEN_SESSION,
            Some(Params {
                token: None,
                expires_in,
            }),
        ) => {
            let expires_in = expires_in.unwrap_or(limits.default);
            if !(1..=limits.max).contains(&expires_in) {
                return None;
            }
            Method::OpenSession { expires_in }
        }
        (
            VERIFY_SESSION_TOKEN,
            Some(Params {
                token: Some(token),
                expires_in: None,
            }),
        ) => Method::VerifySessionToken {
            token: Cow::Borrowed(token),
        },
        (
            CLOSE_SESSION,
            Some(Params {
                token: Some(token),
                expires_in: None,
            }),
        ) => Method::CloseSession {
            token: Cow::Borrowed(token),
        },
        (DISCOVER, None) => Method::Discover,
        _ => return None,
    };
    Some(Call {
        id: envelope.id,
        method,
    })
}

/// A request object's members. Unknown members are skipped, as the general path does;
/// a duplicate member fails the pass.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    jsonrpc: &'a str,
    #[serde(borrow)]
    method: &'a str,
    #[serde(borrow, default, deserialize_with = "present")]
    params: Option<Params<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
}

/// Params by name, each at most once; any other member fails the pass.
struct Params<'a> {
    token: Option<&'a str>,
    expires_in: Option<u64>,
}

impl<'de> Deserialize<'de> for Params<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ParamsVisitor;
        impl<'de> Visitor<'de> for ParamsVisitor {
            type Value = Params<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("params by name")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut params = Params {
                    token: None,
                    expires_in: None,
                };
                while let Some(name) = map.next_key::<&'de str>()? {
                    match name {
                        "token" if params.token.is_none() => {
                            params.token = Some(map.next_value()?);
                        }
                        "expires_in" if params.expires_in.is_none() => {
                            params.expires_in = Some(map.next_value()?);
                        }
                        _ => return Err(de::Error::custom("not of the common shape")),
                    }
                }
                Ok(params)
            }
        }
        d.deserialize_map(ParamsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::envelope::parse_request;

    const LIMITS: ExpiryLimits = ExpiryLimits {
        default: 2_592_000,
        max: 31_536_000,
    };

    /// What the general path makes of `text`: the id and the method, or `None` if refused.
    fn general(text: &str) -> Option<(Option<String>, Method<'static>)> {
        let raw: &RawValue = serde_json::from_str(text).ok()?;
        let request = parse_request(raw).ok()?;
        let method = Method::parse(&request.method, request.params, &LIMITS).ok()?;
        Some((
            request.id.map(|id| id.get().to_owned()),
            method.into_owned(),
        ))
    }

    fn fast(text: &str) -> Option<(Option<String>, Method<'static>)> {
        decode(text, &LIMITS).map(|call| {
            (
                call.id.map(|id| id.get().to_owned()),
                call.method.into_owned(),
            )
        })
    }

    const TOKEN: &str = "00890640-ec03-4663-82ce-456ea993807d";

    #[test]
    fn the_common_shapes_take_the_fast_path_and_agree_with_the_general_one() {
        for text in [
            format!(r#"{{"jsonrpc":"2.0","method":"session.verify_session_token","params":{{"token":"{TOKEN}"}},"id":1}}"#),
            format!(r#"{{"id":"a","params":{{"token":"{TOKEN}"}},"method":"session.close_session","jsonrpc":"2.0"}}"#),
            r#" { "jsonrpc" : "2.0", "method" : "session.verify_session_token", "params" : { "token" : "x" } } "#.to_owned(),
            r#"{"jsonrpc":"2.0","method":"session.open_session","params":{"expires_in":60},"id":null}"#.to_owned(),
            r#"{"jsonrpc":"2.0","method":"session.open_session","params":{},"id":-1.5e3}"#.to_owned(),
            r#"{"jsonrpc":"2.0","method":"session.open_session","id":7}"#.to_owned(),
            r#"{"jsonrpc":"2.0","method":"session.open_session","params":{"expires_in":31536000},"id":7,"extra":[1]}"#.to_owned(),
            r#"{"jsonrpc":"2.0","method":"rpc.discover","id":7}"#.to_owned(),
        ] {
            let expected = general(&text);
            assert!(expected.is_some(), "the general path accepts {text}");
            assert_eq!(fast(&text), expected, "{text}");
        }
    }

    #[test]
    fn everything_else_is_left_to_the_general_path() {
        for text in [
            // Escapes, positional params, null params and members.
            r#"{"jsonrpc":"2\u002e0","method":"session.open_session","id":1}"#,
            r#"{"jsonrpc":"2.0","method":"session.open_sessio\u006e","id":1}"#,
            r#"{"jsonrpc":"2.0","method":"session.verify_session_token","params":{"token":"a\"b"},"id":1}"#,
            r#"{"jsonrpc":"2.0","method":"session.verify_session_token","params":{"tok\u0065n":"x"},"id":1}"#,
            r#"{"jsonrpc":"2.0","method":"session.verify_session_token","params":["x"],"id":1}"#,
            r#"{"jsonrpc":"2.0","method":"session.open_session","params":[60],"id":1}"#,
            r#"{"jsonrpc":"2.0","method":"session.open_session","params":null,"id":1}"#,
            r#"{"jsonrpc":"2.0","method":"session.open_session","params":{"expires_in":null},"id":1}"#,
            r#"{"jsonrpc":"2.0","method":"session.verify_session_token","params":{"token":null},"id":1}"#,
            // Errors of every kind.
            r#"{"jsonrpc":"1.0","method":"session.open_session","id":1}"#,
            r#"{"method":"session.open_session","id":1}"#,
            r#"{"jsonrpc":"2.0","method":"session.open_session","id":true}"#,
            r#"{"jsonrpc":"2.0","method":"session.open_session","id":{}}"#,
            r#"{"jsonrpc":"2.0","method":"session.open_session","id":1,"id":2}"#,
            r#"{"jsonrpc":"2.0","jsonrpc":"2.0","method":"session.open_session","id":1}"#,
            r#"{"jsonrpc":"2.0","method":"Session.Open_Session","id":1}"#,
            r#"{"jsonrpc":"2.0","method":"session.open_session","params":{"expires_in":0},"id":1}"#,
            r#"{"jsonrpc":"2.0","method":"session.open_session","params":{"expires_in":31536001},"id":1}"#,
            r#"{"jsonrpc":"2.0","method":"session.open_session","params":{"expires_in":1.0},"id":1}"#,
            r#"{"jsonrpc":"2.0","method":"session.open_session","params":{"expires_in":-1},"id":1}"#,
            r#"{"jsonrpc":"2.0","method":"session.open_session","params":{"expires_in":"60"},"id":1}"#,
            r#"{"jsonrpc":"2.0","method":"session.open_session","params":{"expires_in":60,"expires_in":60},"id":1}"#,
            r#"{"jsonrpc":"2.0","method":"session.open_session","params":{"token":"x"},"id":1}"#,
            r#"{"jsonrpc":"2.0","method":"session.verify_session_token","params":{"token":"x","expires_in":1},"id":1}"#,
            r#"{"jsonrpc":"2.0","method":"session.verify_session_token","params":{"token":"x","other":1},"id":1}"#,
            r#"{"jsonrpc":"2.0","method":"session.verify_session_token","params":{"token":"x","token":"y"},"id":1}"#,
            r#"{"jsonrpc":"2.0","method":"session.verify_session_token","params":{},"id":1}"#,
            r#"{"jsonrpc":"2.0","method":"session.verify_session_token","id":1}"#,
            r#"{"jsonrpc":"2.0","method":"rpc.discover","params":{},"id":1}"#,
            r#"{"jsonrpc":"2.0","method":"session.open_session","id":1,}"#,
            r#"{"jsonrpc":"2.0","method":"session.open_session","id":1} x"#,
            r#"[{"jsonrpc":"2.0","method":"session.open_session","id":1}]"#,
        ] {
            assert_eq!(fast(text), None, "{text}");
        }
    }
}
