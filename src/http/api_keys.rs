//! Caller authentication (`SESSIOND_API_KEYS`): named API keys, kept only as SHA-256 digests
//! and compared in constant time. A call carries `Authorization: Bearer <secret>`, or the
//! original platform's pair `APIKey: <name>` and `Secret: <secret>`.

use hyper::HeaderMap;
use hyper::header::AUTHORIZATION;
use sha2::{Digest, Sha256};

/// The configured keys. The secrets themselves are not kept.
#[derive(Clone)]
pub struct ApiKeys {
    keys: Vec<ApiKey>,
}

#[derive(Clone)]
struct ApiKey {
    name: String,
    digest: [u8; 32],
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.keys.iter().map(|k| k.name.as_str()).collect();
        f.debug_struct("ApiKeys").field("names", &names).finish()
    }
}

impl ApiKeys {
    /// Parses `name:secret` and `name:sha256:<64 hex digits>` entries separated by commas.
    ///
    /// # Errors
    /// A message saying which entry (by position and name, never by secret) is malformed.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut keys: Vec<ApiKey> = Vec::new();
        for (index, entry) in spec.split(',').map(str::trim).enumerate() {
            let position = index + 1;
            let Some((name, secret)) = entry.split_once(':') else {
                return Err(format!(
                    "entry {position} is not name:secret or name:sha256:<hex>"
                ));
            };
            let name = name.trim();
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(format!(
                    "entry {position} needs a name of visible ASCII characters before the first ':'"
                ));
            }
            let digest = match secret.strip_prefix("sha256:") {
                Some(hex) => parse_hex_digest(hex).ok_or_else(|| {
                    format!("entry {position} ({name}): sha256: must be followed by 64 hex digits")
                })?,
                None if secret.is_empty() => {
                    return Err(format!("entry {position} ({name}) has an empty secret"));
                }
                None => Sha256::digest(secret.as_bytes()).into(),
            };
            if keys.iter().any(|k| k.name == name) {
                return Err(format!("the name {name} is given twice"));
            }
            if let Some(other) = keys.iter().find(|k| k.digest == digest) {
                return Err(format!(
                    "entries {} and {position} ({name}) have the same secret; each caller needs its own",
                    keys.iter()
                        .position(|k| k.name == other.name)
                        .map_or(0, |i| i + 1)
                ));
            }
            keys.push(ApiKey {
                name: name.to_owned(),
                digest,
            });
        }
        Ok(Self { keys })
    }

    /// The names of the configured keys.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.name.as_str())
    }

    /// Who is calling, when the headers carry a valid key: `Bearer <secret>`, else the
    /// `APIKey` and `Secret` pair.
    pub fn authenticate(&self, headers: &HeaderMap) -> Option<&str> {
        match bearer(headers) {
            Some(secret) => self.by_secret(secret),
            None => self.authenticate_pair(headers),
        }
    }

    /// Who is calling by the `APIKey` and `Secret` pair alone (the gateway endpoint, where
    /// `Authorization` carries the user's token).
    pub fn authenticate_pair(&self, headers: &HeaderMap) -> Option<&str> {
        let name = headers.get("apikey")?.as_bytes();
        let secret = headers.get("secret")?.as_bytes();
        self.find(name, secret)
    }

    /// Who is calling an OAuth2 endpoint: HTTP Basic with the key's name and secret, each
    /// form-urlencoded first (`client_secret_basic`, RFC 6749 §2.3.1), or `Bearer <secret>`.
    pub fn authenticate_client(&self, headers: &HeaderMap) -> Option<&str> {
        let value = headers.get(AUTHORIZATION)?.as_bytes();
        let (scheme, rest) = value.split_at_checked(6)?;
        if !scheme.eq_ignore_ascii_case(b"basic ") {
            return bearer(headers).and_then(|secret| self.by_secret(secret));
        }
        use base64::Engine;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim_ascii())
            .ok()?;
        let colon = decoded.iter().position(|&b| b == b':')?;
        let unescape = |part: &[u8]| -> Vec<u8> {
            form_urlencoded::parse(&[b"x=", part].concat())
                .next()
                .map(|(_, v)| v.into_owned().into_bytes())
                .unwrap_or_default()
        };
        let (raw_name, raw_secret) = (&decoded[..colon], &decoded[colon + 1..]);
        let (name, secret) = (unescape(raw_name), unescape(raw_secret));
        // RFC 6749 asks clients to form-encode both parts first; many (authlib, Spring's
        // BasicAuthenticationInterceptor) send them as they are: a secret with `+` or `%`
        // then only matches unescaped.
        self.find(&name, &secret).or_else(|| {
            let escaped = name != raw_name || secret != raw_secret;
            if escaped {
                self.find(raw_name, raw_secret)
            } else {
                None
            }
        })
    }

    /// The key whose secret is `secret`, looking at every key, so the time taken does not
    /// depend on which one matched.
    fn by_secret(&self, secret: &[u8]) -> Option<&str> {
        let digest: [u8; 32] = Sha256::digest(secret).into();
        let mut found = None;
        for key in &self.keys {
            if digests_equal(&key.digest, &digest) {
                found = Some(key.name.as_str());
            }
        }
        found
    }

    /// The key named `name` whose secret is `secret`. The same work whether or not the name
    /// exists: the secret is compared with every key's digest and the match kept only for the
    /// named key, so the time taken tells nothing about which names exist.
    fn find(&self, name: &[u8], secret: &[u8]) -> Option<&str> {
        let digest: [u8; 32] = Sha256::digest(secret).into();
        let mut found = None;
        for key in &self.keys {
            let named = names_equal(key.name.as_bytes(), name);
            if digests_equal(&key.digest, &digest) & named {
                found = Some(key.name.as_str());
            }
        }
        found
    }
}

