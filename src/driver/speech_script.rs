//! The call script with speech: the shell around [`crate::flow::script::Script`]. It renders the
//! message and the prompt while the phone rings, plays prompts through the media thread, runs the
//! caller's audio through a voice-activity detector into the recogniser, asks the matcher, and
//! records every step in the call's timeline.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use futures_lite::FutureExt;

use super::prompt_frames::{Frames, PromptFrames};
use super::script::{CallScript, ScriptContext, ScriptFuture, ScriptResult, ScriptRun};
use crate::call::{ActiveCall, CallRequest, Choice, TimelineEvent};
use crate::choice::{Answer, Verdict};
use crate::flow::confirm::{self, ConfirmSettings};
use crate::flow::script::{Input, Listening, Output, Prompt, Script};
use crate::media::session::{AudioCodec, MediaEvent};
use crate::speech::{
    BoxFuture, Phrase, RecognitionContext, Recognizer, SpeechError, SynthRequest, Synthesizer, Utterance,
};

/// What a voice-activity detector reports about the caller's audio.
#[derive(Debug, Clone, PartialEq)]
pub enum VadEvent {
    /// Speech began; the audio since shortly before it (pre-roll).
    Started(Vec<i16>),
    /// More audio of the utterance.
    Audio(Vec<i16>),
    /// The utterance ended.
    Ended,
    /// What began was too short to be speech.
    Discarded,
}

/// A voice-activity detector over 16 kHz audio, one per call.
pub trait SpeechDetector: Send {
    fn push(&mut self, samples: &[i16], out: &mut Vec<VadEvent>);
    /// Forget any utterance in progress (the script stopped listening).
    fn reset(&mut self);
}

/// Makes one detector per call.
pub type DetectorFactory = Arc<dyn Fn() -> Box<dyn SpeechDetector> + Send + Sync>;

/// Decides which option an answer picks (the built-in matcher or a WebAssembly hook).
pub trait Decider: Send + Sync {
    fn decide<'a>(&'a self, call: &'a ActiveCall, answer: &'a Answer) -> BoxFuture<'a, Verdict>;
}

/// Texts around the answer.
#[derive(Debug, Clone)]
pub struct Phrasing {
    pub acknowledgement: String,
    pub goodbye: String,
    /// The question asked back when unsure; `{option}` stands for the option's value.
    pub confirm_question: String,
}

pub struct SpeechScript {
    pub tts: Arc<dyn Synthesizer>,
    pub stt: Arc<dyn Recognizer>,
    pub detector: DetectorFactory,
    pub decider: Arc<dyn Decider>,
    pub phrasing: Phrasing,
    /// Also listen for option numbers ("option two", "the second one"), as `script.spoken_numbers`
    /// lets the matcher take them.
    pub spoken_numbers: bool,
    /// When to ask back (`script.confirm`, `script.confirm_below`).
    pub confirm: ConfirmSettings,
    /// Encoded prompts shared between calls.
    pub encoded: Arc<PromptFrames>,
}

/// One text rendered and encoded for each codec offered (codec → frames), or why not.
type RenderResult = Result<HashMap<AudioCodec, Frames>, String>;

/// What `prepare` hands to `run`: the renderings made while the phone rings, each sent as soon as
/// it is done, in order (the message first), so the message can start before the rest is ready.
struct Rendering {
    results: async_channel::Receiver<(String, RenderResult)>,
    /// The codec the answer chose, once the script runs: from then on the renderings still to come
    /// are encoded for it alone (with a text of its own per call, encoding it for every codec
    /// offered is most of the work that is not rendering, and all but one encoding is thrown away).
    codec: Arc<OnceLock<AudioCodec>>,
    _task: smol::Task<()>,
}

/// The renderings received so far, and those still coming.
struct Rendered {
    done: HashMap<String, RenderResult>,
    pending: Option<Rendering>,
}

