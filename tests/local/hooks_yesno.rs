//! The `yesno-eu` example hook through the host: yes and no, with common variants, in German,
//! French, Spanish and Dutch ("of course not" included), with the call's language and without.

use crate::guests;

use guests::{folder, input, loaded, opt};
use sip_assistant::hooks::{HookVerdict, Hooks};

/// Phrases per language: (BCP 47 tag, yes phrases, no phrases, neither).
type Phrases = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
);

const PHRASES: &[Phrases] = &[
    (
        "de-DE",
        &[
            "Ja",
            "ja, gerne",
            "Jawohl!",
            "na klar",
            "genau",
            "auf jeden Fall",
            "selbstverständlich",
            "in Ordnung",
        ],
        &[
            "Nein",
            "nein danke",
            "nee",
            "nö",
            "auf keinen Fall",
            "lieber nicht",
            "natürlich nicht",
            "keinesfalls",
        ],
        &["nicht sicher", "vielleicht", "ja nein"],
    ),
    (
        "fr-FR",
        &[
            "Oui",
            "oui, bien sûr",
            "d'accord",
            "ouais",
            "tout à fait",
            "bien sûr que oui",
            "certainement",
        ],
        &[
            "Non",
            "non merci",
            "pas du tout",
            "absolument pas",
            "jamais",
            "bien sûr que non",
            "pas question",
            "certainement pas",
        ],
        &["pas sûr", "peut-être", "je ne suis pas d'accord"],
    ),
    (
        "es-ES",
        &[
            "Sí",
            "sí, claro",
            "claro que sí",
            "vale",
            "de acuerdo",
            "por supuesto",
            "desde luego",
        ],
        &[
            "No",
            "no, gracias",
            "claro que no",
            "para nada",
            "de ninguna manera",
            "nunca",
            "por supuesto que no",
            "desde luego que no",
        ],
        &["quizás", "no estoy de acuerdo"],
    ),
    (
        "nl-NL",
        &[
            "Ja",
            "ja hoor",
            "jazeker",
            "natuurlijk",
            "is goed",
            "oké",
            "graag",
            "ja, graag",
        ],
        &[
            "Nee",
            "nee, dank je wel",
            "nee hoor",
            "liever niet",
            "zeker niet",
            "natuurlijk niet",
            "helemaal niet",
            "geen sprake van",
        ],
        &["misschien", "niet zeker"],
    ),
];

fn decide(hooks: &Hooks, said: &str, language: Option<&str>, yes_first: bool) -> HookVerdict {
    let (yes, no) = (
        opt("confirmed", &["yes", "ja", "oui", "sí"]),
        opt("cancelled", &["no", "nein", "non", "nee"]),
    );
    let options = if yes_first { vec![yes, no] } else { vec![no, yes] };
    let mut i = input(said, options);
    i.language = language.map(str::to_string);
    let d = smol::block_on(hooks.decide(Some("yesno"), &i));
    assert_eq!(d.fallback, None, "{said}: {d:?}");
    d.verdict
}

#[test]
fn yes_and_no_in_german_french_spanish_and_dutch() {
    let dir = folder(&[("yesno-eu", "yesno")]);
    let hooks = loaded(guests::settings(dir.path(), None));
    let mut wrong = Vec::new();
    for (lang, yes, no, neither) in PHRASES {
        for (said, want_yes) in yes
            .iter()
            .map(|s| (s, Some(true)))
            .chain(no.iter().map(|s| (s, Some(false))))
        {
            for yes_first in [true, false] {
                let want = match (want_yes, yes_first) {
                    (Some(true), true) | (Some(false), false) => HookVerdict::Matched(0),
                    _ => HookVerdict::Matched(1),
                };
                let got = decide(&hooks, said, Some(lang), yes_first);
                if got != want {
                    wrong.push(format!(
                        "{lang} {said:?} (yes first: {yes_first}): {got:?}, want {want:?}"
                    ));
                }
            }
            // Without a language every word list is used; the answer is the same.
            let got = decide(&hooks, said, None, true);
            let want = if want_yes == Some(true) {
                HookVerdict::Matched(0)
            } else {
                HookVerdict::Matched(1)
            };
            if got != want {
                wrong.push(format!("no language {said:?}: {got:?}, want {want:?}"));
            }
        }
        for said in *neither {
            let got = decide(&hooks, said, Some(lang), true);
            if got != HookVerdict::NoMatch {
                wrong.push(format!("{lang} {said:?}: {got:?}, want no match"));
            }
        }
    }
    assert!(wrong.is_empty(), "{} wrong:\n{}", wrong.len(), wrong.join("\n"));
}
