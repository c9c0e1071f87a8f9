//! The session methods: the one table of their names, and their params decoded once into a
//! typed [`Method`] (by name or by position). Nothing after this looks at raw JSON again.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::rpc::RpcError;
use crate::rpc::envelope::json_str;
use crate::session::expiry::ExpiryLimits;

/// `session.open_session`
pub const OPEN_SESSION: &str = "session.open_session";
/// `session.verify_session_token`
pub const VERIFY_SESSION_TOKEN: &str = "session.verify_session_token";
/// `session.close_session`
pub const CLOSE_SESSION: &str = "session.close_session";
/// `session.introspect_session`
pub const INTROSPECT_SESSION: &str = "session.introspect_session";
/// `session.extend_session`
pub const EXTEND_SESSION: &str = "session.extend_session";
/// `session.list_sessions`
pub const LIST_SESSIONS: &str = "session.list_sessions";
/// `session.close_sessions`
pub const CLOSE_SESSIONS: &str = "session.close_sessions";
/// `rpc.discover`: the OpenRPC document describing the methods above.
pub const DISCOVER: &str = "rpc.discover";

/// Every method the service dispatches, with its parameter names in positional order: the
/// one table the decoder, the metrics and the OpenRPC check read.
pub const TABLE: &[(&str, &[&str])] = &[
    (OPEN_SESSION, &["expires_in", "subject", "metadata"]),
    (VERIFY_SESSION_TOKEN, &["token"]),
    (CLOSE_SESSION, &["token"]),
    (INTROSPECT_SESSION, &["token"]),
    (EXTEND_SESSION, &["token", "expires_in"]),
    (LIST_SESSIONS, &["subject"]),
    (CLOSE_SESSIONS, &["subject", "except_token", "session_ids"]),
    (DISCOVER, &[]),
];

/// The longest subject accepted, in bytes.
pub const MAX_SUBJECT_BYTES: usize = 256;
/// The largest metadata object accepted, in bytes of compact JSON.
pub const MAX_METADATA_BYTES: usize = 4096;
/// The most session ids one close_sessions call may name.
pub const MAX_SESSION_IDS: usize = 1000;

/// The session methods the OpenRPC document describes (all but `rpc.discover`).
pub fn session_methods() -> impl Iterator<Item = &'static str> {
    TABLE
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| *name != DISCOVER)
}

/// The static name of a method the service has (for labels), or `None`.
pub fn known(name: &str) -> Option<&'static str> {
    TABLE.iter().map(|(n, _)| *n).find(|n| *n == name)
}

/// A call with its params checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method<'a> {
    /// Open a session lasting `expires_in` seconds (the default already applied).
    OpenSession {
        /// Seconds the session lasts.
        expires_in: u64,
        /// Whom it belongs to.
        subject: Option<Cow<'a, str>>,
        /// A JSON object, compact.
        metadata: Option<String>,
    },
    /// Is this token active?
    VerifySessionToken {
        /// The token as given (any string).
        token: Cow<'a, str>,
    },
    /// End this token's session.
    CloseSession {
        /// The token as given (any string).
        token: Cow<'a, str>,
    },
    /// What does this token's session say about itself?
    IntrospectSession {
        /// The token as given.
        token: Cow<'a, str>,
    },
    /// Set this token's session's time left.
    ExtendSession {
        /// The token as given.
        token: Cow<'a, str>,
        /// Seconds (the default already applied).
        expires_in: u64,
    },
    /// This subject's live sessions.
    ListSessions {
        /// Whose.
        subject: Cow<'a, str>,
    },
    /// Close this subject's sessions (all, all but one, or the listed ones).
    CloseSessions {
        /// Whose.
        subject: Cow<'a, str>,
        /// Keep this token's session open.
        except_token: Option<Cow<'a, str>>,
        /// Close only these ids.
        session_ids: Option<Vec<String>>,
    },
    /// Describe the service (OpenRPC).
    Discover,
}

