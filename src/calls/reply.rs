//! A call's successful result, written as JSON straight into the response buffer.

use crate::rpc::response::{JsonResult, write_json_string};
use crate::session::Opened;

/// A method's successful result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `{"access_token": …, "expires_in": …}`
    Opened(Opened),
    /// `{"active": …}`
    Active(bool),
    /// `true`
    Closed,
    /// The OpenRPC document, as JSON text.
    Document(&'static str),
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
            Self::Document(json) => out.extend_from_slice(json.as_bytes()),
        }
    }
}
