//! The built-in [`Decider`]: the matcher of `crate::choice` over the call's options.

use super::speech_script::Decider;
use crate::call::script::{Answer, Verdict};
use crate::call::ActiveCall;
use crate::choice::{self, Decision, MatchSettings};
use crate::speech::BoxFuture;

pub struct BuiltinDecider {
    pub settings: MatchSettings,
}

/// The built-in matcher's verdict on `answer` for `options`.
pub fn builtin_verdict(
    answer: &Answer,
    options: &[crate::call::ChoiceOption],
    settings: &MatchSettings,
) -> Verdict {
    let a = choice::Answer {
        alternatives: answer.alternatives.clone(),
        digits: answer.digits.clone(),
    };
    match choice::match_answer(&a, options, settings) {
        Decision::Matched { option, why } => Verdict::Matched {
            option,
            detail: format!("built-in matcher: {why}"),
        },
        Decision::NoMatch { why } => Verdict::NoMatch {
            why: format!("built-in matcher: {why}"),
        },
    }
}

impl Decider for BuiltinDecider {
    fn decide<'a>(&'a self, call: &'a ActiveCall, answer: &'a Answer) -> BoxFuture<'a, Verdict> {
        let options = call
            .request
            .choice
            .as_ref()
            .map(|c| c.options.as_slice())
            .unwrap_or_default();
        let verdict = builtin_verdict(answer, options, &self.settings);
        Box::pin(async move { verdict })
    }
}
