//! The media plane against a real phone: a baresip phone registered to Kamailio answers our call;
//! we play a known signal, the phone records what it decodes (sndfile), and the recording must
//! match what we sent with SNR >= 30 dB after alignment (G.711). The phone plays a spoken WAV as
//! its microphone, and that speech must reach us (decoded, 16 kHz) with energy where expected.
//! A second phone speaks only Opus: Opus is negotiated and carries audio both ways. The call's
//! media health lands in the record.

use crate::harness;
use crate::peers;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use harness::{start_app, test_config, wait_for};
use peers::{Kamailio, Phone, PhoneMode};
use sip_assistant::call::ActiveCall;
use sip_assistant::call::CallRequest;
use sip_assistant::driver::script::{CallScript, ScriptContext, ScriptFuture, ScriptResult, ScriptRun};
use sip_assistant::driver::SipEngine;
use sip_assistant::media::g711::{self, Law};
use sip_assistant::media::session::{AudioCodec, MediaEvent};

const RATE: usize = 8000;

/// 3 s of 440 Hz + 1 kHz at about -12 dBFS, 8 kHz.
fn signal() -> Vec<i16> {
    (0..RATE * 3)
        .map(|i| {
            let t = i as f64 / RATE as f64;
            ((2.0 * std::f64::consts::PI * 440.0 * t).sin() * 4000.0
                + (2.0 * std::f64::consts::PI * 1000.0 * t).sin() * 4000.0) as i16
        })
        .collect()
}

/// Plays [`signal`] and records what the far end sends, then waits a little.
#[derive(Clone)]
struct PlayAndListen {
    heard: Arc<Mutex<Vec<i16>>>,
}

impl CallScript for PlayAndListen {
    fn prepare(self: Arc<Self>, _call: &ActiveCall, _codecs: &[AudioCodec]) -> Box<dyn ScriptRun> {
        Box::new((*self).clone())
    }
}

impl ScriptRun for PlayAndListen {
    fn run<'a>(self: Box<Self>, ctx: ScriptContext<'a>) -> ScriptFuture<'a> {
        Box::pin(async move {
            let frames: Vec<Vec<u8>> = match ctx.codec {
                AudioCodec::Pcmu | AudioCodec::Pcma => {
                    let law = if ctx.codec == AudioCodec::Pcmu {
                        Law::Ulaw
                    } else {
                        Law::Alaw
                    };
                    let mut bytes = Vec::new();
                    g711::encode(law, &signal(), &mut bytes);
                    bytes.chunks(160).map(<[u8]>::to_vec).collect()
                }
                AudioCodec::Opus => {
                    let pcm48 = sip_assistant::media::resample::resample_all(8000, 48_000, &signal())
                        .expect("resample");
                    sip_assistant::media::opus_codec::encode_prompt(&pcm48).expect("opus")
                }
            };
            let Ok(id) = ctx.media.play(Arc::new(frames)) else {
                return ScriptResult::default();
            };
            let mut played = false;
            let listen_until = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                let next = async { ctx.media.events.recv().await.ok() };
                let timer = async {
                    smol::Timer::at(listen_until).await;
                    None
                };
                match futures_lite::FutureExt::or(next, timer).await {
                    Some(MediaEvent::PlaybackDone { id: done, complete }) if done == id => played = complete,
                    Some(MediaEvent::Audio16k(pcm)) => self.heard.lock().expect("lock").extend(pcm),
                    Some(_) => {}
                    None => break,
                }
            }
            ScriptResult {
                message_played: played,
                ..Default::default()
            }
        })
    }
}