impl SpeechScript {
    fn request(&self, call: &ActiveCall, text: &str) -> SynthRequest {
        SynthRequest {
            text: text.to_string(),
            voice: call.request.voice.clone(),
            language: call.request.language.clone(),
        }
    }

    fn text_for(&self, call: &ActiveCall, prompt: &Prompt) -> String {
        match prompt {
            Prompt::Message => call.request.message.clone(),
            Prompt::Question { .. } => call
                .request
                .choice
                .as_ref()
                .map(|c| c.prompt.clone())
                .unwrap_or_default(),
            Prompt::Reprompt { text, .. } => text.clone(),
            Prompt::Confirmation { value, .. } => confirm::question(&self.phrasing.confirm_question, value),
            Prompt::Acknowledgement => self.phrasing.acknowledgement.clone(),
            Prompt::Goodbye => self.phrasing.goodbye.clone(),
        }
    }

    /// Synthesize and encode `text` for `codecs` (encodings shared with every other call that
    /// says the same rendering: [`PromptFrames`]); once `chosen` is set (the call was answered),
    /// for that codec alone.
    async fn render(
        tts: &dyn Synthesizer,
        encoded: &PromptFrames,
        req: &SynthRequest,
        codecs: &[AudioCodec],
        chosen: &OnceLock<AudioCodec>,
    ) -> Result<HashMap<AudioCodec, Frames>, String> {
        let pcm = tts.synthesize_shared(req).await.map_err(|e| e.to_string())?;
        let mut out = HashMap::new();
        for &codec in codecs {
            if chosen.get().is_some_and(|c| *c != codec) {
                continue;
            }
            out.insert(codec, encoded.get(&pcm, codec).await?);
        }
        // Chosen while the others were being encoded.
        if let Some(&codec) = chosen.get() {
            if let Entry::Vacant(e) = out.entry(codec) {
                e.insert(encoded.get(&pcm, codec).await?);
            }
        }
        Ok(out)
    }

    /// The frames of `text`: prepared while ringing (waiting for that rendering if it is still
    /// under way), else rendered now (a hook's reprompt). A rendering that failed while ringing
    /// is not tried again: a server that is down would cost the caller another timeout of silence.
    async fn frames(
        &self,
        call: &ActiveCall,
        rendered: &mut Rendered,
        text: &str,
        codec: AudioCodec,
    ) -> Result<Frames, String> {
        loop {
            match rendered.done.get(text) {
                Some(Ok(by_codec)) => match by_codec.get(&codec) {
                    Some(f) => return Ok(f.clone()),
                    None => break,
                },
                Some(Err(e)) => return Err(e.clone()),
                None => {}
            }
            let Some(pending) = &rendered.pending else {
                break;
            };
            match pending.results.recv().await {
                Ok((t, r)) => {
                    rendered.done.insert(t, r);
                }
                Err(_) => rendered.pending = None,
            }
        }
        let req = self.request(call, text);
        let only = OnceLock::from(codec);
        let by_codec = Self::render(self.tts.as_ref(), &self.encoded, &req, &[codec], &only).await?;
        let frames = by_codec
            .get(&codec)
            .cloned()
            .ok_or_else(|| "the prompt was not encoded".to_string())?;
        rendered.done.insert(text.to_string(), Ok(by_codec));
        Ok(frames)
    }
}

/// The phrases a recogniser listens for: every synonym and value of every option and, with
/// `numbers`, ways of saying its number (marked as such: Whisper's prompt leaves them out).
fn phrases(choice: Option<&Choice>, numbers: bool) -> Vec<Phrase> {
    let Some(choice) = choice else {
        return Vec::new();
    };
    let mut out: Vec<Phrase> = choice
        .options
        .iter()
        .enumerate()
        .flat_map(|(i, o)| {
            std::iter::once(&o.value)
                .chain(o.synonyms.iter())
                .map(move |t| Phrase::answer(t.clone(), i))
        })
        .collect();
    if numbers {
        for (i, spoken) in crate::choice::number_phrases(choice.options.len()) {
            out.extend(spoken.into_iter().map(|text| Phrase {
                text,
                option: i,
                spoken_number: true,
            }));
        }
    }
    out
}

