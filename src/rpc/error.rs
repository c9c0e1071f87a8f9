//! The JSON-RPC error object and every code the service answers with.

use std::borrow::Cow;

/// Invalid JSON was received.
pub const PARSE_ERROR: i32 = -32700;
/// The JSON sent is not a valid Request object.
pub const INVALID_REQUEST: i32 = -32600;
/// The method does not exist.
pub const METHOD_NOT_FOUND: i32 = -32601;
/// Invalid method parameters.
pub const INVALID_PARAMS: i32 = -32602;
/// Internal JSON-RPC error.
pub const INTERNAL_ERROR: i32 = -32603;
/// Server error: the service could not answer now (its store failed); retry later.
pub const STORE_UNAVAILABLE: i32 = -32000;
/// Server error: the call carried no valid API key (sent with HTTP 401).
pub const UNAUTHORIZED: i32 = -32001;

/// A JSON-RPC error object: a code and a message meant for the caller's developer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    /// One of the codes in this module.
    pub code: i32,
    /// What went wrong and, where it helps, what is allowed.
    pub message: Cow<'static, str>,
}

impl RpcError {
    /// An error object with any code, e.g. a server error in `-32000..-32099`.
    pub fn new(code: i32, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The code as a metrics label.
    pub fn code_label(&self) -> &'static str {
        match self.code {
            PARSE_ERROR => "-32700",
            INVALID_REQUEST => "-32600",
            METHOD_NOT_FOUND => "-32601",
            INVALID_PARAMS => "-32602",
            INTERNAL_ERROR => "-32603",
            STORE_UNAVAILABLE => "-32000",
            UNAUTHORIZED => "-32001",
            _ => "other",
        }
    }

    /// `-32700`: the body is not JSON.
    pub fn parse_error() -> Self {
        Self::new(PARSE_ERROR, "Parse error: the body is not valid JSON")
    }

    /// `-32600` with a reason.
    pub fn invalid_request(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            INVALID_REQUEST,
            format!("Invalid Request: {}", reason.into()),
        )
    }

    /// `-32601` for `method` (shortened when long).
    pub fn method_not_found(method: &str) -> Self {
        let shown: String = method.chars().take(64).collect();
        let more = if shown.len() < method.len() {
            "…"
        } else {
            ""
        };
        Self::new(METHOD_NOT_FOUND, format!("Method not found: {shown}{more}"))
    }

    /// `-32602` with a reason.
    pub fn invalid_params(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(INVALID_PARAMS, format!("Invalid params: {}", reason.into()))
    }

    /// `-32603`: something went wrong inside the service.
    pub fn internal() -> Self {
        Self::new(INTERNAL_ERROR, "Internal error")
    }

    /// `-32001`: no valid API key.
    pub fn unauthorized() -> Self {
        Self::new(
            UNAUTHORIZED,
            "Unauthorized: send Authorization: Bearer <key>, or APIKey and Secret headers",
        )
    }
}
