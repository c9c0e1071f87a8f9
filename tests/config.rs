//! Every setting × {environment, TOML file} × its boundary values: a value is accepted or
//! refused the same way wherever it is written, refusals are one line naming the variable,
//! empty means unset in both, and unknown or misspelt keys in the file are errors naming them.

use std::path::PathBuf;

use sessiond::config::{ConfigError, KEYS, Settings};

/// The numeric settings and their bounds (the smallest and largest value accepted).
const NUMBERS: &[(&str, u64, u64)] = &[
    // At least the default expires_in (30 days), or the default is refused.
    ("max_expires_in", 2_592_000, 3_153_600_000),
    ("default_expires_in", 1, 31_536_000), // at most max_expires_in (default one year)
    ("max_session_lifetime", 1, 3_153_600_000),
    ("redis_timeout_ms", 1, 3_600_000),
    ("max_body_bytes", 1, 1 << 30),
    ("max_batch", 1, 100_000),
    ("max_connections", 1, 1_000_000),
    ("header_timeout_ms", 1, 3_600_000),
    ("body_timeout_ms", 1, 3_600_000),
    ("shutdown_timeout_ms", 1, 3_600_000),
    ("drain_ms", 0, 9_999), // shorter than the shutdown timeout (10 s)
    ("worker_threads", 1, 1_024),
    ("h2_max_streams", 1, 1_000),
];

fn var(key: &str) -> String {
    format!("SESSIOND_{}", key.to_ascii_uppercase())
}

/// A TOML file holding `body`, removed when dropped.
struct TomlFile(PathBuf);

impl TomlFile {
    fn new(body: &str) -> Self {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "sessiond-config-test-{}-{n}.toml",
            std::process::id()
        ));
        std::fs::write(&path, body).expect("write the file");
        Self(path)
    }
}

impl Drop for TomlFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn from_env(pairs: &[(String, String)]) -> Result<Settings, ConfigError> {
    Settings::from_vars(pairs.iter().cloned())
}

fn from_toml(body: &str) -> Result<Settings, ConfigError> {
    let file = TomlFile::new(body);
    Settings::from_vars([(
        "SESSIOND_CONFIG".to_owned(),
        file.0.to_str().expect("utf-8 path").to_owned(),
    )])
}

/// Accepted or refused, and for a refusal that it is one line naming the variable.
fn verdict(result: Result<Settings, ConfigError>, var: &str, what: &str) -> bool {
    match result {
        Ok(_) => true,
        Err(err) => {
            let line = err.to_string();
            // A maximum below the default is refused under the default's name.
            let named = line.starts_with(&format!("{var}:"))
                || line.starts_with("SESSIOND_CONFIG:")
                || (var == "SESSIOND_MAX_EXPIRES_IN"
                    && line.starts_with("SESSIOND_DEFAULT_EXPIRES_IN:"));
            assert!(named, "{what}: {line}");
            assert!(!line.contains('\n'), "{what}: one line: {line}");
            false
        }
    }
}

#[test]
fn every_numeric_setting_has_the_same_bounds_in_the_environment_and_the_file() {
    for &(key, min, max) in NUMBERS {
        let var = var(key);
        let cases: Vec<(String, bool)> = vec![
            (min.saturating_sub(1).to_string(), min == 0),
            (min.to_string(), true),
            (max.to_string(), true),
            ((max + 1).to_string(), false),
            ("18446744073709551616".to_owned(), false),
            ("-1".to_owned(), false),
            ("1e3".to_owned(), false),
            ("12abc".to_owned(), false),
            ("1.0".to_owned(), false),
        ];
        for (text, accepted) in cases {
            let env = verdict(from_env(&[(var.clone(), text.clone())]), &var, &text);
            let quoted = verdict(from_toml(&format!("{key} = \"{text}\"\n")), &var, &text);
            assert_eq!(env, accepted, "{var}={text} in the environment");
            assert_eq!(quoted, accepted, "{key} = \"{text}\" in the file");
            // Written bare in TOML: an integer, a float or not TOML at all.
            let parses_as_toml = !text.contains("abc") && text != "18446744073709551616";
            if parses_as_toml {
                let bare = from_toml(&format!("{key} = {text}\n"));
                assert_eq!(
                    verdict(bare, &var, &text),
                    accepted,
                    "{key} = {text} (bare) in the file"
                );
            }
        }
    }
}