enum Wake {
    Media(Option<MediaEvent>),
    Timer,
}

impl CallScript for SpeechScript {
    fn check_request(&self, request: &CallRequest) -> Result<(), String> {
        let (voice, language) = (request.voice.as_deref(), request.language.as_deref());
        self.tts
            .supports(voice, language)
            .map_err(|e| format!("voice/language: {e}"))?;
        if request.choice.is_some() {
            self.stt
                .supports_language(language)
                .map_err(|e| format!("language: {e}"))?;
        }
        Ok(())
    }

    fn prepare(self: Arc<Self>, call: &ActiveCall, codecs: &[AudioCodec]) -> Box<dyn ScriptRun> {
        let tts = self.tts.clone();
        let encoded = self.encoded.clone();
        let mut texts = vec![call.request.message.clone()];
        if let Some(c) = &call.request.choice {
            texts.push(c.prompt.clone());
            texts.push(self.phrasing.acknowledgement.clone());
            texts.push(self.phrasing.goodbye.clone());
            if self.confirm.enabled {
                texts.extend(
                    c.options
                        .iter()
                        .map(|o| confirm::question(&self.phrasing.confirm_question, &o.value)),
                );
            }
        }
        let reqs: Vec<SynthRequest> = texts
            .into_iter()
            .filter(|t| !t.trim().is_empty())
            .map(|t| self.request(call, &t))
            .collect();
        let codecs = codecs.to_vec();
        let (tx, results) = async_channel::bounded(reqs.len().max(1));
        let codec = Arc::new(OnceLock::new());
        let chosen = codec.clone();
        let task = smol::spawn(async move {
            for req in reqs {
                let r = Self::render(tts.as_ref(), &encoded, &req, &codecs, &chosen).await;
                if tx.send((req.text, r)).await.is_err() {
                    break;
                }
            }
        });
        Box::new(SpeechRun {
            script: self,
            rendering: Rendering {
                results,
                codec,
                _task: task,
            },
        })
    }
}

/// One call's speech script: the prompts rendering since the INVITE, then the script.
struct SpeechRun {
    script: Arc<SpeechScript>,
    rendering: Rendering,
}

impl ScriptRun for SpeechRun {
    fn run<'a>(self: Box<Self>, ctx: ScriptContext<'a>) -> ScriptFuture<'a> {
        let SpeechRun { script, rendering } = *self;
        Box::pin(async move { script.run_script(ctx, rendering).await })
    }
}

