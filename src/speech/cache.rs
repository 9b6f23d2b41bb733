//! A prompt cache in front of any [`Synthesizer`]: the same message to many callers, or the same
//! question on every call, is rendered once.
//!
//! Key: (engine, voice, language, text). Memory: an LRU bounded in bytes of PCM ([`Lru`], sans-IO).
//! Disk (optional): `<dir>/<sha256 of the key>.pcm`, written to a temporary file and renamed into
//! place; every file carries a checksum, and a file that fails it is ignored and rewritten.
//! Concurrent requests for the same key wait for one rendering.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::{BoxFuture, Pcm, SpeechError, SynthRequest, Synthesizer};

const MAGIC: &[u8; 6] = b"SAPCM1";

/// A byte-bounded least-recently-used map (the policy only; no I/O, no locks).
#[derive(Debug)]
pub struct Lru<V> {
    capacity: usize,
    used: usize,
    tick: u64,
    entries: HashMap<String, (V, usize, u64)>,
}

impl<V: Clone> Lru<V> {
    pub fn new(capacity_bytes: usize) -> Self {
        Self {
            capacity: capacity_bytes,
            used: 0,
            tick: 0,
            entries: HashMap::new(),
        }
    }

    pub fn get(&mut self, key: &str) -> Option<V> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(key).map(|e| {
            e.2 = tick;
            e.0.clone()
        })
    }

    /// Insert, evicting least recently used entries; a value larger than the capacity is not kept.
    pub fn insert(&mut self, key: String, value: V, bytes: usize) {
        if let Some((_, old, _)) = self.entries.remove(&key) {
            self.used -= old;
        }
        if bytes > self.capacity {
            return;
        }
        while self.used + bytes > self.capacity {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.2)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some((_, b, _)) = self.entries.remove(&oldest) {
                self.used -= b;
            }
        }
        self.tick += 1;
        self.used += bytes;
        self.entries.insert(key, (value, bytes, self.tick));
    }

    pub fn used_bytes(&self) -> usize {
        self.used
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The cache key of a request to `engine`.
pub fn cache_key(engine: &str, req: &SynthRequest) -> String {
    format!(
        "{engine}\u{0}{}\u{0}{}\u{0}{}",
        req.voice.as_deref().unwrap_or(""),
        req.language.as_deref().unwrap_or(""),
        req.text
    )
}

/// PCM as the checksummed disk format.
pub fn encode_file(pcm: &Pcm) -> Vec<u8> {
    let mut out = Vec::with_capacity(14 + pcm.samples.len() * 2 + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&pcm.rate.to_le_bytes());
    out.extend_from_slice(&u32::try_from(pcm.samples.len()).unwrap_or(u32::MAX).to_le_bytes());
    for s in &pcm.samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    out
}

/// The disk format back to PCM; `None` for anything truncated, altered or foreign.
pub fn decode_file(bytes: &[u8]) -> Option<Pcm> {
    let body_len = bytes.len().checked_sub(32)?;
    let (body, sum) = bytes.split_at(body_len);
    if Sha256::digest(body).as_slice() != sum || body.get(..6)? != MAGIC {
        return None;
    }
    let rate = u32::from_le_bytes(body.get(6..10)?.try_into().ok()?);
    let n = usize::try_from(u32::from_le_bytes(body.get(10..14)?.try_into().ok()?)).ok()?;
    let data = body.get(14..)?;
    if data.len() != n * 2 || rate == 0 {
        return None;
    }
    let samples = data
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    Some(Pcm { rate, samples })
}

fn file_name(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let mut name: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    name.push_str(".pcm");
    name
}

fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, dir.join(name)).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// A [`Synthesizer`] that remembers what it rendered.
pub struct CachedSynthesizer {
    inner: Arc<dyn Synthesizer>,
    memory: Mutex<Lru<Arc<Pcm>>>,
    disk: Option<PathBuf>,
    /// One lock per key being rendered, so concurrent requests render once.
    rendering: Mutex<HashMap<String, Arc<smol::lock::Mutex<()>>>>,
}

