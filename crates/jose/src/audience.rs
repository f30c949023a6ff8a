//! `aud` (RFC 7519 §4.1.3): one string when there is one audience, an
//! array otherwise. Both shapes are read; one audience is written as a
//! string, which is what RFC 9068 resource servers most often expect.

use serde::{Deserialize, Serialize};

/// The audience claim in either of its wire shapes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
        assert!(serde_json::from_str::<Audience>("7").is_err());
    }
}
