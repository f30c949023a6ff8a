//! The verifier's JWKS parser: any document loads what it can or is refused.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tessera_jose::KeySet::from_jwks(data);
});
