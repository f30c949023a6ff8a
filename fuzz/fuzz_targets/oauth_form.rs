//! The OAuth form and the client credentials: a body, then (after the first
//! NUL) an Authorization header value. The form must read any body as
//! `form_urlencoded` reads it: refused exactly when a name that may not
//! repeat is repeated, else every value the same (empty ones omitted).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (body, header) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], Some(&data[at + 1..])),
        None => (data, None),
    };
    let form = tessera::http::oauth::Form::parse(body).ok();
    let reference: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let repeatable = tessera::http::oauth::REPEATABLE;
    let repeated = (0..reference.len()).any(|i| {
        !repeatable.contains(&reference[i].0.as_str()) && reference[..i].iter().any(|(name, _)| *name == reference[i].0)
    });
    assert_eq!(form.is_none(), repeated, "refused exactly when a name is repeated");
    if let Some(form) = &form {
        for (name, value) in &reference {
            if repeatable.contains(&name.as_str()) {
                let values: Vec<&str> = reference.iter().filter(|(n, v)| n == name && !v.is_empty()).map(|(_, v)| v.as_str()).collect();
                assert_eq!(form.all(name), values);
            } else {
                assert_eq!(form.get(name), (!value.is_empty()).then_some(value.as_str()));
            }
        }
    }
    let header = header.and_then(|h| std::str::from_utf8(h).ok());
    let id = form.as_ref().and_then(|f| f.get("client_id"));
    let secret = form.as_ref().and_then(|f| f.get("client_secret"));
    let _ = tessera::clients::Credentials::from_request(header, id, secret);
});