impl SpeechScript {
    async fn run_script(&self, ctx: ScriptContext<'_>, rendering: Rendering) -> ScriptResult {
        let call = ctx.call;
        let _ = rendering.codec.set(ctx.codec);
        let mut rendered = Rendered {
            done: HashMap::new(),
            pending: Some(rendering),
        };
        let started = Instant::now();
        let now = || started.elapsed();
        let mut script = Script::new(call.request.choice.clone()).with_confirmation(self.confirm);
        let mut detector = (self.detector)();
        let mut vad_out = Vec::new();
        let mut utterance: Option<Box<dyn Utterance>> = None;
        let mut playing: Option<u64> = None;
        let mut inputs: Vec<Input> = Vec::new();
        let recognition = RecognitionContext {
            language: call.request.language.clone(),
            phrases: phrases(call.request.choice.as_ref(), self.spoken_numbers),
        };
        let confirmation = RecognitionContext {
            language: call.request.language.clone(),
            phrases: confirm::phrases(),
        };
        let mut speech_error: Option<String> = None;
        script.start(now());
        loop {
            while let Some(out) = script.poll_output() {
                match out {
                    Output::Event { name, detail } => call.events.event(name, detail),
                    Output::Play(prompt) => {
                        let text = self.text_for(call, &prompt);
                        if text.trim().is_empty() {
                            inputs.push(Input::PlaybackDone { complete: true });
                            continue;
                        }
                        match self.frames(call, &mut rendered, &text, ctx.codec).await {
                            Ok(frames) => match ctx.media.play(frames) {
                                Ok(id) => playing = Some(id),
                                Err(e) => {
                                    tracing::warn!(error = %e, "cannot play a prompt");
                                    inputs.push(Input::PlaybackDone { complete: false });
                                }
                            },
                            Err(e) => {
                                call.events.event(TimelineEvent::SpeechFailed, Some(e.clone()));
                                speech_error.get_or_insert(format!("text to speech failed: {e}"));
                                inputs.push(Input::PlaybackDone { complete: false });
                            }
                        }
                    }
                    Output::StopPlayback => {
                        let _ = ctx.media.stop_playback();
                    }
                    Output::Decide(answer) => {
                        let verdict = self.decider.decide(call, &answer).await;
                        inputs.push(Input::Decided(verdict));
                    }
                    Output::Hangup => {
                        let result = to_result(&script, speech_error.take());
                        publish(&ctx.progress, &result);
                        return result;
                    }
                }
            }
            publish(&ctx.progress, &to_result(&script, speech_error.clone()));
            if !inputs.is_empty() {
                for input in std::mem::take(&mut inputs) {
                    script.handle_input(now(), input);
                }
                continue;
            }
            let deadline = script.poll_timeout();
            let media = async { Wake::Media(ctx.media.events.recv().await.ok()) };
            let timer = async {
                match deadline {
                    Some(d) => {
                        smol::Timer::at(started + d).await;
                    }
                    None => std::future::pending::<()>().await,
                }
                Wake::Timer
            };
            match media.or(timer).await {
                Wake::Timer => script.handle_input(now(), Input::Timer),
                Wake::Media(None) => {
                    // The media session ended under us (the call is being torn down).
                    return to_result(&script, speech_error);
                }
                Wake::Media(Some(MediaEvent::PlaybackDone { id, complete })) => {
                    if playing == Some(id) {
                        playing = None;
                        script.handle_input(now(), Input::PlaybackDone { complete });
                    }
                }
                Wake::Media(Some(MediaEvent::Digit(d))) => {
                    call.events.event(TimelineEvent::Dtmf, Some(d.to_string()));
                    if utterance.take().is_some() {
                        detector.reset();
                    }
                    script.handle_input(now(), Input::Digit(d));
                }
                Wake::Media(Some(MediaEvent::Audio16k(samples))) => {
                    if !script.listening() {
                        if utterance.take().is_some() {
                            detector.reset();
                        }
                        continue;
                    }
                    vad_out.clear();
                    detector.push(&samples, &mut vad_out);
                    for ev in std::mem::take(&mut vad_out) {
                        let ctx = match script.listening_for() {
                            Some(Listening::Confirmation) => &confirmation,
                            _ => &recognition,
                        };
                        let input = self.on_vad(ev, ctx, &mut utterance).await;
                        if let Some(input) = input {
                            script.handle_input(now(), input);
                        }
                    }
                }
            }
        }
    }

    /// Feed one detector event to the recogniser; what the script must hear of it.
    async fn on_vad(
        &self,
        ev: VadEvent,
        recognition: &RecognitionContext,
        utterance: &mut Option<Box<dyn Utterance>>,
    ) -> Option<Input> {
        match ev {
            VadEvent::Started(preroll) => match self.stt.start(recognition).await {
                Ok(mut u) => {
                    if let Err(e) = u.push(&preroll).await {
                        return Some(Input::RecognizerFailed(e.to_string()));
                    }
                    *utterance = Some(u);
                    Some(Input::SpeechStarted)
                }
                Err(e) => Some(Input::RecognizerFailed(e.to_string())),
            },
            VadEvent::Audio(samples) => {
                let u = utterance.as_mut()?;
                match u.push(&samples).await {
                    Ok(_) => None,
                    Err(e) => {
                        *utterance = None;
                        Some(Input::RecognizerFailed(e.to_string()))
                    }
                }
            }
            VadEvent::Ended => {
                let u = utterance.take()?;
                Some(match u.finish().await {
                    Ok(rec) => Input::Heard(rec),
                    Err(e @ SpeechError::Busy { .. }) => Input::RecognizerBusy(e.to_string()),
                    Err(e) => Input::RecognizerFailed(e.to_string()),
                })
            }
            VadEvent::Discarded => {
                *utterance = None;
                Some(Input::SpeechDiscarded)
            }
        }
    }
}

