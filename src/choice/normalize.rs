//! Text folding for matching: Unicode compatibility decomposition (NFKD), accents dropped, lower
//! case, a few letters without a decomposition spelled out (`ß` → `ss`), apostrophes joined
//! (`don't` → `dont`), everything else that is not a letter or digit a word break. Clause
//! punctuation (`, . ; : ! ?`) and the word `but` also end a clause, which bounds negation and
//! multi-word phrases.

use icu_normalizer::DecomposingNormalizerBorrowed;

/// One folded word and the clause it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    pub clause: usize,
}

/// Spelling variants folded to one form on both sides (transcript and synonyms).
const VARIANTS: &[(&str, &str)] = &[
    ("okay", "ok"),
    ("okey", "ok"),
    ("cancelled", "canceled"),
    ("cancelling", "canceling"),
];

/// Characters read as an apostrophe: removed, joining the word (`don’t` → `dont`).
fn is_apostrophe(c: char) -> bool {
    matches!(c, '\'' | '\u{2019}' | '\u{2018}' | '\u{02BC}' | '`' | '\u{00B4}')
}

/// Combining marks that NFKD splits off Latin, Greek and Cyrillic letters.
fn is_combining_mark(c: char) -> bool {
    matches!(c as u32,
        0x0300..=0x036F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F)
}

fn is_clause_break(c: char) -> bool {
    matches!(
        c,
        ',' | '.' | ';' | ':' | '!' | '?' | '\u{3002}' | '\u{FF0C}' | '\u{00A1}' | '\u{00BF}'
    )
}

/// Letters NFKD leaves alone but a speaker would not distinguish.
fn spell_out(c: char) -> Option<&'static str> {
    Some(match c {
        'ß' => "ss",
        'æ' => "ae",
        'œ' => "oe",
        'ø' => "o",
        'ł' => "l",
        'đ' | 'ð' => "d",
        'þ' => "th",
        'ı' => "i",
        _ => return None,
    })
}

/// Fold `text` to lower-case ASCII-ish words with clause numbers.
pub fn tokens(text: &str) -> Vec<Token> {
    let without_apostrophes: String = text.chars().filter(|c| !is_apostrophe(*c)).collect();
    let decomposed = DecomposingNormalizerBorrowed::new_nfkd().normalize(&without_apostrophes);
    let mut out = Vec::new();
    let mut clause = 0;
    let mut word = String::new();
    let flush = |word: &mut String, clause: &mut usize, out: &mut Vec<Token>| {
        if word.is_empty() {
            return;
        }
        let text = std::mem::take(word);
        if text == "but" {
            *clause += 1;
            return;
        }
        let text = VARIANTS
            .iter()
            .find(|(from, _)| *from == text)
            .map_or(text, |(_, to)| (*to).to_string());
        out.push(Token {
            text,
            clause: *clause,
        });
    };
    let chars: Vec<char> = decomposed.chars().filter(|c| !is_combining_mark(*c)).collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_alphanumeric() {
            for lower in c.to_lowercase() {
                match spell_out(lower) {
                    Some(s) => word.push_str(s),
                    None => word.push(lower),
                }
            }
            continue;
        }
        flush(&mut word, &mut clause, &mut out);
        // A dot inside an abbreviation (`o.k.`) ends no clause.
        let abbreviation = c == '.' && chars.get(i + 1).is_some_and(|n| n.is_alphanumeric());
        if is_clause_break(c) && !abbreviation && out.last().is_some_and(|t| t.clause == clause) {
            clause += 1;
        }
    }
    flush(&mut word, &mut clause, &mut out);
    out
}

/// Just the words of `text`, folded (for synonyms, where clauses do not matter).
pub fn words(text: &str) -> Vec<String> {
    tokens(text).into_iter().map(|t| t.text).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<String> {
        words(s)
    }

    #[test]
    fn folds_case_accents_and_compatibility_forms() {
        assert_eq!(w("Café"), ["cafe"]);
        assert_eq!(w("CAFÉ"), ["cafe"]);
        assert_eq!(w("cafe\u{0301}"), ["cafe"]);
        assert_eq!(w("Straße"), ["strasse"]);
        assert_eq!(w("ﬁne"), ["fine"]);
        assert_eq!(w("ＹＥＳ"), ["yes"]);
        assert_eq!(w("Ñandú señor"), ["nandu", "senor"]);
        assert_eq!(w("Øl"), ["ol"]);
    }

    #[test]
    fn apostrophes_join_and_punctuation_splits() {
        assert_eq!(w("Don't"), ["dont"]);
        assert_eq!(w("don’t"), ["dont"]);
        assert_eq!(w("never-mind"), ["never", "mind"]);
        assert_eq!(w("  yes!!  "), ["yes"]);
        assert_eq!(w("O.K."), ["o", "k"]);
        assert_eq!(w("Okay"), ["ok"]);
        assert!(w("...").is_empty());
    }

    #[test]
    fn clauses_break_on_punctuation_and_but() {
        let t = tokens("not now, yes but no");
        let clauses: Vec<_> = t.iter().map(|t| (t.text.as_str(), t.clause)).collect();
        assert_eq!(clauses, [("not", 0), ("now", 0), ("yes", 1), ("no", 2)]);
        let t = tokens("yes,, . no");
        assert_eq!(t[1].clause, 1);
    }
}
