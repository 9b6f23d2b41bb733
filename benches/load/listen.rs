//! The phones of the listen case: one UDP socket per call (the SDP of the SIPp UAS names it as the
//! call's media address), which streams RTP back to the service from the moment its first packet
//! arrives (20 ms PCMU frames on absolute deadlines, silence when not talking, as a phone does) and
//! speaks the answer when the service has gone quiet after speaking: once its stream has carried
//! [`QUIET_BEFORE_ANSWER`] of nothing but silence frames after speech, the question has been asked
//! and the service listens. Every answer's start and the first speech the service sends after it
//! (its acknowledgement, or the question again) are stamped with the wall clock, the clock of the
//! call's timeline.
//!
//! The answer is spoken by the bench itself rather than by SIPp replaying a pcap: the bench then
//! knows to the millisecond when each call's answer began, so end of speech is the answer's start
//! plus the end of the voiced part of the recording, measured here ([`Answer::speech_end`]).

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sip_assistant::media::g711::ulaw_encode;

/// PCMU samples per 20 ms frame.
const FRAME_SAMPLES: usize = 160;
const FRAME: Duration = Duration::from_millis(20);
/// μ-law silence (linear 0), what the service sends when nothing plays.
const SILENCE: u8 = 0xFF;
/// How long the service's stream must carry only silence after speech before the phone answers.
pub const QUIET_BEFORE_ANSWER: Duration = Duration::from_millis(1000);
/// A phone answers at most this often per call (the question, asked again after a failure).
const MAX_ANSWERS: usize = 4;
/// The call has ended when nothing arrived for this long.
const GONE_AFTER: Duration = Duration::from_secs(3);
/// RMS above which a 20 ms frame of the recording counts as voiced: the service's endpointer's
/// own floor (about -50 dBFS), so the "s" of "yes" counts as speech (espeak-ng's silence is 0).
const VOICED_RMS: f64 = 100.0;

/// A recorded answer as PCMU frames, and where its speech ends.
pub struct Answer {
    pub frames: Vec<Vec<u8>>,
    /// From the first frame to the end of the last voiced frame.
    pub speech_end: Duration,
}

