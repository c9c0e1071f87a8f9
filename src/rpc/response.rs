//! Writing JSON-RPC response objects straight into the response buffer.

use serde_json::value::RawValue;

use super::error::RpcError;

/// A method's result that can write itself as JSON.
pub trait JsonResult {
    /// Appends the result's JSON to `out`.
    fn write_json(&self, out: &mut Vec<u8>);
}

/// Appends `{"jsonrpc":"2.0","result":…,"id":…}` or the error form to `out`.
pub fn write<T: JsonResult>(out: &mut Vec<u8>, id: &RawValue, outcome: &Result<T, RpcError>) {
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",");
    match outcome {
        Ok(result) => {
            out.extend_from_slice(b"\"result\":");
            result.write_json(out);
        }
        Err(error) => write_error_object(out, error),
    }
    out.extend_from_slice(b",\"id\":");
    out.extend_from_slice(id.get().as_bytes());
    out.push(b'}');
}

/// A whole response body holding a single error answered with id null.
pub fn error_body(error: &RpcError) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    write::<Never>(&mut out, RawValue::NULL, &Err(error.clone()));
    out
}

fn write_error_object(out: &mut Vec<u8>, error: &RpcError) {
    out.extend_from_slice(b"\"error\":{\"code\":");
    out.extend_from_slice(error.code.to_string().as_bytes());
    out.extend_from_slice(b",\"message\":");
    write_json_string(out, &error.message);
    out.push(b'}');
}

/// Appends `s` as a JSON string literal.
pub fn write_json_string(out: &mut Vec<u8>, s: &str) {
    // Serializing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// A result type with no values, for error-only responses.
enum Never {}

impl JsonResult for Never {
    fn write_json(&self, _out: &mut Vec<u8>) {
        match *self {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct True;
    impl JsonResult for True {
        fn write_json(&self, out: &mut Vec<u8>) {
            out.extend_from_slice(b"true");
        }
    }

    #[test]
    fn writes_results_and_errors() {
        let id: &RawValue = serde_json::from_str("\"x\"").expect("id");
        let mut out = Vec::new();
        write(&mut out, id, &Ok(True));
        assert_eq!(out, br#"{"jsonrpc":"2.0","result":true,"id":"x"}"#);
        let v: serde_json::Value =
            serde_json::from_slice(&error_body(&RpcError::invalid_params("a \"quote\"")))
                .expect("valid json");
        assert_eq!(v["error"]["code"], -32602);
        assert_eq!(v["error"]["message"], "Invalid params: a \"quote\"");
        assert_eq!(v["id"], serde_json::Value::Null);
    }
}