impl CachedSynthesizer {
    /// `memory_bytes` of PCM in memory; `disk` = the cache directory (e.g. `<data_dir>/tts-cache`).
    pub fn new(inner: Arc<dyn Synthesizer>, memory_bytes: usize, disk: Option<PathBuf>) -> Self {
        Self {
            inner,
            memory: Mutex::new(Lru::new(memory_bytes)),
            disk,
            rendering: Mutex::new(HashMap::new()),
        }
    }

    /// Render `req` or return the cached rendering.
    pub async fn get(&self, req: &SynthRequest) -> Result<Arc<Pcm>, SpeechError> {
        let key = cache_key(self.inner.name(), req);
        if let Some(pcm) = self.memory_get(&key) {
            return Ok(pcm);
        }
        let key_lock = {
            let mut r = self.rendering.lock().unwrap_or_else(|p| p.into_inner());
            r.entry(key.clone()).or_default().clone()
        };
        let result = {
            let _guard = key_lock.lock().await;
            self.fill(&key, req).await
        };
        {
            let mut r = self.rendering.lock().unwrap_or_else(|p| p.into_inner());
            if Arc::strong_count(&key_lock) <= 2 {
                r.remove(&key);
            }
        }
        result
    }

    fn memory_get(&self, key: &str) -> Option<Arc<Pcm>> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner()).get(key)
    }

    fn remember(&self, key: &str, pcm: &Arc<Pcm>) {
        let bytes = pcm.samples.len() * 2 + key.len();
        self.memory
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_string(), pcm.clone(), bytes);
    }

    async fn fill(&self, key: &str, req: &SynthRequest) -> Result<Arc<Pcm>, SpeechError> {
        // Another request may have rendered it while we waited.
        if let Some(pcm) = self.memory_get(key) {
            return Ok(pcm);
        }
        let name = file_name(key);
        if let Some(dir) = &self.disk {
            let path = dir.join(&name);
            if let Ok(bytes) = smol::unblock(move || std::fs::read(path)).await {
                match decode_file(&bytes) {
                    Some(pcm) => {
                        let pcm = Arc::new(pcm);
                        self.remember(key, &pcm);
                        return Ok(pcm);
                    }
                    None => tracing::warn!(file = %name, "corrupt TTS cache file ignored; rendering again"),
                }
            }
        }
        let pcm = Arc::new(self.inner.synthesize(req).await?);
        self.remember(key, &pcm);
        if let Some(dir) = self.disk.clone() {
            let bytes = encode_file(&pcm);
            let written = smol::unblock(move || write_atomically(&dir, &name, &bytes)).await;
            if let Err(e) = written {
                tracing::warn!(error = %e, "cannot write the TTS cache file; continuing without it");
            }
        }
        Ok(pcm)
    }
}

