//! List-valued keys: a TOML array of strings, or one comma-separated string (the form an
//! environment variable gives, e.g. `SIP_ASSISTANT__SIP__AUTH_REALMS='pbx.lan,asterisk'` or
//! `SIP_ASSISTANT__CALLS__DIAL_ALLOW='sip:*@127.0.0.1:*,1???'`).

use serde::{Deserialize, Deserializer, Serialize};

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// Deserialize a list key; items are trimmed and empty ones dropped.
pub fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let items = match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s.split(',').map(str::to_string).collect(),
        OneOrMany::Many(v) => v,
    };
    Ok(items
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect())
}

/// A list key as a type (for `Option`al lists, where `deserialize_with` does not reach).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct StringList(pub Vec<String>);

impl StringList {
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        string_or_list(d).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct T {
        #[serde(deserialize_with = "super::string_or_list")]
        l: Vec<String>,
    }

    #[test]
    fn array_or_comma_separated_string() {
        let parse = |s: &str| toml::from_str::<T>(s).expect("parses").l;
        assert_eq!(parse(r#"l = ["a", " b "]"#), vec!["a", "b"]);
        assert_eq!(parse(r#"l = "a, b,,c""#), vec!["a", "b", "c"]);
        assert_eq!(parse(r#"l = """#), Vec::<String>::new());
        assert!(toml::from_str::<T>("l = 3").is_err());
    }

    #[derive(Deserialize)]
    struct U {
        v: StringList,
    }

    #[test]
    fn the_list_type_reads_both_forms_too() {
        let a: U = toml::from_str("v = ['sip:*@127.0.0.1:*', '1???']").expect("array");
        let b: U = toml::from_str("v = 'sip:*@127.0.0.1:*, 1???,'").expect("string");
        assert_eq!(a.v.0, vec!["sip:*@127.0.0.1:*", "1???"]);
        assert_eq!(a.v, b.v);
        assert!(toml::from_str::<U>("v = 3").is_err());
    }
}
