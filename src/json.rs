//! JSON for the hot paths, written member by member and read back in the
//! layout tessera writes.
//!
//! Every token request writes two claim sets and a token response, and a
//! refresh or a revocation reads a refresh token's claims back. Through
//! serde_json each string is escaped byte by byte and each member goes
//! through the generic map machinery; yet almost every string here is an
//! identifier, a URL or a token, with nothing to escape. [`Object`] checks a
//! string for a byte JSON must escape in one pass the compiler vectorizes,
//! copies it as it is when there is none, and hands anything else to
//! serde_json, so its bytes are exactly serde_json's (the tests of each
//! writer compare them). [`Reader`] reads an object laid out exactly as
//! tessera writes it and gives up — its caller falls back to serde_json — on
//! anything else: an escape, another member order, whitespace.

use serde::Serialize;
use tessera_jose::Audience;

/// A JSON object being written.
pub struct Object(Vec<u8>);

impl Object {
    pub fn with_capacity(capacity: usize) -> Self {
        let mut bytes = Vec::with_capacity(capacity);
        bytes.push(b'{');
        Self(bytes)
    }

    /// The comma before every member but the first.
    fn separate(&mut self) {
        if self.0.len() > 1 {
            self.0.push(b',');
        }
    }

    /// A member name known to need no escaping (a constant).
    fn name(&mut self, name: &str) {
        self.separate();
        write_name(&mut self.0, name);
    }

    pub fn string(&mut self, name: &'static str, value: &str) {
        self.name(name);
        write_string(&mut self.0, value);
    }

    pub fn optional_string(&mut self, name: &'static str, value: Option<&str>) {
        if let Some(value) = value {
            self.string(name, value);
        }
    }

    /// A string, or `null` when there is none.
    pub fn string_or_null(&mut self, name: &'static str, value: Option<&str>) {
        match value {
            Some(value) => self.string(name, value),
            None => {
                self.name(name);
                self.0.extend_from_slice(b"null");
            }
        }
    }

    pub fn bool(&mut self, name: &'static str, value: bool) {
        self.name(name);
        self.0.extend_from_slice(if value { b"true" } else { b"false" });
    }

    pub fn number(&mut self, name: &'static str, value: impl itoa::Integer) {
        self.name(name);
        self.0.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    pub fn optional_number(&mut self, name: &'static str, value: Option<impl itoa::Integer>) {
        if let Some(value) = value {
            self.number(name, value);
        }
    }

    /// A list of strings as an array.
    pub fn strings(&mut self, name: &'static str, values: &[String]) {
        self.name(name);
        self.0.push(b'[');
        for (n, value) in values.iter().enumerate() {
            if n > 0 {
                self.0.push(b',');
            }
            write_string(&mut self.0, value);
        }
        self.0.push(b']');
    }

    /// `aud`: a string for one audience, an array otherwise.
    pub fn audience(&mut self, name: &'static str, audience: &Audience) {
        match audience {
            Audience::One(one) => self.string(name, one),
            Audience::Many(many) => self.strings(name, many),
        }
    }

    /// A nested object of string members.
    pub fn object(&mut self, name: &'static str, members: &[(&'static str, &str)]) {
        self.name(name);
        self.0.push(b'{');
        for (n, (member, value)) in members.iter().enumerate() {
            if n > 0 {
                self.0.push(b',');
            }
            write_name(&mut self.0, member);
            write_string(&mut self.0, value);
        }
        self.0.push(b'}');
    }

    /// Any value, through serde_json.
    pub fn value(&mut self, name: &'static str, value: &impl Serialize) {
        self.name(name);
        serde_json::to_writer(&mut self.0, value).expect("a value serializes into a Vec");
    }

    /// The members of `map`, each as a member of this object (what serde's
    /// `flatten` writes).
    pub fn members(&mut self, map: &serde_json::Map<String, serde_json::Value>) {
        for (name, value) in map {
            self.separate();
            write_string(&mut self.0, name);
            self.0.push(b':');
            serde_json::to_writer(&mut self.0, value).expect("a value serializes into a Vec");
        }
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.0.push(b'}');
        self.0
    }
}

/// `"name":` for a name that needs no escaping.
fn write_name(out: &mut Vec<u8>, name: &str) {
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

/// `value` as a JSON string.
fn write_string(out: &mut Vec<u8>, value: &str) {
    if needs_escaping(value.as_bytes()) {
        serde_json::to_writer(out, value).expect("a string serializes into a Vec");
    } else {
        out.reserve(value.len() + 2);
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    }
}

/// Whether JSON must escape a byte of `bytes`: `"`, `\` or a control
/// character. No early exit, so the loop vectorizes.
fn needs_escaping(bytes: &[u8]) -> bool {
    bytes.iter().fold(false, |found, &byte| found | (byte < 0x20) | (byte == b'"') | (byte == b'\\'))
}

/// Reads a JSON object member by member, in an order the caller knows.
/// Every method returns `None` where the input is not exactly what it
/// expects; the caller then reads the whole input with serde_json, which
/// decides.
pub struct Reader<'a> {
    rest: &'a [u8],
    /// Whether no member has been read yet (the next needs no comma).
    first: bool,
}

