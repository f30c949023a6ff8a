//! The OAuth form and the client credentials: a body, then (after the first
//! NUL) an Authorization header value.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (body, header) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], Some(&data[at + 1..])),
        None => (data, None),
    };
    let form = tessera::http::oauth::Form::parse(body).ok();
    let header = header.and_then(|h| std::str::from_utf8(h).ok());
    let id = form.as_ref().and_then(|f| f.get("client_id"));
    let secret = form.as_ref().and_then(|f| f.get("client_secret"));
    let _ = tessera::clients::Credentials::from_request(header, id, secret);
});
