//! eSpeak NG as a subprocess: `espeak-ng --stdout`, text on stdin, WAV (22.05 kHz) on stdout.
//!
//! Not linked: libespeak-ng is GPL-3, and linking it would make the binary GPL; a subprocess does
//! not. Robotic but fast, and it speaks 100+ languages: the voice is the request's voice, else an
//! espeak name derived from its language (`en-US` → `en-us`, falling back to `de` for `de-DE`),
//! else the configured default.

use std::process::Stdio;
use std::sync::OnceLock;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use smol::process::Command;

use super::{wav, BoxFuture, Pcm, SpeechError, SynthRequest, Synthesizer};

const ENGINE: &str = "espeak";
const INSTALL: &str = "apt install espeak-ng (or set speech.espeak.command)";
/// Longest text passed to espeak, so a runaway request cannot render an hour of audio.
const MAX_TEXT: usize = 20_000;

/// The espeak-ng synthesizer.
#[derive(Debug, Clone)]
pub struct Espeak {
    command: String,
    default_voice: String,
    /// The language codes `espeak-ng --voices` lists, read once (empty when it cannot be run).
    languages: OnceLock<Vec<String>>,
}

fn unavailable(detail: impl Into<String>) -> SpeechError {
    SpeechError::Unavailable {
        engine: ENGINE.into(),
        detail: detail.into(),
    }
}

/// The language column of `espeak-ng --voices` (after its header line), lower case.
fn parse_voice_list(listing: &str) -> Vec<String> {
    listing
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(str::to_ascii_lowercase)
        .collect()
}

/// Voices to try for a language tag, most specific first (`pt-BR` → `pt-br`, `pt`).
pub fn voices_for_language(tag: &str) -> Vec<String> {
    let full = tag.trim().replace('_', "-").to_ascii_lowercase();
    let mut out = Vec::new();
    if full.is_empty() || !full.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return out;
    }
    if let Some((primary, _)) = full.split_once('-') {
        let primary = primary.to_string();
        out.push(full);
        out.push(primary);
    } else {
        out.push(full);
    }
    out
}

impl Espeak {
    pub fn new(command: impl Into<String>, default_voice: impl Into<String>) -> Self {
        Self {
            command: command.into(),
            default_voice: default_voice.into(),
            languages: OnceLock::new(),
        }
    }

    /// The languages espeak-ng has voices for (`en-us`, `de`, ...), from `espeak-ng --voices`.
    fn languages(&self) -> &[String] {
        self.languages.get_or_init(|| {
            let out = std::process::Command::new(&self.command)
                .arg("--voices")
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output();
            match out {
                Ok(o) if o.status.success() => parse_voice_list(&String::from_utf8_lossy(&o.stdout)),
                _ => Vec::new(),
            }
        })
    }

    /// Check that the command runs (used by `check-config` and at start-up).
    pub fn probe(&self) -> Result<(), SpeechError> {
        match std::process::Command::new(&self.command)
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(unavailable(format!(
                "'{} --version' failed ({s}); {INSTALL}",
                self.command
            ))),
            Err(e) => Err(unavailable(format!(
                "cannot run '{}' ({e}); {INSTALL}",
                self.command
            ))),
        }
    }

    async fn run(&self, voice: &str, text: &str) -> Result<Result<Pcm, String>, SpeechError> {
        let mut child = Command::new(&self.command)
            .args(["--stdout", "--stdin", "-v", voice])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| unavailable(format!("cannot run '{}' ({e}); {INSTALL}", self.command)))?;
        let io = |e: std::io::Error| SpeechError::Engine {
            engine: ENGINE.into(),
            detail: format!("talking to espeak-ng: {e}"),
        };
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| io(std::io::ErrorKind::BrokenPipe.into()))?;
        let mut stdout = child
            .stdout
            .take()
            .ok_or_else(|| io(std::io::ErrorKind::BrokenPipe.into()))?;
        let mut stderr = child
            .stderr
            .take()
            .ok_or_else(|| io(std::io::ErrorKind::BrokenPipe.into()))?;
        let input = format!("{text}\n");
        let write = async move {
            stdin.write_all(input.as_bytes()).await?;
            stdin.close().await
        };
        let read = async move {
            let mut out = Vec::new();
            stdout.read_to_end(&mut out).await?;
            Ok::<_, std::io::Error>(out)
        };
        let read_err = async move {
            let mut err = String::new();
            let _ = stderr.read_to_string(&mut err).await;
            err
        };
        let (w, (out, err)) =
            futures_lite::future::zip(write, futures_lite::future::zip(read, read_err)).await;
        // A broken pipe on stdin just means espeak exited early; its status says why.
        if let Err(e) = w {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                return Err(io(e));
            }
        }
        let out = out.map_err(io)?;
        let status = child.status().await.map_err(io)?;
        if !status.success() {
            return Ok(Err(err.trim().to_string()));
        }
        wav::read(&out).map(Ok).map_err(|e| SpeechError::Engine {
            engine: ENGINE.into(),
            detail: format!("unreadable audio from espeak-ng: {e}"),
        })
    }
}

impl Synthesizer for Espeak {
    fn name(&self) -> &str {
        ENGINE
    }

