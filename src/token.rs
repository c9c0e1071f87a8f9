//! Session tokens: random UUID v4s from a CSPRNG seeded by the OS, never stored as such — the
//! store only ever sees [`SessionKey`], the token's SHA-256.

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Length of a token in its hyphenated form.
pub const TOKEN_LEN: usize = 36;

/// A fresh access token: a random UUID v4 (122 random bits from `rand`'s `ThreadRng`, a
/// ChaCha12 CSPRNG seeded and periodically reseeded from the OS), written in its
/// hyphenated lower-case form.
pub fn generate() -> String {
    Uuid::new_v4().hyphenated().to_string()
}

/// Whether `token` has the shape of a token this service issues (hyphenated lower-case UUID).
///
/// Anything else can never be active, so callers may answer without asking the store.
pub fn is_well_formed(token: &str) -> bool {
    let bytes = token.as_bytes();
    bytes.len() == TOKEN_LEN
        && bytes.iter().enumerate().all(|(i, &b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

/// The store's name for a session: the SHA-256 of its token. A copy of the store's data holds
/// nothing that can be replayed as a token.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey([u8; 32]);

impl SessionKey {
    /// Hashes a token.
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// The digest's 32 bytes.
    pub fn digest(&self) -> &[u8; 32] {
        &self.0
    }

    /// The digest in lower-case hex: 64 ASCII bytes, made without allocating.
    pub fn hex(&self) -> [u8; 64] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 64];
        for (pair, byte) in out.chunks_exact_mut(2).zip(self.0) {
            pair[0] = HEX[usize::from(byte >> 4)];
            pair[1] = HEX[usize::from(byte & 0x0f)];
        }
        out
    }

    /// Appends the digest in lower-case hex (64 characters) to `out`.
    pub fn write_hex(&self, out: &mut String) {
        let hex = self.hex();
        // Every byte of `hex` is an ASCII hex digit.
        out.push_str(std::str::from_utf8(&hex).unwrap_or_default());
    }

    /// The store key: `prefix` followed by the digest in hex.
    pub fn with_prefix(&self, prefix: &str) -> String {
        let mut key = String::with_capacity(prefix.len() + 64);
        key.push_str(prefix);
        self.write_hex(&mut key);
        key
    }

    /// The store key as bytes, built in one allocation (what the Redis backends send).
    pub fn prefixed(&self, prefix: &str) -> Vec<u8> {
        let mut key = Vec::with_capacity(prefix.len() + 64);
        key.extend_from_slice(prefix.as_bytes());
        key.extend_from_slice(&self.hex());
        key
    }
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut hex = String::new();
        self.write_hex(&mut hex);
        write!(f, "SessionKey({hex})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_hyphenated_lower_case_v4_uuids() {
        for _ in 0..100 {
            let token = generate();
            assert!(is_well_formed(&token), "{token}");
            let parsed = Uuid::parse_str(&token).expect("parses");
            assert_eq!(parsed.get_version_num(), 4);
        }
        assert_ne!(generate(), generate());
    }

    #[test]
    fn only_the_issued_shape_is_well_formed() {
        assert!(is_well_formed("00890640-ec03-4663-82ce-456ea993807d"));
        for bad in [
            "",
            "00890640-EC03-4663-82CE-456EA993807D",
            "00890640ec03466382ce456ea993807d",
            "{00890640-ec03-4663-82ce-456ea993807d}",
            "00890640-ec03-4663-82ce-456ea993807",
            "00890640-ec03-4663-82ce-456ea993807dd",
            "00890640_ec03-4663-82ce-456ea993807d",
            "g0890640-ec03-4663-82ce-456ea993807d",
            "00890640-ec03-4663-82ce-456ea99380\u{e9}",
        ] {
            assert!(!is_well_formed(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_key_is_the_hex_sha256_of_the_token() {
        // printf %s 00890640-ec03-4663-82ce-456ea993807d | sha256sum
        let key = SessionKey::of("00890640-ec03-4663-82ce-456ea993807d");
        let expected = {
            let mut s = String::new();
            for b in Sha256::digest(b"00890640-ec03-4663-82ce-456ea993807d") {
                s.push_str(&format!("{b:02x}"));
            }
            s
        };
        assert_eq!(key.with_prefix("p:"), format!("p:{expected}"));
        assert_eq!(key.prefixed("p:"), format!("p:{expected}").into_bytes());
        assert_eq!(
            SessionKey::of("abc").with_prefix(""),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
