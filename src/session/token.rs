//! Session tokens: random UUID v4s from a CSPRNG seeded by the OS, handed out once and never
//! stored (the store sees only [`crate::store::key::SessionKey`], the token's SHA-256).
//!
//! UUIDs are case-insensitive on input (RFC 9562): a well-formed token in any letter case names
//! the same session, so [`normalise`] lower-cases it before it is hashed.

use std::borrow::Cow;

use uuid::Uuid;

use crate::store::key::SessionKey;

/// Length of a token in its hyphenated form.
pub const TOKEN_LEN: usize = 36;

/// A fresh access token: a random UUID v4 (122 random bits from `rand`'s `ThreadRng`, a
/// ChaCha12 CSPRNG seeded and periodically reseeded from the OS), written in its
/// hyphenated lower-case form.
pub fn generate() -> String {
    Uuid::new_v4().hyphenated().to_string()
}

/// The token in the form it was issued in (hyphenated lower case), or `None` when it does not
/// have the shape of a token this service issues: such a token can never be active, so
/// callers answer without asking the store. Allocates only for a token with upper-case
/// letters.
pub fn normalise(token: &str) -> Option<Cow<'_, str>> {
    /// Per byte: 0 not allowed, 1 a lower-case hex digit or a digit, 2 an upper-case hex digit.
    const CLASS: [u8; 256] = {
        let mut class = [0u8; 256];
        let mut b = 0;
        while b < 256 {
            class[b] = match b as u8 {
                b'0'..=b'9' | b'a'..=b'f' => 1,
                b'A'..=b'F' => 2,
                _ => 0,
            };
            b += 1;
        }
        class
    };
    let bytes = token.as_bytes();
    if bytes.len() != TOKEN_LEN || [8, 13, 18, 23].iter().any(|&i| bytes[i] != b'-') {
        return None;
    }
    // Every byte but the four hyphens: OR-ed classes say whether any was upper case, AND-ed
    // minimum whether any was not allowed; one branch-free pass.
    let (mut any, mut all) = (0u8, 1u8);
    for (i, &b) in bytes.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            continue;
        }
        let class = CLASS[usize::from(b)];
        any |= class;
        all &= u8::from(class != 0);
    }
    match (all, any & 2) {
        (0, _) => None,
        (_, 0) => Some(Cow::Borrowed(token)),
        _ => Some(Cow::Owned(token.to_ascii_lowercase())),
    }
}

/// The store key of a token, or `None` for a token of the wrong shape.
pub fn key_of(token: &str) -> Option<SessionKey> {
    normalise(token).map(|token| SessionKey::of(&token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_hyphenated_lower_case_v4_uuids() {
        for _ in 0..100 {
            let token = generate();
            assert_eq!(normalise(&token).as_deref(), Some(token.as_str()));
            let parsed = Uuid::parse_str(&token).expect("parses");
            assert_eq!(parsed.get_version_num(), 4);
        }
        assert_ne!(generate(), generate());
    }

    #[test]
    fn any_letter_case_names_the_same_session() {
        let lower = "00890640-ec03-4663-82ce-456ea993807d";
        let upper = "00890640-EC03-4663-82CE-456EA993807D";
        let mixed = "00890640-Ec03-4663-82cE-456ea993807D";
        assert!(matches!(normalise(lower), Some(Cow::Borrowed(_))));
        for token in [upper, mixed] {
            assert_eq!(normalise(token).as_deref(), Some(lower));
            assert_eq!(key_of(token), key_of(lower));
        }
    }

    #[test]
    fn only_the_issued_shape_is_well_formed() {
        for bad in [
            "",
            "00890640ec03466382ce456ea993807d",
            "{00890640-ec03-4663-82ce-456ea993807d}",
            "00890640-ec03-4663-82ce-456ea993807",
            "00890640-ec03-4663-82ce-456ea993807dd",
            "00890640_ec03-4663-82ce-456ea993807d",
            "g0890640-ec03-4663-82ce-456ea993807d",
            "00890640-ec03-4663-82ce-456ea99380\u{e9}",
        ] {
            assert!(normalise(bad).is_none(), "{bad:?}");
        }
    }
}
