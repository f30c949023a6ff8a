//! Loading the configuration: files, environment overrides, defaults.

use super::env::env_name;
use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn defaults_match_the_design() {
    let config = Config::defaults();
    assert_eq!(config.issuer, None);
    assert_eq!(config.issuer_for(config.listen), "http://127.0.0.1:8080");
    assert_eq!(config.tokens.access_ttl, Duration::from_secs(600));
    assert_eq!(config.tokens.algorithm, SigningAlgorithm::ES256);
    assert_eq!(config.store, StoreConfig::Embedded { path: "data/tessera.redb".into() });
}

#[test]
fn every_declared_key_has_its_environment_variable() {
    let names: Vec<String> = raw::env_keys().map(|(key, _)| env_name(key)).collect();
    for expected in [
        "TESSERA_LISTEN",
        "TESSERA_STORE_URL",
        "TESSERA_TOKENS_ACCESS_TTL",
        "TESSERA_HTTP_MAX_BODY_BYTES",
        "TESSERA_FEED_PUBLIC",
        "TESSERA_CLIENTS",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }
    assert!(!names.iter().any(|n| n == "TESSERA_STORE" || n == "TESSERA_TOKENS"), "sections are not variables: {names:?}");
    for (key, form) in raw::env_keys() {
        let value = if form == raw::EnvForm::Plain { "x" } else { "1" };
        let notes = Config::read(None, &env(&[(&env_name(key), value)])).map(|loaded| loaded.notes).unwrap_or_default();
        assert!(notes.iter().all(|note| !note.message.contains("unknown environment variable")), "{key}: {notes:?}");
    }
}

#[test]
fn the_feed_is_private_and_bounded_by_default() {
    let feed = Config::defaults().feed;
    assert_eq!(
        feed,
        FeedConfig {
            public: false,
            page_size: 1000,
            max_streams: 1024,
            max_streams_per_peer: 8,
            slow_consumer_timeout: Duration::from_secs(30)
        }
    );
    let err = Config::load_with_env(None, &env(&[("TESSERA_FEED_PAGE_SIZE", "10001")])).unwrap_err().to_string();
    assert!(err.contains("feed.page_size") && err.contains("10000"), "{err}");
    let err = Config::load_with_env(None, &env(&[("TESSERA_FEED_MAX_STREAMS_PER_PEER", "0")])).unwrap_err().to_string();
    assert!(err.contains("feed.max_streams_per_peer"), "{err}");
    let open = Config::load_with_env(None, &env(&[("TESSERA_FEED_PUBLIC", "true"), ("TESSERA_FEED_SLOW_CONSUMER_TIMEOUT", "5s")])).unwrap();
    assert!(open.feed.public);
    assert_eq!(open.feed.slow_consumer_timeout, Duration::from_secs(5));
}

#[test]
fn environment_overrides_file_values() {
    let config = Config::load_with_env(
        None,
        &env(&[("TESSERA_TOKENS_ACCESS_TTL", "5m"), ("TESSERA_LISTEN", "127.0.0.1:0"), ("TESSERA_HTTP_MAX_BODY_BYTES", "2048")]),
    )
    .unwrap();
    assert_eq!(config.tokens.access_ttl, Duration::from_secs(300));
    assert_eq!(config.listen.port(), 0);
    assert_eq!(config.http.max_body_bytes, 2048);
}

#[test]
fn a_bad_value_names_key_value_and_what_is_allowed() {
    let err = Config::load_with_env(None, &env(&[("TESSERA_TOKENS_ACCESS_TTL", "10 parsecs")])).unwrap_err().to_string();
    assert!(err.starts_with("TESSERA_TOKENS_ACCESS_TTL: "), "the variable is named: {err}");
    assert!(err.contains("tokens.access_ttl"), "{err}");
    assert!(err.contains("10 parsecs"), "{err}");
    assert!(err.contains("\"10m\""), "{err}");
    let err = Config::load_with_env(None, &env(&[("TESSERA_FEED_PUBLIC", "1")])).unwrap_err().to_string();
    assert!(err.contains("TESSERA_FEED_PUBLIC (feed.public)") && err.contains("bool"), "{err}");
    let err = Config::load_with_env(None, &env(&[("TESSERA_TOKENS_ALGORITHM", "HS256")])).unwrap_err().to_string();
    assert!(err.contains("ES256") && err.contains("HS256"), "{err}");
    let notes = Config::read(None, &env(&[("TESSERA_TOKNS_ALGORITHM", "ES256")])).unwrap().notes;
    assert!(notes[0].message.contains("TESSERA_TOKNS_ALGORITHM") && notes[0].message.contains("TESSERA_TOKENS_ALGORITHM"), "{notes:?}");
}

