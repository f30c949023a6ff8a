//! The verifier's Server-Sent Events decoder, fed in arbitrary chunks: the
//! first byte says where to split.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((split, rest)) = data.split_first() {
        let at = usize::from(*split).min(rest.len());
        let _ = tessera_verifier::fuzzing::decode_sse(&[&rest[..at], &rest[at..]]);
    }
});
