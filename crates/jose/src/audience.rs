//! `aud` (RFC 7519 §4.1.3): one string when there is one audience, an
//! array otherwise. Both shapes are read; one audience is written as a
//! string, which is what RFC 9068 resource servers most often expect.
//!
//! Read by a visitor that takes whichever shape comes: serde's `untagged`
//! would first copy the value into a buffer of its own, then try each shape
//! against it — on every token read.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The audience claim in either of its wire shapes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Audience {
    /// `"aud": "orders-api"`.
    One(String),
    /// `"aud": ["orders-api", "billing-api"]`.
    Many(Vec<String>),
}

impl Audience {
    /// The shape to write for `list`: a string when it has one member.
    pub fn from_list(mut list: Vec<String>) -> Self {
        if list.len() == 1 { Audience::One(list.remove(0)) } else { Audience::Many(list) }
    }
}

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Shape)
    }
}

/// A string, or an array of strings.
struct Shape;

impl<'de> Visitor<'de> for Shape {
    type Value = Audience;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a string or an array of strings")
    }

    fn visit_str<E: de::Error>(self, one: &str) -> Result<Audience, E> {
        Ok(Audience::One(one.to_owned()))
    }

    fn visit_string<E: de::Error>(self, one: String) -> Result<Audience, E> {
        Ok(Audience::One(one))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Audience, A::Error> {
        // The hint comes from the input: trust it only so far.
        let mut many = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(8));
        while let Some(one) = seq.next_element::<String>()? {
            many.push(one);
        }
        Ok(Audience::Many(many))
    }
}

impl From<Audience> for Vec<String> {
    fn from(audience: Audience) -> Self {
        match audience {
            Audience::One(one) => vec![one],
            Audience::Many(many) => many,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_audience_is_a_string_and_both_shapes_read_as_a_list() {
        let one = Audience::from_list(vec!["orders-api".into()]);
        assert_eq!(serde_json::to_string(&one).unwrap(), r#""orders-api""#);
        let many = Audience::from_list(vec!["a".into(), "b".into()]);
        assert_eq!(serde_json::to_string(&many).unwrap(), r#"["a","b"]"#);
        for (json, list) in [(r#""a""#, vec!["a"]), (r#"["a","b"]"#, vec!["a", "b"]), ("[]", vec![])] {
            assert_eq!(Vec::from(serde_json::from_str::<Audience>(json).unwrap()), list, "{json}");
        }
        for not_an_audience in ["7", "null", "{}", r#"["a",7]"#, r#"[["a"]]"#, "true"] {
            assert!(serde_json::from_str::<Audience>(not_an_audience).is_err(), "{not_an_audience}");
        }
        // Escapes are read as any string's are.
        assert_eq!(serde_json::from_str::<Audience>(r#""a\u00e9""#).unwrap(), Audience::One("a\u{e9}".into()));
    }
}
