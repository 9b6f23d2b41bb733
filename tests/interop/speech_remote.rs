//! Remote speech engines against real servers on 127.0.0.1: `wyoming-piper` and
//! `wyoming-faster-whisper` (offline, from the venv `tests/support/speech_venv.sh` builds), the
//! OpenAI-compatible `tests/support/openai_server.py`, and small in-test Wyoming peers that fail on
//! purpose. Latency figures are printed (`cargo test --features interop --test interop speech_remote:: -- --nocapture`).

use crate::speech_servers;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use serde_json::json;
use sip_assistant::config::{OpenAiConfig, Secret, WyomingConfig};
use sip_assistant::media::resample::resample_all;
use sip_assistant::speech::wyoming::codec::{Decoder, Event};
use sip_assistant::speech::{
    wav, OpenAiRecognizer, OpenAiSynthesizer, Pcm, Phrase, Recognition, RecognitionContext, Recognizer,
    SpeechError, SynthRequest, Synthesizer, WyomingRecognizer, WyomingSynthesizer,
};
use speech_servers::{espeak_wav, openai_server, requests, venv, wyoming_faster_whisper, wyoming_piper};

fn say(text: &str) -> SynthRequest {
    SynthRequest {
        text: text.into(),
        voice: None,
        language: None,
    }
}

fn yes_no_context() -> RecognitionContext {
    let phrase = |t: &str, option| Phrase::answer(t, option);
    RecognitionContext {
        language: Some("en-US".into()),
        phrases: vec![phrase("yes", 0), phrase("I confirm", 0), phrase("no", 1)],
    }
}

fn rms(samples: &[i16]) -> f64 {
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / samples.len().max(1) as f64).sqrt()
}

/// Audio that a person would hear as speech of about the right length: `min..max` seconds, an RMS
/// well above silence, and most 20 ms frames of the middle not silent.
fn assert_speech(pcm: &Pcm, min: f64, max: f64) {
    let secs = pcm.duration().as_secs_f64();
    assert!(
        (min..max).contains(&secs),
        "duration {secs:.2} s not in {min}..{max}"
    );
    let level = rms(&pcm.samples);
    assert!(level > 300.0, "RMS {level:.0} is near silence");
    let frame = (pcm.rate / 50) as usize;
    let frames: Vec<f64> = pcm.samples.chunks(frame).map(rms).collect();
    let voiced = frames.iter().filter(|&&r| r > 100.0).count();
    assert!(
        voiced * 2 > frames.len(),
        "only {voiced} of {} frames carry sound",
        frames.len()
    );
}

/// Feed `pcm16k` in 20 ms pushes, as the media plane does, and finish.
async fn recognize(
    r: &dyn Recognizer,
    ctx: &RecognitionContext,
    pcm16k: &[i16],
) -> Result<Recognition, SpeechError> {
    let mut u = r.start(ctx).await?;
    for chunk in pcm16k.chunks(320) {
        u.push(chunk).await?;
    }
    u.finish().await
}

fn heard(r: &Recognition) -> String {
    match r {
        Recognition::Heard(alts) => alts[0].transcript.clone(),
        Recognition::NoMatch { transcript } => panic!("no match ({transcript:?})"),
        Recognition::Rejected { heard } => panic!("rejected ({heard:?})"),
        Recognition::Scored { transcript, .. } => panic!("scored ({transcript:?})"),
    }
}

fn to_16k(pcm: &Pcm) -> Vec<i16> {
    resample_all(pcm.rate, 16_000, &pcm.samples).expect("resample")
}

fn words(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect()
}

