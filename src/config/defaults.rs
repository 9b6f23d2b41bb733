//! Defaults of configuration keys that the engines and the call script also use: kept here, in
//! the configuration's own module, so the configuration needs nothing of the modules it configures.

// PocketSphinx (`speech.pocketsphinx.*`).
/// Default acoustic model directory of Debian's `pocketsphinx-en-us`.
pub const DEFAULT_MODEL_DIR: &str = "/usr/share/pocketsphinx/model/en-us/en-us";
/// Default pronunciation dictionary of Debian's `pocketsphinx-en-us`.
pub const DEFAULT_DICT: &str = "/usr/share/pocketsphinx/model/en-us/cmudict-en-us.dict";
/// Default `reject_threshold`: the lowest path score per second of audio (log base 1.0001, so
/// negative) an answer may have. A floor only: the decoy check does the finer work.
pub const DEFAULT_REJECT_THRESHOLD: i64 = -6_000;
/// Default `accept_threshold`: answers whose path score per second reaches it skip the decoy
/// check.
pub const DEFAULT_ACCEPT_THRESHOLD: i64 = -3_800;
/// Default `silence_threshold`: the lowest acoustic score a silence segment of the answer's path
/// may have (real pauses score about -100 to -500; swallowed words far less).
pub const DEFAULT_SILENCE_THRESHOLD: i64 = -1_000;
/// Default `noise_floor_db`: the added noise's peak is 28 dB below the reply's RMS level.
pub const DEFAULT_NOISE_FLOOR_DB: u8 = 28;
/// Default `spot_threshold` (tenths of a decimal exponent per phone; 0 = no keyword spotting).
/// Off: on the dev set spotting takes many more natural answers but rejects far fewer must-reject
/// replies (docs/recognition.md), and a wrong answer recorded is worse than a question asked again.
pub const DEFAULT_SPOT_THRESHOLD: u32 = 0;

// The call script's confirmation (`script.confirm_*`).
/// The default of `script.confirm_below`.
pub const DEFAULT_CONFIRM_BELOW: f64 = 0.6;

/// The default of `script.confirm_question`; `{option}` stands for the option's value.
pub const DEFAULT_QUESTION: &str = "Did you say {option}? Say yes or press 1.";

/// The flite voices (`speech.flite.voice`) the flite engine knows, whether or not their library is
/// installed ([`crate::speech::flite`] maps each to its library).
pub const FLITE_VOICES: &[&str] = &["slt", "kal", "awb", "rms"];