/// Samples of a 16-bit mono WAV.
fn read_wav(path: &Path) -> (u32, Vec<i16>) {
    let b = std::fs::read(path).expect("read wav");
    let mut i = 12;
    let mut rate = 0;
    while i + 8 <= b.len() {
        let id = &b[i..i + 4];
        let len = u32::from_le_bytes([b[i + 4], b[i + 5], b[i + 6], b[i + 7]]) as usize;
        let body = &b[i + 8..(i + 8 + len).min(b.len())];
        if id == b"fmt " && body.len() >= 8 {
            rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
        }
        if id == b"data" {
            return (
                rate,
                body.chunks_exact(2)
                    .map(|c| i16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            );
        }
        i += 8 + len + (len & 1);
    }
    panic!("no data chunk in {}", path.display());
}

/// Best SNR (dB) of `got` against `sent` over lags 0..max_lag, with a least-squares gain.
fn aligned_snr(sent: &[i16], got: &[i16], max_lag: usize) -> (f64, usize) {
    let mut best = (f64::MIN, 0);
    // Skip the first 200 ms of the signal (jitter buffer start-up) and compare 2 s.
    let (from, len) = (1600, 16_000);
    for lag in 0..max_lag {
        if lag + from + len > got.len() {
            break;
        }
        let s: Vec<f64> = sent[from..from + len].iter().map(|&v| f64::from(v)).collect();
        let g: Vec<f64> = got[lag + from..lag + from + len]
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let sg: f64 = s.iter().zip(&g).map(|(a, b)| a * b).sum();
        let gg: f64 = g.iter().map(|b| b * b).sum();
        if gg == 0.0 {
            continue;
        }
        let k = sg / gg;
        let err: f64 = s.iter().zip(&g).map(|(a, b)| (a - k * b).powi(2)).sum();
        let sig: f64 = s.iter().map(|a| a * a).sum();
        let snr = 10.0 * (sig / err.max(1e-9)).log10();
        if snr > best.0 {
            best = (snr, lag);
        }
    }
    best
}

fn rms(x: &[i16]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
}

#[test]
fn g711_both_ways_with_a_real_phone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let speech = dir.path().join("phone-says.wav");
    peers::wav_tone_or_speech(&speech, "hello, this is the phone speaking to the service", 12.0);
    let (k, phone) = peers::pbx_with_phone(
        &[("1050", "our-pw")],
        "1001",
        PhoneMode::AutoAnswer,
        Some(&speech),
    );

    let mut config = test_config(dir.path());
    peers::register_to(&mut config, k.port, "1050", "our-pw", "PCMU,PCMA", 20);
    let heard = Arc::new(Mutex::new(Vec::new()));
    let script = Arc::new(PlayAndListen { heard: heard.clone() });
    let engine = smol::block_on(SipEngine::start_with_script(&config, script)).expect("engine");
    let app = start_app(config, Arc::new(engine));
    assert!(
        wait_for(Duration::from_secs(10), || k.lookup("1050").is_some()),
        "{}",
        k.ladder()
    );

    let req = CallRequest {
        message: "tone".into(),
        extension: "1001".into(),
        callback_url: None,
        ring_timeout: 20,
        choice: None,
        call_id: None,
        language: None,
        voice: None,
        not_before: None,
        notification_id: None,
    };
    smol::block_on(app.scheduler.submit(Some("media-1"), req)).expect("submit");
    assert!(
        wait_for(Duration::from_secs(30), || {
            app.store
                .get_call("media-1")
                .ok()
                .flatten()
                .is_some_and(|r| r.status.is_final())
        }),
        "{}",
        k.ladder()
    );
    let r = app.store.get_call("media-1").expect("store").expect("record");
    assert_eq!(r.status.as_str(), "completed", "{r:?}\n{}", k.ladder());
    assert!(r.message_played, "every frame was sent: {r:?}");
    let media = r.media.clone().expect("media health recorded");
    assert_eq!(media.codec, "PCMU");
    assert!(media.packets_sent >= 150, "{media:?}");
    assert!(media.packets_received >= 150, "{media:?}");
    assert!(!media.no_rtp_received);
    assert!(media.loss_percent < 1.0, "{media:?}");

    // What the phone decoded matches what we sent.
    assert!(wait_for(Duration::from_secs(5), || !phone
        .recordings()
        .is_empty()));
    std::thread::sleep(Duration::from_millis(500));
    let decoded = phone
        .recordings()
        .into_iter()
        .find(|p| p.to_string_lossy().contains("dec"))
        .unwrap_or_else(|| panic!("no decoded recording in {:?}", phone.recordings()));
    let (rate, got) = read_wav(&decoded);
    assert_eq!(rate, 8000, "{}", decoded.display());
    let sent = signal();
    let (snr, lag) = aligned_snr(&sent, &got, 8000);
    eprintln!("phone recording vs sent signal: SNR {snr:.1} dB at lag {lag} samples");
    assert!(snr >= 30.0, "SNR {snr:.1} dB < 30 dB (lag {lag})");

    // What the phone said reached us: speech energy in the first seconds, then near silence.
    let heard = heard.lock().expect("lock").clone();
    assert!(heard.len() >= 16_000 * 3, "only {} samples heard", heard.len());
    let speech_rms = rms(&heard[..16_000 * 2]);
    eprintln!(
        "speech from the phone: RMS {speech_rms:.0} over the first 2 s ({} samples heard)",
        heard.len()
    );
    assert!(
        speech_rms > 300.0,
        "no speech energy from the phone (RMS {speech_rms:.0})"
    );
    smol::block_on(app.shutdown());
}

