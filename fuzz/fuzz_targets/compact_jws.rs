//! Compact-JWS parsing and the type check, as the verifier runs them first.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data)
        && let Ok(jws) = tessera_jose::CompactJws::parse(token)
    {
        let _ = jws.require_type(tessera_jose::typ::AT_JWT_TYPES);
    }
});
