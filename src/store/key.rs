//! The store's name for a session: `<prefix><hex SHA-256 of the token>` (default prefix
//! `sessiond:`). A copy of the store's data holds nothing that can be replayed as a token, and
//! the hex digest without the prefix is the session's public id.

use sha2::{Digest, Sha256};

/// A session's key: the SHA-256 of its token.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey([u8; 32]);

impl SessionKey {
    /// Hashes a token exactly as given (callers normalise its case first).
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

    /// The store key as text: `prefix` followed by the digest in hex.
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
    fn the_key_is_the_prefix_and_the_hex_sha256_of_the_token() {
        // printf %s abc | sha256sum
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(SessionKey::of("abc").with_prefix(""), abc);
        assert_eq!(SessionKey::of("abc").with_prefix("p:"), format!("p:{abc}"));
        assert_eq!(
            SessionKey::of("abc").prefixed("p:"),
            format!("p:{abc}").into_bytes()
        );
    }
}

/// The store's name for a subject's index: the SHA-256 of the subject, so the index key
/// (`<prefix>subject:<hex>`) holds no personal data in clear.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct SubjectKey(pub SessionKey);

impl SubjectKey {
    /// Hashes a subject.
    pub fn of(subject: &str) -> Self {
        Self(SessionKey::of(subject))
    }

    /// `<prefix>subject:<hex>`
    pub fn prefixed(&self, prefix: &str) -> Vec<u8> {
        let mut key = Vec::with_capacity(prefix.len() + 8 + 64);
        key.extend_from_slice(prefix.as_bytes());
        key.extend_from_slice(b"subject:");
        key.extend_from_slice(&self.0.hex());
        key
    }
}

impl SessionKey {
    /// The session's public id: the digest in hex (the key without its prefix).
    pub fn id(&self) -> String {
        let mut id = String::with_capacity(64);
        self.write_hex(&mut id);
        id
    }

    /// The key whose id is `id` (64 hex digits, any case), or `None`.
    pub fn from_id(id: &str) -> Option<Self> {
        let hex = id.as_bytes();
        if hex.len() != 64 {
            return None;
        }
        let mut digest = [0u8; 32];
        for (byte, pair) in digest.iter_mut().zip(hex.chunks_exact(2)) {
            let text = std::str::from_utf8(pair).ok()?;
            *byte = u8::from_str_radix(text, 16).ok()?;
        }
        Some(Self(digest))
    }
}
