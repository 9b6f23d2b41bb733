//! The recognition dev set (`tests/devset/`, rendered by `tests/support/devset_render.py`) and the
//! harness that measures any [`Recognizer`] on it through the decision path of a call: the clip
//! through the line condition and the G.711 chain, framed by line noise, cut by the endpointer the
//! call uses, pushed in 20 ms packets, finished, and read by the built-in matcher with the set's
//! options and the default `[script]` settings (spoken numbers on).
//!
//! Used by `tests/interop/recognition_devset.rs` (floors on the held-out half) and `benches/recognition.rs`
//! (the figures). The split into a tuning and a held-out half is written in the data
//! (`tests/devset/README.md`); nothing here chooses it.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;
use sip_assistant::call::ChoiceOption;
use sip_assistant::choice::{match_answer, Answer, Decision, MatchSettings};
use sip_assistant::config::Config;
use sip_assistant::media::{g711, resample};
use sip_assistant::speech::vad::{Endpointer, VadEvent};
use sip_assistant::speech::{engines, wav, Phrase, Recognition, RecognitionContext, Recognizer};

/// The dev set's directory in the repository.
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/devset")
}

/// Which half of the dev set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Half {
    Tune,
    Held,
}

impl Half {
    pub fn parse(s: &str) -> Option<Half> {
        match s {
            "tune" | "tuning" => Some(Half::Tune),
            "held" | "held-out" => Some(Half::Held),
            _ => None,
        }
    }
}

/// The line condition of an item, applied on the 8 kHz side of the G.711 chain.
#[derive(Debug, Clone, Deserialize)]
pub struct Condition {
    pub name: String,
    pub gain_db: f64,
    pub snr_db: Option<f64>,
}

/// One rendered reply of the manifest.
#[derive(Debug, Clone, Deserialize)]
pub struct Item {
    pub id: String,
    pub set: String,
    /// exact, natural, negated, question, off_topic, noise.
    pub kind: String,
    pub text: String,
    /// The option value a call must pick; `None`: must be rejected (no option).
    pub expect: Option<String>,
    pub half: Half,
    pub voice: String,
    /// flite, espeak, piper, noise.
    pub family: String,
    pub condition: Condition,
    /// The clip as the voice said it (WAV, the engine's own rate).
    pub audio: PathBuf,
}

/// One choice set: the question's options as a call's `choice.options` has them.
#[derive(Debug, Clone, Deserialize)]
pub struct ChoiceSet {
    pub set: String,
    pub question: String,
    pub options: Vec<ChoiceOption>,
}

impl ChoiceSet {
    /// What the recogniser listens for, as a call builds it with `script.spoken_numbers = true`:
    /// every value and synonym, then the ways of saying each option's number.
    pub fn context(&self) -> RecognitionContext {
        let mut phrases: Vec<Phrase> = self
            .options
            .iter()
            .enumerate()
            .flat_map(|(i, o)| {
                std::iter::once(&o.value)
                    .chain(o.synonyms.iter())
                    .map(move |t| Phrase::answer(t.clone(), i))
            })
            .collect();
        for (option, said) in sip_assistant::choice::number_phrases(self.options.len()) {
            phrases.extend(said.into_iter().map(|text| Phrase {
                text,
                option,
                spoken_number: true,
            }));
        }
        RecognitionContext {
            language: None,
            phrases,
        }
    }
}

/// The choice sets, by name.
pub fn choice_sets() -> BTreeMap<String, ChoiceSet> {
    let mut out = BTreeMap::new();
    for name in ["yesno", "departments", "weekdays", "names"] {
        let path = data_dir().join(format!("{name}.json"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let set: ChoiceSet =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()));
        out.insert(name.to_string(), set);
    }
    out
}

/// The manifest's path: `SIP_ASSISTANT_DEVSET_MANIFEST`, else the renderer's answer (it renders
/// what is missing from its cache first, with the speech venv's Python).
pub fn manifest_path() -> PathBuf {
    // Rendered once per test process: tests that start together wait for the first.
    static MANIFEST: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    MANIFEST.get_or_init(render_manifest).clone()
}

