//! The call flow in virtual time: every path the real-peer tests reach, and the races between the
//! script, SIP and a cancel.

use std::time::{Duration, Instant};

use super::*;
use crate::call::ConfirmedBy;

const ID: CallKey = 7;

fn plan() -> CallPlan {
    CallPlan {
        id: ID,
        uri: "sip:1001@pbx.test".into(),
        local_host: None,
        ring_timeout: Duration::from_secs(30),
        offer: sdp::OfferParams {
            address: "127.0.0.1".into(),
            rtp_port: 20_000,
            session_id: ID,
            session_version: 1,
            codecs: vec![sdp::Codec::Pcmu, sdp::Codec::Pcma],
            ptime_ms: 20,
        },
        rtp: RtpNumbers {
            ssrc: 0x1234_5678,
            initial_seq: 99,
            initial_timestamp: 4242,
        },
    }
}

fn answer_sdp(direction: &str) -> Vec<u8> {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na={direction}\r\n"
    )
    .into_bytes()
}

/// The flow and a virtual clock.
struct Run {
    flow: CallFlow,
    t0: Instant,
}

impl Run {
    /// A flow whose INVITE went out (checked).
    fn dialed() -> Self {
        let t0 = Instant::now();
        let mut flow = CallFlow::new(plan(), t0);
        let first: Vec<Output> = std::iter::from_fn(|| flow.poll_output()).collect();
        match first.as_slice() {
            [Output::Ua(Command::Call {
                id,
                uri,
                sdp,
                offer,
                ring_timeout,
                ..
            })] => {
                assert_eq!((*id, uri.as_str()), (ID, "sip:1001@pbx.test"));
                assert_eq!(*ring_timeout, Duration::from_secs(30));
                let sdp = String::from_utf8_lossy(sdp);
                assert!(sdp.contains("m=audio 20000 RTP/AVP 0 8 101"), "{sdp}");
                assert!(offer.is_some());
            }
            other => panic!("expected the INVITE first, got {other:?}"),
        }
        Self { flow, t0 }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn input(&mut self, ms: u64, input: Input) -> Vec<Output> {
        self.flow.handle_input(self.at(ms), input);
        std::iter::from_fn(|| self.flow.poll_output()).collect()
    }

    fn sip(&mut self, ms: u64, e: Event) -> Vec<Output> {
        self.input(ms, Input::Sip(e))
    }

    fn timeout(&mut self, ms: u64) -> Vec<Output> {
        self.flow.handle_timeout(self.at(ms));
        std::iter::from_fn(|| self.flow.poll_output()).collect()
    }

    /// Answered at 1 s, media open at 1.05 s, the script running.
    fn running() -> Self {
        let mut r = Self::dialed();
        r.sip(100, Event::Ringing { id: ID });
        let out = r.sip(
            1_000,
            Event::Answered {
                id: ID,
                sdp: answer_sdp("sendrecv"),
            },
        );
        assert!(matches!(out.last(), Some(Output::OpenMedia(_))), "{out:?}");
        let out = r.input(1_050, Input::MediaOpened);
        assert!(
            matches!(
                out.as_slice(),
                [Output::StartScript {
                    codec: AudioCodec::Pcmu
                }]
            ),
            "{out:?}"
        );
        r
    }
}

fn ended(end: CallEnd) -> Event {
    Event::Ended { id: ID, end }
}

fn events(out: &[Output]) -> Vec<(String, String)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Progress(Progress::Event { name, detail }) => {
                Some((name.as_str().to_string(), detail.clone().unwrap_or_default()))
            }
            Output::Progress(Progress::Ringing) => Some(("ringing".into(), String::new())),
            Output::Progress(Progress::Answered) => Some(("answered".into(), String::new())),
            _ => None,
        })
        .collect()
}

fn hangups(out: &[Output]) -> usize {
    out.iter()
        .filter(|o| matches!(o, Output::Ua(Command::Hangup { id: ID })))
        .count()
}

fn done(out: &[Output]) -> CallOutcome {
    match out.last() {
        Some(Output::Done(o)) => o.clone(),
        other => panic!("expected the outcome last, got {other:?} in {out:?}"),
    }
}

fn played() -> ScriptResult {
    ScriptResult {
        message_played: true,
        choice_response: Some("yes".into()),
        choice_raw_text: Some("yes please".into()),
        confirmed_by: Some(ConfirmedBy::Speech),
        error: None,
    }
}

