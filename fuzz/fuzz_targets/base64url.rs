//! The SIMD base64url engine against the `base64` crate's scalar one: any
//! text decodes to the same bytes or is refused by both, and any bytes
//! encode to the same text.
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use tessera_jose::base64url;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    assert_eq!(base64url::decode(&text).ok(), URL_SAFE_NO_PAD.decode(text.as_bytes()).ok(), "{text:?}");
    let mut out = Vec::new();
    base64url::append(&mut out, data);
    assert_eq!(base64url::into_string(out), URL_SAFE_NO_PAD.encode(data));
});
