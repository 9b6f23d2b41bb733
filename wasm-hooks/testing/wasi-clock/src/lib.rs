//! A test hook built for the `choice-matcher` world plus a WASI import (the monotonic clock), as a
//! hook built with a WASI toolchain would be. The host links `log` only, so it must refuse this
//! component when loading it, with an error that names the import.

wit_bindgen::generate!({
    inline: r#"
        package test:clocked;

        world clocked-matcher {
            include sip-assistant:hooks/choice-matcher@0.1.0;
            import wasi:clocks/monotonic-clock@0.2.0;
        }
    "#,
    path: ["../../wit", "wit/clocks.wit"],
    world: "test:clocked/clocked-matcher",
    generate_all,
});

use exports::sip_assistant::hooks::matcher::{Guest, MatchInput, MatchResult};
use wasi::clocks::monotonic_clock::now;

struct Clocked;

impl Guest for Clocked {
    fn match_choice(_input: MatchInput) -> MatchResult {
        // Calling the import keeps it in the component (unused imports are dropped).
        if now() % 2 == 0 {
            MatchResult::NoMatch
        } else {
            MatchResult::Matched(0)
        }
    }
}

export!(Clocked);