fn health(answer_to_audio_ms: f64, no_rtp: bool) -> MediaHealth {
    MediaHealth {
        codec: "PCMU".into(),
        answer_to_audio_ms: Some(answer_to_audio_ms),
        no_rtp_received: no_rtp,
        ..MediaHealth::default()
    }
}

#[test]
fn ringing_then_no_answer_ends_without_media() {
    let mut r = Run::dialed();
    assert_eq!(
        events(&r.sip(200, Event::Ringing { id: ID })),
        [("ringing".into(), String::new())]
    );
    let out = r.sip(30_000, ended(CallEnd::NoAnswer));
    let o = done(&out);
    assert_eq!((o.status, o.error, o.media), (FinalStatus::NoAnswer, None, None));
    assert!(r.flow.is_done() && r.flow.poll_timeout().is_none());
}

#[test]
fn busy_and_rejected_calls_say_why() {
    let mut r = Run::dialed();
    let o = done(&r.sip(
        300,
        ended(CallEnd::Busy {
            code: 486,
            reason: "Busy Here".into(),
        }),
    ));
    assert_eq!(
        (o.status, o.error.as_deref()),
        (FinalStatus::Busy, Some("486 Busy Here"))
    );
    let mut r = Run::dialed();
    let o = done(&r.sip(
        300,
        ended(CallEnd::Failed {
            reason: "404 Not Found".into(),
        }),
    ));
    assert_eq!(
        (o.status, o.error.as_deref()),
        (FinalStatus::Failed, Some("404 Not Found"))
    );
}

#[test]
fn an_answered_call_opens_media_runs_the_script_hangs_up_and_reports() {
    let mut r = Run::dialed();
    let out = r.sip(
        1_000,
        Event::Answered {
            id: ID,
            sdp: answer_sdp("sendrecv"),
        },
    );
    assert_eq!(
        events(&out),
        [
            ("answered".into(), String::new()),
            ("media_started".into(), "PCMU to 127.0.0.1:4000".into())
        ]
    );
    let Some(Output::OpenMedia(p)) = out.last() else {
        panic!("{out:?}")
    };
    assert_eq!(
        (p.codec, p.payload_type, p.dtmf_payload_type),
        (AudioCodec::Pcmu, 0, Some(101))
    );
    assert_eq!((p.remote.port(), p.remote_rtcp.port()), (4000, 4001));
    assert_eq!(
        (p.ssrc, p.initial_seq, p.initial_timestamp),
        (0x1234_5678, 99, 4242)
    );
    let out = r.input(1_050, Input::MediaOpened);
    assert!(matches!(
        out.as_slice(),
        [Output::StartScript {
            codec: AudioCodec::Pcmu
        }]
    ));
    // The script ends by itself: we hang up and wait for the user agent to confirm.
    let out = r.input(20_000, Input::ScriptDone(played()));
    assert_eq!((hangups(&out), out.len()), (1, 1), "{out:?}");
    let out = r.sip(20_100, ended(CallEnd::HungUpLocal));
    assert_eq!(events(&out), [("hangup".into(), "by us".into())]);
    assert!(matches!(out.last(), Some(Output::CloseMedia)));
    let o = done(&r.input(20_110, Input::MediaClosed(Some(health(100.0, false)))));
    assert_eq!(o.status, FinalStatus::Completed);
    assert_eq!(o.error, None);
    assert!(o.message_played);
    assert_eq!(o.choice_response.as_deref(), Some("yes"));
    assert_eq!(o.confirmed_by, Some(ConfirmedBy::Speech));
    // The 50 ms from the 200 OK to the media session count towards the first audio.
    assert_eq!(o.media.and_then(|m| m.answer_to_audio_ms), Some(150.0));
}

#[test]
fn the_dialog_is_recorded_whenever_it_changes() {
    let mut r = Run::running();
    let dialog = crate::sip::ua::SavedDialog {
        call_id: "c1".into(),
        local_uri: "sip:a@x".into(),
        local_tag: "t1".into(),
        remote_uri: "sip:1001@pbx.test".into(),
        remote_tag: "t2".into(),
        remote_target: "sip:1001@127.0.0.1".into(),
        route_set: Vec::new(),
        local_cseq: 2,
        local_host: "127.0.0.1".into(),
        dest_host: "127.0.0.1".into(),
        dest_port: 5060,
        transport: crate::sip::ua::Transport::Udp,
    };
    let out = r.sip(
        2_000,
        Event::DialogSaved {
            id: ID,
            dialog: Box::new(dialog.clone()),
        },
    );
    assert!(matches!(out.as_slice(), [Output::Progress(Progress::Dialog(d))] if *d == dialog));
}