impl<'a> Reader<'a> {
    /// At the opening brace.
    pub fn object(input: &'a [u8]) -> Option<Self> {
        Some(Self { rest: input.strip_prefix(b"{")?, first: true })
    }

    /// What follows the comma before the next member, if there must be one.
    fn after_comma(&self) -> Option<&'a [u8]> {
        if self.first { Some(self.rest) } else { self.rest.strip_prefix(b",") }
    }

    /// Whether the next member is `name` (without consuming it).
    pub fn at(&self, name: &str) -> bool {
        self.after_comma().is_some_and(|rest| {
            rest.len() > name.len() + 2 && rest[0] == b'"' && &rest[1..=name.len()] == name.as_bytes() && rest[name.len() + 1] == b'"'
        })
    }

    /// The member `name`, up to its value: `"name":` (after a comma unless
    /// it is the first).
    fn member(&mut self, name: &str) -> Option<()> {
        let rest = self.after_comma()?.strip_prefix(b"\"")?.strip_prefix(name.as_bytes())?.strip_prefix(b"\":")?;
        self.rest = rest;
        self.first = false;
        Some(())
    }

    pub fn string(&mut self, name: &str) -> Option<String> {
        self.member(name)?;
        self.string_value()
    }

    /// The member `name` when it comes next, `Some(None)` when it does not.
    pub fn optional_string(&mut self, name: &str) -> Option<Option<String>> {
        if !self.at(name) {
            return Some(None);
        }
        self.string(name).map(Some)
    }

    /// A string with nothing escaped in it.
    fn string_value(&mut self) -> Option<String> {
        let rest = self.rest.strip_prefix(b"\"")?;
        // The closing quote is the first quote when nothing before it is
        // escaped: find it with memchr, then check what precedes it in one
        // pass that vectorizes, rather than testing three things a byte.
        let end = memchr::memchr(b'"', rest)?;
        if needs_escaping(&rest[..end]) {
            return None;
        }
        let value = std::str::from_utf8(&rest[..end]).ok()?.to_owned();
        self.rest = &rest[end + 1..];
        Some(value)
    }

    /// An array of strings.
    pub fn strings(&mut self, name: &str) -> Option<Vec<String>> {
        self.member(name)?;
        self.rest = self.rest.strip_prefix(b"[")?;
        let mut values = Vec::new();
        if let Some(rest) = self.rest.strip_prefix(b"]") {
            self.rest = rest;
            return Some(values);
        }
        loop {
            values.push(self.string_value()?);
            let (&next, rest) = self.rest.split_first()?;
            self.rest = rest;
            match next {
                b',' => continue,
                b']' => return Some(values),
                _ => return None,
            }
        }
    }

    /// `aud`: a string or an array of strings.
    pub fn audience(&mut self, name: &str) -> Option<Audience> {
        let rest = self.after_comma()?;
        if rest.get(name.len() + 3) == Some(&b'"') { self.string(name).map(Audience::One) } else { self.strings(name).map(Audience::Many) }
    }

    /// An integer in the plain form tessera writes: an optional minus and
    /// digits with no leading zero.
    pub fn integer(&mut self, name: &str) -> Option<i64> {
        self.member(name)?;
        let (negative, rest) = match self.rest.strip_prefix(b"-") {
            Some(rest) => (true, rest),
            None => (false, self.rest),
        };
        let digits = rest.iter().take_while(|byte| byte.is_ascii_digit()).count();
        if digits == 0 || (rest[0] == b'0' && (digits > 1 || negative)) {
            return None;
        }
        let mut value: i64 = 0;
        for &digit in &rest[..digits] {
            let digit = i64::from(digit - b'0');
            value = value.checked_mul(10)?;
            value = if negative { value.checked_sub(digit)? } else { value.checked_add(digit)? };
        }
        self.rest = &rest[digits..];
        Some(value)
    }

    pub fn optional_integer(&mut self, name: &str) -> Option<Option<i64>> {
        if !self.at(name) {
            return Some(None);
        }
        self.integer(name).map(Some)
    }

    /// The closing brace, and nothing after it.
    pub fn end(self) -> Option<()> {
        (self.rest == b"}").then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_object_is_written_as_serde_json_writes_it() {
        let custom = json!({"tenant": "a\"b", "n": [1, {"x": null}], "é": true});
        let mut object = Object::with_capacity(16);
        object.string("s", "plain");
        object.string("e", "quote\" back\\slash \u{1} é 😀 \u{7f}");
        object.optional_string("absent", None);
        object.string_or_null("null", None);
        object.string_or_null("some", Some("x"));
        object.number("i", -42i64);
        object.number("u", u64::MAX);
        object.optional_number("o", Some(0u32));
        object.strings("a", &["x".into(), "y\n".into()]);
        object.strings("empty", &[]);
        object.object("cnf", &[("jkt", "t"), ("k", "\"")]);
        object.value("v", &json!([1, "two"]));
        object.members(custom.as_object().unwrap());
        let text = |value: &str| serde_json::to_string(value).unwrap();
        let expected = format!(
            r#"{{"s":"plain","e":{},"null":null,"some":"x","i":-42,"u":{},"o":0,"a":["x","y\n"],"empty":[],"cnf":{{"jkt":"t","k":"\""}},"v":[1,"two"],{}}}"#,
            text("quote\" back\\slash \u{1} é 😀 \u{7f}"),
            u64::MAX,
            custom.as_object().unwrap().iter().map(|(name, value)| format!("{}:{value}", text(name))).collect::<Vec<_>>().join(","),
        );
        let written = String::from_utf8(object.finish()).unwrap();
        assert_eq!(written, expected);
        serde_json::from_str::<serde_json::Value>(&written).unwrap();
        assert_eq!(Object::with_capacity(0).finish(), b"{}");
    }

    #[test]
    fn the_reader_reads_the_layout_it_expects_and_nothing_else() {
        type Read = (String, Option<String>, Vec<String>, i64, Option<i64>);
        let read = |input: &str| -> Option<Read> {
            let mut reader = Reader::object(input.as_bytes())?;
            let s = reader.string("s")?;
            let o = reader.optional_string("o")?;
            let a = reader.strings("a")?;
            let i = reader.integer("i")?;
            let n = reader.optional_integer("n")?;
            reader.end()?;
            Some((s, o, a, i, n))
        };
        assert_eq!(
            read(r#"{"s":"x","o":"é","a":["p","q"],"i":-9223372036854775808,"n":0}"#),
            Some(("x".into(), Some("é".into()), vec!["p".into(), "q".into()], i64::MIN, Some(0)))
        );
        assert_eq!(read(r#"{"s":"","a":[],"i":9223372036854775807}"#), Some(("".into(), None, vec![], i64::MAX, None)));
        for refused in [
            r#"{"s":"a\"b","a":[],"i":1}"#,        // an escape
            "{\"s\":\"a\u{1}\",\"a\":[],\"i\":1}", // a control character
            r#"{ "s":"x","a":[],"i":1}"#,          // whitespace
            r#"{"a":[],"s":"x","i":1}"#,           // another order
            r#"{"s":"x","a":[],"i":01}"#,          // a leading zero
            r#"{"s":"x","a":[],"i":-0}"#,
            r#"{"s":"x","a":[],"i":1.5}"#, // not an integer
            r#"{"s":"x","a":[],"i":1e3}"#,
            r#"{"s":"x","a":[],"i":9223372036854775808}"#, // out of range
            r#"{"s":"x","a":[],"i":-}"#,
            r#"{"s":"x","a":["p",],"i":1}"#,
            r#"{"s":"x","a":[],"i":1,"z":2}"#, // a member more
            r#"{"s":"x","a":[],"i":1} "#,      // anything after the object
            r#"{"s":"x","a":[],"i":1"#,
            r#"{"s":"x""#,
            "",
        ] {
            assert_eq!(read(refused), None, "{refused}");
        }
        assert_eq!(read("{\"s\":\"\u{80}\",\"a\":[],\"i\":1}").map(|r| r.0), Some("\u{80}".into()));
        // Long strings (past a vector's width), with what refuses them at every place.
        let long = "x".repeat(70);
        assert_eq!(read(&format!(r#"{{"s":"{long}","a":["{long}"],"i":1}}"#)).map(|r| r.0), Some(long.clone()));
        for at in 0..70 {
            for bad in ['\\', '\u{1f}', '\n'] {
                let mut value = long.clone();
                value.replace_range(at..=at, &bad.to_string());
                let input = format!(r#"{{"s":"{value}","a":[],"i":1}}"#);
                assert_eq!(read(&input), None, "{bad:?} at {at}");
            }
        }
        let invalid_utf8 = b"{\"s\":\"\xff\",\"a\":[],\"i\":1}";
        assert!(Reader::object(invalid_utf8).unwrap().string("s").is_none());
    }
}
