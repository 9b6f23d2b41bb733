//! Fuzz `rtp::rtcp::parse_compound` on arbitrary bytes: it must never panic; the packet iterator
//! must agree with it; and every SR, RR, SDES and BYE that parses must re-encode with the module's
//! writers to bytes that parse back to the same packet (SDES: the CNAME; BYE: the SSRCs).

#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_assistant::rtp::packet::Ssrc;
use sip_assistant::rtp::rtcp::{
    is_rtcp, packets, parse_compound, report_about, write_bye, write_rr, write_sdes_cname, write_sr,
    NtpTimestamp, RtcpPacket,
};

fuzz_target!(|data: &[u8]| {
    let _ = is_rtcp(data);
    let all = parse_compound(data);
    let iterated: Result<Vec<RtcpPacket>, _> = packets(data).collect();
    if !data.is_empty() {
        assert_eq!(all, iterated);
    }
    let Ok(all) = all else { return };
    for p in &all {
        let mut out = Vec::new();
        match p {
            RtcpPacket::SenderReport(sr) => {
                write_sr(sr.ssrc, &sr.info, &sr.reports, &mut out);
                assert_eq!(parse_compound(&out).expect("SR re-parse").first(), Some(p));
            }
            RtcpPacket::ReceiverReport(rr) => {
                write_rr(rr.ssrc, &rr.reports, &mut out);
                assert_eq!(parse_compound(&out).expect("RR re-parse").first(), Some(p));
            }
            RtcpPacket::Sdes(chunks) => {
                for c in chunks {
                    out.clear();
                    let cname = c.cname.clone().unwrap_or_default();
                    write_sdes_cname(c.ssrc, &cname, &mut out);
                    let back = parse_compound(&out).expect("SDES re-parse");
                    let Some(RtcpPacket::Sdes(b)) = back.first() else {
                        panic!("not SDES")
                    };
                    assert_eq!(b.first().map(|c| c.ssrc), Some(c.ssrc));
                    // Lossy UTF-8 may have grown past 255 bytes; the writer cuts it.
                    let got = b.first().and_then(|c| c.cname.clone()).unwrap_or_default();
                    assert!(cname.starts_with(&got));
                }
            }
            RtcpPacket::Bye(bye) => {
                let ssrcs: Vec<Ssrc> = bye.ssrcs.clone();
                write_bye(&ssrcs, bye.reason.as_deref(), &mut out);
                let back = parse_compound(&out).expect("BYE re-parse");
                let Some(RtcpPacket::Bye(b)) = back.first() else {
                    panic!("not BYE")
                };
                assert_eq!(b.ssrcs, bye.ssrcs);
            }
            RtcpPacket::Other { len, .. } => assert!(*len >= 4 && *len <= data.len()),
        }
        if let (Some(&b), RtcpPacket::ReceiverReport(rr)) = (data.first(), p) {
            if let Some(block) = rr.reports.first() {
                let _ = block.round_trip(NtpTimestamp(u64::from(b) << 40));
                let _ = block.jitter_ms(u32::from(b));
                let _ = report_about(&all, block.ssrc);
            }
        }
    }
});
