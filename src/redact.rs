//! Redaction of credentials in URLs before they reach a log line or an error message.

/// Returns `url` with any password in its user-info replaced by `***`.
///
/// `redis://user:secret@host:6379/0` becomes `redis://user:***@host:6379/0`; a URL with only
/// a password (`redis://:secret@host`) becomes `redis://:***@host`. Comma-separated lists
/// (cluster seeds, sentinels) are redacted entry by entry.
pub fn redact_url(url: &str) -> String {
    url.split(',').map(redact_one).collect::<Vec<_>>().join(",")
}

fn redact_one(url: &str) -> String {
    let url = redact_query_password(url);
    let url = url.as_str();
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    let user = match userinfo.find(':') {
        Some(colon) => &userinfo[..colon],
        // A lone user-info without a colon is a password in redis-rs's reading (redis://secret@host).
        None => "",
    };
    format!("{}{}:***@{}", &url[..scheme_end + 3], user, &rest[at + 1..])
}

/// Hides the value of a `password=` query parameter, which some Redis clients accept.
fn redact_query_password(url: &str) -> String {
    let Some(query_start) = url.find('?') else {
        return url.to_owned();
    };
    let (base, query) = url.split_at(query_start + 1);
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if name.eq_ignore_ascii_case("password") => format!("{name}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{base}{}", pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn hides_passwords_and_keeps_the_rest() {
        assert_eq!(
            redact_url("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(
            redact_url("redis://app:s3cr%40t@redis:6379/2"),
            "redis://app:***@redis:6379/2"
        );
        assert_eq!(redact_url("rediss://:pw@h:1"), "rediss://:***@h:1");
        assert_eq!(redact_url("redis://pw@h:1"), "redis://:***@h:1");
        assert_eq!(
            redact_url("redis://a:x@h1:1,redis://b:y@h2:2"),
            "redis://a:***@h1:1,redis://b:***@h2:2"
        );
        assert_eq!(redact_url("not a url"), "not a url");
        assert_eq!(
            redact_url("redis://h:1/0?password=x&db=1"),
            "redis://h:1/0?password=***&db=1"
        );
    }
}