#[test]
fn a_bye_during_the_prompt_stops_the_script_and_keeps_what_it_had() {
    let mut r = Run::running();
    let out = r.sip(5_000, ended(CallEnd::HungUpRemote));
    assert!(matches!(out.as_slice(), [Output::StopScript]), "{out:?}");
    let partial = ScriptResult {
        message_played: true,
        ..ScriptResult::default()
    };
    let out = r.input(5_000, Input::ScriptStopped(partial));
    assert_eq!(events(&out), [("hangup".into(), "by the far end".into())]);
    assert_eq!(hangups(&out), 0, "the far end already hung up");
    assert!(matches!(out.last(), Some(Output::CloseMedia)));
    let o = done(&r.input(5_010, Input::MediaClosed(None)));
    assert_eq!(
        (o.status, o.message_played, o.choice_response),
        (FinalStatus::Completed, true, None)
    );
}

#[test]
fn a_hang_up_while_the_prompt_renders_reports_nothing_played() {
    let mut r = Run::running();
    r.sip(1_200, ended(CallEnd::HungUpRemote));
    let out = r.input(1_200, Input::ScriptStopped(ScriptResult::default()));
    let o = {
        assert!(matches!(out.last(), Some(Output::CloseMedia)));
        done(&r.input(1_210, Input::MediaClosed(Some(health(0.0, true)))))
    };
    assert_eq!((o.status, o.message_played), (FinalStatus::Completed, false));
}

#[test]
fn a_cancel_while_ringing_cancels_once_and_reports_cancelled() {
    let mut r = Run::dialed();
    r.sip(100, Event::Ringing { id: ID });
    assert_eq!(hangups(&r.input(2_000, Input::Cancel)), 1);
    assert!(
        r.input(2_001, Input::Cancel).is_empty(),
        "a second cancel sends nothing"
    );
    let o = done(&r.sip(2_050, ended(CallEnd::Cancelled)));
    assert_eq!(
        (o.status, o.error.as_deref()),
        (FinalStatus::Failed, Some("cancelled"))
    );
}

#[test]
fn a_200_crossing_the_cancel_never_starts_media_or_the_script() {
    // The user agent ACKs and BYEs the crossing 200 itself and reports the call cancelled.
    let mut r = Run::dialed();
    r.input(2_000, Input::Cancel);
    let o = done(&r.sip(2_040, ended(CallEnd::Cancelled)));
    assert_eq!(o.error.as_deref(), Some("cancelled"));
    // Should an answer be reported after the cancel, it is hung up without media.
    let mut r = Run::dialed();
    r.input(2_000, Input::Cancel);
    let out = r.sip(
        2_030,
        Event::Answered {
            id: ID,
            sdp: answer_sdp("sendrecv"),
        },
    );
    assert_eq!(hangups(&out), 1);
    assert!(!out
        .iter()
        .any(|o| matches!(o, Output::OpenMedia(_) | Output::StartScript { .. })));
    let o = done(&r.sip(2_060, ended(CallEnd::HungUpLocal)));
    assert_eq!((o.message_played, o.media), (false, None));
}

#[test]
fn a_cancel_during_the_script_stops_it_then_hangs_up() {
    let mut r = Run::running();
    let out = r.input(8_000, Input::Cancel);
    assert!(matches!(out.as_slice(), [Output::StopScript]), "{out:?}");
    let out = r.input(8_000, Input::ScriptStopped(played()));
    assert_eq!((hangups(&out), out.len()), (1, 1));
    assert!(r.input(8_010, Input::Cancel).is_empty(), "hanging up already");
    let out = r.sip(8_100, ended(CallEnd::HungUpLocal));
    assert_eq!(events(&out), [("hangup".into(), "by us".into())]);
    let o = done(&r.input(8_110, Input::MediaClosed(None)));
    assert_eq!(
        (o.status, o.choice_response.as_deref()),
        (FinalStatus::Completed, Some("yes"))
    );
}