#[test]
fn wyoming_piper_and_faster_whisper_real_servers() {
    let venv = venv();
    let mut piper = wyoming_piper(&venv);
    let mut whisper = wyoming_faster_whisper(&venv);
    let quick = Duration::from_millis(500);
    for server in [&mut piper, &mut whisper] {
        let addr = server.addr.clone();
        server.wait_ready(Duration::from_secs(120), || {
            smol::block_on(sip_assistant::speech::wyoming::describe(&addr, quick, quick)).is_ok()
        });
    }
    let config = WyomingConfig {
        tts_address: piper.addr.clone(),
        stt_address: whisper.addr.clone(),
        voice: Some("en_US-joe-medium".into()),
        language: Some("en".into()),
        connect_timeout_ms: 2_000,
        request_timeout_ms: 60_000,
    };
    let tts = WyomingSynthesizer::new(&config).expect("tts");
    let stt = WyomingRecognizer::new(&config).expect("stt");
    smol::block_on(async {
        let probe = tts.probe().await.expect("tts probe");
        assert!(probe.contains("piper"), "{probe}");
        let probe = stt.probe().await.expect("stt probe");
        assert!(probe.contains("faster-whisper"), "{probe}");
        // The recognizer's server offers no TTS, and a voice the server lacks is named.
        let mut crossed = config.clone();
        crossed.tts_address = whisper.addr.clone();
        let err = WyomingSynthesizer::new(&crossed)
            .unwrap()
            .probe()
            .await
            .unwrap_err();
        assert!(err.to_string().contains("offers no text to speech"), "{err}");
        crossed.tts_address = piper.addr.clone();
        crossed.voice = Some("xx_XX-nobody-low".into());
        let err = WyomingSynthesizer::new(&crossed)
            .unwrap()
            .probe()
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no voice 'xx_XX-nobody-low'"), "{err}");

        // TTS: real speech of a plausible length (about 3 s for this sentence).
        let text = "Hello, this is a test call. Please say yes or no.";
        let _warm = tts.synthesize(&say("Warm up.")).await.expect("warm up");
        let started = Instant::now();
        let pcm = tts.synthesize(&say(text)).await.expect("synthesize");
        let tts_ms = started.elapsed().as_millis();
        assert_eq!(pcm.rate, 22_050);
        assert_speech(&pcm, 2.0, 6.0);
        println!(
            "FIGURE wyoming-piper TTS: {tts_ms} ms for {:.2} s of audio ({} chars)",
            pcm.duration().as_secs_f64(),
            text.len()
        );

        // STT on espeak-ng's voice, streamed in 20 ms pushes.
        let espeak = wav::read(&espeak_wav("yes I confirm")).expect("espeak wav");
        let ctx = yes_no_context();
        let _warm = recognize(&stt, &ctx, &to_16k(&espeak)).await;
        let started = Instant::now();
        let got = heard(&recognize(&stt, &ctx, &to_16k(&espeak)).await.expect("stt espeak"));
        let stt_ms = started.elapsed().as_millis();
        let w = words(&got);
        assert!(
            w.contains("yes") && w.contains("confirm"),
            "espeak 'yes I confirm' heard as {got:?}"
        );
        println!(
            "FIGURE wyoming-faster-whisper STT (tiny.en, 1 thread): {stt_ms} ms for {:.2} s of espeak audio -> {got:?}",
            espeak.duration().as_secs_f64()
        );

        // Round trip: Piper's voice into Whisper.
        let spoken = tts.synthesize(&say("Yes, I confirm.")).await.expect("synthesize");
        let started = Instant::now();
        let got = heard(&recognize(&stt, &ctx, &to_16k(&spoken)).await.expect("stt piper"));
        let w = words(&got);
        assert!(
            w.contains("yes") && w.contains("confirm"),
            "piper 'yes I confirm' heard as {got:?}"
        );
        println!(
            "FIGURE wyoming-faster-whisper STT: {} ms for {:.2} s of Piper audio -> {got:?}",
            started.elapsed().as_millis(),
            spoken.duration().as_secs_f64()
        );

        // Silence yields no words rather than an error.
        let silence = vec![0i16; 16_000];
        let r = recognize(&stt, &ctx, &silence).await.expect("stt silence");
        if let Recognition::Heard(alts) = &r {
            println!("note: whisper on 1 s of silence heard {:?}", alts[0].transcript);
        }
    });

    // A server that dies mid-call: the next request reports who failed, with detail.
    whisper.stop();
    let err = smol::block_on(recognize(&stt, &yes_no_context(), &[0; 320])).unwrap_err();
    assert!(matches!(err, SpeechError::Remote { .. }), "{err:?}");
    assert!(err.to_string().contains(&whisper.addr), "{err}");
    drop(piper);
}

/// A one-connection Wyoming peer run by `script` on a thread; returns its address and the events it
/// received.
fn fake_wyoming(
    script: impl FnOnce(&mut std::net::TcpStream, &mut Vec<Event>) + Send + 'static,
) -> (String, std::thread::JoinHandle<Vec<Event>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut seen = Vec::new();
        script(&mut stream, &mut seen);
        seen
    });
    (addr, handle)
}

/// Read events from `stream` until one of kind `until` (inclusive) or EOF.
fn read_until(stream: &mut std::net::TcpStream, seen: &mut Vec<Event>, until: &str) {
    let mut d = Decoder::default();
    let mut buf = [0u8; 4096];
    loop {
        while let Ok(Some(e)) = d.next_event() {
            let stop = e.kind == until;
            seen.push(e);
            if stop {
                return;
            }
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => d.feed(&buf[..n]),
        }
    }
}

