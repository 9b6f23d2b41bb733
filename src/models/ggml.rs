//! The header of a whisper.cpp ggml model file: read and sanity-checked in Rust before the file
//! is handed to whisper.cpp, so a wrong path, a truncated download or a file of another format
//! gives an error that names the key to fix instead of a failure inside the C++ loader.

use std::fmt;
use std::io::Read;
use std::path::Path;

/// `ggml` in the file's first four bytes (little-endian `0x67676d6c`).
const MAGIC: u32 = 0x6767_6d6c;
/// whisper.cpp's vocabulary size from which a model is multilingual.
const MULTILINGUAL_VOCAB: i32 = 51_865;

/// Why a file is not a usable ggml Whisper model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("cannot read it: {0}")]
    Read(String),
    #[error("it is not a ggml Whisper model (its first bytes are not 'ggml')")]
    NotGgml,
    #[error("its header is implausible ({0}); the file is damaged or not a Whisper model")]
    Implausible(String),
}

/// The hyper-parameters at the start of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelHeader {
    pub n_vocab: i32,
    pub n_audio_ctx: i32,
    pub n_audio_state: i32,
    pub n_audio_head: i32,
    pub n_audio_layer: i32,
    pub n_text_ctx: i32,
    pub n_text_state: i32,
    pub n_text_head: i32,
    pub n_text_layer: i32,
    pub n_mels: i32,
    /// 0 = float32, 1 = float16, others quantized (the quantization version times 1000 added).
    pub ftype: i32,
}

impl ModelHeader {
    /// Parse the first 48 bytes of a model file.
    pub fn parse(bytes: &[u8]) -> Result<Self, HeaderError> {
        let word = |i: usize| -> Option<[u8; 4]> { bytes.get(i * 4..i * 4 + 4)?.try_into().ok() };
        let magic = word(0).map(u32::from_le_bytes).ok_or(HeaderError::NotGgml)?;
        if magic != MAGIC {
            return Err(HeaderError::NotGgml);
        }
        let mut v = [0i32; 11];
        for (i, slot) in v.iter_mut().enumerate() {
            *slot = word(i + 1)
                .map(i32::from_le_bytes)
                .ok_or_else(|| HeaderError::Implausible("the file ends inside its header".into()))?;
        }
        let h = ModelHeader {
            n_vocab: v[0],
            n_audio_ctx: v[1],
            n_audio_state: v[2],
            n_audio_head: v[3],
            n_audio_layer: v[4],
            n_text_ctx: v[5],
            n_text_state: v[6],
            n_text_head: v[7],
            n_text_layer: v[8],
            n_mels: v[9],
            ftype: v[10],
        };
        h.check()?;
        Ok(h)
    }

    /// Read and check the header of the file at `path`.
    pub fn read(path: &Path) -> Result<Self, HeaderError> {
        let mut f = std::fs::File::open(path).map_err(|e| HeaderError::Read(e.to_string()))?;
        let mut buf = [0u8; 48];
        let mut got = 0;
        while got < buf.len() {
            match f.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(HeaderError::Read(e.to_string())),
            }
        }
        Self::parse(&buf[..got])
    }

    fn check(&self) -> Result<(), HeaderError> {
        let bad = |what: &str, v: i32| Err(HeaderError::Implausible(format!("{what} = {v}")));
        for (what, v, lo, hi) in [
            ("n_vocab", self.n_vocab, 1_000, 100_000),
            ("n_audio_ctx", self.n_audio_ctx, 1, 4_096),
            ("n_audio_state", self.n_audio_state, 64, 4_096),
            ("n_audio_head", self.n_audio_head, 1, 64),
            ("n_audio_layer", self.n_audio_layer, 1, 64),
            ("n_text_ctx", self.n_text_ctx, 1, 4_096),
            ("n_text_state", self.n_text_state, 64, 4_096),
            ("n_text_head", self.n_text_head, 1, 64),
            ("n_text_layer", self.n_text_layer, 1, 64),
            ("n_mels", self.n_mels, 40, 256),
            ("ftype", self.ftype, 0, 10_000),
        ] {
            if !(lo..=hi).contains(&v) {
                return bad(what, v);
            }
        }
        if self.n_audio_state != self.n_text_state {
            return Err(HeaderError::Implausible(format!(
                "n_audio_state {} differs from n_text_state {}",
                self.n_audio_state, self.n_text_state
            )));
        }
        Ok(())
    }

    /// Whether the model knows languages other than English (`.en` models do not).
    pub fn is_multilingual(&self) -> bool {
        self.n_vocab >= MULTILINGUAL_VOCAB
    }

    /// The size name whisper.cpp gives it (tiny, base, small, medium, large).
    pub fn size_name(&self) -> &'static str {
        match self.n_audio_layer {
            4 => "tiny",
            6 => "base",
            12 => "small",
            24 => "medium",
            32 => "large",
            _ => "unknown size",
        }
    }
}

impl fmt::Display for ModelHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let weights = match self.ftype % 1000 {
            0 => "float32",
            1 => "float16",
            _ => "quantized",
        };
        write!(
            f,
            "{}{}, {} layers, {} weights",
            self.size_name(),
            if self.is_multilingual() {
                " (multilingual)"
            } else {
                ".en (English only)"
            },
            self.n_audio_layer,
            weights
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header of tiny.en as the converter writes it.
    fn tiny_en() -> Vec<u8> {
        let mut b = MAGIC.to_le_bytes().to_vec();
        for v in [51_864i32, 1500, 384, 6, 4, 448, 384, 6, 4, 80, 1] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b
    }

    #[test]
    fn tiny_en_header_reads_and_describes_itself() {
        let h = ModelHeader::parse(&tiny_en()).expect("header");
        assert_eq!(h.n_vocab, 51_864);
        assert_eq!(h.n_audio_ctx, 1500);
        assert!(!h.is_multilingual());
        assert_eq!(h.to_string(), "tiny.en (English only), 4 layers, float16 weights");
        let mut multi = tiny_en();
        multi[4..8].copy_from_slice(&51_865i32.to_le_bytes());
        assert!(ModelHeader::parse(&multi)
            .expect("multilingual")
            .is_multilingual());
    }

    #[test]
    fn other_files_are_refused_with_a_reason() {
        assert_eq!(ModelHeader::parse(b""), Err(HeaderError::NotGgml));
        assert_eq!(
            ModelHeader::parse(b"PK\x03\x04zipfile"),
            Err(HeaderError::NotGgml)
        );
        let short = &tiny_en()[..20];
        assert!(matches!(
            ModelHeader::parse(short),
            Err(HeaderError::Implausible(_))
        ));
        let mut mels = tiny_en();
        mels[40..44].copy_from_slice(&(-3i32).to_le_bytes());
        let e = ModelHeader::parse(&mels).expect_err("bad n_mels");
        assert!(e.to_string().contains("n_mels = -3"), "{e}");
        let missing = ModelHeader::read(Path::new("/nonexistent/ggml-tiny.en.bin"));
        assert!(matches!(missing, Err(HeaderError::Read(_))), "{missing:?}");
    }
}
