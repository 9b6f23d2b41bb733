//! RTP attacks on the real media thread, in process and on loopback only (issue #14, findings 3
//! and 4): a spray that reaches the ports while the phone rings (from the phone's own host, so only
//! discarding it can help), a foreign host that sprays and floods one call during the call, and a
//! second call that must hear all of its phone and keep sending to it. Counts and order are
//! asserted, never timing.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sip_assistant::driver::media::{MediaHandle, MediaThread};
use sip_assistant::media::session::{AudioCodec, MediaEvent, SessionParams};

/// Frames each phone sends (2 s at 20 ms).
const FRAMES: u16 = 100;

fn rtp(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt & 0x7f];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// Key 1 as RFC 4733 events (start, then three ends).
fn key_one(seq: u16) -> Vec<Vec<u8>> {
    (0..4u16)
        .map(|k| {
            let end = if k > 0 { 0x80 } else { 0 };
            rtp(101, seq + k, 4242, 0xbad, &[1, end | 10, 0x01, 0xe0])
        })
        .collect()
}

fn local(s: &UdpSocket) -> SocketAddr {
    s.local_addr().expect("a bound socket has an address")
}

fn params(remote: SocketAddr, ssrc: u32) -> SessionParams {
    SessionParams {
        codec: AudioCodec::Pcmu,
        payload_type: 0,
        dtmf_payload_type: Some(101),
        remote,
        remote_rtcp: remote,
        ssrc,
        initial_seq: 1000,
        initial_timestamp: 0,
    }
}

/// Sequence numbers of the RTP packets a socket receives until `stop` (RTCP skipped).
fn collect(socket: UdpSocket, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<u16>> {
    std::thread::spawn(move || {
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("read timeout");
        let mut seqs = Vec::new();
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            if let Ok((n, _)) = socket.recv_from(&mut buf) {
                if n >= 12 && !(200..=204).contains(&buf[1]) {
                    seqs.push(u16::from_be_bytes([buf[2], buf[3]]));
                }
            }
        }
        seqs
    })
}

/// Digits and audio events the call script would see.
fn listen(h: &MediaHandle) -> std::thread::JoinHandle<(Vec<char>, usize)> {
    let events = h.events.clone();
    std::thread::spawn(move || {
        let mut digits = Vec::new();
        let mut audio = 0;
        while let Ok(ev) = smol::block_on(events.recv()) {
            match ev {
                MediaEvent::Digit(d) => digits.push(d),
                MediaEvent::Audio16k(_) => audio += 1,
                MediaEvent::PlaybackDone { .. } => {}
            }
        }
        (digits, audio)
    })
}

fn consecutive(seqs: &[u16]) -> bool {
    seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1))
}

