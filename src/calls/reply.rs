//! A call's successful result, written as JSON straight into the response buffer.

use crate::rpc::response::{JsonResult, write_json_string};
use crate::session::{Introspection, Opened};

/// A method's successful result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `{"access_token": …, "expires_in": …}`
    Opened(Opened),
    /// `{"active": …}`
    Active(bool),
    /// `true`
    Closed,
    /// `session.introspect_session`: the session, or `{"active": false}`.
    Introspected(Option<Introspection>),
    /// `session.extend_session`: the seconds granted, or `{"active": false}`.
    Extended(Option<u64>),
    /// `session.list_sessions`
    Listed(Vec<Introspection>),
    /// `session.close_sessions`: `{"closed": n}`
    ClosedMany(u64),
    /// The OpenRPC document, as JSON text.
    Document(&'static str),
}

fn write_number(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(n.to_string().as_bytes());
}

fn write_issued_at(out: &mut Vec<u8>, issued_at: Option<u64>) {
    out.extend_from_slice(b"\"issued_at\":");
    match issued_at {
        Some(at) => write_number(out, at),
        None => out.extend_from_slice(b"null"),
    }
}

impl JsonResult for Reply {
    fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Self::Opened(Opened {
                access_token,
                expires_in,
            }) => {
                out.extend_from_slice(b"{\"access_token\":");
                write_json_string(out, access_token);
                out.extend_from_slice(b",\"expires_in\":");
                out.extend_from_slice(expires_in.to_string().as_bytes());
                out.push(b'}');
            }
            Self::Active(true) => out.extend_from_slice(b"{\"active\":true}"),
            Self::Active(false) => out.extend_from_slice(b"{\"active\":false}"),
            Self::Closed => out.extend_from_slice(b"true"),
            Self::Introspected(None) | Self::Extended(None) => {
                out.extend_from_slice(b"{\"active\":false}");
            }
            Self::Introspected(Some(session)) => {
                out.extend_from_slice(b"{\"active\":true,\"expires_in\":");
                write_number(out, session.expires_in);
                out.push(b',');
                write_issued_at(out, session.record.issued_at);
                out.extend_from_slice(b",\"session_id\":");
                write_json_string(out, &session.session_id);
                if let Some(subject) = &session.record.subject {
                    out.extend_from_slice(b",\"subject\":");
                    write_json_string(out, subject);
                }
                if let Some(metadata) = &session.record.metadata {
                    out.extend_from_slice(b",\"metadata\":");
                    out.extend_from_slice(metadata.as_bytes());
                }
                out.push(b'}');
            }
            Self::Extended(Some(granted)) => {
                out.extend_from_slice(b"{\"active\":true,\"expires_in\":");
                write_number(out, *granted);
                out.push(b'}');
            }
            Self::Listed(sessions) => {
                out.push(b'[');
                for (i, session) in sessions.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(b"{\"session_id\":");
                    write_json_string(out, &session.session_id);
                    out.push(b',');
                    write_issued_at(out, session.record.issued_at);
                    out.extend_from_slice(b",\"expires_in\":");
                    write_number(out, session.expires_in);
                    if let Some(metadata) = &session.record.metadata {
                        out.extend_from_slice(b",\"metadata\":");
                        out.extend_from_slice(metadata.as_bytes());
                    }
                    out.push(b'}');
                }
                out.push(b']');
            }
            Self::ClosedMany(closed) => {
                out.extend_from_slice(b"{\"closed\":");
                write_number(out, *closed);
                out.push(b'}');
            }
            Self::Document(json) => out.extend_from_slice(json.as_bytes()),
        }
    }
}
