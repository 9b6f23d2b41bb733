//! Yes and no in German, French, Spanish and Dutch (and English): "jawohl", "nee hoor",
//! "d'accord", "claro que no", "pas du tout". The yes option and the no option are recognised by
//! their values and synonyms (`yes`/`ja`/`oui`/`confirm`…, `no`/`nein`/`cancel`…). The call's
//! language (`de`, `fr`, `es`, `nl`) narrows the word lists; without one all are used. The
//! longest phrase wins ("claro que no" over "claro", "natürlich nicht" over "natürlich", "bien sûr
//! que non" over "bien sûr" and "non"), a yes word right after a negation ("nicht sicher", "pas
//! sûr") is no answer, and both yes and no heard is no answer either.

wit_bindgen::generate!({ path: "../../wit", world: "choice-matcher" });

use exports::sip_assistant::hooks::matcher::{Guest, MatchInput, MatchResult};
use hook_common::{option_for_digits, words};
use sip_assistant::hooks::host::{log, Level};

struct Lexicon {
    lang: &'static str,
    yes: &'static [&'static str],
    no: &'static [&'static str],
    negators: &'static [&'static str],
}

const LEXICONS: &[Lexicon] = &[
    Lexicon {
        lang: "en",
        yes: &[
            "yes",
            "yeah",
            "yep",
            "sure",
            "ok",
            "okay",
            "of course",
            "correct",
            "confirm",
            "accept",
            "right",
            "certainly",
            "absolutely",
        ],
        no: &[
            "no",
            "nope",
            "never",
            "cancel",
            "decline",
            "reject",
            "no thanks",
            "not at all",
            "of course not",
            "certainly not",
            "absolutely not",
        ],
        negators: &["not", "dont", "never"],
    },
    Lexicon {
        lang: "de",
        yes: &[
            "ja",
            "jawohl",
            "jo",
            "genau",
            "sicher",
            "klar",
            "gerne",
            "gern",
            "naturlich",
            "einverstanden",
            "richtig",
            "auf jeden fall",
            "selbstverstandlich",
            "in ordnung",
            "ok",
            "okay",
            "bestatigen",
        ],
        no: &[
            "nein",
            "nee",
            "no",
            "niemals",
            "auf keinen fall",
            "lieber nicht",
            "sicher nicht",
            "bestimmt nicht",
            "naturlich nicht",
            "gar nicht",
            "uberhaupt nicht",
            "keinesfalls",
            "nein danke",
            "abbrechen",
        ],
        negators: &["nicht", "kein", "keine", "nie"],
    },
    Lexicon {
        lang: "fr",
        yes: &[
            "oui",
            "ouais",
            "daccord",
            "bien sur",
            "exactement",
            "volontiers",
            "absolument",
            "certainement",
            "tout a fait",
            "ok",
            "confirmer",
        ],
        no: &[
            "non",
            "jamais",
            "pas du tout",
            "surtout pas",
            "absolument pas",
            "certainement pas",
            "bien sur que non",
            "pas question",
            "hors de question",
            "non merci",
            "annuler",
        ],
        negators: &["pas", "ne", "jamais"],
    },
    Lexicon {
        lang: "es",
        yes: &[
            "si",
            "claro",
            "vale",
            "de acuerdo",
            "por supuesto",
            "correcto",
            "exacto",
            "desde luego",
            "ok",
            "confirmar",
        ],
        no: &[
            "no",
            "nunca",
            "para nada",
            "de ninguna manera",
            "en absoluto",
            "claro que no",
            "por supuesto que no",
            "desde luego que no",
            "ni hablar",
            "no gracias",
            "cancelar",
        ],
        negators: &["no", "nunca"],
    },
    Lexicon {
        lang: "nl",
        yes: &[
            "ja",
            "jazeker",
            "zeker",
            "ja hoor",
            "graag",
            "prima",
            "goed",
            "akkoord",
            "natuurlijk",
            "tuurlijk",
            "oke",
            "ok",
            "is goed",
            "bevestigen",
        ],
        no: &[
            "nee",
            "neen",
            "nooit",
            "liever niet",
            "absoluut niet",
            "zeker niet",
            "natuurlijk niet",
            "tuurlijk niet",
            "helemaal niet",
            "echt niet",
            "geen sprake van",
            "nee hoor",
            "nee dank je",
            "annuleren",
        ],
        negators: &["niet", "geen", "nooit"],
    },
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    Yes,
    No,
}

struct Hit {
    side: Side,
    start: usize,
    end: usize,
    negators: &'static [&'static str],
}

struct YesNo;

