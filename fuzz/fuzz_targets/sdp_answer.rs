//! Fuzz the SDP readers on arbitrary bytes: `parse_answer` and `parse_remote_offer` never panic and
//! only return what they promise (a codec we offered, a non-zero port, a payload type below 128); for
//! any offer that `build_answer` accepts, the answer is CRLF-framed, carries no stray line break,
//! and reads back, as an answer, with the same codec, payload type and DTMF payload type.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_assistant::sdp::{build_answer, parse_answer, parse_remote_offer, Codec, OfferParams};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the codec set, so every subset gets exercised.
    let (codecs, body): (Vec<Codec>, &[u8]) = match data.split_first() {
        Some((selector, rest)) => (
            Codec::ALL
                .into_iter()
                .enumerate()
                .filter(|(i, _)| selector & (1 << i) != 0)
                .map(|(_, c)| c)
                .collect(),
            rest,
        ),
        None => (Codec::ALL.to_vec(), data),
    };

    for result in [parse_answer(body, &codecs), parse_remote_offer(body, &codecs)] {
        match result {
            Ok(n) => {
                assert!(codecs.contains(&n.codec), "codec {:?} not offered", n.codec);
                assert!(n.payload_type <= 127);
                assert!(n.dtmf_payload_type.is_none_or(|pt| pt <= 127 && pt != n.payload_type));
                assert_ne!(n.remote_port, 0);
                assert_eq!(n.clock_rate, n.codec.clock_rate());
            }
            Err(e) => {
                let message = e.to_string();
                assert!(!message.contains(['\r', '\n']), "line break in error: {message:?}");
            }
        }
    }

    let local = OfferParams {
        address: "192.0.2.10".to_string(),
        rtp_port: 40000,
        session_id: 1,
        session_version: 2,
        codecs,
        ptime_ms: 20,
    };
    if let Ok((agreed, answer)) = build_answer(&local, body) {
        assert!(answer.ends_with("\r\n"));
        assert!(
            answer.split("\r\n").all(|l| !l.contains(['\r', '\n'])),
            "stray line break in answer: {answer:?}"
        );
        let back = parse_answer(answer.as_bytes(), &[agreed.codec]).expect("our own answer parses");
        assert_eq!(
            (back.codec, back.payload_type, back.dtmf_payload_type),
            (agreed.codec, agreed.payload_type, agreed.dtmf_payload_type)
        );
    }
});