impl Synthesizer for CachedSynthesizer {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn synthesize<'a>(&'a self, req: &'a SynthRequest) -> BoxFuture<'a, Result<Pcm, SpeechError>> {
        Box::pin(async move { self.get(req).await.map(|p| (*p).clone()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Renders `text.len()` samples per request, slowly, counting calls.
    struct Counting(AtomicUsize);

    impl Synthesizer for Counting {
        fn name(&self) -> &str {
            "counting"
        }
        fn synthesize<'a>(&'a self, req: &'a SynthRequest) -> BoxFuture<'a, Result<Pcm, SpeechError>> {
            Box::pin(async move {
                self.0.fetch_add(1, Ordering::SeqCst);
                smol::Timer::after(std::time::Duration::from_millis(30)).await;
                Ok(Pcm {
                    rate: 16_000,
                    samples: vec![7; req.text.len()],
                })
            })
        }
    }

    fn req(text: &str) -> SynthRequest {
        SynthRequest {
            text: text.into(),
            voice: None,
            language: None,
        }
    }

    #[test]
    fn lru_evicts_least_recently_used_within_the_byte_budget() {
        let mut lru = Lru::new(100);
        lru.insert("a".into(), 1, 40);
        lru.insert("b".into(), 2, 40);
        assert_eq!(lru.get("a"), Some(1)); // b is now the oldest
        lru.insert("c".into(), 3, 40);
        assert_eq!(lru.get("b"), None);
        assert_eq!((lru.get("a"), lru.get("c")), (Some(1), Some(3)));
        assert_eq!(lru.used_bytes(), 80);
        lru.insert("huge".into(), 4, 101);
        assert_eq!(lru.get("huge"), None);
        lru.insert("a".into(), 5, 10);
        assert_eq!((lru.get("a"), lru.used_bytes(), lru.len()), (Some(5), 50, 2));
    }

    #[test]
    fn keys_separate_engine_voice_language_and_text() {
        let mut r = req("hi");
        let k1 = cache_key("flite", &r);
        r.voice = Some("awb".into());
        let k2 = cache_key("flite", &r);
        r.language = Some("en-GB".into());
        let k3 = cache_key("flite", &r);
        assert_eq!(
            [&k1, &k2, &k3, &cache_key("espeak", &r)]
                .iter()
                .collect::<std::collections::HashSet<_>>()
                .len(),
            4
        );
    }

    #[test]
    fn concurrent_requests_render_once_and_memory_serves_later_ones() {
        let inner = Arc::new(Counting(AtomicUsize::new(0)));
        let cache = CachedSynthesizer::new(inner.clone(), 1 << 20, None);
        smol::block_on(async {
            let r = req("hello");
            let (a, b) = futures_lite::future::zip(cache.get(&r), cache.get(&r)).await;
            assert_eq!(a.expect("a").samples.len(), 5);
            assert!(b.is_ok());
            cache.get(&r).await.expect("again");
            cache.get(&req("other")).await.expect("other");
        });
        assert_eq!(inner.0.load(Ordering::SeqCst), 2);
        assert!(cache.rendering.lock().expect("lock").is_empty());
    }

    #[test]
    fn disk_cache_survives_a_restart_and_corrupt_files_are_rewritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let disk = dir.path().join("tts-cache");
        let inner = Arc::new(Counting(AtomicUsize::new(0)));
        let r = req("persist me");
        let first = CachedSynthesizer::new(inner.clone(), 1 << 20, Some(disk.clone()));
        smol::block_on(first.get(&r)).expect("render");
        let files: Vec<_> = std::fs::read_dir(&disk).expect("dir").flatten().collect();
        assert_eq!(files.len(), 1, "one file, no temp files left");
        let path = files[0].path();

        let second = CachedSynthesizer::new(inner.clone(), 1 << 20, Some(disk.clone()));
        let pcm = smol::block_on(second.get(&r)).expect("from disk");
        assert_eq!(pcm.samples.len(), "persist me".len());
        assert_eq!(inner.0.load(Ordering::SeqCst), 1, "served from disk");

        let mut bytes = std::fs::read(&path).expect("read");
        bytes[20] ^= 0xFF;
        std::fs::write(&path, &bytes).expect("corrupt");
        let third = CachedSynthesizer::new(inner.clone(), 1 << 20, Some(disk));
        let pcm = smol::block_on(third.get(&r)).expect("re-rendered");
        assert_eq!(pcm.samples, vec![7; 10]);
        assert_eq!(inner.0.load(Ordering::SeqCst), 2, "corrupt file rendered again");
        assert!(
            decode_file(&std::fs::read(&path).expect("read")).is_some(),
            "rewritten"
        );
    }

    #[test]
    fn file_format_rejects_truncation_and_foreign_bytes() {
        let pcm = Pcm {
            rate: 22_050,
            samples: vec![1, -2, 3],
        };
        let bytes = encode_file(&pcm);
        assert_eq!(decode_file(&bytes), Some(pcm));
        for cut in 0..bytes.len() {
            assert_eq!(decode_file(&bytes[..cut]), None);
        }
        assert_eq!(decode_file(b"RIFF...."), None);
    }
}
