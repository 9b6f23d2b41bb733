//! The [`Decider`]s: the built-in matcher of `crate::choice` over the call's options, and the
//! WebAssembly hooks of `crate::hooks` with the built-in matcher as their fallback.

use super::speech_script::Decider;
use crate::call::script::{Answer, Verdict};
use crate::call::ActiveCall;
use crate::choice::{self, Decision, MatchSettings};
use crate::hooks::{Decided, HookInput, Hooks, Verdict as HookVerdict, BUILT_IN};
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

/// The [`Decider`] of a running service: the request's `choice.matcher` hook (else `hooks.default`)
/// under wasmtime, falling back to the built-in matcher when the hook is missing or fails. The
/// timeline's detail names who decided and, on a fallback, why.
pub struct HookDecider {
    pub hooks: Hooks,
}

impl HookDecider {
    fn input(call: &ActiveCall, answer: &Answer) -> HookInput {
        HookInput {
            alternatives: answer.alternatives.clone(),
            digits: answer.digits.clone(),
            options: call
                .request
                .choice
                .as_ref()
                .map(|c| c.options.clone())
                .unwrap_or_default(),
            attempt: answer.attempt,
            language: call.request.language.clone(),
            call_id: call.call_id.clone(),
            extension: call.request.extension.clone(),
        }
    }
}

/// The script's verdict from what the hooks decided.
pub fn verdict_of(d: Decided) -> Verdict {
    let who = if d.by == BUILT_IN {
        "built-in matcher".to_string()
    } else {
        format!("hook '{}'", d.by)
    };
    let detail = match &d.fallback {
        Some(reason) => format!("{reason}; fallback to the {who}: {}", d.detail),
        None if d.by == BUILT_IN => format!("{who}: {}", d.detail),
        None => d.detail.clone(),
    };
    match d.verdict {
        HookVerdict::Matched(option) => Verdict::Matched { option, detail },
        HookVerdict::NoMatch => Verdict::NoMatch { why: detail },
        HookVerdict::Reprompt(text) => Verdict::Reprompt { text, detail },
    }
}

impl Decider for HookDecider {
    fn decide<'a>(&'a self, call: &'a ActiveCall, answer: &'a Answer) -> BoxFuture<'a, Verdict> {
        Box::pin(async move {
            let matcher = call.request.choice.as_ref().and_then(|c| c.matcher.as_deref());
            let decided = self.hooks.decide(matcher, &Self::input(call, answer)).await;
            verdict_of(decided)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decided(verdict: HookVerdict, by: &str, fallback: Option<&str>, detail: &str) -> Decided {
        Decided {
            verdict,
            by: by.into(),
            fallback: fallback.map(Into::into),
            detail: detail.into(),
        }
    }

    #[test]
    fn verdicts_say_who_decided_and_why_a_hook_was_bypassed() {
        assert_eq!(
            verdict_of(decided(
                HookVerdict::Matched(1),
                "fuzzy",
                None,
                "hook 'fuzzy': option 2"
            )),
            Verdict::Matched {
                option: 1,
                detail: "hook 'fuzzy': option 2".into()
            }
        );
        assert_eq!(
            verdict_of(decided(
                HookVerdict::Matched(0),
                BUILT_IN,
                Some("hook 'hostile' ran out of fuel"),
                "option 1: heard 'yes'"
            )),
            Verdict::Matched {
                option: 0,
                detail:
                    "hook 'hostile' ran out of fuel; fallback to the built-in matcher: option 1: heard 'yes'"
                        .into()
            }
        );
        assert_eq!(
            verdict_of(decided(HookVerdict::NoMatch, BUILT_IN, None, "no match: nothing")),
            Verdict::NoMatch {
                why: "built-in matcher: no match: nothing".into()
            }
        );
        assert_eq!(
            verdict_of(decided(
                HookVerdict::Reprompt("Say yes or no.".into()),
                "yesno",
                None,
                "hook 'yesno': reprompt"
            )),
            Verdict::Reprompt {
                text: "Say yes or no.".into(),
                detail: "hook 'yesno': reprompt".into()
            }
        );
    }
}
