//! Keys to options. Without any explicit `dtmf` on the options, key `1`..`9` picks option 1..9
//! (implicit keys: `0`, `*`, `#` and `A`-`D` are never implicit). As soon as one option carries an
//! explicit key, only explicit keys count (so `*` and `#` are usable, but only that way). Several
//! keys pressed: they must all point at one option, keys that pick nothing are ignored.

use crate::call::ChoiceOption;

/// The option `key` picks, if any.
pub fn option_for_key(key: char, options: &[ChoiceOption]) -> Option<usize> {
    let key = key.to_ascii_uppercase();
    if options.iter().any(|o| o.dtmf.is_some()) {
        return options
            .iter()
            .position(|o| o.dtmf.is_some_and(|k| k.to_ascii_uppercase() == key));
    }
    let n = key.to_digit(10)? as usize;
    (1..=options.len()).contains(&n).then(|| n - 1)
}

/// What a key sequence picks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keys {
    /// No key was pressed.
    None,
    Picked {
        option: usize,
        key: char,
    },
    /// Keys were pressed but none picks an option.
    Unknown,
    /// Keys point at different options.
    Conflicting(Vec<usize>),
}

pub fn decide(digits: &str, options: &[ChoiceOption]) -> Keys {
    let digits = digits.trim();
    if digits.is_empty() {
        return Keys::None;
    }
    let mut picked: Vec<(usize, char)> = Vec::new();
    for key in digits.chars() {
        if let Some(option) = option_for_key(key, options) {
            if !picked.iter().any(|(o, _)| *o == option) {
                picked.push((option, key));
            }
        }
    }
    match picked.as_slice() {
        [] => Keys::Unknown,
        [(option, key)] => Keys::Picked {
            option: *option,
            key: *key,
        },
        many => Keys::Conflicting(many.iter().map(|(o, _)| *o).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opt(dtmf: Option<char>) -> ChoiceOption {
        ChoiceOption {
            value: "x".into(),
            synonyms: vec![],
            dtmf,
        }
    }

    #[test]
    fn implicit_keys() {
        let o = [opt(None), opt(None), opt(None)];
        assert_eq!(option_for_key('1', &o), Some(0));
        assert_eq!(option_for_key('3', &o), Some(2));
        assert_eq!(option_for_key('4', &o), None);
        assert_eq!(option_for_key('0', &o), None);
        assert_eq!(option_for_key('#', &o), None);
        assert_eq!(option_for_key('*', &o), None);
    }

    #[test]
    fn explicit_keys_disable_implicit_ones() {
        let o = [opt(Some('#')), opt(None), opt(Some('9'))];
        assert_eq!(option_for_key('#', &o), Some(0));
        assert_eq!(option_for_key('9', &o), Some(2));
        assert_eq!(option_for_key('1', &o), None);
        assert_eq!(option_for_key('2', &o), None);
        let o = [opt(Some('a')), opt(Some('*'))];
        assert_eq!(option_for_key('A', &o), Some(0));
        assert_eq!(option_for_key('*', &o), Some(1));
    }

    #[test]
    fn sequences() {
        let o = [opt(None), opt(None)];
        assert_eq!(decide("", &o), Keys::None);
        assert_eq!(decide("11", &o), Keys::Picked { option: 0, key: '1' });
        assert_eq!(decide("#2", &o), Keys::Picked { option: 1, key: '2' });
        assert_eq!(decide("12", &o), Keys::Conflicting(vec![0, 1]));
        assert_eq!(decide("7", &o), Keys::Unknown);
    }
}
