//! A DPoP proof as the token endpoint and the verifier read it: parse,
//! import the embedded key, verify, then every request check; and the
//! `htu` normalisation on its own. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_jose::Algorithm;
use tessera_jose::dpop::{Proof, normalize_htu};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = normalize_htu(text);
    if let Ok(proof) = Proof::verify(text, &Algorithm::ALL) {
        let _ = proof.check_request("POST", "https://auth.example.com/oauth2/token");
        let _ = proof.check_time(1_800_000_000, 60, 5);
        let _ = proof.check_access_token("token");
    }
});