fn to_result(script: &Script, speech_error: Option<String>) -> ScriptResult {
    let r = script.result();
    ScriptResult {
        message_played: r.message_played,
        choice_response: r.choice_response.clone(),
        choice_raw_text: r.choice_raw_text.clone(),
        confirmed_by: r.confirmed_by,
        error: r.error.clone().or(speech_error),
    }
}

fn publish(progress: &std::sync::Mutex<ScriptResult>, result: &ScriptResult) {
    let mut p = progress.lock().unwrap_or_else(|p| p.into_inner());
    *p = result.clone();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::ChoiceOption;
    use crate::speech::{Pcm, SpeechError};

    struct Beep;

    impl Synthesizer for Beep {
        fn name(&self) -> &str {
            "beep"
        }
        fn synthesize<'a>(&'a self, _: &'a SynthRequest) -> BoxFuture<'a, Result<Pcm, SpeechError>> {
            Box::pin(async {
                Ok(Pcm {
                    rate: 16_000,
                    samples: (0..16_000).map(|i| ((i % 40) as i16 - 20) * 500).collect(),
                })
            })
        }
    }

    #[test]
    fn once_the_answer_chose_a_codec_a_rendering_is_encoded_for_it_alone() {
        let offered = [AudioCodec::Pcmu, AudioCodec::Pcma, AudioCodec::Opus];
        let req = SynthRequest {
            text: "hello".into(),
            voice: None,
            language: None,
        };
        let encoded = PromptFrames::default();
        let render = |chosen: &OnceLock<AudioCodec>| {
            smol::block_on(SpeechScript::render(&Beep, &encoded, &req, &offered, chosen)).expect("renders")
        };
        // Still ringing: every codec offered, so the first frame can leave at the answer.
        let ringing = render(&OnceLock::new());
        assert_eq!(ringing.len(), 3);
        assert!(offered.iter().all(|c| ringing.contains_key(c)));
        // Answered with PCMA: nothing else is encoded.
        let answered = render(&OnceLock::from(AudioCodec::Pcma));
        assert_eq!(answered.keys().copied().collect::<Vec<_>>(), [AudioCodec::Pcma]);
        assert_eq!(answered[&AudioCodec::Pcma].len(), 50, "1 s in 20 ms frames");
    }

    #[test]
    fn the_recogniser_hears_the_options_words_and_with_numbers_their_numbers_marked() {
        let choice = Choice {
            prompt: "Confirm?".into(),
            options: vec![
                ChoiceOption {
                    value: "yes".into(),
                    synonyms: vec!["sure".into()],
                    dtmf: None,
                },
                ChoiceOption {
                    value: "no".into(),
                    synonyms: vec![],
                    dtmf: None,
                },
            ],
            timeout_seconds: 5,
            repeat_count: 2,
            matcher: None,
        };
        let own: Vec<Phrase> = vec![
            Phrase::answer("yes", 0),
            Phrase::answer("sure", 0),
            Phrase::answer("no", 1),
        ];
        assert_eq!(phrases(Some(&choice), false), own);
        let with = phrases(Some(&choice), true);
        assert_eq!(with[..3], own[..]);
        let numbers: Vec<(&str, usize)> = with[3..]
            .iter()
            .map(|p| {
                assert!(p.spoken_number, "{p:?}");
                (p.text.as_str(), p.option)
            })
            .collect();
        assert!(numbers.contains(&("option one", 0)) && numbers.contains(&("the second one", 1)));
        assert!(phrases(None, true).is_empty());
    }
}