fn render_manifest() -> PathBuf {
    if let Some(p) = std::env::var_os("SIP_ASSISTANT_DEVSET_MANIFEST") {
        return PathBuf::from(p);
    }
    let support = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support");
    let venv = Command::new(support.join("speech_venv.sh"))
        .output()
        .unwrap_or_else(|e| panic!("run speech_venv.sh: {e}"));
    assert!(venv.status.success(), "speech_venv.sh failed");
    let venv = PathBuf::from(String::from_utf8_lossy(&venv.stdout).trim());
    let out = Command::new(venv.join("bin/python"))
        .arg(support.join("devset_render.py"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("run devset_render.py: {e}"));
    assert!(out.status.success(), "devset_render.py failed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Every item of the dev set (both halves), in manifest order.
pub fn items() -> Vec<Item> {
    let path = manifest_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("manifest line {l}: {e}")))
        .collect()
}

/// A number from `key`, the same on every machine (FNV-1a).
fn seed_of(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Gaussian-ish deterministic noise (sum of four xorshift uniforms), unit variance.
fn unit_noise(len: usize, seed: u64) -> Vec<f64> {
    let mut x = seed.max(1);
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..len)
        .map(|_| ((next() + next() + next() + next()) - 2.0) * 3f64.sqrt())
        .collect()
}

fn rms(x: &[f64]) -> f64 {
    (x.iter().map(|v| v * v).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

/// The item's clip as the recogniser's input: to 8 kHz, the condition's gain and line noise,
/// µ-law encode and decode, back to 16 kHz; framed by half a second of quiet line noise before and
/// a second after (what the endpointer sees around a reply).
pub fn line_audio(item: &Item) -> Vec<i16> {
    let bytes = std::fs::read(&item.audio).unwrap_or_else(|e| panic!("read {}: {e}", item.audio.display()));
    let pcm = wav::read(&bytes).unwrap_or_else(|e| panic!("{}: {e}", item.audio.display()));
    let narrow = resample::resample_all(pcm.rate, 8000, &pcm.samples).expect("supported rate");
    let gain = 10f64.powf(item.condition.gain_db / 20.0);
    let mut x: Vec<f64> = narrow.iter().map(|&s| f64::from(s) * gain).collect();
    let seed = seed_of(&item.id);
    if let Some(snr) = item.condition.snr_db {
        // SNR against the speech's level where it speaks (RMS over samples above -40 dB of peak).
        let peak = x.iter().fold(0f64, |m, v| m.max(v.abs()));
        let loud: Vec<f64> = x.iter().copied().filter(|v| v.abs() > peak / 100.0).collect();
        let level = rms(&loud) / 10f64.powf(snr / 20.0);
        let noise = unit_noise(x.len(), seed);
        for (v, n) in x.iter_mut().zip(noise) {
            *v += n * level;
        }
    }
    let narrow: Vec<i16> = x.iter().map(|v| v.clamp(-32768.0, 32767.0) as i16).collect();
    let mut law = Vec::new();
    g711::encode(g711::Law::Ulaw, &narrow, &mut law);
    let mut decoded = Vec::new();
    g711::decode(g711::Law::Ulaw, &law, &mut decoded);
    let speech = resample::resample_all(8000, 16_000, &decoded).expect("supported rate");
    let floor =
        |len: usize, s: u64| -> Vec<i16> { unit_noise(len, s).iter().map(|v| (v * 30.0) as i16).collect() };
    let mut out = floor(8000, seed ^ 1);
    out.extend_from_slice(&speech);
    out.extend(floor(16_000, seed ^ 2));
    out
}

/// The utterance the call's endpointer (default `[speech.vad]`) cuts from `audio` fed in 20 ms
/// packets, or `None` when it finds none (the call hears nothing and asks again).
pub fn utterance(audio: &[i16]) -> Option<Vec<i16>> {
    let mut ep = Endpointer::new(engines::vad_settings(&Config::default().speech));
    let mut cut: Option<Vec<i16>> = None;
    for packet in audio.chunks(320) {
        ep.push(packet);
        while let Some(ev) = ep.poll_event() {
            match ev {
                VadEvent::SpeechStart { audio, .. } => cut = Some(audio.to_vec()),
                VadEvent::Audio(a) => {
                    if let Some(c) = cut.as_mut() {
                        c.extend_from_slice(&a);
                    }
                }
                VadEvent::SpeechEnd { .. } => return cut,
                VadEvent::NoSpeechTimeout { .. } => return None,
            }
        }
    }
    None
}

/// CPU time of the whole process so far (user + system; every thread, whisper.cpp's included).
pub fn process_cpu() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Resident set size of this process now, KiB (from /proc; 0 where unreadable).
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// What a call made of one item.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub item: Item,
    /// The option value picked, `None` when the call would reject (ask again).
    pub got: Option<String>,
    /// The recogniser's words (the call's `choice_raw_text`); `None` for nothing heard.
    pub raw: Option<String>,
    /// The endpointer found no utterance: the recogniser never ran.
    pub no_speech: bool,
    /// The recogniser failed (counted as a rejection, as a call re-prompts).
    pub error: Option<String>,
    /// End of speech -> decision: wall time of `finish` and the match.
    pub latency: Duration,
    /// CPU of the process over the same span; only meaningful when items run one at a time.
    pub cpu: Duration,
}

impl Outcome {
    pub fn right(&self) -> bool {
        self.got == self.item.expect
    }
}

/// Runs one item through the call's path with `r`.
pub fn run_item(r: &dyn Recognizer, set: &ChoiceSet, settings: &MatchSettings, item: &Item) -> Outcome {
    let audio = line_audio(item);
    let mut out = Outcome {
        item: item.clone(),
        got: None,
        raw: None,
        no_speech: false,
        error: None,
        latency: Duration::ZERO,
        cpu: Duration::ZERO,
    };
    let Some(cut) = utterance(&audio) else {
        out.no_speech = true;
        return out;
    };
    let ctx = set.context();
    let result: Result<(Recognition, Duration, Duration), String> = smol::block_on(async {
        let mut u = r.start(&ctx).await.map_err(|e| e.to_string())?;
        for packet in cut.chunks(320) {
            u.push(packet).await.map_err(|e| e.to_string())?;
        }
        let (t0, c0) = (Instant::now(), process_cpu());
        let rec = u.finish().await.map_err(|e| e.to_string())?;
        Ok((rec, t0.elapsed(), c0))
    });
    let (rec, decode, cpu0) = match result {
        Ok(r) => r,
        Err(e) => {
            out.error = Some(e);
            return out;
        }
    };
    let t1 = Instant::now();
    out.raw = rec.raw_text().map(str::to_string);
    let alternatives = rec.alternatives();
    if !alternatives.is_empty() {
        let answer = Answer {
            alternatives,
            digits: String::new(),
            attempt: 0,
        };
        if let Decision::Matched { option, .. } = match_answer(&answer, &set.options, settings) {
            out.got = set.options.get(option).map(|o| o.value.clone());
        }
    }
    out.latency = decode + t1.elapsed();
    out.cpu = process_cpu().saturating_sub(cpu0);
    out
}

/// Runs `items` with `r` on `threads` threads (1: one at a time, so CPU per reply is exact),
/// calling `progress(done, total)` after each.
pub fn run_all(
    r: &dyn Recognizer,
    items: &[Item],
    threads: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Vec<Outcome> {
    let sets = choice_sets();
    let settings = sip_assistant::driver::speech_setup::match_settings(&Config::default());
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Outcome>>> = Mutex::new(vec![None; items.len()]);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let set = sets
                    .get(&item.set)
                    .unwrap_or_else(|| panic!("unknown set {}", item.set));
                let o = run_item(r, set, &settings, item);
                if let Ok(mut v) = results.lock() {
                    v[i] = Some(o);
                }
                progress(done.fetch_add(1, Ordering::Relaxed) + 1, items.len());
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect()
}

/// Answers right and must-reject replies rejected, for one slice of the outcomes.
#[derive(Debug, Default, Clone, Copy)]
pub struct Score {
    pub answers: usize,
    pub right: usize,
    pub rejects: usize,
    pub rejected: usize,
}

impl Score {
    pub fn add(&mut self, o: &Outcome) {
        if o.item.expect.is_some() {
            self.answers += 1;
            self.right += usize::from(o.right());
        } else {
            self.rejects += 1;
            self.rejected += usize::from(o.got.is_none());
        }
    }

    pub fn right_pct(&self) -> f64 {
        100.0 * self.right as f64 / self.answers.max(1) as f64
    }

    pub fn rejected_pct(&self) -> f64 {
        100.0 * self.rejected as f64 / self.rejects.max(1) as f64
    }

    fn cell(n: usize, of: usize) -> String {
        if of == 0 {
            "-".to_string()
        } else {
            format!("{n}/{of} ({:.1} %)", 100.0 * n as f64 / of as f64)
        }
    }

    pub fn line(&self) -> String {
        format!(
            "answers right {:>20}   must-reject rejected {:>20}",
            Self::cell(self.right, self.answers),
            Self::cell(self.rejected, self.rejects)
        )
    }
}

/// Scores by a key of the outcome (family, kind, set, condition...).
pub fn score_by(outcomes: &[Outcome], key: impl Fn(&Outcome) -> String) -> BTreeMap<String, Score> {
    let mut out: BTreeMap<String, Score> = BTreeMap::new();
    for o in outcomes {
        out.entry(key(o)).or_default().add(o);
    }
    out
}

pub fn score(outcomes: &[Outcome]) -> Score {
    let mut s = Score::default();
    for o in outcomes {
        s.add(o);
    }
    s
}

/// The "natural and clean synthetic voices" of the goal: every family but espeak-ng
/// (reported on its own), noise lines included (they are must-reject items of no voice).
pub fn is_goal_voice(o: &Outcome) -> bool {
    o.item.family != "espeak"
}

/// Percentile `p` (0..=100) of `values` (sorted here), zero when empty.
pub fn percentile(values: &[Duration], p: f64) -> Duration {
    let mut v = values.to_vec();
    v.sort();
    if v.is_empty() {
        return Duration::ZERO;
    }
    let at = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[at.min(v.len() - 1)]
}

/// Prints the tables: overall, the goal voices, by family, by kind, by set, by condition.
pub fn print_report(title: &str, outcomes: &[Outcome]) {
    println!("== {title}: {} items", outcomes.len());
    println!("  {:<28} {}", "all", score(outcomes).line());
    let goal: Vec<Outcome> = outcomes.iter().filter(|o| is_goal_voice(o)).cloned().collect();
    println!("  {:<28} {}", "flite+piper+noise (goal)", score(&goal).line());
    for (name, key) in [
        (
            "family",
            (|o: &Outcome| o.item.family.clone()) as fn(&Outcome) -> String,
        ),
        ("kind", |o: &Outcome| o.item.kind.clone()),
        ("set", |o: &Outcome| o.item.set.clone()),
        ("condition", |o: &Outcome| o.item.condition.name.clone()),
    ] {
        for (k, s) in score_by(outcomes, key) {
            println!("  {:<28} {}", format!("{name} {k}"), s.line());
        }
    }
    let decoded: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| !o.no_speech && o.error.is_none())
        .collect();
    let lat: Vec<Duration> = decoded.iter().map(|o| o.latency).collect();
    let cpu: Vec<Duration> = decoded.iter().map(|o| o.cpu).collect();
    let no_speech = outcomes.iter().filter(|o| o.no_speech).count();
    let lost = outcomes
        .iter()
        .filter(|o| o.no_speech && o.item.expect.is_some())
        .count();
    let errors = outcomes.iter().filter(|o| o.error.is_some()).count();
    println!(
        "  end of speech -> decision: p50 {} ms, p95 {} ms, max {} ms; CPU per reply p50 {} ms, p95 {} ms, mean {} ms ({} decoded)",
        percentile(&lat, 50.0).as_millis(),
        percentile(&lat, 95.0).as_millis(),
        percentile(&lat, 100.0).as_millis(),
        percentile(&cpu, 50.0).as_millis(),
        percentile(&cpu, 95.0).as_millis(),
        cpu.iter().sum::<Duration>().as_millis() / cpu.len().max(1) as u128,
        decoded.len()
    );
    println!("  endpointer found no speech: {no_speech} items ({lost} of them answers); recogniser errors: {errors}");
}

/// Prints every item the call got wrong.
pub fn print_failures(outcomes: &[Outcome]) {
    for o in outcomes.iter().filter(|o| !o.right()) {
        println!(
            "  FAIL {:<8} {:<10} {:<32} {:<40} want {:<10} got {:<10} heard {:?}{}{}",
            o.item.family,
            o.item.kind,
            o.item.voice,
            format!("{:?}", o.item.text),
            o.item.expect.as_deref().unwrap_or("null"),
            o.got.as_deref().unwrap_or("null"),
            o.raw.as_deref().unwrap_or(""),
            if o.no_speech { " (no speech found)" } else { "" },
            o.error
                .as_deref()
                .map(|e| format!(" error: {e}"))
                .unwrap_or_default(),
        );
    }
}