fn wyoming_config(addr: &str, request_timeout_ms: u64) -> WyomingConfig {
    WyomingConfig {
        tts_address: addr.into(),
        stt_address: addr.into(),
        connect_timeout_ms: 1_000,
        request_timeout_ms,
        ..WyomingConfig::default()
    }
}

#[test]
fn wyoming_stt_streams_audio_as_it_arrives() {
    let (addr, peer) = fake_wyoming(|s, seen| {
        read_until(s, seen, "audio-stop");
        let reply = Event::new("transcript").with_data(json!({"text": " Yes, I confirm. "}));
        s.write_all(&reply.encode()).expect("write");
    });
    let stt = WyomingRecognizer::new(&wyoming_config(&addr, 5_000)).unwrap();
    let r = smol::block_on(recognize(&stt, &yes_no_context(), &[7; 16_000])).expect("recognize");
    assert_eq!(heard(&r), "Yes, I confirm.");
    let seen = peer.join().expect("peer");
    let kinds: Vec<&str> = seen.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"transcribe"));
    assert_eq!(seen[0].text("language"), Some("en"), "BCP 47 en-US sent as en");
    assert_eq!(kinds[1], "audio-start");
    assert_eq!(kinds.last(), Some(&"audio-stop"));
    let chunks: Vec<&Event> = seen.iter().filter(|e| e.kind == "audio-chunk").collect();
    assert_eq!(chunks.len(), 50, "one chunk per 20 ms push");
    assert!(chunks
        .iter()
        .all(|c| c.uint("rate") == Some(16_000) && c.payload.len() == 640));
}