#[test]
fn a_flood_and_a_spray_neither_hijack_nor_starve_the_calls() {
    let (media, _thread) = MediaThread::start(47_610, 47_689).expect("media thread");
    let phone_a = UdpSocket::bind("127.0.0.1:0").expect("phone a");
    let phone_b = UdpSocket::bind("127.0.0.1:0").expect("phone b");
    // Same host as the phones: without the discard at start its early packet would latch.
    let early = UdpSocket::bind("127.0.0.1:0").expect("early sprayer");
    let attacker = UdpSocket::bind("127.0.0.2:0").expect("attacker on another loopback host");
    let ports_a = media.bind_ports().expect("ports a");
    let ports_b = media.bind_ports().expect("ports b");
    let to_a: SocketAddr = ([127, 0, 0, 1], ports_a.port).into();
    let to_b: SocketAddr = ([127, 0, 0, 1], ports_b.port).into();

    // While the phone rings: audio and key 1 from the phones' host and from another host.
    for to in [to_a, to_b] {
        for (i, p) in key_one(1).into_iter().enumerate() {
            early.send_to(&p, to).expect("early spray");
            attacker.send_to(&p, to).expect("spray");
            early
                .send_to(&rtp(0, 500 + i as u16, 0, 0xbad, &[0u8; 160]), to)
                .expect("early audio");
        }
    }
    std::thread::sleep(Duration::from_millis(50));

    let stop = Arc::new(AtomicBool::new(false));
    let got_a = collect(phone_a.try_clone().expect("clone"), stop.clone());
    let got_b = collect(phone_b.try_clone().expect("clone"), stop.clone());
    let got_early = collect(early, stop.clone());
    let got_attacker = collect(attacker.try_clone().expect("clone"), stop.clone());
    let a = media
        .open(ports_a, params(local(&phone_a), 0xa), vec![0xFF; 160])
        .expect("session a");
    let b = media
        .open(ports_b, params(local(&phone_b), 0xb), vec![0xFF; 160])
        .expect("session b");
    let heard_a = listen(&a);
    let heard_b = listen(&b);
    // A stranger's packet before the phone's first one is read, counted and dropped (once the
    // phone has been heard the socket is connected and the kernel drops such packets itself).
    attacker
        .send_to(&rtp(0, 1, 0, 0xbad, &[0u8; 160]), to_a)
        .expect("stray");
    std::thread::sleep(Duration::from_millis(60));

    // The flood: about 25k packets/s at call b's RTP and RTCP ports, key 1 among them, and a
    // stray packet every 20 ms at call a.
    let flooding = Arc::new(AtomicBool::new(true));
    let flood = {
        let flooding = flooding.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            let rtcp_b: SocketAddr = ([127, 0, 0, 1], to_b.port() + 1).into();
            let mut sent = 0u64;
            let mut seq = 0u16;
            while flooding.load(Ordering::Relaxed) {
                for p in key_one(seq) {
                    let _ = attacker.send_to(&p, to_b);
                }
                for _ in 0..20 {
                    seq = seq.wrapping_add(1);
                    let _ = attacker.send_to(&rtp(0, seq, u32::from(seq) * 160, 0xbad, &[0u8; 160]), to_b);
                }
                let _ = attacker.send_to(&[0x80, 200, 0, 1, 0, 0, 0, 0], rtcp_b);
                if seq.is_multiple_of(400) {
                    let _ = attacker.send_to(&rtp(0, seq, 0, 0xbad, &[0u8; 160]), to_a);
                }
                sent += 25;
                // 25 packets per ms.
                let due = start + Duration::from_micros(sent * 1000 / 25);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            sent
        })
    };

    // Both phones talk for 2 s, paced; phone b's call is the flooded one.
    let start = Instant::now();
    for i in 0..FRAMES {
        let pkt = |ssrc| rtp(0, 7000 + i, u32::from(i) * 160, ssrc, &[0x7Fu8; 160]);
        phone_a.send_to(&pkt(0x1a), to_a).expect("phone a sends");
        phone_b.send_to(&pkt(0x1b), to_b).expect("phone b sends");
        let due = start + Duration::from_millis(20) * u32::from(i + 1);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    flooding.store(false, Ordering::Relaxed);
    let flood_sent = flood.join().expect("flood thread");
    let health_a = smol::block_on(a.close()).expect("a closes");
    let health_b = smol::block_on(b.close()).expect("b closes");
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let (digits_a, audio_a) = heard_a.join().expect("listener a");
    let (digits_b, _) = heard_b.join().expect("listener b");
    let (to_phone_a, to_phone_b) = (got_a.join().expect("a"), got_b.join().expect("b"));
    let (to_early, to_attacker) = (got_early.join().expect("e"), got_attacker.join().expect("x"));

    assert!(flood_sent > 25_000, "the flood ran: {flood_sent} packets");
    // Call a heard every frame of its phone, in order, and nothing else.
    assert_eq!(health_a.packets_received, u64::from(FRAMES), "{health_a:?}");
    assert_eq!(health_a.loss_percent, 0.0, "{health_a:?}");
    assert!(audio_a >= usize::from(FRAMES) - 2, "decoded {audio_a} frames");
    assert!(
        health_a.rejected_packets > 0,
        "the stray packets at a were counted"
    );
    assert!(
        digits_a.is_empty() && digits_b.is_empty(),
        "no spoofed key: {digits_a:?} {digits_b:?}"
    );
    // Both calls kept sending to their own phone, every packet in sequence.
    for (name, seqs, health) in [("a", &to_phone_a, &health_a), ("b", &to_phone_b, &health_b)] {
        assert!(
            seqs.len() >= 100,
            "call {name} sent {} packets to its phone",
            seqs.len()
        );
        assert_eq!(
            seqs.len() as u64,
            health.packets_sent,
            "call {name}: all to its phone"
        );
        assert!(consecutive(seqs), "call {name}: in sequence");
    }
    assert!(
        to_early.is_empty(),
        "{} packets went to the early sprayer",
        to_early.len()
    );
    assert!(
        to_attacker.is_empty(),
        "{} packets went to the attacker",
        to_attacker.len()
    );
    assert!(
        health_b.rejected_packets > 0,
        "what of the flood reached the socket before the latch was counted: {health_b:?}"
    );
    assert_eq!(health_b.events_dropped, 0, "{health_b:?}");
    eprintln!("flooded call: {health_b:?}");
    // Once call b latched to its phone, the kernel drops the flood: it hears its phone again.
    assert!(
        health_b.packets_received >= u64::from(FRAMES) / 2,
        "the flooded call heard its phone: {health_b:?}"
    );
}
