//! Keyword spotting for PocketSphinx: the answer phrases searched for inside free speech.
//!
//! The answer grammar has no path for the words around a synonym ("uh, support please", "I'd
//! like to speak to carol"), so such replies decode as something else and are rejected. A
//! keyword search (PocketSphinx's `kws` mode) looks for each answer phrase anywhere in the
//! audio, against a phone loop; a phrase is spotted when its score beats the loop by its
//! threshold. The spotted phrases are put back among the words the decoy grammar heard around
//! them, by time, and that transcript goes to the built-in matcher like any other: a negation
//! ("not sales") or a second option still ends in no answer.
//!
//! Pure: the keyphrase list and the transcript are built from figures the decoder returned.

/// One spotted phrase or heard word, with its frames (first, last; 100 per second).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timed {
    pub text: String,
    pub frames: (i32, i32),
}

/// The keyphrase list for `ps_set_kws`: one line per phrase, `phrase /1e-N/`, where N is
/// `threshold_tenths / 10` per phone of the phrase (a longer phrase needs more evidence, as its
/// score sums over more phones). `phones` says how many phones a phrase has (`None`: a word the
/// dictionary lacks; the phrase is left out). Phrases are taken once each, in the order given.
pub fn keyphrases(phrases: &[&str], phones: &dyn Fn(&str) -> Option<usize>, threshold_tenths: u32) -> String {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = String::new();
    for p in phrases {
        if p.is_empty() || !seen.insert(*p) {
            continue;
        }
        let Some(n) = p.split(' ').map(phones).sum::<Option<usize>>() else {
            continue;
        };
        let exponent = (threshold_tenths as usize * n.max(1)).div_ceil(10).clamp(1, 300);
        out.push_str(&format!("{p} /1e-{exponent}/\n"));
    }
    out
}

/// The reply as a transcript: the spotted phrases among the words heard around them, by time.
/// A heard word that overlaps a spotted phrase is dropped (the phrase explains that stretch);
/// fillers (`<sil>`, `[NOISE]`) and alternative-pronunciation marks (`word(2)`) are cleaned.
/// `None` when nothing was spotted.
pub fn transcript(spotted: &[Timed], heard: &[Timed]) -> Option<String> {
    if spotted.is_empty() {
        return None;
    }
    let overlaps = |a: (i32, i32), b: (i32, i32)| a.0 <= b.1 && b.0 <= a.1;
    let mut words: Vec<(i32, String)> = spotted.iter().map(|s| (s.frames.0, s.text.clone())).collect();
    for h in heard {
        let w = clean(&h.text);
        if w.is_empty() || spotted.iter().any(|s| overlaps(s.frames, h.frames)) {
            continue;
        }
        words.push((h.frames.0, w));
    }
    words.sort_by_key(|(at, _)| *at);
    Some(words.into_iter().map(|(_, w)| w).collect::<Vec<_>>().join(" "))
}

/// A decoder's word without its pronunciation mark; empty for silence and noise.
fn clean(word: &str) -> String {
    if word.starts_with('<') || word.starts_with('[') || word.starts_with('+') {
        return String::new();
    }
    match word.find('(') {
        Some(i) => word[..i].to_string(),
        None => word.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str, a: i32, b: i32) -> Timed {
        Timed {
            text: text.into(),
            frames: (a, b),
        }
    }

    #[test]
    fn thresholds_grow_with_the_phones_of_a_phrase_and_unknown_words_are_left_out() {
        let phones = |w: &str| match w {
            "sales" => Some(4),
            "tech" => Some(3),
            "support" => Some(6),
            _ => None,
        };
        let list = keyphrases(&["sales", "tech support", "sales", "zorp", ""], &phones, 25);
        assert_eq!(list, "sales /1e-10/\ntech support /1e-23/\n");
    }

    #[test]
    fn the_spotted_phrase_sits_among_the_words_around_it_by_time() {
        let spotted = [t("sales", 40, 80)];
        let heard = [
            t("<sil>", 0, 10),
            t("not", 11, 38),
            t("say(2)", 42, 70),
            t("please", 82, 120),
        ];
        assert_eq!(transcript(&spotted, &heard).as_deref(), Some("not sales please"));
        assert_eq!(transcript(&[], &heard), None);
    }

    #[test]
    fn two_spotted_phrases_keep_their_order() {
        let spotted = [t("billing", 90, 130), t("sales", 10, 50)];
        assert_eq!(transcript(&spotted, &[]).as_deref(), Some("sales billing"));
    }
}