    fn supports(&self, _voice: Option<&str>, language: Option<&str>) -> Result<(), String> {
        let Some(lang) = language else {
            return Ok(());
        };
        let candidates = voices_for_language(lang);
        if candidates.is_empty() {
            return Err(format!("'{lang}' is not a language tag"));
        }
        let known = self.languages();
        // An unreadable voice list leaves the check to the rendering itself.
        if known.is_empty() || candidates.iter().any(|c| known.contains(c)) {
            Ok(())
        } else {
            Err(format!(
                "espeak-ng has no voice for '{lang}' (`espeak-ng --voices` lists them)"
            ))
        }
    }

    fn synthesize<'a>(&'a self, req: &'a SynthRequest) -> BoxFuture<'a, Result<Pcm, SpeechError>> {
        Box::pin(async move {
            let text = req.text.replace('\0', " ");
            if text.trim().is_empty() {
                return Err(SpeechError::Invalid("nothing to say: the text is empty".into()));
            }
            if text.len() > MAX_TEXT {
                return Err(SpeechError::Invalid(format!("text longer than {MAX_TEXT} bytes")));
            }
            let candidates = match (&req.voice, &req.language) {
                (Some(v), _) => vec![v.clone()],
                (None, Some(lang)) => {
                    let c = voices_for_language(lang);
                    if c.is_empty() {
                        return Err(SpeechError::Invalid(format!("'{lang}' is not a language tag")));
                    }
                    c
                }
                (None, None) => vec![self.default_voice.clone()],
            };
            if candidates.iter().any(|v| v.starts_with('-') || v.is_empty()) {
                return Err(SpeechError::Invalid(
                    "espeak voice names cannot start with '-'".into(),
                ));
            }
            let mut last = String::new();
            for voice in &candidates {
                match self.run(voice, &text).await? {
                    Ok(pcm) => return Ok(pcm),
                    Err(msg) => last = msg,
                }
            }
            Err(SpeechError::Invalid(format!(
                "espeak-ng cannot speak with voice {}: {last}",
                candidates.join(" or ")
            )))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(text: &str, voice: Option<&str>, language: Option<&str>) -> SynthRequest {
        SynthRequest {
            text: text.into(),
            voice: voice.map(str::to_string),
            language: language.map(str::to_string),
        }
    }

    #[test]
    #[ignore = "interop tier: needs espeak-ng (cargo test -- --include-ignored; .ci/dev test)"]
    fn languages_are_checked_against_the_installed_voices() {
        let e = Espeak::new("espeak-ng", "en-us");
        assert_eq!(e.supports(None, Some("de-DE")), Ok(()));
        assert_eq!(e.supports(None, Some("en-GB")), Ok(()));
        assert_eq!(e.supports(Some("anything"), None), Ok(()));
        let no = e.supports(None, Some("xx-YY")).expect_err("no such language");
        assert!(no.contains("no voice for 'xx-YY'"), "{no}");
        assert!(e.supports(None, Some("-x")).is_err());
        assert_eq!(
            parse_voice_list(
                "Pty Language Age/Gender VoiceName\n 5  af  --/M  Afrikaans  gmw/af\n 2  en-US  --/M  x  y\n"
            ),
            ["af", "en-us"]
        );
    }

    #[test]
    fn language_tags_map_to_espeak_voices() {
        assert_eq!(voices_for_language("en-US"), ["en-us", "en"]);
        assert_eq!(voices_for_language("de"), ["de"]);
        assert_eq!(voices_for_language("pt_BR"), ["pt-br", "pt"]);
        assert!(voices_for_language("-x; rm").is_empty());
    }

    #[test]
    #[ignore = "interop tier: needs espeak-ng (cargo test -- --include-ignored; .ci/dev test)"]
    fn speaks_english_and_german_at_22050_hz() {
        let e = Espeak::new("espeak-ng", "en-us");
        e.probe().expect("espeak-ng installed (apt install espeak-ng)");
        let en = smol::block_on(e.synthesize(&req("yes I confirm", None, None))).expect("english");
        assert_eq!(en.rate, 22_050);
        assert!(
            (0.5..3.0).contains(&en.duration().as_secs_f64()),
            "{:?}",
            en.duration()
        );
        let de = smol::block_on(e.synthesize(&req("Guten Tag", None, Some("de-DE")))).expect("de-DE → de");
        assert!(!de.samples.is_empty());
    }

    #[test]
    fn unknown_voice_and_missing_command_are_typed_errors() {
        let e = Espeak::new("espeak-ng", "en-us");
        let bad = smol::block_on(e.synthesize(&req("hello", Some("zz-notavoice"), None)));
        assert!(
            matches!(bad, Err(SpeechError::Invalid(ref m)) if m.contains("zz-notavoice")),
            "{bad:?}"
        );
        let dash = smol::block_on(e.synthesize(&req("hello", Some("--help"), None)));
        assert!(matches!(dash, Err(SpeechError::Invalid(_))), "{dash:?}");
        let missing = Espeak::new("/nonexistent/espeak-ng", "en-us");
        let err = missing.probe().expect_err("missing");
        assert!(err.to_string().contains("apt install espeak-ng"), "{err}");
        let err = smol::block_on(missing.synthesize(&req("hello", None, None))).expect_err("missing");
        assert!(matches!(err, SpeechError::Unavailable { .. }), "{err:?}");
    }
}
