//! A list-valued key that takes a TOML array of strings or one comma-separated string, so an
//! environment variable can set it (`SIP_ASSISTANT__CALLS__DIAL_ALLOW='sip:*@127.0.0.1:*,1???'`).

use serde::{Deserialize, Deserializer, Serialize};

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
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        let items = match Raw::deserialize(d)? {
            Raw::One(s) => s.split(',').map(str::to_string).collect(),
            Raw::Many(v) => v,
        };
        Ok(Self(
            items
                .into_iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct T {
        v: StringList,
    }

    #[test]
    fn an_array_or_a_comma_separated_string() {
        let a: T = toml::from_str("v = ['sip:*@127.0.0.1:*', '1???']").expect("array");
        let b: T = toml::from_str("v = 'sip:*@127.0.0.1:*, 1???,'").expect("string");
        assert_eq!(a.v.0, vec!["sip:*@127.0.0.1:*", "1???"]);
        assert_eq!(a.v, b.v);
        assert!(toml::from_str::<T>("v = 3").is_err());
    }
}
