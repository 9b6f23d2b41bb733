//! The script of one answered call, sans-IO: play the message; with a choice, ask, listen, decide,
//! ask again up to `repeat_count` times, acknowledge or say goodbye; then hang up. An answer the
//! script is unsure of is asked back once before it counts ([`super::confirm`]).
//!
//! The shell feeds [`Input`]s (playback finished, speech began, what was heard, a key, the matcher's
//! verdict, the listen timer) with the current time and carries out the [`Output`]s (play a prompt,
//! stop it, ask the matcher, record a timeline step, hang up). Time is an argument, so every rule
//! (barge-in, the listen timeout that starts when the prompt ends, the repeat count) is tested here
//! in virtual time.
//!
//! ```no_run
//! # use std::time::Duration;
//! # use sip_assistant::flow::script::{Script, Input, Output};
//! # fn shell(mut s: Script, mut next_input: impl FnMut(Option<Duration>) -> (Duration, Input)) {
//! s.start(Duration::ZERO);
//! loop {
//!     while let Some(out) = s.poll_output() {
//!         if let Output::Hangup = out { return; }
//!         // carry out `out`
//!     }
//!     let (now, input) = next_input(s.poll_timeout()); // a media event, a verdict, or the timer
//!     s.handle_input(now, input);
//! }
//! # }
//! ```

use std::collections::VecDeque;
use std::time::Duration;

use super::confirm::{self, ConfirmSettings, HeardAnswer, Reply, Unsure};
use crate::call::{Choice, ConfirmedBy, TimelineEvent};
use crate::choice::recognition::{Alternative, Recognition};

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
    /// "Did you say <value>? Say yes or press 1." about option `option` (on attempt `attempt`).
    Confirmation {
        attempt: u32,
        option: usize,
        value: String,
    },
    /// The short acknowledgement after a match.
    Acknowledgement,
    /// The goodbye when nothing matched.
    Goodbye,
}

pub use crate::choice::{Answer, Verdict};

/// How often a call asks again, without counting an attempt, because the recogniser was busy.
pub const MAX_BUSY_RETRIES: u32 = 2;

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
    /// The recogniser had no capacity for the utterance (every decode slot taken and the queue
    /// full, or no slot in time). The caller is asked the same question again without it counting
    /// as an attempt, at most [`MAX_BUSY_RETRIES`] times a call; after that it is a failure.
    RecognizerBusy(String),
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
        name: TimelineEvent,
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
    /// How `choice_response` was settled (`None` without one).
    pub confirmed_by: Option<ConfirmedBy>,
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
    /// Asking back whether the answer to attempt `attempt` was option `option` (question playing
    /// or listening for the reply).
    Confirming {
        attempt: u32,
        option: usize,
    },
    /// Acknowledgement or goodbye playing.
    Closing,
    Done,
}

/// What the shell's recogniser should listen for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listening {
    /// An answer to the choice: its options' phrases.
    Answer,
    /// A reply to the confirmation question: yes or no ([`confirm::phrases`]).
    Confirmation,
}

/// The answer being decided.
#[derive(Debug, Clone, Default)]
struct Pending {
    raw: String,
    /// Keys, not speech.
    keys: bool,
    heard: HeardAnswer,
}

pub struct Script {
    choice: Option<Choice>,
    confirm: ConfirmSettings,
    phase: Phase,
    prompt_playing: bool,
    speech_active: bool,
    deadline: Option<Duration>,
    /// The answer being decided (and, while confirming, the one asked about).
    pending: Option<Pending>,
    /// Questions asked again because the recogniser was busy.
    busy_retries: u32,
    outcome: Outcome,
    out: VecDeque<Output>,
}

impl Script {
    /// A script that never asks back (see [`Script::with_confirmation`]).
    pub fn new(choice: Option<Choice>) -> Self {
        Self {
            choice,
            confirm: ConfirmSettings::OFF,
            phase: Phase::Idle,
            prompt_playing: false,
            speech_active: false,
            deadline: None,
            pending: None,
            busy_retries: 0,
            outcome: Outcome::default(),
            out: VecDeque::new(),
        }
    }

    /// Ask back when unsure, as `settings` say.
    pub fn with_confirmation(mut self, settings: ConfirmSettings) -> Self {
        self.confirm = settings;
        self
    }

