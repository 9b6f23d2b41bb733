//! List-valued keys: a TOML array of strings, or one comma-separated string (the form an
//! environment variable gives, e.g. `SIP_ASSISTANT__SIP__AUTH_REALMS='pbx.lan,asterisk'`).

use serde::{Deserialize, Deserializer};

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

#[cfg(test)]
mod tests {
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
}
