//! A prompt cache in front of any [`Synthesizer`]: the same message to many callers, or the same
//! question on every call, is rendered once.
//!
//! Key: (engine, voice, language, text). Memory: an LRU bounded in bytes of PCM ([`Lru`], sans-IO).
//! Disk (optional): `<dir>/<sha256 of the key>.pcm`, written to a temporary file and renamed into
//! place; every file carries a checksum, and a file that fails it is ignored and rewritten. Only a
//! rendering asked for a second time goes to disk, so a one-off message (most notifications) never
//! wears the SD card nor stays on it; the directory is kept under its byte budget by deleting the
//! files least recently used (a disk hit refreshes a file's modification time).
//! Concurrent requests for the same key wait for one rendering.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

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

/// Which cache files to delete so that the rest fits in `budget` bytes: the least recently used
/// first. `files` holds (name, bytes, last used).
pub fn over_budget(mut files: Vec<(String, u64, SystemTime)>, budget: u64) -> Vec<String> {
    let mut total: u64 = files.iter().map(|f| f.1).sum();
    files.sort_by_key(|f| f.2);
    let mut gone = Vec::new();
    for (name, bytes, _) in files {
        if total <= budget {
            break;
        }
        total -= bytes;
        gone.push(name);
    }
    gone
}

/// Delete the least recently used `.pcm` files of `dir` but `keep` (the one just written) until
/// it holds at most `budget` bytes.
fn trim_dir(dir: &Path, budget: u64, keep: &str) -> std::io::Result<usize> {
    let mut files = Vec::new();
    let mut kept = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".pcm") || name.starts_with('.') {
            continue;
        }
        if name == keep {
            kept = entry.metadata()?.len();
            continue;
        }
        let meta = entry.metadata()?;
        files.push((
            name,
            meta.len(),
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        ));
    }
    let gone = over_budget(files, budget.saturating_sub(kept));
    for name in &gone {
        std::fs::remove_file(dir.join(name))?;
    }
    Ok(gone.len())
}

/// Mark a disk hit as recently used.
fn touch(path: &Path) -> std::io::Result<()> {
    std::fs::File::options()
        .write(true)
        .open(path)?
        .set_modified(SystemTime::now())
}

/// A rendering in memory, and whether it is on disk too.
#[derive(Clone)]
struct Cached {
    pcm: Arc<Pcm>,
    on_disk: Arc<AtomicBool>,
}

/// The disk half of the cache: where, and how many bytes it may hold.
#[derive(Debug, Clone)]
pub struct DiskCache {
    pub dir: PathBuf,
    pub budget_bytes: u64,
}

/// A [`Synthesizer`] that remembers what it rendered.
pub struct CachedSynthesizer {
    inner: Arc<dyn Synthesizer>,
    memory: Mutex<Lru<Cached>>,
    disk: Option<DiskCache>,
    /// One lock per key being rendered, so concurrent requests render once.
    rendering: Mutex<HashMap<String, Arc<smol::lock::Mutex<()>>>>,
}

impl CachedSynthesizer {
    /// `memory_bytes` of PCM in memory; `disk` = the cache directory (e.g. `<data_dir>/tts-cache`)
    /// and its byte budget.
    pub fn new(inner: Arc<dyn Synthesizer>, memory_bytes: usize, disk: Option<DiskCache>) -> Self {
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
        if let Some(hit) = self.memory_get(&key) {
            // Asked for again: worth keeping across restarts.
            if !hit.on_disk.swap(true, Ordering::Relaxed) {
                self.persist(&key, &hit.pcm).await;
            }
            return Ok(hit.pcm);
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

    fn memory_get(&self, key: &str) -> Option<Cached> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner()).get(key)
    }

