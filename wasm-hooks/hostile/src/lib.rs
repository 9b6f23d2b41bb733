//! A hook that misbehaves on request, for the host's tests. The transcript says how:
//! `loop` (spins forever), `grow` (allocates until memory runs out), `trap` (panics → trap),
//! `index` (answers option 999), `huge` (a 2 MB reprompt), `spam` (floods the log),
//! `first` (answers option 0, well-behaved), anything else → no-match.

wit_bindgen::generate!({ path: "../wit", world: "choice-matcher" });

use exports::sip_assistant::hooks::matcher::{Guest, MatchInput, MatchResult};
use sip_assistant::hooks::host::{log, Level};

struct Hostile;

impl Guest for Hostile {
    fn match_choice(input: MatchInput) -> MatchResult {
        match input.transcript.trim() {
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = core::hint::black_box(n.wrapping_add(1));
                }
            }
            "grow" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(core::hint::black_box(vec![1u8; 1 << 20]));
                }
            }
            "trap" => panic!("asked to trap"),
            "index" => MatchResult::Matched(999),
            "huge" => MatchResult::Reprompt("la ".repeat(700_000)),
            "spam" => {
                let line = "x".repeat(1_000);
                for _ in 0..1_000 {
                    log(Level::Error, &line);
                }
                MatchResult::NoMatch
            }
            "first" => MatchResult::Matched(0),
            _ => MatchResult::NoMatch,
        }
    }
}

export!(Hostile);
