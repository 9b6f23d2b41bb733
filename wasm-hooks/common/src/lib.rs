//! Helpers the example hooks share: folding a transcript into words and reading DTMF keys the way
//! the service's built-in matcher does (key N = option N unless any option has an explicit key).

/// Lower-case words of `text`: letters and digits only, common Latin accents dropped, apostrophes
/// joined (`don't` → `dont`).
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if matches!(c, '\'' | '\u{2019}' | '`') {
            continue;
        }
        if c.is_alphanumeric() {
            for lower in c.to_lowercase() {
                word.push_str(fold(lower));
            }
        } else if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// A letter without its accent (Latin-1 and a few more), as a string slice.
fn fold(c: char) -> &'static str {
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => "a",
        'ç' => "c",
        'è' | 'é' | 'ê' | 'ë' => "e",
        'ì' | 'í' | 'î' | 'ï' => "i",
        'ñ' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' => "o",
        'ù' | 'ú' | 'û' | 'ü' => "u",
        'ý' | 'ÿ' => "y",
        'ß' => "ss",
        'æ' => "ae",
        'œ' => "oe",
        _ => char_str(c),
    }
}

/// `c` as a `&'static str` for ASCII; other characters become `"?"`-free placeholders.
fn char_str(c: char) -> &'static str {
    const ASCII: &str = "abcdefghijklmnopqrstuvwxyz0123456789";
    match ASCII.find(c) {
        Some(i) => &ASCII[i..i + 1],
        None => "",
    }
}

/// The option (0-based) that key `key` picks, given each option's explicit key.
pub fn option_for_key(key: char, explicit: &[Option<char>]) -> Option<usize> {
    if explicit.iter().any(Option::is_some) {
        return explicit.iter().position(|k| *k == Some(key));
    }
    let n = key.to_digit(10)? as usize;
    (1..=explicit.len()).contains(&n).then(|| n - 1)
}

/// The one option all `digits` agree on, if any.
pub fn option_for_digits(digits: &str, explicit: &[Option<char>]) -> Option<usize> {
    let mut picked: Option<usize> = None;
    for key in digits.chars() {
        if let Some(o) = option_for_key(key, explicit) {
            if picked.is_some_and(|p| p != o) {
                return None;
            }
            picked = Some(o);
        }
    }
    picked
}

/// Whether `needle` occurs in `hay` as consecutive whole words.
pub fn contains_words(hay: &[String], needle: &[String]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds() {
        assert_eq!(words("Don't, CAFÉ! Straße"), ["dont", "cafe", "strasse"]);
        assert_eq!(option_for_digits("2", &[None, None]), Some(1));
        assert_eq!(option_for_digits("#", &[Some('#'), None]), Some(0));
        assert_eq!(option_for_digits("12", &[None, None]), None);
        assert!(contains_words(&words("oh yes please"), &words("yes please")));
    }
}
