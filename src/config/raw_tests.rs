//! Validation of the raw configuration: issuers, the reuse grace and each section's bounds.

use super::*;

fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Config::load_with_env(None, &env)
}

#[test]
fn the_reuse_grace_must_outlast_a_request_and_the_store_wait() {
    assert_eq!(Config::defaults().tokens.reuse_grace, Duration::from_secs(10));
    assert_eq!(Config::defaults().http.request_timeout, Duration::from_secs(5), "the defaults satisfy the rule");
    let error = load(&[("TESSERA_TOKENS_REUSE_GRACE", "5s")]).unwrap_err().to_string();
    assert!(error.contains("tokens.reuse_grace") && error.contains("http.request_timeout") && error.contains("408/503"), "{error}");
    assert!(load(&[("TESSERA_TOKENS_REUSE_GRACE", "5s"), ("TESSERA_HTTP_REQUEST_TIMEOUT", "4s")]).is_ok());
    assert!(load(&[("TESSERA_TOKENS_REUSE_GRACE", "0")]).is_ok(), "0 turns retries off");
    let redis = [("TESSERA_STORE_KIND", "redis"), ("TESSERA_STORE_URL", "redis://127.0.0.1:6379"), ("TESSERA_HTTP_REQUEST_TIMEOUT", "9s")];
    let error = load(&[redis.as_slice(), &[("TESSERA_TOKENS_REUSE_GRACE", "10s")]].concat()).unwrap_err().to_string();
    assert!(error.contains("9s + 1s = 10s"), "{error}");
    assert!(load(&[redis.as_slice(), &[("TESSERA_TOKENS_REUSE_GRACE", "11s")]].concat()).is_ok());
}

#[test]
fn a_mistyped_redis_url_is_echoed_without_its_password() {
    let error =
        load(&[("TESSERA_STORE_KIND", "redis"), ("TESSERA_STORE_URL", "redis//:TopSecretPw@127.0.0.1:16391/0")]).unwrap_err().to_string();
    assert!(!error.contains("TopSecretPw"), "{error}");
    assert!(error.contains("store.url") && error.contains("127.0.0.1:16391"), "{error}");
    assert!(load(&[("TESSERA_STORE_ACCEPT_NEW_STORE", "true")]).unwrap().accept_new_store);
    assert!(!Config::defaults().accept_new_store);
}

#[test]
fn issuer_must_be_an_http_url_without_query() {
    assert!(validate_issuer("https://auth.example.com/").is_ok());
    assert!(validate_issuer("auth.example.com").is_err());
    assert!(validate_issuer("https://a.example/?x=1").is_err());
}

#[test]
fn trusted_proxies_are_addresses_or_networks() {
    let parsed = sections::trusted_proxies(Some(vec!["10.1.2.3/8".into(), "192.0.2.7".into(), "2001:db8::/32".into()])).unwrap();
    let shown: Vec<String> = parsed.iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]);
    let error = sections::trusted_proxies(Some(vec!["10.0.0.0/33".into()])).unwrap_err().to_string();
    assert!(error.contains("http.trusted_proxies") && error.contains("10.0.0.0/33"), "{error}");
    assert!(sections::trusted_proxies(Some(vec!["proxy.internal".into()])).is_err());
}
