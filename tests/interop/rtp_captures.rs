//! RTP, RFC 4733 and receiver statistics against real captured packets: the pcaps that Debian's
//! `sip-tester` (SIPp) package ships in `/usr/share/sip-tester/` — one RFC 4733 key press per
//! `dtmf_2833_*.pcap` and a G.711 A-law stream in `g711a.pcap`. The directory can be overridden
//! with `SIP_TESTER_PCAP_DIR`.
//!
//! A tiny classic-pcap reader is included: both byte orders, micro- and nanosecond timestamps;
//! link types Ethernet (1, with 802.1Q tags), Linux cooked v1 (113) and v2 (276), raw IP (101, 228,
//! 229) and BSD loopback (0); IPv4 (unfragmented) and IPv6 (UDP directly after the fixed header)
//! → UDP → payload. Anything else is skipped.

use std::path::PathBuf;
use std::time::Duration;

use sip_assistant::media::dtmf::{parse_event, DtmfReceiver};
use sip_assistant::rtp::packet::parse;
use sip_assistant::rtp::stats::ReceiverStats;

const DEFAULT_DIR: &str = "/usr/share/sip-tester";

fn pcap_dir() -> PathBuf {
    let dir =
        std::env::var_os("SIP_TESTER_PCAP_DIR").map_or_else(|| PathBuf::from(DEFAULT_DIR), PathBuf::from);
    assert!(
        dir.join("dtmf_2833_0.pcap").is_file(),
        "RTP capture files missing in {}: install them with `apt-get install sip-tester` \
         (Debian's SIPp package, which .ci/dev installs), or point SIP_TESTER_PCAP_DIR at a copy",
        dir.display()
    );
    dir
}

/// One UDP datagram from a capture.
struct Datagram {
    time: Duration,
    payload: Vec<u8>,
}

fn u16_at(b: &[u8], at: usize, big_endian: bool) -> Option<u16> {
    let s: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
    Some(if big_endian {
        u16::from_be_bytes(s)
    } else {
        u16::from_le_bytes(s)
    })
}

fn u32_at(b: &[u8], at: usize, big_endian: bool) -> Option<u32> {
    let s: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(if big_endian {
        u32::from_be_bytes(s)
    } else {
        u32::from_le_bytes(s)
    })
}

/// The UDP payloads of a classic pcap file.
fn read_pcap(bytes: &[u8]) -> Result<Vec<Datagram>, String> {
    let magic = u32_at(bytes, 0, false).ok_or("no global header")?;
    let (big_endian, nanos) = match magic {
        0xa1b2_c3d4 => (false, false),
        0xd4c3_b2a1 => (true, false),
        0xa1b2_3c4d => (false, true),
        0x4d3c_b2a1 => (true, true),
        m => {
            return Err(format!(
                "not a classic pcap (magic {m:08x}; pcapng is not supported)"
            ))
        }
    };
    let linktype = u32_at(bytes, 20, big_endian).ok_or("short global header")? & 0x0fff_ffff;
    let mut out = Vec::new();
    let mut at = 24;
    while at < bytes.len() {
        let (Some(sec), Some(frac), Some(incl)) = (
            u32_at(bytes, at, big_endian),
            u32_at(bytes, at + 4, big_endian),
            u32_at(bytes, at + 8, big_endian),
        ) else {
            return Err(format!("truncated record header at {at}"));
        };
        let start = at + 16;
        let end = start + incl as usize;
        let frame = bytes
            .get(start..end)
            .ok_or_else(|| format!("truncated record at {at}"))?;
        at = end;
        let time = Duration::from_secs(u64::from(sec))
            + Duration::from_nanos(u64::from(frac) * if nanos { 1 } else { 1000 });
        if let Some(payload) = udp_payload(linktype, frame) {
            out.push(Datagram {
                time,
                payload: payload.to_vec(),
            });
        }
    }
    Ok(out)
}

/// Link layer → network layer: (ethertype-like protocol, network packet).
fn link_to_ip(linktype: u32, frame: &[u8]) -> Option<&[u8]> {
    match linktype {
        // Ethernet, possibly VLAN-tagged
        1 => {
            let mut at = 12;
            let mut ethertype = u16_at(frame, at, true)?;
            while ethertype == 0x8100 || ethertype == 0x88a8 {
                at += 4;
                ethertype = u16_at(frame, at, true)?;
            }
            matches!(ethertype, 0x0800 | 0x86dd)
                .then(|| frame.get(at + 2..))
                .flatten()
        }
        // Linux cooked capture v1: protocol at 14, header 16 bytes
        113 => matches!(u16_at(frame, 14, true)?, 0x0800 | 0x86dd)
            .then(|| frame.get(16..))
            .flatten(),
        // Linux cooked capture v2: protocol at 0, header 20 bytes
        276 => matches!(u16_at(frame, 0, true)?, 0x0800 | 0x86dd)
            .then(|| frame.get(20..))
            .flatten(),
        // Raw IP (101, and DLT_IPV4 / DLT_IPV6)
        101 | 228 | 229 => Some(frame),
        // BSD loopback: 4-byte address family in host order; the IP version nibble decides below
        0 => frame.get(4..),
        _ => None,
    }
}

