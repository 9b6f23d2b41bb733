//! Counting the dev set's replies as a call counts them, shared by the round-trip tests of every
//! recogniser: what became of each reply, and the tally of answers right and off-topic replies
//! rejected for each half of the dev set.

use sip_assistant::speech::vad::{Endpointer, VadEvent, VadSettings};

use super::devset::{Half, Reply};

/// What became of one reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Option(usize),
    NoMatch,
    /// The endpointer found no complete utterance.
    NoSpeech,
}

/// The utterance the endpointer cuts from `audio`, fed in 20 ms packets (what a call hands the
/// recogniser), or `None` when it finds none.
pub fn utterance(audio: &[i16]) -> Option<Vec<i16>> {
    let mut ep = Endpointer::new(VadSettings::default());
    let mut cut: Option<Vec<i16>> = None;
    for packet in audio.chunks(320) {
        ep.push(packet);
        while let Some(ev) = ep.poll_event() {
            match ev {
                VadEvent::SpeechStart { audio, .. } => cut = Some(audio.to_vec()),
                VadEvent::Audio(audio) => cut
                    .as_mut()
                    .expect("audio only inside an utterance")
                    .extend_from_slice(&audio),
                VadEvent::SpeechEnd { .. } => return cut,
                VadEvent::NoSpeechTimeout { .. } => return None,
            }
        }
    }
    None
}

/// The counts of one half of the dev set (or of several voices together).
#[derive(Debug, Default)]
pub struct Tally {
    pub answers: usize,
    pub right: usize,
    pub off: usize,
    pub rejected: usize,
    pub no_speech: usize,
    /// Answers among `no_speech`.
    pub answers_lost: usize,
    pub missed: Vec<String>,
    pub accepted: Vec<String>,
}

impl Tally {
    /// Counts `reply`, said by `label`, having come to `outcome`.
    pub fn count(&mut self, label: &str, reply: &Reply, outcome: &Outcome) {
        let what = format!("{label} {:?}", reply.text);
        match (reply.option, outcome) {
            (Some(_), Outcome::NoSpeech) => {
                self.no_speech += 1;
                self.answers += 1;
                self.answers_lost += 1;
                self.missed.push(format!("{what}: no speech"));
            }
            (None, Outcome::NoSpeech) => {
                self.no_speech += 1;
                self.off += 1;
            }
            (Some(want), Outcome::Option(got)) if *got == want => {
                self.answers += 1;
                self.right += 1;
            }
            (Some(_), _) => {
                self.answers += 1;
                self.missed.push(what);
            }
            (None, Outcome::NoMatch) => {
                self.off += 1;
                self.rejected += 1;
            }
            (None, Outcome::Option(o)) => {
                self.off += 1;
                self.accepted.push(format!("{what} as option {o}"));
            }
        }
    }

    /// Both counts together (the reply lists stay empty).
    pub fn plus(&self, other: &Tally) -> Tally {
        Tally {
            answers: self.answers + other.answers,
            right: self.right + other.right,
            off: self.off + other.off,
            rejected: self.rejected + other.rejected,
            no_speech: self.no_speech + other.no_speech,
            answers_lost: self.answers_lost + other.answers_lost,
            ..Tally::default()
        }
    }

    pub fn line(&self) -> String {
        format!(
            "answers right {}/{} ({:.0} %), off-topic rejected {}/{} ({:.0} %), no speech found {}",
            self.right,
            self.answers,
            100.0 * self.right as f64 / self.answers.max(1) as f64,
            self.rejected,
            self.off,
            100.0 * self.rejected as f64 / self.off.max(1) as f64,
            self.no_speech
        )
    }
}

/// One tally for each half of the dev set.
#[derive(Debug, Default)]
pub struct Halves {
    pub tune: Tally,
    pub held: Tally,
}

impl Halves {
    pub fn count(&mut self, label: &str, reply: &Reply, outcome: &Outcome) {
        match reply.half {
            Half::Tune => &mut self.tune,
            Half::Held => &mut self.held,
        }
        .count(label, reply, outcome);
    }

    pub fn all(&self) -> Tally {
        self.tune.plus(&self.held)
    }

    /// Prints both halves (with the replies they got wrong) and the whole set, each line headed
    /// by `what`.
    #[allow(dead_code)]
    pub fn print(&self, what: &str) {
        for (name, t) in [("tuning half", &self.tune), ("held-out half", &self.held)] {
            println!("{what}, {name}: {}", t.line());
            println!("  missed answers: {:?}", t.missed);
            println!("  accepted off-topic: {:?}", t.accepted);
        }
        println!("{what}, whole dev set: {}", self.all().line());
    }

    /// Prints the figures, then asserts over the whole dev set: at most one answer lost by the
    /// endpointer, at least `right` % of the answers right and `rejected` % of the off-topic
    /// replies rejected.
    #[allow(dead_code)]
    pub fn assert_whole(&self, what: &str, right: usize, rejected: usize) {
        self.print(what);
        let all = self.all();
        let (missed, accepted) = (
            [&self.tune.missed[..], &self.held.missed[..]].concat(),
            [&self.tune.accepted[..], &self.held.accepted[..]].concat(),
        );
        assert!(
            all.answers_lost <= 1,
            "{what}: the endpointer lost answers: {missed:?}"
        );
        assert!(
            all.right * 100 >= all.answers * right,
            "{what}: only {}/{} answers right: {missed:?}",
            all.right,
            all.answers
        );
        assert!(
            all.rejected * 100 >= all.off * rejected,
            "{what}: only {}/{} off-topic replies rejected: {accepted:?}",
            all.rejected,
            all.off
        );
    }
}