impl Answer {
    /// `text` spoken by espeak-ng, 8 kHz (sox), as PCMU frames. Needs the Debian packages espeak-ng
    /// and sox.
    pub fn spoken(dir: &Path, text: &str) -> Answer {
        let wav = dir.join("answer.wav");
        let raw = dir.join("answer.raw");
        let st = Command::new("espeak-ng")
            .args(["-s", "150", "-w"])
            .arg(&wav)
            .arg(text)
            .status()
            .expect("espeak-ng (apt-get install espeak-ng)");
        assert!(st.success(), "espeak-ng: {st}");
        let st = Command::new("sox")
            .arg(&wav)
            .args([
                "-r",
                "8000",
                "-c",
                "1",
                "-b",
                "16",
                "-e",
                "signed-integer",
                "-t",
                "raw",
            ])
            .arg(&raw)
            .status()
            .expect("sox (apt-get install sox)");
        assert!(st.success(), "sox: {st}");
        let bytes = std::fs::read(&raw).expect("the answer's samples");
        let samples: Vec<i16> = bytes
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        let mut frames = Vec::new();
        let mut last_voiced = 0;
        for (i, chunk) in samples.chunks(FRAME_SAMPLES).enumerate() {
            let rms = (chunk.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / chunk.len() as f64).sqrt();
            if rms > VOICED_RMS {
                last_voiced = i + 1;
            }
            let mut frame: Vec<u8> = chunk.iter().map(|&s| ulaw_encode(s)).collect();
            frame.resize(FRAME_SAMPLES, SILENCE);
            frames.push(frame);
        }
        assert!(last_voiced > 0, "the recording of {text:?} is silent");
        Answer {
            speech_end: FRAME * u32::try_from(last_voiced).expect("frames"),
            frames,
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn wall_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        * 1000.0
}

/// What one phone saw and did (wall-clock ms).
#[derive(Default, Clone)]
pub struct PhoneLog {
    /// When each answer's first frame was sent.
    pub answers: Vec<f64>,
    /// For each answer, the first speech frame the service sent after it, if any came.
    pub replies: Vec<Option<f64>>,
    pub packets_in: usize,
    pub packets_out: usize,
}

/// One call's phone.
pub struct Phone {
    pub port: u16,
    log: Arc<Mutex<PhoneLog>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Phone {
    pub fn start(answer: Arc<Answer>, ssrc: u32) -> Phone {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("phone socket");
        let port = socket.local_addr().expect("addr").port();
        let log = Arc::new(Mutex::new(PhoneLog::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, st) = (log.clone(), stop.clone());
        let thread = std::thread::spawn(move || run(&socket, &answer, ssrc, &l, &st));
        Phone {
            port,
            log,
            stop,
            thread: Some(thread),
        }
    }

    /// Stop the phone; what it saw.
    pub fn finish(mut self) -> PhoneLog {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.log.lock().expect("log").clone()
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn run(socket: &UdpSocket, answer: &Answer, ssrc: u32, log: &Mutex<PhoneLog>, stop: &AtomicBool) {
    let mut buf = [0u8; 2048];
    let mut peer: Option<SocketAddr> = None;
    let mut last_in = Instant::now();
    // The service spoke since our last answer, and for how long it has been quiet since.
    let mut spoke = false;
    let mut quiet_frames = 0u32;
    // Our answer being sent (frame index), and whether we wait for the service's reply to it.
    let mut talking: Option<usize> = None;
    let mut awaiting_reply = false;
    let (mut seq, mut ts) = (0u16, 0u32);
    let mut next_send: Option<Instant> = None;
    let quiet_needed = u32::try_from(QUIET_BEFORE_ANSWER.as_millis() / FRAME.as_millis()).expect("frames");
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if peer.is_some() && now.duration_since(last_in) > GONE_AFTER {
            break;
        }
        // Send every frame that is due (absolute deadlines; a late wake sends what it owes).
        while let (Some(to), Some(at)) = (peer, next_send) {
            if at > Instant::now() {
                break;
            }
            let (payload, marker) = match talking {
                Some(i) => {
                    let frame = answer.frames.get(i).map_or(&[][..], Vec::as_slice);
                    talking = (i + 1 < answer.frames.len()).then_some(i + 1);
                    (frame, i == 0)
                }
                None => (&[SILENCE; FRAME_SAMPLES][..], false),
            };
            let mut pkt = Vec::with_capacity(12 + FRAME_SAMPLES);
            pkt.extend_from_slice(&[0x80, if marker { 0x80 } else { 0 }]);
            pkt.extend_from_slice(&seq.to_be_bytes());
            pkt.extend_from_slice(&ts.to_be_bytes());
            pkt.extend_from_slice(&ssrc.to_be_bytes());
            pkt.extend_from_slice(payload);
            if socket.send_to(&pkt, to).is_ok() {
                log.lock().expect("log").packets_out += 1;
            }
            seq = seq.wrapping_add(1);
            ts = ts.wrapping_add(FRAME_SAMPLES as u32);
            next_send = Some(at + FRAME);
        }
        let wait = next_send
            .map_or(Duration::from_millis(5), |at| {
                at.saturating_duration_since(Instant::now())
            })
            .clamp(Duration::from_micros(200), Duration::from_millis(5));
        let _ = socket.set_read_timeout(Some(wait));
        let Ok((len, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let Some(pkt) = buf.get(..len) else { continue };
        if len < 12 || pkt[0] >> 6 != 2 {
            continue;
        }
        last_in = Instant::now();
        if peer.is_none() {
            // The service's RTP source is where it expects our stream (symmetric RTP).
            peer = Some(from);
            next_send = Some(Instant::now());
        }
        let payload = &pkt[12..];
        let speech = payload.iter().any(|&b| b != SILENCE && b != 0x7F);
        let mut l = log.lock().expect("log");
        l.packets_in += 1;
        if speech {
            if awaiting_reply {
                awaiting_reply = false;
                if let Some(r) = l.replies.last_mut() {
                    *r = Some(wall_ms());
                }
            }
            spoke = true;
            quiet_frames = 0;
        } else {
            quiet_frames += 1;
        }
        if spoke && talking.is_none() && quiet_frames >= quiet_needed && l.answers.len() < MAX_ANSWERS {
            // The first frame goes out at the next send deadline, at most 20 ms from now.
            let first = next_send.unwrap_or_else(Instant::now);
            let lead = first.saturating_duration_since(Instant::now());
            l.answers.push(wall_ms() + lead.as_secs_f64() * 1000.0);
            l.replies.push(None);
            talking = Some(0);
            awaiting_reply = true;
            spoke = false;
        }
    }
}