#[test]
fn a_float_in_the_file_is_refused_as_in_the_environment() {
    let file = from_toml("max_body_bytes = 1e6\n");
    let env = from_env(&[("SESSIOND_MAX_BODY_BYTES".into(), "1e6".into())]);
    assert!(!verdict(file, "SESSIOND_MAX_BODY_BYTES", "file"));
    assert!(!verdict(env, "SESSIOND_MAX_BODY_BYTES", "env"));
}

#[test]
fn empty_is_unset_in_both() {
    for key in KEYS {
        let env = from_env(&[(var(key), String::new())]).expect("empty variable");
        let file = from_toml(&format!("{key} = \"\"\n")).expect("empty string in the file");
        let default = from_env(&[]).expect("defaults");
        assert_eq!(format!("{env:?}"), format!("{default:?}"), "{key}");
        assert_eq!(format!("{file:?}"), format!("{default:?}"), "{key}");
    }
}

#[test]
fn unknown_keys_in_the_file_are_errors_naming_them() {
    for (body, named, hint) in [
        (
            "REDIS_URL = \"redis://h:1\"\n",
            "REDIS_URL",
            Some("redis_url"),
        ),
        (
            "redis-url = \"redis://h:1\"\n",
            "redis-url",
            Some("redis_url"),
        ),
        (
            "SESSIOND_REDIS_URL = \"redis://h:1\"\n",
            "SESSIOND_REDIS_URL",
            Some("redis_url"),
        ),
        ("max_bodybytes = 5\n", "max_bodybytes", None),
        ("[redis]\nurl = \"redis://h:1\"\n", "redis", None),
    ] {
        let err = from_toml(body).expect_err(body).to_string();
        assert!(err.starts_with("SESSIOND_CONFIG:"), "{err}");
        assert!(err.contains(&format!("{named:?}")), "{body}: {err}");
        if let Some(hint) = hint {
            assert!(err.contains(&format!("did you mean {hint:?}")), "{err}");
        }
        assert!(!err.contains('\n'), "{err}");
    }
}

#[test]
fn the_environment_wins_over_the_file() {
    let file = TomlFile::new("max_batch = 5\nkey_prefix = \"file:\"\n");
    let s = Settings::from_vars([
        (
            "SESSIOND_CONFIG".to_owned(),
            file.0.to_str().expect("path").to_owned(),
        ),
        ("SESSIOND_KEY_PREFIX".to_owned(), "env:".to_owned()),
    ])
    .expect("loads");
    assert_eq!(s.http.max_batch, 5);
    assert_eq!(s.store.key_prefix, "env:");
}

#[test]
fn choices_and_pairs_are_checked_alike() {
    for (key, bad) in [
        ("log_format", "xml"),
        ("redis_mode", "ring"),
        ("metrics_auth", "maybe"),
        ("listen", "nowhere"),
        ("redis_url", "http://x"),
        ("api_keys", "nameonly"),
    ] {
        let var = var(key);
        assert!(!verdict(from_env(&[(var.clone(), bad.into())]), &var, bad));
        assert!(!verdict(
            from_toml(&format!("{key} = \"{bad}\"\n")),
            &var,
            bad
        ));
    }
}

#[test]
fn metrics_auth_without_keys_and_shared_secrets_are_refused() {
    let err = from_env(&[("SESSIOND_METRICS_AUTH".into(), "true".into())])
        .expect_err("no keys")
        .to_string();
    assert!(err.starts_with("SESSIOND_METRICS_AUTH:"), "{err}");
    let err = from_env(&[("SESSIOND_API_KEYS".into(), "a:same,b:same".into())])
        .expect_err("same secret")
        .to_string();
    assert!(err.starts_with("SESSIOND_API_KEYS:"), "{err}");
    assert!(!err.contains("same,"), "no secret echoed: {err}");
}

#[test]
fn a_drain_as_long_as_the_shutdown_timeout_is_refused() {
    let err = from_env(&[
        ("SESSIOND_DRAIN_MS".into(), "3000".into()),
        ("SESSIOND_SHUTDOWN_TIMEOUT_MS".into(), "3000".into()),
    ])
    .expect_err("drain too long")
    .to_string();
    assert!(err.starts_with("SESSIOND_DRAIN_MS:"), "{err}");
    let s = from_env(&[("SESSIOND_SHUTDOWN_TIMEOUT_MS".into(), "3000".into())]).expect("ok");
    assert_eq!(s.http.drain.as_millis(), 1500, "half the shutdown time");
}