impl Guest for YesNo {
    fn match_choice(input: MatchInput) -> MatchResult {
        let keys: Vec<Option<char>> = input.options.iter().map(|o| o.dtmf).collect();
        if let Some(i) = option_for_digits(&input.digits, &keys) {
            return MatchResult::Matched(i as u32);
        }
        let lexicons = chosen(input.language.as_deref());
        let (Some(yes_option), Some(no_option)) = (side_of(&input, Side::Yes), side_of(&input, Side::No))
        else {
            log(
                Level::Warn,
                "yesno-eu: the options have no recognisable yes and no option",
            );
            return MatchResult::NoMatch;
        };
        for alt in &input.alternatives {
            match decide(&words(&alt.transcript), &lexicons) {
                Some(Side::Yes) => return MatchResult::Matched(yes_option as u32),
                Some(Side::No) => return MatchResult::Matched(no_option as u32),
                None => {}
            }
        }
        MatchResult::NoMatch
    }
}

/// The word lists for `language` (its first subtag) plus English; all of them without one.
fn chosen(language: Option<&str>) -> Vec<&'static Lexicon> {
    let primary = language
        .and_then(|l| l.split(['-', '_']).next())
        .map(str::to_ascii_lowercase);
    match primary {
        Some(p) if LEXICONS.iter().any(|l| l.lang == p) => LEXICONS
            .iter()
            .filter(|l| l.lang == p || l.lang == "en")
            .collect(),
        _ => LEXICONS.iter().collect(),
    }
}

/// The option whose value or a synonym is a `side` phrase in any language.
fn side_of(input: &MatchInput, side: Side) -> Option<usize> {
    input.options.iter().position(|o| {
        std::iter::once(&o.value).chain(&o.synonyms).any(|p| {
            let folded = words(p).join(" ");
            LEXICONS
                .iter()
                .any(|l| phrases(l, side).contains(&folded.as_str()))
        })
    })
}

fn phrases(l: &Lexicon, side: Side) -> &'static [&'static str] {
    match side {
        Side::Yes => l.yes,
        Side::No => l.no,
    }
}

fn decide(heard: &[String], lexicons: &[&'static Lexicon]) -> Option<Side> {
    let mut hits: Vec<Hit> = Vec::new();
    for l in lexicons {
        for side in [Side::Yes, Side::No] {
            for p in phrases(l, side) {
                let p: Vec<&str> = p.split(' ').collect();
                for start in 0..heard.len().saturating_sub(p.len() - 1) {
                    if heard[start..start + p.len()].iter().zip(&p).all(|(h, w)| h == w) {
                        hits.push(Hit {
                            side,
                            start,
                            end: start + p.len(),
                            negators: l.negators,
                        });
                    }
                }
            }
        }
    }
    let longest: Vec<&Hit> = hits
        .iter()
        .filter(|h| {
            !hits
                .iter()
                .any(|g| g.end - g.start > h.end - h.start && g.start <= h.start && h.end <= g.end)
        })
        .collect();
    let mut side = None;
    for h in longest {
        let negated = h.side == Side::Yes
            && (h.start.saturating_sub(2)..h.start).any(|i| h.negators.contains(&heard[i].as_str()));
        if negated || side.is_some_and(|s| s != h.side) {
            return None;
        }
        side = Some(h.side);
    }
    side
}

export!(YesNo);

#[cfg(test)]
mod tests {
    use super::*;

    fn said(text: &str, lang: Option<&str>) -> Option<Side> {
        decide(&words(text), &chosen(lang))
    }

    #[test]
    fn languages() {
        assert_eq!(said("Jawohl!", Some("de-DE")), Some(Side::Yes));
        assert_eq!(said("nee hoor", Some("nl")), Some(Side::No));
        assert_eq!(said("D'accord", Some("fr")), Some(Side::Yes));
        assert_eq!(said("claro que no", Some("es")), Some(Side::No));
        assert_eq!(said("pas du tout", None), Some(Side::No));
        assert_eq!(said("Sí, claro", Some("es")), Some(Side::Yes));
        assert_eq!(said("nicht sicher", Some("de")), None);
        assert_eq!(said("pas sûr", Some("fr")), None);
        assert_eq!(said("ja nein", Some("de")), None);
        assert_eq!(said("zeker niet", Some("nl")), Some(Side::No));
        assert_eq!(said("natürlich nicht", Some("de")), Some(Side::No));
        assert_eq!(said("bien sûr que non", Some("fr")), Some(Side::No));
        assert_eq!(said("por supuesto que no", Some("es")), Some(Side::No));
        assert_eq!(said("of course not", None), Some(Side::No));
    }
}