/// What follows `Authorization: Bearer `, trimmed; `None` without such a header.
pub fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| rest.trim_ascii())
}

fn parse_hex_digest(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim().as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut digest = [0u8; 32];
    for (byte, pair) in digest.iter_mut().zip(hex.chunks_exact(2)) {
        let text = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(text, 16).ok()?;
    }
    Some(digest)
}

/// Equality of two names that looks at every byte of the longer one.
fn names_equal(a: &[u8], b: &[u8]) -> bool {
    let len = a.len().max(b.len());
    let mut difference = u8::from(a.len() != b.len());
    for i in 0..len {
        difference |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    std::hint::black_box(difference) == 0
}

/// Constant-time equality of two digests.
fn digests_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).expect("header"));
        }
        map
    }

    #[test]
    fn parses_clear_and_hashed_secrets() {
        // printf %s s3cret | sha256sum
        let hashed = "1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0";
        let keys =
            ApiKeys::parse(&format!("gateway:s3cr:et, login:sha256:{hashed}")).expect("keys");
        assert_eq!(keys.names().collect::<Vec<_>>(), ["gateway", "login"]);
        let bearer = |s: &str| headers(&[("authorization", &format!("Bearer {s}"))]);
        assert_eq!(keys.authenticate(&bearer("s3cr:et")), Some("gateway"));
        assert_eq!(keys.authenticate(&bearer("s3cret")), Some("login"));
        assert_eq!(
            keys.authenticate(&headers(&[("authorization", "bearer s3cret")])),
            Some("login")
        );
        assert_eq!(keys.authenticate(&bearer("wrong")), None);
        assert_eq!(
            keys.authenticate(&headers(&[("authorization", "Basic s3cret")])),
            None
        );
        assert_eq!(
            keys.authenticate(&headers(&[("apikey", "login"), ("secret", "s3cret")])),
            Some("login")
        );
        assert_eq!(
            keys.authenticate(&headers(&[("apikey", "gateway"), ("secret", "s3cret")])),
            None,
            "a secret only works with its own name"
        );
        assert_eq!(keys.authenticate(&headers(&[("secret", "s3cret")])), None);
        assert_eq!(keys.authenticate(&HeaderMap::new()), None);
    }

    #[test]
    fn refuses_malformed_entries_without_echoing_secrets() {
        for bad in [
            "",
            "nosecret",
            ":x",
            "a:",
            "a:sha256:abc",
            "a:x,a:y",
            "a:x,b:x",
            "a b:x",
        ] {
            assert!(ApiKeys::parse(bad).is_err(), "{bad:?}");
        }
        let err = ApiKeys::parse("a:hunter2,b:").expect_err("empty secret");
        assert!(!err.contains("hunter2"));
    }
}