#[test]
fn the_script_finishing_as_the_far_end_hangs_up_ends_once() {
    let mut r = Run::running();
    let out = r.input(9_000, Input::ScriptDone(played()));
    assert_eq!(hangups(&out), 1);
    // The far end's BYE crossed our hang-up: the user agent reports its end.
    let out = r.sip(9_001, ended(CallEnd::HungUpRemote));
    assert_eq!(events(&out), [("hangup".into(), "by the far end".into())]);
    let o = done(&r.input(9_010, Input::MediaClosed(None)));
    assert_eq!((o.status, o.message_played), (FinalStatus::Completed, true));
}

#[test]
fn a_cancel_while_media_opens_hangs_up_without_running_the_script() {
    let mut r = Run::dialed();
    r.sip(
        1_000,
        Event::Answered {
            id: ID,
            sdp: answer_sdp("sendrecv"),
        },
    );
    assert_eq!(hangups(&r.input(1_001, Input::Cancel)), 1);
    let out = r.input(1_002, Input::MediaOpened);
    assert!(out.is_empty(), "{out:?}");
    let out = r.sip(1_100, ended(CallEnd::HungUpLocal));
    assert!(matches!(out.last(), Some(Output::CloseMedia)));
    let o = done(&r.input(1_110, Input::MediaClosed(None)));
    assert_eq!((o.status, o.message_played), (FinalStatus::Completed, false));
}

#[test]
fn an_end_while_media_opens_closes_it_at_once() {
    let mut r = Run::dialed();
    r.sip(
        1_000,
        Event::Answered {
            id: ID,
            sdp: answer_sdp("sendrecv"),
        },
    );
    assert!(r.sip(1_001, ended(CallEnd::HungUpRemote)).is_empty());
    let out = r.input(1_002, Input::MediaOpened);
    assert!(matches!(out.last(), Some(Output::CloseMedia)), "{out:?}");
    assert!(!out.iter().any(|o| matches!(o, Output::StartScript { .. })));
    assert_eq!(
        done(&r.input(1_010, Input::MediaClosed(None))).status,
        FinalStatus::Completed
    );
}

#[test]
fn an_unusable_answer_fails_the_call_and_hangs_up() {
    let mut r = Run::dialed();
    let bad = b"v=0\r\nm=audio 4000 RTP/AVP 18\r\nc=IN IP4 127.0.0.1\r\n".to_vec();
    let out = r.sip(1_000, Event::Answered { id: ID, sdp: bad });
    let ev = events(&out);
    assert_eq!(ev[0].0, "answered");
    assert_eq!(ev[1].0, "media_failed");
    assert!(ev[1].1.starts_with("unusable SDP answer: "), "{ev:?}");
    assert_eq!(hangups(&out), 1);
    assert!(!out.iter().any(|o| matches!(o, Output::OpenMedia(_))));
    let o = done(&r.sip(1_100, ended(CallEnd::HungUpLocal)));
    assert_eq!(o.status, FinalStatus::Failed);
    assert!(o.error.is_some_and(|e| e.starts_with("unusable SDP answer: ")));
}

#[test]
fn media_that_cannot_start_fails_the_call_even_if_the_end_never_comes() {
    let mut r = Run::dialed();
    r.sip(
        1_000,
        Event::Answered {
            id: ID,
            sdp: answer_sdp("sendrecv"),
        },
    );
    let out = r.input(1_001, Input::MediaFailed("no ports".into()));
    assert_eq!(events(&out), [("media_failed".into(), "no ports".into())]);
    assert_eq!(hangups(&out), 1);
    assert!(r.timeout(60_000).is_empty(), "waits for the end");
    let o = done(&r.timeout(1_001 + 64_000));
    assert_eq!(o.error.as_deref(), Some("cannot start media: no ports"));
}

#[test]
fn a_far_end_that_never_answers_or_ends_is_given_up() {
    let mut r = Run::dialed();
    let give_up = r.flow.poll_timeout().expect("a deadline while dialing");
    assert_eq!(give_up, r.at(30_000 + 92_000));
    assert!(r.timeout(121_999).is_empty());
    let out = r.timeout(122_000);
    assert_eq!(hangups(&out), 1);
    assert_eq!(
        done(&out).error.as_deref(),
        Some("the call did not end in time; hung up")
    );
}

