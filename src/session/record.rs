//! What a session's Redis value holds: `<issued_at>` (unix seconds) for a plain session, and
//! `<issued_at> {"sub":…,"meta":{…}}` for one with a subject or metadata. The issue time
//! comes first so that the extend script (`store/identity.rs`) reads it without a JSON parser.
//! Values written before subjects existed were `1`: such a session has no known issue time.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Issue times before this (2001-09-09) are not issue times (the old value `1`).
const FIRST_ISSUE_TIME: u64 = 1_000_000_000;

/// A session's stored data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// When it was opened (unix seconds); `None` for sessions stored before this was kept.
    pub issued_at: Option<u64>,
    /// Whom it belongs to.
    pub subject: Option<String>,
    /// The caller's metadata: a JSON object, as compact JSON text.
    pub metadata: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Rich<'a> {
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    sub: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    meta: Option<Box<RawValue>>,
}

/// Now, in unix seconds.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Record {
    /// A session with neither subject nor metadata, issued now.
    pub fn plain() -> Self {
        Self {
            issued_at: Some(now()),
            subject: None,
            metadata: None,
        }
    }

    /// The value to store.
    pub fn encode(&self) -> String {
        let mut value = self.issued_at.unwrap_or(0).to_string();
        if self.subject.is_some() || self.metadata.is_some() {
            let rich = Rich {
                sub: self.subject.as_deref().map(std::borrow::Cow::Borrowed),
                meta: self
                    .metadata
                    .clone()
                    .and_then(|m| RawValue::from_string(m).ok()),
            };
            value.push(' ');
            // Serializing strings and raw JSON into a String cannot fail.
            value.push_str(&serde_json::to_string(&rich).unwrap_or_default());
        }
        value
    }

    /// Reads a stored value; anything unreadable is a session with no data beyond its life.
    pub fn decode(value: &str) -> Self {
        let (time, rest) = value.split_once(' ').unwrap_or((value, ""));
        let issued_at = time.parse::<u64>().ok().filter(|t| *t >= FIRST_ISSUE_TIME);
        let rich: Option<Rich<'_>> = serde_json::from_str(rest).ok();
        let (subject, metadata) = match rich {
            Some(rich) => (
                rich.sub.map(std::borrow::Cow::into_owned),
                rich.meta.map(|m| m.get().to_owned()),
            ),
            None => (None, None),
        };
        Self {
            issued_at,
            subject,
            metadata,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        let plain = Record {
            issued_at: Some(1_700_000_000),
            subject: None,
            metadata: None,
        };
        assert_eq!(plain.encode(), "1700000000");
        assert_eq!(Record::decode(&plain.encode()), plain);
        let rich = Record {
            issued_at: Some(1_700_000_000),
            subject: Some("user \"42\"".into()),
            metadata: Some(r#"{"ip":"10.0.0.1"}"#.to_owned()),
        };
        let value = rich.encode();
        assert!(value.starts_with("1700000000 {"), "{value}");
        assert_eq!(Record::decode(&value), rich);
        let legacy = Record::decode("1");
        assert_eq!(legacy.issued_at, None);
        assert_eq!(legacy.subject, None);
    }
}
