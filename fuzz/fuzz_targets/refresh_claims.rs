//! Refresh-token claims: whatever the bytes, the member-by-member reader
//! gives exactly what serde_json gives (the same claims, or an error).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::tokens::refresh::RefreshClaims;

fuzz_target!(|data: &[u8]| {
    let ours = RefreshClaims::from_json(data).ok();
    let theirs: Option<RefreshClaims> = serde_json::from_slice(data).ok();
    assert_eq!(ours, theirs);
});
