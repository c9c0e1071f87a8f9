//! The API page's first example has a trailing comma (`"expires_in": null,` before `}`), and
//! users copy it verbatim. This removes such commas — only those directly (white space aside)
//! before `}` or `]` and after a value — and nothing else, so every other malformed body stays
//! malformed.

/// Returns the input without its trailing commas, or `None` when it has none.
pub fn strip_trailing_commas(input: &[u8]) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    let mut in_string = false;
    let mut escaped = false;
    // The last byte outside white space and strings that was copied (or would have been).
    let mut last_significant: u8 = 0;
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
                last_significant = b'"';
            }
        } else if b == b'"' {
            in_string = true;
        } else if b == b',' && after_value(last_significant) && closes_next(&input[i + 1..]) {
            // Drop this comma: start the copy here if it is the first one.
            out.get_or_insert_with(|| input[..i].to_vec());
            i += 1;
            continue;
        } else if !b.is_ascii_whitespace() {
            last_significant = b;
        }
        if let Some(buf) = out.as_mut() {
            buf.push(b);
        }
        i += 1;
    }
    out
}

/// Whether the byte that ended the previous token ends a value (so a comma after it is a
/// separator), rather than opening a container or being another separator.
fn after_value(last: u8) -> bool {
    !matches!(last, 0 | b'[' | b'{' | b',' | b':')
}

/// Whether the next byte other than white space closes an object or an array.
fn closes_next(rest: &[u8]) -> bool {
    rest.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'}' || b == b']')
}

#[cfg(test)]
mod tests {
    use super::strip_trailing_commas;

    fn fix(s: &str) -> Option<String> {
        strip_trailing_commas(s.as_bytes()).map(|v| String::from_utf8(v).expect("utf8"))
    }

    #[test]
    fn removes_only_trailing_commas() {
        assert_eq!(fix(r#"{"a": null,}"#).as_deref(), Some(r#"{"a": null}"#));
        assert_eq!(fix("[1, 2,\n ]").as_deref(), Some("[1, 2\n ]"));
        assert_eq!(
            fix(r#"{"p": {"e": null,
}, "x": [1,],}"#)
            .as_deref(),
            Some(
                r#"{"p": {"e": null
}, "x": [1]}"#
            )
        );
        assert_eq!(fix(r#"{"a": 1}"#), None);
        assert_eq!(fix(r#"{"a": ",}"}"#), None, "inside a string");
        assert_eq!(fix(r#"{"a": "\",}"}"#), None, "after an escaped quote");
    }

    #[test]
    fn leaves_other_malformed_commas_alone() {
        assert_eq!(fix("[,]"), None);
        assert_eq!(fix("{,}"), None);
        assert_eq!(fix("[1,,]").as_deref(), None);
        assert_eq!(fix(r#"{"a":,}"#), None);
        assert_eq!(fix(",]"), None);
    }
}