impl<'a> Method<'a> {
    /// Decodes a call.
    ///
    /// # Errors
    /// `-32601` for an unknown method name (names are case-sensitive); `-32602` for params that
    /// do not fit the method, with a message saying what is allowed.
    pub fn parse(
        name: &str,
        params: Option<&'a RawValue>,
        limits: &ExpiryLimits,
    ) -> Result<Self, RpcError> {
        match name {
            OPEN_SESSION => {
                let [expires_in, subject, metadata] =
                    bind(name, params, ["expires_in", "subject", "metadata"])?;
                Ok(Self::OpenSession {
                    expires_in: expires_in_param(expires_in, limits)?,
                    subject: optional(subject).map(subject_param).transpose()?,
                    metadata: optional(metadata).map(metadata_param).transpose()?,
                })
            }
            INTROSPECT_SESSION => {
                if let Some(token) = token_only(params) {
                    return Ok(Self::IntrospectSession {
                        token: Cow::Borrowed(token),
                    });
                }
                let [token] = bind(name, params, ["token"])?;
                Ok(Self::IntrospectSession {
                    token: token_param(token)?,
                })
            }
            EXTEND_SESSION => {
                let [token, expires_in] = bind(name, params, ["token", "expires_in"])?;
                Ok(Self::ExtendSession {
                    token: token_param(token)?,
                    expires_in: expires_in_param(expires_in, limits)?,
                })
            }
            LIST_SESSIONS => {
                let [subject] = bind(name, params, ["subject"])?;
                Ok(Self::ListSessions {
                    subject: required_subject(subject)?,
                })
            }
            CLOSE_SESSIONS => {
                let [subject, except_token, session_ids] =
                    bind(name, params, ["subject", "except_token", "session_ids"])?;
                Ok(Self::CloseSessions {
                    subject: required_subject(subject)?,
                    except_token: optional(except_token).map(except_token_param).transpose()?,
                    session_ids: optional(session_ids).map(session_ids_param).transpose()?,
                })
            }
            VERIFY_SESSION_TOKEN => {
                if let Some(token) = token_only(params) {
                    return Ok(Self::VerifySessionToken {
                        token: Cow::Borrowed(token),
                    });
                }
                let [token] = bind(name, params, ["token"])?;
                Ok(Self::VerifySessionToken {
                    token: token_param(token)?,
                })
            }
            CLOSE_SESSION => {
                if let Some(token) = token_only(params) {
                    return Ok(Self::CloseSession {
                        token: Cow::Borrowed(token),
                    });
                }
                let [token] = bind(name, params, ["token"])?;
                Ok(Self::CloseSession {
                    token: token_param(token)?,
                })
            }
            DISCOVER => {
                let [] = bind(name, params, [])?;
                Ok(Self::Discover)
            }
            _ => Err(RpcError::method_not_found(name)),
        }
    }

    /// The same call, owning its strings.
    pub fn into_owned(self) -> Method<'static> {
        let own = |s: Cow<'_, str>| Cow::Owned(s.into_owned());
        match self {
            Self::OpenSession {
                expires_in,
                subject,
                metadata,
            } => Method::OpenSession {
                expires_in,
                subject: subject.map(own),
                metadata,
            },
            Self::VerifySessionToken { token } => Method::VerifySessionToken { token: own(token) },
            Self::CloseSession { token } => Method::CloseSession { token: own(token) },
            Self::IntrospectSession { token } => Method::IntrospectSession { token: own(token) },
            Self::ExtendSession { token, expires_in } => Method::ExtendSession {
                token: own(token),
                expires_in,
            },
            Self::ListSessions { subject } => Method::ListSessions {
                subject: own(subject),
            },
            Self::CloseSessions {
                subject,
                except_token,
                session_ids,
            } => Method::CloseSessions {
                subject: own(subject),
                except_token: except_token.map(own),
                session_ids,
            },
            Self::Discover => Method::Discover,
        }
    }

    /// The method's name as callers spell it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::OpenSession { .. } => OPEN_SESSION,
            Self::VerifySessionToken { .. } => VERIFY_SESSION_TOKEN,
            Self::CloseSession { .. } => CLOSE_SESSION,
            Self::IntrospectSession { .. } => INTROSPECT_SESSION,
            Self::ExtendSession { .. } => EXTEND_SESSION,
            Self::ListSessions { .. } => LIST_SESSIONS,
            Self::CloseSessions { .. } => CLOSE_SESSIONS,
            Self::Discover => DISCOVER,
        }
    }
}

/// `{"token": "<no escapes>"}`, the params of nearly every call, decoded in one pass
/// without allocating; anything else (`None`) goes through [`bind`], which explains refusals.
fn token_only(params: Option<&RawValue>) -> Option<&str> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct TokenOnly<'a> {
        #[serde(borrow)]
        token: &'a str,
    }
    let params = params?;
    if !params.get().starts_with('{') {
        return None;
    }
    serde_json::from_str::<TokenOnly<'_>>(params.get())
        .ok()
        .map(|p| p.token)
}

