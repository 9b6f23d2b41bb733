//! Encoded prompts shared between calls. The TTS cache hands every call that says the same text the
//! same `Arc<Pcm>`; this encodes that rendering once per codec (on the render workers,
//! [`crate::workers`], ahead of the renderings still queued there) even when a thousand calls ask
//! at the same moment, and gives them all the same frames. An entry lives as long as its rendering
//! does (the TTS cache's LRU or a call holding it); entries whose rendering is gone are dropped as
//! the map grows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use smol::lock::OnceCell;

use crate::media::prompt::encode_frames;
use crate::media::session::AudioCodec;
use crate::speech::Pcm;

/// A prompt's 20 ms frames for one codec.
pub type Frames = Arc<Vec<Vec<u8>>>;

type Encoded = Arc<OnceCell<Result<Frames, String>>>;

struct Entry {
    /// The rendering this was encoded from (its address is the key; the weak pointer tells a
    /// live rendering from a later one at a reused address).
    pcm: Weak<Pcm>,
    frames: Encoded,
}

#[derive(Default)]
pub struct PromptFrames {
    entries: Mutex<Map>,
}

#[derive(Default)]
struct Map {
    by_key: HashMap<(usize, AudioCodec), Entry>,
    /// Size after the last sweep of dead entries; the next sweep comes at twice that.
    swept_at: usize,
}

impl PromptFrames {
    /// The frames of `pcm` for `codec`, encoding them if no call has yet.
    pub async fn get(&self, pcm: &Arc<Pcm>, codec: AudioCodec) -> Result<Frames, String> {
        let cell = self.cell(pcm, codec);
        cell.get_or_init(|| async {
            let p = pcm.clone();
            // Ahead of renders still queued: the rendering is done and a call waits for these frames.
            match crate::workers::run_ahead(move || encode_frames(&p.samples, p.rate, codec)).await {
                Ok(Ok(frames)) => Ok(Arc::new(frames)),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        })
        .await
        .clone()
    }

    fn cell(&self, pcm: &Arc<Pcm>, codec: AudioCodec) -> Encoded {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let key = (Arc::as_ptr(pcm) as usize, codec);
        if let Some(e) = map.by_key.get(&key) {
            if e.pcm.upgrade().is_some_and(|live| Arc::ptr_eq(&live, pcm)) {
                return e.frames.clone();
            }
        }
        if map.by_key.len() >= (2 * map.swept_at).max(64) {
            map.by_key.retain(|_, e| e.pcm.strong_count() > 0);
            map.swept_at = map.by_key.len();
        }
        let frames: Encoded = Arc::default();
        map.by_key.insert(
            key,
            Entry {
                pcm: Arc::downgrade(pcm),
                frames: frames.clone(),
            },
        );
        frames
    }

    /// Entries held (tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().map(|m| m.by_key.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcm(seconds: usize) -> Arc<Pcm> {
        Arc::new(Pcm {
            samples: (0..8000 * seconds)
                .map(|i| ((i % 50) as i16 - 25) * 400)
                .collect(),
            rate: 8000,
        })
    }

    #[test]
    fn many_calls_at_once_share_one_encoding_per_codec() {
        let cache = Arc::new(PromptFrames::default());
        let p = pcm(2);
        let got: Vec<Frames> = smol::block_on(async {
            let tasks: Vec<_> = (0..200)
                .map(|i| {
                    let (c, p) = (cache.clone(), p.clone());
                    let codec = if i % 2 == 0 {
                        AudioCodec::Pcmu
                    } else {
                        AudioCodec::Pcma
                    };
                    smol::spawn(async move { c.get(&p, codec).await.expect("frames") })
                })
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await);
            }
            out
        });
        assert!(got.iter().step_by(2).all(|f| Arc::ptr_eq(f, &got[0])));
        assert!(got.iter().skip(1).step_by(2).all(|f| Arc::ptr_eq(f, &got[1])));
        assert!(!Arc::ptr_eq(&got[0], &got[1]));
        assert_eq!(got[0].len(), 100);
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn a_rendering_that_is_gone_is_not_served_and_its_entries_are_swept() {
        let cache = PromptFrames::default();
        for _ in 0..200 {
            let p = pcm(1);
            smol::block_on(cache.get(&p, AudioCodec::Pcmu)).expect("frames");
        }
        // Every rendering was dropped after use: the map never holds many.
        assert!(cache.len() <= 64, "{}", cache.len());
        let a = pcm(1);
        let fa = smol::block_on(cache.get(&a, AudioCodec::Pcmu)).expect("frames");
        drop(a);
        let b = pcm(2);
        let fb = smol::block_on(cache.get(&b, AudioCodec::Pcmu)).expect("frames");
        assert_eq!(fa.len(), 50);
        assert_eq!(fb.len(), 100, "a new rendering is encoded, whatever its address");
    }
}
