//! Fuzz the RTP side: `rtp::packet::parse_full` on arbitrary bytes must never panic, and whatever
//! parses must re-encode (with `write_full`) to a packet that parses to the same header, extension
//! and payload. The input is also cut into datagrams that drive the receive-side state machines
//! (`ReceiverStats`, `Reorder`, `DtmfReceiver`, `DigitStream`) with input-derived arrival times.

#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use sip_assistant::media::dtmf::{events_for_digit, parse_event, DigitStream, DtmfReceiver};
use sip_assistant::rtp::packet::{parse, parse_full, write_full};
use sip_assistant::rtp::reorder::Reorder;
use sip_assistant::rtp::stats::ReceiverStats;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = parse_full(data) {
        assert!(p.payload.len() + usize::from(p.padding_len) <= data.len());
        let mut out = Vec::new();
        write_full(&p.header, p.extension, p.payload, p.padding_len, &mut out);
        let q = parse_full(&out).expect("re-encoded packet must parse");
        assert_eq!(q.header, p.header);
        assert_eq!(q.extension, p.extension);
        assert_eq!(q.payload, p.payload);
        assert_eq!(q.padding_len, p.padding_len);
    }

    // Datagrams: [len, arrival step (ms), bytes...] repeated.
    let mut stats = ReceiverStats::new(8000);
    let mut reorder: Reorder = Reorder::new(4);
    let mut dtmf = DtmfReceiver::new();
    let mut digits = DigitStream::new();
    let mut now = Duration::ZERO;
    let mut rest = data;
    while let [len, step, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (dgram, next) = tail.split_at(n);
        rest = next;
        now += Duration::from_millis(u64::from(*step));
        match parse(dgram) {
            Ok((h, payload)) => {
                stats.handle_rtp(&h, payload.len(), now);
                for (_, frame) in reorder.push(h.seq, payload.to_vec()) {
                    assert!(frame.len() <= data.len());
                }
                let _ = parse_event(payload);
                let _ = dtmf.handle_packet(h.timestamp, h.marker, payload, now);
                let _ = digits.handle_rtp_event(h.timestamp, h.marker, payload, now);
            }
            Err(_) => {
                if let Some(&c) = dgram.first() {
                    let _ = digits.push_info(char::from(c), now);
                    let _ = events_for_digit(char::from(c), u32::from(*step) * 40, 8000);
                }
            }
        }
        let _ = dtmf.poll(now);
        digits.poll(now);
        while digits.next_digit().is_some() {}
        let _ = stats.report_block(now);
    }
    let loss = stats.loss_percent();
    assert!((0.0..=100.0).contains(&loss), "loss {loss}");
    assert!(stats.jitter_ms().is_finite());
    while reorder.pop_oldest().is_some() {}
});