#[test]
fn an_answered_call_that_outlives_the_limit_is_hung_up() {
    let mut r = Run::running();
    assert_eq!(r.flow.poll_timeout(), Some(r.at(1_000) + MAX_ANSWERED));
    let limit = 1_000 + MAX_ANSWERED.as_millis() as u64;
    let out = r.timeout(limit);
    assert!(matches!(out.as_slice(), [Output::StopScript]), "{out:?}");
    assert_eq!(hangups(&r.input(limit, Input::ScriptStopped(played()))), 1);
    // The far end never confirms: close media and report it.
    let out = r.timeout(limit + 64_000);
    assert!(matches!(out.last(), Some(Output::CloseMedia)));
    let o = done(&r.input(limit + 64_010, Input::MediaClosed(None)));
    assert_eq!(o.error.as_deref(), Some("the call did not end cleanly"));
    assert!(o.message_played);
}

#[test]
fn sip_info_digits_and_re_invites_reach_media_only_while_the_script_runs() {
    let mut r = Run::dialed();
    assert!(
        r.sip(500, Event::Dtmf { id: ID, digit: '5' }).is_empty(),
        "no media yet"
    );
    let mut r = Run::running();
    let out = r.sip(3_000, Event::Dtmf { id: ID, digit: '5' });
    assert_eq!(events(&out), [("dtmf".into(), "5 (SIP INFO)".into())]);
    assert!(matches!(out.last(), Some(Output::InfoDigit('5'))));
    let held = sdp::parse_answer(&answer_sdp("sendonly"), &[sdp::Codec::Pcmu]).expect("hold SDP");
    let out = r.sip(
        4_000,
        Event::MediaChanged {
            id: ID,
            negotiated: held,
        },
    );
    assert_eq!(
        events(&out),
        [("media_held".into(), "127.0.0.1:4000 sendonly".into())]
    );
    assert!(matches!(
        out.last(),
        Some(Output::UpdateMedia { sending: false, .. })
    ));
    let resumed = sdp::parse_answer(&answer_sdp("sendrecv"), &[sdp::Codec::Pcmu]).expect("SDP");
    let out = r.sip(
        6_000,
        Event::MediaChanged {
            id: ID,
            negotiated: resumed,
        },
    );
    assert_eq!(events(&out)[0].0, "media_resumed");
    assert!(matches!(
        out.last(),
        Some(Output::UpdateMedia { sending: true, .. })
    ));
}

#[test]
fn silence_from_the_far_end_is_written_to_the_timeline() {
    let mut r = Run::running();
    r.input(9_000, Input::ScriptDone(played()));
    r.sip(9_100, ended(CallEnd::HungUpLocal));
    let out = r.input(9_110, Input::MediaClosed(Some(health(20.0, true))));
    assert_eq!(events(&out)[0].0, "no_rtp_received");
    assert!(done(&out).media.is_some_and(|m| m.no_rtp_received));
}

#[test]
fn losing_the_sip_driver_ends_the_call_at_every_step() {
    let mut r = Run::dialed();
    assert_eq!(
        done(&r.input(100, Input::SipStopped)).error.as_deref(),
        Some("the SIP driver has stopped")
    );
    // Mid-script (a shutdown): the script stops, media closes, what was heard is kept.
    let mut r = Run::running();
    assert!(matches!(
        r.input(5_000, Input::SipStopped).as_slice(),
        [Output::StopScript]
    ));
    let out = r.input(5_000, Input::ScriptStopped(played()));
    assert_eq!(hangups(&out), 0);
    let o = done(&r.input(5_010, Input::MediaClosed(None)));
    assert_eq!(o.error.as_deref(), Some("the call did not end cleanly"));
    assert_eq!(o.choice_response.as_deref(), Some("yes"));
    // While hanging up.
    let mut r = Run::running();
    r.input(5_000, Input::ScriptDone(played()));
    let out = r.input(5_001, Input::SipStopped);
    assert!(matches!(out.last(), Some(Output::CloseMedia)));
}

#[test]
fn inputs_out_of_turn_change_nothing() {
    let mut r = Run::dialed();
    assert!(r.input(10, Input::MediaOpened).is_empty());
    assert!(r.input(10, Input::ScriptDone(played())).is_empty());
    assert!(r.input(10, Input::MediaClosed(None)).is_empty());
    // Still dialing: an answer is handled as ever.
    let out = r.sip(
        1_000,
        Event::Answered {
            id: ID,
            sdp: answer_sdp("sendrecv"),
        },
    );
    assert!(matches!(out.last(), Some(Output::OpenMedia(_))));
    // A second answer is ignored.
    assert!(r
        .sip(
            1_001,
            Event::Answered {
                id: ID,
                sdp: answer_sdp("sendrecv"),
            },
        )
        .is_empty());
}
