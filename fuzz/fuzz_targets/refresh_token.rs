//! The refresh-token opener: any string is refused or opened, never a panic.
#![no_main]

mod keys;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        let _ = tessera::tokens::refresh::open(token, &keys::keys().view, chrono::Utc::now());
    }
});