/// Matches params given by name or by position to the method's parameter `names`.
fn bind<'a, const N: usize>(
    method: &str,
    params: Option<&'a RawValue>,
    names: [&'static str; N],
) -> Result<[Option<&'a RawValue>; N], RpcError> {
    let mut bound = [None; N];
    let Some(params) = params else {
        return Ok(bound);
    };
    let takes = || names.join(", ");
    if params.get().starts_with('[') {
        let values: Vec<&RawValue> = serde_json::from_str(params.get())
            .map_err(|e| RpcError::invalid_params(e.to_string()))?;
        if values.len() > N {
            return Err(RpcError::invalid_params(format!(
                "{method} takes at most {N} positional param(s): {}",
                takes()
            )));
        }
        for (slot, value) in bound.iter_mut().zip(values) {
            *slot = Some(value);
        }
        return Ok(bound);
    }
    let NamedParams(pairs) =
        serde_json::from_str(params.get()).map_err(|e| RpcError::invalid_params(e.to_string()))?;
    for (name, value) in pairs {
        let Some(index) = names.iter().position(|n| *n == name) else {
            let shown: String = name.chars().take(64).collect();
            return Err(RpcError::invalid_params(format!(
                "unknown param {shown:?}; {method} takes: {}",
                takes()
            )));
        };
        if bound[index].replace(value).is_some() {
            return Err(RpcError::invalid_params(format!(
                "param {name:?} is given twice"
            )));
        }
    }
    Ok(bound)
}

/// The members of a params object in order, duplicates kept so they can be refused. Names
/// without escapes are borrowed from the body.
struct NamedParams<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

/// A member name, borrowed when it can be.
struct Name<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a param name")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Owned(s.to_owned())))
            }
        }
        d.deserialize_str(NameVisitor)
    }
}

impl<'de> Deserialize<'de> for NamedParams<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PairsVisitor;
        impl<'de> Visitor<'de> for PairsVisitor {
            type Value = NamedParams<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of params")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut pairs = Vec::with_capacity(2);
                while let Some((Name(name), value)) =
                    map.next_entry::<Name<'de>, &'de RawValue>()?
                {
                    pairs.push((name, value));
                }
                Ok(NamedParams(pairs))
            }
        }
        d.deserialize_map(PairsVisitor)
    }
}

fn expires_in_param(raw: Option<&RawValue>, limits: &ExpiryLimits) -> Result<u64, RpcError> {
    let requested = match raw.map(RawValue::get) {
        None | Some("null") => None,
        Some(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => {
            // Too many digits for u64 is out of bounds too.
            Some(text.parse::<u64>().unwrap_or(u64::MAX))
        }
        Some(_) => return Err(RpcError::invalid_params(limits.rule())),
    };
    limits
        .grant(requested)
        .ok_or_else(|| RpcError::invalid_params(limits.rule()))
}

/// An optional param: absent and `null` are the same.
fn optional(raw: Option<&RawValue>) -> Option<&RawValue> {
    raw.filter(|r| r.get() != "null")
}

fn subject_param(raw: &RawValue) -> Result<Cow<'_, str>, RpcError> {
    json_str(raw)
        .filter(|s| !s.is_empty() && s.len() <= MAX_SUBJECT_BYTES)
        .ok_or_else(|| {
            RpcError::invalid_params(format!(
                "subject must be a non-empty string of at most {MAX_SUBJECT_BYTES} bytes"
            ))
        })
}

fn required_subject(raw: Option<&RawValue>) -> Result<Cow<'_, str>, RpcError> {
    match optional(raw) {
        Some(raw) => subject_param(raw),
        None => Err(RpcError::invalid_params(
            "subject is required: the subject sessions were opened with",
        )),
    }
}

fn metadata_param(raw: &RawValue) -> Result<String, RpcError> {
    let refused = || {
        RpcError::invalid_params(format!(
            "metadata must be a JSON object of at most {MAX_METADATA_BYTES} bytes, nested at most 128 deep"
        ))
    };
    if !raw.get().starts_with('{') {
        return Err(refused());
    }
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(raw.get()).map_err(|_| refused())?;
    let compact = serde_json::to_string(&object).map_err(|_| refused())?;
    if compact.len() > MAX_METADATA_BYTES {
        return Err(refused());
    }
    Ok(compact)
}

/// The session to keep open: a token of the shape this service issues (any letter case). A
/// malformed one is refused rather than quietly keeping nothing open.
fn except_token_param(raw: &RawValue) -> Result<Cow<'_, str>, RpcError> {
    json_str(raw)
        .filter(|token| crate::session::token::normalise(token).is_some())
        .ok_or_else(|| {
            RpcError::invalid_params(
                "except_token must be an access_token returned by session.open_session",
            )
        })
}

