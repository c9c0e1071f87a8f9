//! JSON-RPC request bodies as exact text, for the tests that control every byte they send
//! (hostile input, the JSON-RPC rules, the decoder's properties, the binary's tests). Params,
//! tokens and ids are JSON text put in as given, so a test can send what no serializer would
//! write: `verify(&quoted(token))` for a token, `verify("12")` for a token that is a number.

/// A token of the shape the service issues that it never issued.
pub const NEVER_ISSUED: &str = "00890640-ec03-4663-82ce-456ea993807d";

/// A request; `method` is the inside of a JSON string, `params` and `id` are JSON text.
pub fn call(method: &str, params: &str, id: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","method":"{method}","params":{params},"id":{id}}}"#)
}

/// `session.open_session` with `expires_in` (JSON text) by name, under `id`.
pub fn open_as(expires_in: &str, id: &str) -> String {
    call(
        "session.open_session",
        &format!(r#"{{"expires_in":{expires_in}}}"#),
        id,
    )
}

/// `session.open_session` with `expires_in` (JSON text) by name, id 1.
pub fn open(expires_in: &str) -> String {
    open_as(expires_in, "1")
}

/// `session.verify_session_token` with `token` (JSON text) by name, under `id`.
pub fn verify_as(token: &str, id: &str) -> String {
    call(
        "session.verify_session_token",
        &format!(r#"{{"token":{token}}}"#),
        id,
    )
}

/// `session.verify_session_token` with `token` (JSON text) by name, id 1.
pub fn verify(token: &str) -> String {
    verify_as(token, "1")
}

/// `session.close_session` with `token` (JSON text) by name, under `id`.
pub fn close_as(token: &str, id: &str) -> String {
    call(
        "session.close_session",
        &format!(r#"{{"token":{token}}}"#),
        id,
    )
}

/// `session.close_session` with `token` (JSON text) by name, id 1.
pub fn close(token: &str) -> String {
    close_as(token, "1")
}

/// `session.verify_session_token` of [`NEVER_ISSUED`] by position, under `id` (JSON text).
pub fn verify_positional(id: &str) -> String {
    call(
        "session.verify_session_token",
        &format!(r#"["{NEVER_ISSUED}"]"#),
        id,
    )
}

/// The same verify as a notification (no id).
pub fn notification() -> String {
    format!(
        r#"{{"jsonrpc":"2.0","method":"session.verify_session_token","params":["{NEVER_ISSUED}"]}}"#
    )
}

/// A batch of these entries (JSON text each).
pub fn batch_of(entries: &[String]) -> String {
    format!("[{}]", entries.join(","))
}

/// A JSON string literal.
pub fn quoted(s: &str) -> String {
    serde_json::to_string(s).expect("string")
}
