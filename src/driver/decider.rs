//! The [`Decider`]s: the built-in matcher of `crate::choice` over the call's options, and the
//! WebAssembly hooks of `crate::hooks` with the built-in matcher as their fallback.

use super::speech_script::Decider;
use crate::call::ActiveCall;
use crate::choice::{self, Answer, MatchSettings, Verdict};
use crate::hooks::{HookInput, Hooks};
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
    choice::match_answer(answer, options, settings).into_verdict()
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

impl Decider for HookDecider {
    fn decide<'a>(&'a self, call: &'a ActiveCall, answer: &'a Answer) -> BoxFuture<'a, Verdict> {
        Box::pin(async move {
            let matcher = call.request.choice.as_ref().and_then(|c| c.matcher.as_deref());
            let decided = self.hooks.decide(matcher, &Self::input(call, answer)).await;
            decided.into_verdict()
        })
    }
}