fn session_ids_param(raw: &RawValue) -> Result<Vec<String>, RpcError> {
    let refused = || {
        RpcError::invalid_params(format!(
            "session_ids must be a list of at most {MAX_SESSION_IDS} strings (session ids from session.list_sessions)"
        ))
    };
    let ids: Vec<String> = serde_json::from_str(raw.get()).map_err(|_| refused())?;
    if ids.len() > MAX_SESSION_IDS {
        return Err(refused());
    }
    Ok(ids)
}

fn token_param(raw: Option<&RawValue>) -> Result<Cow<'_, str>, RpcError> {
    match raw {
        None => Err(RpcError::invalid_params(
            "token is required: the access_token returned by session.open_session",
        )),
        Some(raw) => json_str(raw).ok_or_else(|| {
            RpcError::invalid_params(
                "token must be a string: the access_token returned by session.open_session",
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::error::{INVALID_PARAMS, METHOD_NOT_FOUND};

    const LIMITS: ExpiryLimits = ExpiryLimits {
        default: 2_592_000,
        max: 31_536_000,
        max_lifetime: None,
    };

    fn parse(name: &str, params: Option<&str>) -> Result<Method<'static>, i32> {
        let raw: Option<&RawValue> = params.map(|p| serde_json::from_str(p).expect("json"));
        Method::parse(name, raw, &LIMITS)
            .map(Method::into_owned)
            .map_err(|e| e.code)
    }

    #[test]
    fn open_session_params() {
        let open = |e| {
            Ok(Method::OpenSession {
                expires_in: e,
                subject: None,
                metadata: None,
            })
        };
        assert_eq!(parse(OPEN_SESSION, None), open(2_592_000));
        assert_eq!(parse(OPEN_SESSION, Some("{}")), open(2_592_000));
        assert_eq!(parse(OPEN_SESSION, Some("[]")), open(2_592_000));
        assert_eq!(
            parse(OPEN_SESSION, Some(r#"{"expires_in":null}"#)),
            open(2_592_000)
        );
        assert_eq!(parse(OPEN_SESSION, Some(r#"{"expires_in":60}"#)), open(60));
        assert_eq!(parse(OPEN_SESSION, Some("[60]")), open(60));
        assert_eq!(parse(OPEN_SESSION, Some("[null]")), open(2_592_000));
        assert_eq!(parse(OPEN_SESSION, Some("[31536000]")), open(31_536_000));
        for bad in [
            r#"{"expires_in":0}"#,
            r#"{"expires_in":-1}"#,
            r#"{"expires_in":-0}"#,
            r#"{"expires_in":1.5}"#,
            r#"{"expires_in":1.0}"#,
            r#"{"expires_in":1e3}"#,
            r#"{"expires_in":"60"}"#,
            r#"{"expires_in":true}"#,
            r#"{"expires_in":[60]}"#,
            r#"{"expires_in":{}}"#,
            r#"{"expires_in":31536001}"#,
            r#"{"expires_in":99999999999999999999999999}"#,
            r#"{"expires_in":60,"expires_in":60}"#,
            r#"{"expires_in":60,"other":1}"#,
            r#"{"ttl":60}"#,
            "[60, 1, {}, 2]",
        ] {
            assert_eq!(parse(OPEN_SESSION, Some(bad)), Err(INVALID_PARAMS), "{bad}");
        }
    }

    #[test]
    fn token_params() {
        let t = "00890640-ec03-4663-82ce-456ea993807d";
        for name in [VERIFY_SESSION_TOKEN, CLOSE_SESSION] {
            let m = parse(name, Some(&format!(r#"{{"token":"{t}"}}"#))).expect("named");
            assert_eq!(m.name(), name);
            assert_eq!(parse(name, Some(&format!(r#"["{t}"]"#))), Ok(m));
            for bad in [
                None,
                Some("{}"),
                Some("[]"),
                Some(r#"{"token":null}"#),
                Some(r#"{"token":5}"#),
                Some(r#"{"token":["x"]}"#),
                Some(r#"{"token":"x","extra":1}"#),
                Some(r#"["a","b"]"#),
            ] {
                assert_eq!(parse(name, bad), Err(INVALID_PARAMS), "{name} {bad:?}");
            }
        }
        assert_eq!(
            parse(VERIFY_SESSION_TOKEN, Some(r#"{"token":"x"}"#)),
            Ok(Method::VerifySessionToken { token: "x".into() }),
            "any string is a token; a malformed one is simply inactive"
        );
    }

    #[test]
    fn names_are_exact() {
        for bad in [
            "session.Open_Session",
            "SESSION.OPEN_SESSION",
            "open_session",
            "",
        ] {
            assert_eq!(parse(bad, None), Err(METHOD_NOT_FOUND), "{bad}");
        }
    }
}