    fn remember(&self, key: &str, pcm: &Arc<Pcm>, on_disk: bool) {
        let bytes = pcm.samples.len() * 2 + key.len();
        let entry = Cached {
            pcm: pcm.clone(),
            on_disk: Arc::new(AtomicBool::new(on_disk)),
        };
        self.memory
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_string(), entry, bytes);
    }

    /// Write a rendering to the disk cache and keep the directory within its budget.
    async fn persist(&self, key: &str, pcm: &Pcm) {
        let Some(disk) = self.disk.clone() else {
            return;
        };
        let name = file_name(key);
        let bytes = encode_file(pcm);
        let written = smol::unblock(move || {
            write_atomically(&disk.dir, &name, &bytes)?;
            trim_dir(&disk.dir, disk.budget_bytes, &name)
        })
        .await;
        match written {
            Ok(0) => {}
            Ok(n) => tracing::debug!(removed = n, "TTS disk cache trimmed to its budget"),
            Err(e) => tracing::warn!(error = %e, "cannot write the TTS cache file; continuing without it"),
        }
    }

    async fn fill(&self, key: &str, req: &SynthRequest) -> Result<Arc<Pcm>, SpeechError> {
        // Another request may have rendered it while we waited.
        if let Some(hit) = self.memory_get(key) {
            return Ok(hit.pcm);
        }
        let name = file_name(key);
        if let Some(disk) = &self.disk {
            let path = disk.dir.join(&name);
            let read = smol::unblock(move || {
                let bytes = std::fs::read(&path)?;
                let _ = touch(&path);
                Ok::<_, std::io::Error>(bytes)
            });
            if let Ok(bytes) = read.await {
                match decode_file(&bytes) {
                    Some(pcm) => {
                        let pcm = Arc::new(pcm);
                        self.remember(key, &pcm, true);
                        return Ok(pcm);
                    }
                    None => tracing::warn!(file = %name, "corrupt TTS cache file ignored; rendering again"),
                }
            }
        }
        let pcm = Arc::new(self.inner.synthesize(req).await?);
        // A first rendering stays in memory only; a second request writes it to disk.
        self.remember(key, &pcm, false);
        Ok(pcm)
    }
}

impl Synthesizer for CachedSynthesizer {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn supports(&self, voice: Option<&str>, language: Option<&str>) -> Result<(), String> {
        self.inner.supports(voice, language)
    }

    fn synthesize<'a>(&'a self, req: &'a SynthRequest) -> BoxFuture<'a, Result<Pcm, SpeechError>> {
        Box::pin(async move { self.get(req).await.map(|p| (*p).clone()) })
    }

    fn synthesize_shared<'a>(
        &'a self,
        req: &'a SynthRequest,
    ) -> BoxFuture<'a, Result<Arc<Pcm>, SpeechError>> {
        Box::pin(self.get(req))
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

    fn pcm_files(dir: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn only_what_is_asked_twice_goes_to_disk_and_survives_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let disk = DiskCache {
            dir: dir.path().join("tts-cache"),
            budget_bytes: 1 << 20,
        };
        let inner = Arc::new(Counting(AtomicUsize::new(0)));
        let r = req("persist me");
        let first = CachedSynthesizer::new(inner.clone(), 1 << 20, Some(disk.clone()));
        smol::block_on(first.get(&r)).expect("render");
        assert!(
            pcm_files(&disk.dir).is_empty(),
            "a one-off rendering stays off the disk"
        );
        smol::block_on(first.get(&r)).expect("again");
        let files = pcm_files(&disk.dir);
        assert_eq!(files.len(), 1, "one file, no temp files left: {files:?}");
        let path = files[0].clone();

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
        smol::block_on(third.get(&r)).expect("again");
        assert!(
            decode_file(&std::fs::read(&path).expect("read")).is_some(),
            "rewritten on its second use"
        );
    }

    #[test]
    fn the_disk_cache_stays_within_its_budget_least_recently_used_first() {
        let t = |s: u64| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s);
        let files = vec![
            ("new".to_string(), 40, t(30)),
            ("old".to_string(), 40, t(10)),
            ("mid".to_string(), 40, t(20)),
        ];
        assert_eq!(over_budget(files.clone(), 120), Vec::<String>::new());
        assert_eq!(over_budget(files.clone(), 100), ["old"]);
        assert_eq!(over_budget(files, 40), ["old", "mid"]);

        let dir = tempfile::tempdir().expect("tempdir");
        let one_file = encode_file(&Pcm {
            rate: 16_000,
            samples: vec![7; 100],
        })
        .len() as u64;
        let disk = DiskCache {
            dir: dir.path().to_path_buf(),
            budget_bytes: 2 * one_file + one_file / 2,
        };
        let inner = Arc::new(Counting(AtomicUsize::new(0)));
        let cache = CachedSynthesizer::new(inner, 1 << 20, Some(disk.clone()));
        let texts: Vec<String> = (0..4).map(|i| format!("{i}").repeat(100)).collect();
        for text in &texts {
            for _ in 0..2 {
                smol::block_on(cache.get(&req(text))).expect("render");
            }
        }
        let files = pcm_files(&disk.dir);
        assert_eq!(files.len(), 2, "{files:?}");
        let newest = dir
            .path()
            .join(file_name(&cache_key("counting", &req(&texts[3]))));
        assert!(files.contains(&newest), "the file just written is kept");
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
