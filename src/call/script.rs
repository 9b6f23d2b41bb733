//! The script of one answered call, sans-IO: play the message; with a choice, ask, listen, decide,
//! ask again up to `repeat_count` times, acknowledge or say goodbye; then hang up.
//!
//! The shell feeds [`Input`]s (playback finished, speech began, what was heard, a key, the matcher's
//! verdict, the listen timer) with the current time and carries out the [`Output`]s (play a prompt,
//! stop it, ask the matcher, record a timeline step, hang up). Time is an argument, so every rule
//! (barge-in, the listen timeout that starts when the prompt ends, the repeat count) is tested here
//! in virtual time.
//!
//! ```no_run
//! # use std::time::Duration;
//! # use sip_assistant::call::script::{Script, Input, Output};
//! # fn shell(mut s: Script, mut next_input: impl FnMut(Option<Duration>) -> (Duration, Input)) {
//! s.start(Duration::ZERO);
//! loop {
//!     while let Some(out) = s.poll_output() {
//!         if let Output::Hangup = out { return; }
//!         // carry out `out`
//!     }
//!     let (now, input) = next_input(s.deadline()); // a media event, a verdict, or the timer
//!     s.handle(now, input);
//! }
//! # }
//! ```

use std::collections::VecDeque;
use std::time::Duration;

use super::model::Choice;
use crate::speech::{Alternative, Recognition};

/// What is played.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    Message,
    /// The choice's prompt, attempt 1..=repeat_count.
    Question {
        attempt: u32,
    },
    /// A text a matcher asked to speak instead of the prompt.
    Reprompt {
        attempt: u32,
        text: String,
    },
    /// The short acknowledgement after a match.
    Acknowledgement,
    /// The goodbye when nothing matched.
    Goodbye,
}

/// A caller's answer, for the matcher.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Answer {
    /// Recogniser hypotheses, best first (empty for a key press).
    pub alternatives: Vec<Alternative>,
    /// Keys pressed (empty for speech).
    pub digits: String,
    /// 1-based attempt.
    pub attempt: u32,
}

/// The matcher's decision about an [`Answer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Option index; `detail` says who matched and how (for the timeline).
    Matched {
        option: usize,
        detail: String,
    },
    NoMatch {
        why: String,
    },
    /// Ask again with this text; `detail` says who asked (for the timeline).
    Reprompt {
        text: String,
        detail: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The current playback ended; `complete` when every frame was sent.
    PlaybackDone {
        complete: bool,
    },
    /// The voice-activity detector heard speech begin.
    SpeechStarted,
    /// The recogniser's final result for the utterance.
    Heard(Recognition),
    /// The recogniser failed on the utterance.
    RecognizerFailed(String),
    /// The VAD saw a burst too short to be an answer, or speech ended without a result.
    SpeechDiscarded,
    Digit(char),
    Decided(Verdict),
    /// [`Script::deadline`] passed.
    Timer,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Play(Prompt),
    StopPlayback,
    /// Ask the matcher; answer with [`Input::Decided`].
    Decide(Answer),
    /// A timeline step.
    Event {
        name: &'static str,
        detail: Option<String>,
    },
    /// The script is over: hang up. [`Script::result`] has the outcome.
    Hangup,
}

/// The outcome of a script.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub message_played: bool,
    pub choice_response: Option<String>,
    pub choice_raw_text: Option<String>,
    /// A speech engine error met on the way (the call still completes).
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Message,
    /// Prompt playing or listening for attempt n.
    Asking(u32),
    /// Waiting for the matcher on attempt n.
    Deciding(u32),
    /// Acknowledgement or goodbye playing.
    Closing,
    Done,
}

pub struct Script {
    choice: Option<Choice>,
    phase: Phase,
    prompt_playing: bool,
    speech_active: bool,
    deadline: Option<Duration>,
    /// The raw text of the answer being decided.
    pending_raw: Option<String>,
    outcome: Outcome,
    out: VecDeque<Output>,
}

impl Script {
    pub fn new(choice: Option<Choice>) -> Self {
        Self {
            choice,
            phase: Phase::Idle,
            prompt_playing: false,
            speech_active: false,
            deadline: None,
            pending_raw: None,
            outcome: Outcome::default(),
            out: VecDeque::new(),
        }
    }