#[test]
fn wyoming_failures_are_reported_with_detail() {
    // Dies after the first chunk.
    let (addr, _peer) = fake_wyoming(|s, seen| {
        read_until(s, seen, "synthesize");
        let start = Event::new("audio-start").with_data(json!({"rate": 16000, "width": 2, "channels": 1}));
        let chunk = Event::new("audio-chunk").with_payload(vec![0; 64]);
        let _ = s.write_all(&[start.encode(), chunk.encode()].concat());
    });
    let tts = WyomingSynthesizer::new(&wyoming_config(&addr, 5_000)).unwrap();
    let err = smol::block_on(tts.synthesize(&say("hi"))).unwrap_err();
    assert!(matches!(err, SpeechError::Remote { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("closed the connection while we waited for audio"),
        "{err}"
    );

    // Reports an error event.
    let (addr, _peer) = fake_wyoming(|s, seen| {
        read_until(s, seen, "synthesize");
        let e = Event::new("error").with_data(json!({"text": "voice not loaded", "code": "E42"}));
        let _ = s.write_all(&e.encode());
    });
    let tts = WyomingSynthesizer::new(&wyoming_config(&addr, 5_000)).unwrap();
    let err = smol::block_on(tts.synthesize(&say("hi")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("voice not loaded") && err.contains("E42"), "{err}");

    // Sends garbage.
    let (addr, _peer) = fake_wyoming(|s, seen| {
        read_until(s, seen, "synthesize");
        let _ = s.write_all(b"{\"type\":\"audio-chunk\",\"payload_length\":99999999999}\n");
    });
    let tts = WyomingSynthesizer::new(&wyoming_config(&addr, 5_000)).unwrap();
    let err = smol::block_on(tts.synthesize(&say("hi")))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sent a bad event") && err.contains("payload_length"),
        "{err}"
    );

    // Never answers: the whole request is bounded.
    let (addr, _peer) = fake_wyoming(|s, seen| {
        read_until(s, seen, "synthesize");
        std::thread::sleep(Duration::from_millis(1500));
    });
    let tts = WyomingSynthesizer::new(&wyoming_config(&addr, 300)).unwrap();
    let started = Instant::now();
    let err = smol::block_on(tts.synthesize(&say("hi")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("timed out"), "{err}");
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "{:?}",
        started.elapsed()
    );

    // Nobody listens.
    let closed = format!("127.0.0.1:{}", speech_servers::free_port());
    let stt = WyomingRecognizer::new(&wyoming_config(&closed, 1_000)).unwrap();
    let err = smol::block_on(stt.start(&RecognitionContext::default()))
        .err()
        .expect("error");
    assert!(err.to_string().contains("cannot connect"), "{err}");
    let err = smol::block_on(stt.probe()).unwrap_err();
    assert!(matches!(err, SpeechError::Unavailable { .. }), "{err:?}");
    assert!(err.to_string().contains("wyoming-faster-whisper"), "{err}");
}

fn openai_config(addr: &str, key: &str) -> OpenAiConfig {
    OpenAiConfig {
        base_url: format!("http://{addr}/v1"),
        api_key: Some(Secret::new(key)),
        connect_timeout_ms: 1_000,
        request_timeout_ms: 10_000,
        ..OpenAiConfig::default()
    }
}

#[test]
fn openai_speech_and_transcription_against_a_real_http_server() {
    let server = openai_server(Some("test-key"));
    let config = OpenAiConfig {
        language: Some("en-GB".into()),
        ..openai_config(&server.addr, "test-key")
    };
    let tts = OpenAiSynthesizer::new(&config).unwrap();
    let stt = OpenAiRecognizer::new(&config).unwrap();
    smol::block_on(async {
        assert!(tts.probe().await.expect("probe").contains("answers"));

        let started = Instant::now();
        let pcm = tts
            .synthesize(&say("Your appointment is tomorrow at nine."))
            .await
            .expect("speech");
        println!(
            "FIGURE openai TTS (espeak-ng behind HTTP): {} ms",
            started.elapsed().as_millis()
        );
        assert_eq!(pcm.rate, 22_050);
        assert_speech(&pcm, 1.2, 5.0);

        // 0.8 s of a 440 Hz tone, pushed in 20 ms pieces; the server reports what it received.
        let tone: Vec<i16> = (0..12_800)
            .map(|i| (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * f64::from(i) / 16_000.0).sin()) as i16)
            .collect();
        let started = Instant::now();
        let got = heard(
            &recognize(&stt, &yes_no_context(), &tone)
                .await
                .expect("transcribe"),
        );
        println!(
            "FIGURE openai STT round trip (local server): {} ms",
            started.elapsed().as_millis()
        );
        let parts: Vec<&str> = got.split_whitespace().collect();
        assert_eq!(
            (parts[0], parts[2], parts[4], parts[7]),
            ("tone", "Hz", "ms", "Hz"),
            "{got}"
        );
        let hz: i64 = parts[1].parse().expect("hz");
        assert!((435..=445).contains(&hz), "{got}");
        assert_eq!((parts[3], parts[6]), ("800", "16000"), "{got}");
    });
    let log = requests(&server);
    let speech = log
        .iter()
        .find(|r| r["path"] == "/v1/audio/speech")
        .expect("speech logged");
    assert_eq!(speech["auth"], true);
    assert_eq!(
        speech["json"],
        json!({"model": "tts-1", "input": "Your appointment is tomorrow at nine.", "voice": "alloy", "response_format": "wav"})
    );
    let tr = log
        .iter()
        .find(|r| r["path"] == "/v1/audio/transcriptions")
        .expect("transcription logged");
    assert_eq!(tr["status"], 200);
    assert_eq!(tr["auth"], true);
    assert_eq!(
        tr["fields"],
        json!({"model": "whisper-1", "response_format": "json", "language": "en", "prompt": "yes, I confirm, no"})
    );
    assert_eq!(tr["file"]["filename"], "utterance.wav");
    assert_eq!(tr["file"]["content_type"], "audio/wav");
    assert_eq!(
        (tr["file"]["rate"].as_u64(), tr["file"]["channels"].as_u64()),
        (Some(16_000), Some(1))
    );
    assert_eq!(tr["file"]["frames"], 12_800);
}

#[test]
fn openai_errors_carry_the_server_message() {
    let server = openai_server(Some("test-key"));
    let tone = vec![1000i16; 1600];
    smol::block_on(async {
        // Wrong key: 401 with OpenAI's message; the probe says what to set.
        let wrong = openai_config(&server.addr, "wrong");
        let err = OpenAiSynthesizer::new(&wrong)
            .unwrap()
            .synthesize(&say("hi"))
            .await
            .unwrap_err();
        assert!(matches!(err, SpeechError::Remote { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("HTTP 401") && text.contains("Incorrect API key provided"),
            "{text}"
        );
        let err = OpenAiRecognizer::new(&wrong).unwrap().probe().await.unwrap_err();
        assert!(matches!(err, SpeechError::Unavailable { .. }), "{err:?}");
        assert!(err.to_string().contains("speech.openai.api_key"), "{err}");

        // Server failure: 500 with its message, for both endpoints.
        let mut failing = openai_config(&server.addr, "test-key");
        failing.tts_model = "error-500".into();
        failing.stt_model = "error-500".into();
        let err = OpenAiSynthesizer::new(&failing)
            .unwrap()
            .synthesize(&say("hi"))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("HTTP 500: synthesis backend crashed"),
            "{err}"
        );
        let stt = OpenAiRecognizer::new(&failing).unwrap();
        let err = recognize(&stt, &RecognitionContext::default(), &tone)
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("/v1/audio/transcriptions answered HTTP 500"),
            "{err}"
        );

        // Not a WAV: says what came instead.
        let mut mp3 = openai_config(&server.addr, "test-key");
        mp3.tts_model = "not-wav".into();
        let err = OpenAiSynthesizer::new(&mp3)
            .unwrap()
            .synthesize(&say("hi"))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("audio/mpeg") && err.to_string().contains("not a RIFF/WAVE"),
            "{err}"
        );

        // Slow: the request timeout ends it.
        let mut slow = openai_config(&server.addr, "test-key");
        slow.stt_model = "slow".into();
        slow.request_timeout_ms = 500;
        let stt = OpenAiRecognizer::new(&slow).unwrap();
        let started = Instant::now();
        let err = recognize(&stt, &RecognitionContext::default(), &tone)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("timed out after 500 ms"), "{err}");
        assert!(
            started.elapsed() < Duration::from_millis(2_000),
            "{:?}",
            started.elapsed()
        );

        // Nobody listens.
        let closed = openai_config(&format!("127.0.0.1:{}", speech_servers::free_port()), "k");
        let err = OpenAiSynthesizer::new(&closed)
            .unwrap()
            .synthesize(&say("hi"))
            .await
            .unwrap_err();
        assert!(matches!(err, SpeechError::Remote { .. }), "{err:?}");
        let err = OpenAiSynthesizer::new(&closed)
            .unwrap()
            .probe()
            .await
            .unwrap_err();
        assert!(matches!(err, SpeechError::Unavailable { .. }), "{err:?}");

        // No audio at all is no match, without a request.
        let stt = OpenAiRecognizer::new(&openai_config(&server.addr, "test-key")).unwrap();
        let r = recognize(&stt, &RecognitionContext::default(), &[])
            .await
            .expect("empty");
        assert_eq!(r, Recognition::NoMatch { transcript: None });
    });
}