#[test]
fn throttling_is_on_by_default_and_its_keys_are_bounded() {
    let throttle = Config::defaults().throttle;
    assert_eq!((throttle.max_failures, throttle.max_failures_per_peer), (20, 40));
    assert_eq!(throttle.window, Duration::from_secs(60));
    assert_eq!((throttle.max_tracked, throttle.requests_per_second), (100_000, 0));
    let config = Config::load_with_env(None, &env(&[("TESSERA_THROTTLE_REQUESTS_PER_SECOND", "50")])).unwrap();
    assert_eq!((config.throttle.requests_per_second, config.throttle.burst), (50, 50), "the burst defaults to one second's worth");
    let err = Config::load_with_env(None, &env(&[("TESSERA_THROTTLE_MAX_TRACKED", "5")])).unwrap_err().to_string();
    assert!(err.contains("throttle.max_tracked") && err.contains("100 to 10000000"), "{err}");
    let err = Config::load_with_env(None, &env(&[("TESSERA_THROTTLE_WINDOW", "0")])).unwrap_err().to_string();
    assert!(err.contains("throttle.window"), "{err}");
    let config = Config::load_with_env(None, &env(&[("TESSERA_HTTP_TRUSTED_PROXIES", "[\"10.0.0.0/8\"]")])).unwrap();
    assert_eq!(config.http.trusted_proxies.len(), 1);
}

#[test]
fn dpop_proofs_live_a_minute_nonces_are_off_and_bad_values_name_the_key() {
    let dpop = Config::defaults().dpop;
    assert_eq!((dpop.max_age, dpop.require_nonce, dpop.nonce_period), (Duration::from_secs(60), false, Duration::from_secs(300)));
    let config = Config::load_with_env(None, &env(&[("TESSERA_DPOP_REQUIRE_NONCE", "true"), ("TESSERA_DPOP_MAX_AGE", "2m")])).unwrap();
    assert_eq!((config.dpop.require_nonce, config.dpop.max_age), (true, Duration::from_secs(120)));
    let err = Config::load_with_env(None, &env(&[("TESSERA_DPOP_MAX_AGE", "1h")])).unwrap_err().to_string();
    assert!(err.contains("dpop.max_age") && err.contains("1h"), "{err}");
}

#[test]
fn unknown_file_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tessera.toml");
    std::fs::write(&path, "[tokens]\naccess_tl = \"5m\"\n").unwrap();
    let err = Config::load_with_env(Some(&path), &[]).unwrap_err().to_string();
    let expected = format!("{}:2:1: unknown config key `tokens.access_tl`; did you mean `access_ttl`?", path.display());
    assert!(err.starts_with(&expected), "{err}");
    assert!(err.contains("[tokens] takes: algorithm, access_ttl"), "{err}");
}

fn file_error(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.toml");
    std::fs::write(&path, text).unwrap();
    let err = Config::load_with_env(Some(&path), &[]).unwrap_err().to_string();
    err.replace(&path.display().to_string(), "t.toml")
}

#[test]
fn file_errors_name_the_key_with_its_line_and_column() {
    let err = file_error("[tokens]\naccess_ttl = 600\n");
    assert!(err.starts_with("t.toml:2:14: config `tokens.access_ttl`: invalid type: integer `600`"), "{err}");
    let err = file_error("[tokens]\naccess_ttl = \"2d\"\n");
    assert!(err.starts_with("t.toml:2:14: config `tokens.access_ttl` = \"2d\": expected a duration between 1s and 1d"), "{err}");
    let err = file_error("[[clients]]\nid = \"web\"\npublic = true\n\n[[clients]]\nid = \"app\"\npublic = true\nscope = [\"a\"]\n");
    assert!(err.starts_with("t.toml:8:1: unknown config key `clients[1].scope`; did you mean `scopes`?"), "{err}");
    let err = file_error("[[clients]]\nid = \"web\"\npublic = true\naccess_ttl = \"1y\"\n");
    assert!(err.starts_with("t.toml:4:14: config `clients[0].access_ttl` = \"1y\""), "{err}");
    let err = file_error("listn = \"127.0.0.1:1\"\n");
    assert!(err.starts_with("t.toml:1:1: unknown config key `listn`; did you mean `listen`?"), "{err}");
    let err = file_error("listen = \"0.0.0.0:8080\"\n");
    assert!(err.starts_with("config `issuer` = \"<unset>\": required when listen (0.0.0.0:8080)"), "{err}");
    let err = file_error("[log]\nformat = \"xml\"\n");
    assert!(err.starts_with("t.toml:2:10: config `log.format` = \"xml\": expected \"text\" or \"json\""), "{err}");
}

#[test]
fn durations_take_humantime_forms() {
    let config = Config::load_with_env(
        None,
        &env(&[("TESSERA_TOKENS_ACCESS_TTL", "10 minutes"), ("TESSERA_TOKENS_REFRESH_IDLE_TTL", "1h 30m"), ("TESSERA_LOG_FORMAT", "json")]),
    )
    .unwrap();
    assert_eq!(config.tokens.access_ttl, Duration::from_secs(600));
    assert_eq!(config.tokens.refresh_idle_ttl, Duration::from_secs(5400));
    assert_eq!(config.log_format, LogFormat::Json);
}