    /// Whether the shell should run the voice-activity detector and recogniser now (while the
    /// prompt plays, for barge-in, and after it).
    pub fn listening(&self) -> bool {
        matches!(self.phase, Phase::Asking(_))
    }

    /// When to feed [`Input::Timer`], if at all.
    pub fn deadline(&self) -> Option<Duration> {
        self.deadline
    }

    pub fn result(&self) -> &Outcome {
        &self.outcome
    }

    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The call was answered.
    pub fn start(&mut self, _now: Duration) {
        if self.phase != Phase::Idle {
            return;
        }
        self.phase = Phase::Message;
        self.event("message_started", None);
        self.out.push_back(Output::Play(Prompt::Message));
    }

    pub fn handle(&mut self, now: Duration, input: Input) {
        match (self.phase, input) {
            (Phase::Message, Input::PlaybackDone { complete }) => {
                self.outcome.message_played = complete;
                self.event(
                    "message_ended",
                    Some(if complete { "played in full" } else { "cut short" }.into()),
                );
                if self.choice.is_some() {
                    self.ask(1, None);
                } else {
                    self.finish();
                }
            }
            (Phase::Asking(_), Input::PlaybackDone { .. }) => {
                self.prompt_playing = false;
                if !self.speech_active {
                    self.deadline = Some(now + self.timeout());
                }
            }
            (Phase::Asking(_), Input::SpeechStarted) => {
                self.speech_active = true;
                self.deadline = None;
                if self.prompt_playing {
                    self.prompt_playing = false;
                    self.out.push_back(Output::StopPlayback);
                    self.event("barge_in", Some("speech during the prompt".into()));
                }
            }
            (Phase::Asking(_), Input::SpeechDiscarded) => {
                self.speech_active = false;
                if !self.prompt_playing {
                    self.deadline = Some(now + self.timeout());
                }
            }
            (Phase::Asking(n), Input::Heard(rec)) => {
                self.speech_active = false;
                self.on_heard(n, rec);
            }
            (Phase::Asking(n), Input::RecognizerFailed(e)) => {
                self.speech_active = false;
                self.event("recognizer_error", Some(e.clone()));
                self.outcome.error = Some(format!("speech recognition failed: {e}"));
                self.next_attempt(n);
            }
            (Phase::Asking(n), Input::Digit(d)) => {
                if self.prompt_playing {
                    self.prompt_playing = false;
                    self.out.push_back(Output::StopPlayback);
                    self.event("barge_in", Some(format!("key {d} during the prompt")));
                }
                self.event("heard", Some(format!("key {d}")));
                self.decide(
                    n,
                    Answer {
                        alternatives: Vec::new(),
                        digits: d.to_string(),
                        attempt: n,
                    },
                    d.to_string(),
                );
            }
            (Phase::Asking(n), Input::Timer)
                if self.deadline.is_some_and(|d| now >= d) && !self.speech_active =>
            {
                self.deadline = None;
                self.event(
                    "no_answer",
                    Some(format!("nothing heard within {} s", self.timeout().as_secs())),
                );
                self.next_attempt(n);
            }
            (Phase::Deciding(n), Input::Decided(v)) => self.on_verdict(n, v),
            (Phase::Closing, Input::PlaybackDone { .. }) => self.finish(),
            // Anything else (a digit during the message, speech while deciding, a stale timer)
            // changes nothing.
            _ => {}
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.choice.as_ref().map_or(30, |c| c.timeout_seconds)))
    }

    fn repeat_count(&self) -> u32 {
        self.choice.as_ref().map_or(1, |c| c.repeat_count.max(1))
    }

    fn event(&mut self, name: &'static str, detail: Option<String>) {
        self.out.push_back(Output::Event { name, detail });
    }

    fn ask(&mut self, attempt: u32, text: Option<String>) {
        self.phase = Phase::Asking(attempt);
        self.prompt_playing = true;
        self.speech_active = false;
        self.deadline = None;
        let of = self.repeat_count();
        self.event("prompt", Some(format!("attempt {attempt} of {of}")));
        self.out.push_back(Output::Play(match text {
            Some(text) => Prompt::Reprompt { attempt, text },
            None => Prompt::Question { attempt },
        }));
    }

    fn on_heard(&mut self, attempt: u32, rec: Recognition) {
        match rec {
            Recognition::Heard(alternatives) => {
                let best = alternatives.first().cloned();
                let detail = best.as_ref().map(|a| match a.confidence {
                    Some(c) => format!("\"{}\" (confidence {c:.2})", a.transcript),
                    None => format!("\"{}\"", a.transcript),
                });
                self.event("heard", detail);
                let raw = best.map(|a| a.transcript).unwrap_or_default();
                self.decide(
                    attempt,
                    Answer {
                        alternatives,
                        digits: String::new(),
                        attempt,
                    },
                    raw,
                );
            }
            Recognition::NoMatch { transcript: Some(t) } => {
                self.event("heard", Some(format!("\"{t}\" (outside the expected answers)")));
                let alternatives = vec![Alternative {
                    transcript: t.clone(),
                    confidence: None,
                }];
                self.decide(
                    attempt,
                    Answer {
                        alternatives,
                        digits: String::new(),
                        attempt,
                    },
                    t,
                );
            }
            Recognition::Rejected { heard } => {
                let detail = match &heard {
                    Some(h) => format!("\"{h}\" (rejected by the recogniser as none of the answers)"),
                    None => "speech the recogniser rejected as none of the answers".into(),
                };
                self.event("heard", Some(detail));
                self.event("no_match", Some("the recogniser rejected the answer".into()));
                if let Some(h) = heard.filter(|h| !h.is_empty()) {
                    self.outcome.choice_raw_text = Some(h);
                }
                self.next_attempt(attempt);
            }
            Recognition::NoMatch { transcript: None } => {
                self.event("heard", Some("speech that matched none of the answers".into()));
                self.event("no_match", Some("the recogniser rejected the answer".into()));
                self.next_attempt(attempt);
            }
        }
    }

    fn decide(&mut self, attempt: u32, answer: Answer, raw: String) {
        self.deadline = None;
        self.outcome.choice_raw_text = Some(raw.clone()).filter(|r| !r.is_empty());
        self.pending_raw = Some(raw);
        self.phase = Phase::Deciding(attempt);
        self.out.push_back(Output::Decide(answer));
    }

    fn on_verdict(&mut self, attempt: u32, v: Verdict) {
        match v {
            Verdict::Matched { option, detail } => {
                let value = self
                    .choice
                    .as_ref()
                    .and_then(|c| c.options.get(option))
                    .map(|o| o.value.clone());
                match value {
                    Some(value) => {
                        self.event("matched", Some(format!("{value}: {detail}")));
                        self.outcome.choice_response = Some(value);
                        self.outcome.choice_raw_text = self.pending_raw.take().filter(|r| !r.is_empty());
                        self.close(Prompt::Acknowledgement);
                    }
                    None => {
                        self.event("no_match", Some(format!("option {option} does not exist")));
                        self.next_attempt(attempt);
                    }
                }
            }
            Verdict::NoMatch { why } => {
                self.event("no_match", Some(why));
                self.next_attempt(attempt);
            }
            Verdict::Reprompt { text, detail } => {
                self.event("reprompt", Some(format!("\"{text}\": {detail}")));
                if attempt < self.repeat_count() {
                    self.ask(attempt + 1, Some(text));
                } else {
                    self.give_up();
                }
            }
        }
    }

    fn next_attempt(&mut self, attempt: u32) {
        if attempt < self.repeat_count() {
            self.ask(attempt + 1, None);
        } else {
            self.give_up();
        }
    }

    fn give_up(&mut self) {
        let n = self.repeat_count();
        self.event(
            "no_choice",
            Some(format!(
                "no answer matched after {n} prompt{}",
                if n == 1 { "" } else { "s" }
            )),
        );
        self.outcome.choice_response = None;
        self.close(Prompt::Goodbye);
    }

    fn close(&mut self, prompt: Prompt) {
        self.phase = Phase::Closing;
        self.deadline = None;
        self.prompt_playing = false;
        self.out.push_back(Output::Play(prompt));
    }

    fn finish(&mut self) {
        self.phase = Phase::Done;
        self.deadline = None;
        self.out.push_back(Output::Hangup);
    }
}

#[cfg(test)]
#[path = "script_tests.rs"]
mod tests;