/// Piper in-process (`--features piper`) with the venv's voice and ONNX Runtime (`.ci/dev test`
/// builds the venv first; without it the test fails, saying how to make one).
#[cfg(feature = "piper")]
#[test]
fn piper_in_process_with_the_wheel_runtime() {
    use sip_assistant::speech::PiperSynthesizer;

    let venv = speech_servers::venv();
    let config = speech_servers::piper_config(&venv);
    let probe = PiperSynthesizer::probe(&config).expect("probe");
    println!("piper probe: {probe}");
    let started = Instant::now();
    let tts = PiperSynthesizer::new(&config).expect("load piper");
    println!("FIGURE piper load: {} ms", started.elapsed().as_millis());
    let text = "Hello, this is a test call. Please say yes or no.";
    let _warm = smol::block_on(tts.synthesize(&say("Warm up."))).expect("warm up");
    let started = Instant::now();
    let pcm = smol::block_on(tts.synthesize(&say(text))).expect("synthesize");
    let ms = started.elapsed().as_millis();
    assert_eq!(pcm.rate, 22_050);
    assert_speech(&pcm, 2.0, 6.0);
    println!(
        "FIGURE piper in-process TTS: {ms} ms for {:.2} s of audio (RTF {:.2})",
        pcm.duration().as_secs_f64(),
        ms as f64 / 1000.0 / pcm.duration().as_secs_f64()
    );

    // Intelligible: Whisper hears the words (checks the phonemes and ids, not just the energy).
    let mut whisper = wyoming_faster_whisper(&venv);
    let addr = whisper.addr.clone();
    let quick = Duration::from_millis(500);
    whisper.wait_ready(Duration::from_secs(120), || {
        smol::block_on(sip_assistant::speech::wyoming::describe(&addr, quick, quick)).is_ok()
    });
    let stt = WyomingRecognizer::new(&WyomingConfig {
        stt_address: addr,
        request_timeout_ms: 60_000,
        ..WyomingConfig::default()
    })
    .expect("stt");
    let spoken = smol::block_on(tts.synthesize(&say("Yes, I confirm."))).expect("synthesize");
    let got = heard(&smol::block_on(recognize(&stt, &yes_no_context(), &to_16k(&spoken))).expect("stt"));
    let w = words(&got);
    assert!(
        w.contains("yes") && w.contains("confirm"),
        "in-process Piper 'yes I confirm' heard as {got:?}"
    );
}
