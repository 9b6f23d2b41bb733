//! Helpers shared by the remote engines (Wyoming, OpenAI-compatible HTTP).

use std::time::Duration;

use super::SpeechError;

pub(crate) fn remote(engine: &str, detail: impl Into<String>) -> SpeechError {
    SpeechError::Remote {
        engine: engine.into(),
        detail: detail.into(),
    }
}

pub(crate) fn unavailable(engine: &str, detail: impl Into<String>) -> SpeechError {
    SpeechError::Unavailable {
        engine: engine.into(),
        detail: detail.into(),
    }
}

/// The primary subtag of a BCP 47 tag in lower case (`en-US` -> `en`): what Whisper servers take.
pub(crate) fn language_code(tag: &str) -> Option<String> {
    let primary = tag.trim().split(['-', '_']).next().unwrap_or_default();
    (!primary.is_empty() && primary.chars().all(|c| c.is_ascii_alphabetic()))
        .then(|| primary.to_ascii_lowercase())
}

pub(crate) fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms.max(1))
}

/// Mix interleaved little-endian 16-bit frames of `channels` channels down to mono.
pub(crate) fn s16le_to_mono(bytes: &[u8], channels: usize, out: &mut Vec<i16>) {
    let channels = channels.max(1);
    for frame in bytes.chunks_exact(2 * channels) {
        let sum: i32 = frame
            .chunks_exact(2)
            .map(|s| i32::from(i16::from_le_bytes([s[0], s[1]])))
            .sum();
        // The mean of i16 values is an i16.
        out.push((sum / channels as i32) as i16);
    }
}

pub(crate) fn s16le_bytes(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_codes() {
        assert_eq!(language_code("en-US").as_deref(), Some("en"));
        assert_eq!(language_code("DE").as_deref(), Some("de"));
        assert_eq!(language_code("pt_BR").as_deref(), Some("pt"));
        assert_eq!(language_code(""), None);
        assert_eq!(language_code("1x"), None);
    }

    #[test]
    fn stereo_to_mono() {
        let mut out = Vec::new();
        s16le_to_mono(&s16le_bytes(&[100, 300, i16::MIN, i16::MIN, 7]), 2, &mut out);
        assert_eq!(out, vec![200, i16::MIN]);
    }
}