#[test]
fn opus_is_negotiated_and_carries_audio_both_ways() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = Kamailio::start(&[("1050", "our-pw"), ("1001", "pw-1001")], 30_000);
    let speech = dir.path().join("phone-says.wav");
    peers::wav_tone_or_speech(&speech, "hello, this is the phone speaking over opus", 12.0);
    let phone = Phone::start_opus("1001", "pw-1001", k.port, &speech);
    assert!(
        phone.wait_registered(&k, Duration::from_secs(10)),
        "{}",
        phone.log()
    );

    let mut config = test_config(dir.path());
    peers::register_to(&mut config, k.port, "1050", "our-pw", "opus,PCMU", 20);
    let heard = Arc::new(Mutex::new(Vec::new()));
    let script = Arc::new(PlayAndListen { heard: heard.clone() });
    let engine = smol::block_on(SipEngine::start_with_script(&config, script)).expect("engine");
    let app = start_app(config, Arc::new(engine));
    assert!(
        wait_for(Duration::from_secs(10), || k.lookup("1050").is_some()),
        "{}",
        k.ladder()
    );
    let req = CallRequest {
        message: "tone".into(),
        extension: "1001".into(),
        callback_url: None,
        ring_timeout: 20,
        choice: None,
        call_id: None,
        language: None,
        voice: None,
        not_before: None,
        notification_id: None,
    };
    smol::block_on(app.scheduler.submit(Some("opus-1"), req)).expect("submit");
    assert!(
        wait_for(Duration::from_secs(30), || {
            app.store
                .get_call("opus-1")
                .ok()
                .flatten()
                .is_some_and(|r| r.status.is_final())
        }),
        "{}",
        k.ladder()
    );
    let r = app.store.get_call("opus-1").expect("store").expect("record");
    assert_eq!(
        r.status.as_str(),
        "completed",
        "{r:?}\n{}\n{}",
        k.ladder(),
        phone.log()
    );
    let media = r.media.clone().expect("media health");
    assert_eq!(media.codec, "opus", "{media:?}\n{}", phone.log());
    assert!(r.message_played, "{r:?}");
    assert!(media.packets_received >= 150, "{media:?}");
    // The phone decoded audio from us...
    std::thread::sleep(Duration::from_millis(500));
    let decoded = phone
        .recordings()
        .into_iter()
        .find(|p| p.to_string_lossy().contains("dec"))
        .unwrap_or_else(|| panic!("no decoded recording in {:?}", phone.recordings()));
    let (_, got) = read_wav(&decoded);
    let loud = rms(&got[..got.len().min(48_000 * 2)]);
    eprintln!("opus: phone heard RMS {loud:.0}; media {media:?}");
    assert!(
        loud > 1000.0,
        "the phone heard no signal over Opus (RMS {loud:.0})"
    );
    // ...and its speech reached us.
    let heard = heard.lock().expect("lock").clone();
    let speech_rms = rms(&heard[..heard.len().min(16_000 * 2)]);
    eprintln!("opus: we heard RMS {speech_rms:.0} from the phone");
    assert!(
        speech_rms > 300.0,
        "no speech from the phone over Opus (RMS {speech_rms:.0})"
    );
    smol::block_on(app.shutdown());
}
