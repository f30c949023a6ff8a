//! The access-token check (introspection, revocation, `token inspect`):
//! any string is refused or accepted, never a panic.
#![no_main]

mod keys;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        let _ = tessera::tokens::access::check(token, &keys::keys().view, "https://issuer.test", 30, chrono::Utc::now());
    }
});
