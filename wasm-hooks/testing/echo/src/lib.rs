//! A test hook that answers every input with `reprompt(<the input, written out>)`, so the host's
//! tests can see that every field arrived intact:
//!
//! `attempt=3;call=ID;ext=EXT;lang=de-CH;digits=12#;transcript=T;alts=[T@0.75|U@none];opts=[v(s1,s2)#1|w()#-]`
//!
//! (`lang=none` without a language; a confidence is written with `{:?}`, so exactly). An input
//! whose rendering is longer than a reprompt may be (1000 characters) is summarised instead, in
//! characters: `big: attempt=1 transcript=2000 alternatives=10 alternative_chars=20000 digits=2000
//! options=20 value_chars=.. synonyms=1000 synonym_chars=.. keys=..`.

wit_bindgen::generate!({ path: "../../wit", world: "choice-matcher" });

use exports::sip_assistant::hooks::matcher::{Guest, MatchInput, MatchResult};

/// Longest reprompt the host accepts.
const MAX_REPROMPT_CHARS: usize = 1000;

struct Echo;

impl Guest for Echo {
    fn match_choice(input: MatchInput) -> MatchResult {
        let full = render(&input);
        if full.chars().count() <= MAX_REPROMPT_CHARS {
            MatchResult::Reprompt(full)
        } else {
            MatchResult::Reprompt(summary(&input))
        }
    }
}

fn render(input: &MatchInput) -> String {
    let alts: Vec<String> = input
        .alternatives
        .iter()
        .map(|a| match a.confidence {
            Some(c) => format!("{}@{c:?}", a.transcript),
            None => format!("{}@none", a.transcript),
        })
        .collect();
    let opts: Vec<String> = input
        .options
        .iter()
        .map(|o| {
            let key = o.dtmf.map(String::from).unwrap_or_else(|| "-".into());
            format!("{}({})#{key}", o.value, o.synonyms.join(","))
        })
        .collect();
    format!(
        "attempt={};call={};ext={};lang={};digits={};transcript={};alts=[{}];opts=[{}]",
        input.attempt,
        input.call_id,
        input.extension,
        input.language.as_deref().unwrap_or("none"),
        input.digits,
        input.transcript,
        alts.join("|"),
        opts.join("|"),
    )
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

fn summary(input: &MatchInput) -> String {
    let synonyms = input.options.iter().map(|o| o.synonyms.len()).sum::<usize>();
    let synonym_chars = input
        .options
        .iter()
        .flat_map(|o| &o.synonyms)
        .map(|s| chars(s))
        .sum::<usize>();
    format!(
        "big: attempt={} transcript={} alternatives={} alternative_chars={} digits={} options={} value_chars={} synonyms={synonyms} synonym_chars={synonym_chars} keys={}",
        input.attempt,
        chars(&input.transcript),
        input.alternatives.len(),
        input.alternatives.iter().map(|a| chars(&a.transcript)).sum::<usize>(),
        chars(&input.digits),
        input.options.len(),
        input.options.iter().map(|o| chars(&o.value)).sum::<usize>(),
        input.options.iter().filter_map(|o| o.dtmf).collect::<String>(),
    )
}

export!(Echo);