    /// Whether the shell should run the voice-activity detector and recogniser now (while the
    /// prompt plays, for barge-in, and after it).
    pub fn listening(&self) -> bool {
        self.listening_for().is_some()
    }

    /// What the recogniser should listen for now, if anything.
    pub fn listening_for(&self) -> Option<Listening> {
        match self.phase {
            Phase::Asking(_) => Some(Listening::Answer),
            Phase::Confirming { .. } => Some(Listening::Confirmation),
            _ => None,
        }
    }

    /// When to feed [`Input::Timer`], if at all.
    pub fn poll_timeout(&self) -> Option<Duration> {
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
        self.event(TimelineEvent::MessageStarted, None);
        self.out.push_back(Output::Play(Prompt::Message));
    }

    pub fn handle_input(&mut self, now: Duration, input: Input) {
        match (self.phase, input) {
            (Phase::Message, Input::PlaybackDone { complete }) => {
                self.outcome.message_played = complete;
                self.event(
                    TimelineEvent::MessageEnded,
                    Some(if complete { "played in full" } else { "cut short" }.into()),
                );
                if self.choice.is_some() {
                    self.ask(1, None);
                } else {
                    self.finish();
                }
            }
            (Phase::Asking(_) | Phase::Confirming { .. }, Input::PlaybackDone { .. }) => {
                self.prompt_playing = false;
                if !self.speech_active {
                    self.deadline = Some(now + self.timeout());
                }
            }
            (Phase::Asking(_) | Phase::Confirming { .. }, Input::SpeechStarted) => {
                self.speech_active = true;
                self.deadline = None;
                if self.prompt_playing {
                    self.prompt_playing = false;
                    self.out.push_back(Output::StopPlayback);
                    self.event(TimelineEvent::BargeIn, Some("speech during the prompt".into()));
                }
            }
            (Phase::Asking(_) | Phase::Confirming { .. }, Input::SpeechDiscarded) => {
                self.speech_active = false;
                if !self.prompt_playing {
                    self.deadline = Some(now + self.timeout());
                }
            }
            (Phase::Asking(n), Input::Heard(rec)) => {
                self.speech_active = false;
                self.on_heard(n, rec);
            }
            (Phase::Asking(n), Input::RecognizerBusy(e)) if self.busy_retries < MAX_BUSY_RETRIES => {
                self.speech_active = false;
                self.busy_retries += 1;
                self.event(
                    TimelineEvent::RecognizerError,
                    Some(format!("{e}; asking again (not counted as an attempt)")),
                );
                self.ask(n, None);
            }
            (
                Phase::Asking(n) | Phase::Confirming { attempt: n, .. },
                Input::RecognizerFailed(e) | Input::RecognizerBusy(e),
            ) => {
                self.speech_active = false;
                self.event(TimelineEvent::RecognizerError, Some(e.clone()));
                self.outcome.error = Some(format!("speech recognition failed: {e}"));
                self.next_attempt(n);
            }
            (Phase::Asking(n), Input::Digit(d)) => {
                self.key_barge_in(d);
                self.event(TimelineEvent::Heard, Some(format!("key {d}")));
                self.decide(
                    n,
                    Answer {
                        alternatives: Vec::new(),
                        digits: d.to_string(),
                        attempt: n,
                    },
                    d.to_string(),
                    None,
                );
            }
            (Phase::Confirming { attempt, option }, Input::Digit(d)) => {
                self.key_barge_in(d);
                self.event(TimelineEvent::Heard, Some(format!("confirmation: key {d}")));
                let reply = confirm::reply(&[], &d.to_string());
                self.on_reply(attempt, option, reply);
            }
            (Phase::Confirming { attempt, option }, Input::Heard(rec)) => {
                self.speech_active = false;
                let detail = match rec.raw_text() {
                    Some(t) => format!("confirmation: \"{t}\""),
                    None => "confirmation: speech the recogniser did not take as yes or no".into(),
                };
                self.event(TimelineEvent::Heard, Some(detail));
                let reply = confirm::reply(&rec.alternatives(), "");
                self.on_reply(attempt, option, reply);
            }
            (Phase::Asking(n) | Phase::Confirming { attempt: n, .. }, Input::Timer)
                if self.deadline.is_some_and(|d| now >= d) && !self.speech_active =>
            {
                self.deadline = None;
                let what = if matches!(self.phase, Phase::Confirming { .. }) {
                    "no reply to the confirmation"
                } else {
                    "nothing heard"
                };
                self.event(
                    TimelineEvent::NoAnswer,
                    Some(format!("{what} within {} s", self.timeout().as_secs())),
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

    /// A key during a prompt stops it.
    fn key_barge_in(&mut self, d: char) {
        if self.prompt_playing {
            self.prompt_playing = false;
            self.out.push_back(Output::StopPlayback);
            self.event(TimelineEvent::BargeIn, Some(format!("key {d} during the prompt")));
        }
    }

    fn event(&mut self, name: TimelineEvent, detail: Option<String>) {
        self.out.push_back(Output::Event { name, detail });
    }

    fn ask(&mut self, attempt: u32, text: Option<String>) {
        self.phase = Phase::Asking(attempt);
        self.prompt_playing = true;
        self.speech_active = false;
        self.deadline = None;
        let of = self.repeat_count();
        self.event(TimelineEvent::Prompt, Some(format!("attempt {attempt} of {of}")));
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
                self.event(TimelineEvent::Heard, detail);
                let raw = best.map(|a| a.transcript).unwrap_or_default();
                let heard = HeardAnswer::of(&Recognition::Heard(alternatives.clone()));
                self.decide(
                    attempt,
                    Answer {
                        alternatives,
                        digits: String::new(),
                        attempt,
                    },
                    raw,
                    Some(heard),
                );
            }
            Recognition::NoMatch { transcript: Some(t) } => {
                self.event(
                    TimelineEvent::Heard,
                    Some(format!("\"{t}\" (outside the expected answers)")),
                );
                let alternatives = vec![Alternative {
                    transcript: t.clone(),
                    confidence: None,
                }];
                let heard = HeardAnswer {
                    transcript: Some(t.clone()),
                    ..HeardAnswer::default()
                };
                self.decide(
                    attempt,
                    Answer {
                        alternatives,
                        digits: String::new(),
                        attempt,
                    },
                    t,
                    Some(heard),
                );
            }
            Recognition::Rejected { heard } => {
                let detail = match &heard {
                    Some(h) => format!("\"{h}\" (rejected by the recogniser as none of the answers)"),
                    None => "speech the recogniser rejected as none of the answers".into(),
                };
                self.event(TimelineEvent::Heard, Some(detail));
                self.event(
                    TimelineEvent::NoMatch,
                    Some("the recogniser rejected the answer".into()),
                );
                if let Some(h) = heard.filter(|h| !h.is_empty()) {
                    self.outcome.choice_raw_text = Some(h);
                }
                self.next_attempt(attempt);
            }
            Recognition::Scored { transcript, pick } => {
                let detail = match &pick {
                    Some(p) => format!(
                        "\"{transcript}\" (scored as \"{}\", confidence {:.2})",
                        p.phrase, p.confidence
                    ),
                    None => format!("\"{transcript}\" (scored as none of the answers)"),
                };
                self.event(TimelineEvent::Heard, Some(detail));
                let rec = Recognition::Scored {
                    transcript: transcript.clone(),
                    pick,
                };
                let heard = HeardAnswer::of(&rec);
                self.decide(
                    attempt,
                    Answer {
                        alternatives: rec.alternatives(),
                        digits: String::new(),
                        attempt,
                    },
                    transcript,
                    Some(heard),
                );
            }
            Recognition::NoMatch { transcript: None } => {
                self.event(
                    TimelineEvent::Heard,
                    Some("speech that matched none of the answers".into()),
                );
                self.event(
                    TimelineEvent::NoMatch,
                    Some("the recogniser rejected the answer".into()),
                );
                self.next_attempt(attempt);
            }
        }
    }

    /// Ask the matcher about `answer`; `heard` is what the recogniser made of it (`None` for keys).
    fn decide(&mut self, attempt: u32, answer: Answer, raw: String, heard: Option<HeardAnswer>) {
        self.deadline = None;
        self.outcome.choice_raw_text = Some(raw.clone()).filter(|r| !r.is_empty());
        self.pending = Some(Pending {
            raw,
            keys: heard.is_none(),
            heard: heard.unwrap_or_default(),
        });
        self.phase = Phase::Deciding(attempt);
        self.out.push_back(Output::Decide(answer));
    }

    fn on_verdict(&mut self, attempt: u32, v: Verdict) {
        match v {
            Verdict::Matched { option, detail } => {
                if self.value_of(option).is_none() {
                    self.event(
                        TimelineEvent::NoMatch,
                        Some(format!("option {option} does not exist")),
                    );
                    self.next_attempt(attempt);
                    return;
                }
                let keys = self.pending.as_ref().is_none_or(|p| p.keys);
                if !keys {
                    if let Some((o, why)) = self.unsure(Some(option)) {
                        self.ask_back(attempt, o, &why, &detail);
                        return;
                    }
                }
                let by = if keys {
                    ConfirmedBy::Dtmf
                } else {
                    ConfirmedBy::Speech
                };
                self.accept(option, by, detail);
            }
            Verdict::NoMatch { why } => {
                let speech = self.pending.as_ref().is_some_and(|p| !p.keys);
                if speech {
                    if let Some((o, unsure)) = self.unsure(None) {
                        self.ask_back(attempt, o, &unsure, &why);
                        return;
                    }
                }
                self.event(TimelineEvent::NoMatch, Some(why));
                self.next_attempt(attempt);
            }
            Verdict::Reprompt { text, detail } => {
                self.event(TimelineEvent::Reprompt, Some(format!("\"{text}\": {detail}")));
                if attempt < self.repeat_count() {
                    self.ask(attempt + 1, Some(text));
                } else {
                    self.give_up();
                }
            }
        }
    }

    fn value_of(&self, option: usize) -> Option<String> {
        self.choice
            .as_ref()
            .and_then(|c| c.options.get(option))
            .map(|o| o.value.clone())
    }

    /// The option to ask back about, and why, for the pending spoken answer.
    fn unsure(&self, matched: Option<usize>) -> Option<(usize, Unsure)> {
        let pending = self.pending.as_ref()?;
        let options = self.choice.as_ref().map(|c| c.options.as_slice())?;
        confirm::to_confirm(&self.confirm, &pending.heard, matched, options)
            .filter(|(o, _)| *o < options.len())
    }

    /// Ask "Did you say <option>?" about the answer to `attempt`; `verdict` is what the matcher said.
    fn ask_back(&mut self, attempt: u32, option: usize, why: &Unsure, verdict: &str) {
        let value = self.value_of(option).unwrap_or_default();
        self.event(
            TimelineEvent::Confirm,
            Some(format!("{value}? {why} ({verdict})")),
        );
        self.phase = Phase::Confirming { attempt, option };
        self.prompt_playing = true;
        self.speech_active = false;
        self.deadline = None;
        self.out.push_back(Output::Play(Prompt::Confirmation {
            attempt,
            option,
            value,
        }));
    }

    /// The caller's reply to the confirmation question about `option`.
    fn on_reply(&mut self, attempt: u32, option: usize, reply: Reply) {
        let value = self.value_of(option).unwrap_or_default();
        match reply {
            Reply::Yes => {
                self.event(
                    TimelineEvent::Confirmed,
                    Some(format!("{value}: the caller said yes")),
                );
                self.accept(
                    option,
                    ConfirmedBy::Confirmation,
                    "confirmed by the caller".into(),
                );
            }
            Reply::No => {
                self.event(
                    TimelineEvent::NotConfirmed,
                    Some(format!("{value}: the caller said no")),
                );
                self.next_attempt(attempt);
            }
            Reply::Other(why) => {
                self.event(
                    TimelineEvent::NotConfirmed,
                    Some(format!("{value}: neither yes nor no ({why})")),
                );
                self.next_attempt(attempt);
            }
        }
    }

    /// `option` is the caller's choice.
    fn accept(&mut self, option: usize, by: ConfirmedBy, detail: String) {
        let value = self.value_of(option).unwrap_or_default();
        self.event(TimelineEvent::Matched, Some(format!("{value}: {detail}")));
        self.outcome.choice_response = Some(value);
        self.outcome.confirmed_by = Some(by);
        self.outcome.choice_raw_text = self.pending.take().map(|p| p.raw).filter(|r| !r.is_empty());
        self.close(Prompt::Acknowledgement);
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
            TimelineEvent::NoChoice,
            Some(format!(
                "no answer matched after {n} prompt{}",
                if n == 1 { "" } else { "s" }
            )),
        );
        self.outcome.choice_response = None;
        self.outcome.confirmed_by = None;
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
#[path = "script_test_util.rs"]
mod test_util;

#[cfg(test)]
#[path = "script_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "script_confirm_tests.rs"]
mod confirm_tests;