fn udp_payload(linktype: u32, frame: &[u8]) -> Option<&[u8]> {
    let ip = link_to_ip(linktype, frame)?;
    let udp = match ip.first()? >> 4 {
        4 => {
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            let total = usize::from(u16_at(ip, 2, true)?);
            let frag = u16_at(ip, 6, true)?;
            // protocol UDP, not a fragment (MF clear, offset 0)
            if *ip.get(9)? != 17 || frag & 0x3fff != 0 || ihl < 20 {
                return None;
            }
            ip.get(ihl..total.min(ip.len()))?
        }
        6 => {
            if *ip.get(6)? != 17 {
                return None;
            }
            let len = usize::from(u16_at(ip, 4, true)?);
            ip.get(40..(40 + len).min(ip.len()))?
        }
        _ => return None,
    };
    let udp_len = usize::from(u16_at(udp, 4, true)?);
    udp.get(8..udp_len.min(udp.len()))
}

fn read_capture(name: &str) -> Vec<Datagram> {
    let path = pcap_dir().join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    read_pcap(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const KEYS: [(&str, char); 12] = [
    ("0", '0'),
    ("1", '1'),
    ("2", '2'),
    ("3", '3'),
    ("4", '4'),
    ("5", '5'),
    ("6", '6'),
    ("7", '7'),
    ("8", '8'),
    ("9", '9'),
    ("star", '*'),
    ("pound", '#'),
];

#[test]
fn each_dtmf_capture_yields_exactly_its_digit() {
    for (name, digit) in KEYS {
        let file = format!("dtmf_2833_{name}.pcap");
        let datagrams = read_capture(&file);
        assert!(!datagrams.is_empty(), "{file}: no UDP datagrams");
        let mut receiver = DtmfReceiver::new();
        let mut stats = ReceiverStats::new(8000);
        let mut digits = Vec::new();
        // (marker, event, end, volume, duration)
        let mut sequence = Vec::new();
        let mut timestamps = Vec::new();
        let mut ssrcs = Vec::new();
        for d in &datagrams {
            let (header, payload) = parse(&d.payload).unwrap_or_else(|e| panic!("{file}: RTP: {e}"));
            assert_eq!(header.version, 2);
            assert_eq!(header.payload_type, 101, "{file}: telephone-event payload type");
            assert!(header.csrcs.is_empty() && !header.extension && !header.padding);
            let ev = parse_event(payload).unwrap_or_else(|e| panic!("{file}: {e}"));
            sequence.push((header.marker, ev.event, ev.end, ev.volume, ev.duration));
            timestamps.push(header.timestamp);
            ssrcs.push(header.ssrc);
            stats.handle_rtp(&header, payload.len(), d.time);
            digits.extend(receiver.handle_packet(header.timestamp, header.marker, payload, d.time));
        }
        // Reported by the first end packet, once: nothing more for the retransmissions or later.
        assert_eq!(digits, vec![digit], "{file}: digits");
        let end = datagrams.last().map_or(Duration::ZERO, |d| d.time);
        assert_eq!(
            receiver.poll(end + Duration::from_secs(5)),
            None,
            "{file}: reported twice"
        );

        // As captured: one event, one timestamp and SSRC; the first packet has the marker and
        // duration 0; updates every 320 units (the capture's cadence); three identical end packets.
        let code = sip_assistant::media::dtmf::char_to_event(digit).unwrap();
        let expected: Vec<(bool, u8, bool, u8, u16)> = (0..8u16)
            .map(|k| (k == 0, code, k == 7, 10, 320 * k))
            .chain(std::iter::repeat_n((false, code, true, 10, 2240), 2))
            .collect();
        assert_eq!(sequence, expected, "{file}: event/end/volume/duration sequence");
        assert!(
            timestamps.windows(2).all(|w| w[0] == w[1]),
            "{file}: one RTP timestamp"
        );
        assert!(ssrcs.windows(2).all(|w| w[0] == w[1]), "{file}: one SSRC");
        let ends = sequence.iter().filter(|s| s.2).count();
        assert_eq!(ends, 3, "{file}: end packets");

        // Statistics: nothing lost. SIPp retransmits the end packet with the same sequence number,
        // so the two retransmissions are recognised as duplicates (RFC 3550's cumulative loss,
        // which counts duplicates as received, is -2).
        assert_eq!(stats.packets_received(), 10, "{file}");
        assert_eq!(stats.packets_lost(), 0, "{file}");
        assert_eq!(stats.loss_percent(), 0.0, "{file}");
        assert_eq!(stats.duplicates(), 2, "{file}");
        assert_eq!(stats.cumulative_lost(), -2, "{file}");
        assert_eq!(
            stats.jitter(),
            0.0,
            "{file}: packets of one event share a timestamp"
        );
        assert_eq!(stats.bytes_received(), 40, "{file}");
        let span = datagrams.last().unwrap().time - datagrams[0].time;
        println!(
            "{file}: digit {digit:?}, {} packets over {span:?}, durations {:?}, {ends} end packets",
            datagrams.len(),
            sequence.iter().map(|s| s.4).collect::<Vec<_>>()
        );
    }
}

#[test]
fn g711a_capture_parses_with_no_loss_and_small_jitter() {
    let datagrams = read_capture("g711a.pcap");
    let mut stats = ReceiverStats::new(8000);
    let mut prev: Option<(u16, u32)> = None;
    for d in &datagrams {
        let (h, payload) = parse(&d.payload).expect("RTP");
        assert_eq!(h.payload_type, 8, "PCMA");
        assert_eq!(payload.len(), 240, "30 ms of A-law");
        if let Some((seq, ts)) = prev {
            assert_eq!(h.seq, seq.wrapping_add(1));
            assert_eq!(h.timestamp, ts.wrapping_add(240));
        }
        prev = Some((h.seq, h.timestamp));
        stats.handle_rtp(&h, payload.len(), d.time);
    }
    assert_eq!(datagrams.len(), 236);
    assert_eq!(stats.packets_received(), 236);
    assert_eq!(stats.expected(), 235, "the first packet is probation");
    assert_eq!(stats.loss_percent(), 0.0);
    assert_eq!(stats.duplicates(), 0);
    // Arrivals spread 25..35 ms around the 30 ms cadence: a few ms of jitter.
    let jitter = stats.jitter_ms();
    assert!(jitter > 0.1 && jitter < 10.0, "jitter {jitter} ms");
    println!("g711a.pcap: {} packets, jitter {jitter:.3} ms", datagrams.len());
}

#[test]
fn pcap_reader_handles_other_layouts() {
    // Hand-made files: big-endian with nanosecond timestamps and Linux cooked (113) IPv4 frames
    // (one UDP, one TCP that must be skipped); little-endian raw IP (101) with an IPv6/UDP frame.
    fn file(magic_be: bool, nanos: bool, linktype: u32, frames: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        let magic: u32 = if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        let put32 = |v: &mut Vec<u8>, x: u32| {
            v.extend(if magic_be {
                x.to_be_bytes()
            } else {
                x.to_le_bytes()
            })
        };
        put32(&mut v, magic);
        v.extend(if magic_be { [0, 2, 0, 4] } else { [2, 0, 4, 0] });
        put32(&mut v, 0);
        put32(&mut v, 0);
        put32(&mut v, 65535);
        put32(&mut v, linktype);
        for f in frames {
            put32(&mut v, 7);
            put32(&mut v, 5);
            put32(&mut v, f.len() as u32);
            put32(&mut v, f.len() as u32);
            v.extend_from_slice(f);
        }
        v
    }
    let udp = |payload: &[u8]| {
        let mut u = vec![0x13, 0x88, 0x27, 0x10];
        u.extend(((8 + payload.len()) as u16).to_be_bytes());
        u.extend([0, 0]);
        u.extend_from_slice(payload);
        u
    };
    let ipv4 = |udp: &[u8], proto: u8| {
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        ip[2..4].copy_from_slice(&((20 + udp.len()) as u16).to_be_bytes());
        ip.extend_from_slice(udp);
        ip
    };
    let mut sll = vec![0u8; 14];
    sll.extend([0x08, 0x00]);
    sll.extend(ipv4(&udp(b"abc"), 17));
    let mut tcp = vec![0u8; 14];
    tcp.extend([0x08, 0x00]);
    tcp.extend(ipv4(&udp(b"zzz"), 6));
    let got = read_pcap(&file(true, true, 113, &[&sll, &tcp])).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, b"abc");
    assert_eq!(got[0].time, Duration::new(7, 5));

    let mut ip6 = vec![0x60, 0, 0, 0];
    let u = udp(b"v6");
    ip6.extend((u.len() as u16).to_be_bytes());
    ip6.extend([17, 64]);
    ip6.extend([0u8; 32]);
    ip6.extend(&u);
    let got = read_pcap(&file(false, false, 101, &[&ip6])).unwrap();
    assert_eq!(got[0].payload, b"v6");
    assert_eq!(got[0].time, Duration::new(7, 5000));

    assert!(read_pcap(b"\x0a\x0d\x0d\x0a").is_err());
    let mut cut = file(false, false, 1, &[&sll]);
    cut.truncate(cut.len() - 1);
    assert!(read_pcap(&cut).is_err());
}
