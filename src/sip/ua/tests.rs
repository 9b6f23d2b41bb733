//! Scenario tests of the user agent in virtual time: a scripted fake PBX answers what the UA
//! sends, a seeded lossy wire drops chosen transmissions, and the clock only moves when the
//! harness steps it to the next deadline. Instants are asserted to the millisecond.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::sip::message::build_response;

const PBX: &str = "127.0.0.1:5060";

struct Sent {
    at: Duration,
    dest: Dest,
    msg: Message,
}

struct Harness {
    ua: UserAgent,
    t0: Instant,
    now: Instant,
    sent: Vec<Sent>,
    events: Vec<(Duration, Event)>,
    /// Drop the n-th transmissions (0-based) before they reach the PBX.
    lose: Vec<usize>,
    transmissions: usize,
    transport: Transport,
}

fn config(transport: Transport, refresh_max: Option<Duration>) -> UaConfig {
    UaConfig {
        user: "1050".into(),
        password: Some("secret-pw".into()),
        domain: "127.0.0.1".into(),
        outbound_proxy: Some(Dest {
            host: "127.0.0.1".into(),
            port: 5060,
            transport,
        }),
        transport,
        local_host: "127.0.0.1".into(),
        local_port: 5070,
        register_expires: 300,
        register_refresh_max: refresh_max,
        user_agent: "sip-assistant-test".into(),
    }
}

impl Harness {
    fn new(cfg: UaConfig) -> Self {
        let t0 = Instant::now();
        let transport = cfg.transport;
        Self {
            ua: UserAgent::new(cfg, 1234, t0),
            t0,
            now: t0,
            sent: Vec::new(),
            events: Vec::new(),
            lose: Vec::new(),
            transmissions: 0,
            transport,
        }
    }

    fn ms(&self) -> Duration {
        self.now - self.t0
    }

    /// Drain outputs; returns the next deadline.
    fn drain(&mut self) -> Instant {
        loop {
            match self.ua.poll_output() {
                Output::Transmit { dest, bytes } => {
                    let n = self.transmissions;
                    self.transmissions += 1;
                    let msg = parse(&bytes).expect("the UA sends parseable messages");
                    if !self.lose.contains(&n) {
                        self.sent.push(Sent {
                            at: self.ms(),
                            dest,
                            msg,
                        });
                    }
                }
                Output::Event(e) => self.events.push((self.ms(), e)),
                Output::Timeout(at) => return at,
            }
        }
    }

    fn command(&mut self, c: Command) {
        self.ua.handle_command(self.now, c);
        self.drain();
    }

    /// Step timers until `t` (since t0).
    fn run_until(&mut self, t: Duration) {
        let end = self.t0 + t;
        loop {
            let next = self.drain();
            if next > end {
                break;
            }
            self.now = next.max(self.now);
            self.ua.handle_timeout(self.now);
        }
        self.now = end;
        self.drain();
    }

    fn deliver(&mut self, bytes: Vec<u8>) {
        let from: SocketAddr = PBX.parse().expect("addr");
        self.ua.handle_input(
            self.now,
            Input::Message {
                from,
                transport: self.transport,
                bytes: &bytes,
            },
        );
        self.drain();
    }

    /// The PBX answers `req` with `code` and extra headers.
    fn reply(&mut self, req: &Message, code: u16, headers: &[(&str, &str)], body: &[u8]) {
        let mut h = Headers::new();
        for (n, v) in headers {
            h.add(n, *v);
        }
        let bytes = build_response(req, code, "", Some("pbx-tag"), h, body);
        self.deliver(bytes);
    }

    fn requests(&self, method: &str) -> Vec<&Sent> {
        self.sent
            .iter()
            .filter(|s| s.msg.method() == Some(method))
            .collect()
    }

    fn last(&self, method: &str) -> Message {
        self.requests(method)
            .last()
            .map(|s| s.msg.clone())
            .unwrap_or_else(|| panic!("no {method} sent"))
    }

    fn times(&self, method: &str) -> Vec<u64> {
        self.requests(method)
            .iter()
            .map(|s| s.at.as_millis() as u64)
            .collect()
    }

    fn has_event(&self, f: impl Fn(&Event) -> bool) -> Option<Duration> {
        self.events.iter().find(|(_, e)| f(e)).map(|(t, _)| *t)
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Check a digest answer the way a PBX would, with rsip's own generator (independent code).
fn verify_digest(
    req: &Message,
    header: &str,
    password: &str,
    algorithm: rsip::headers::auth::Algorithm,
) -> bool {
    let value = req.value(header).expect("credentials present");
    let param = |name: &str| {
        value
            .split(',')
            .find_map(|p| {
                let (k, v) = p.trim().trim_start_matches("Digest ").split_once('=')?;
                (k.trim() == name).then(|| v.trim().trim_matches('"').to_string())
            })
            .unwrap_or_default()
    };
    let uri = rsip::Uri::try_from(param("uri").as_str()).expect("uri");
    let method: rsip::Method = req.method().expect("request").parse().expect("method");
    let nc: u8 = param("nc").parse().expect("nc");
    let qop = rsip::headers::auth::AuthQop::Auth {
        cnonce: param("cnonce"),
        nc,
    };
    let (username, nonce, realm) = (param("username"), param("nonce"), param("realm"));
    let generator = rsip::services::DigestGenerator {
        username: &username,
        password,
        nonce: &nonce,
        uri: &uri,
        realm: &realm,
        method: &method,
        qop: Some(&qop),
        algorithm,
    };
    generator.verify(&param("response"))
}

const CHALLENGE: &str = r#"Digest realm="127.0.0.1", nonce="n0nce-1", qop="auth", algorithm=MD5"#;

#[test]
fn register_retransmits_on_timer_e_and_times_out_on_timer_f() {
    let mut h = Harness::new(config(Transport::Udp, None));
    h.command(Command::Register);
    h.run_until(secs(40.0));
    // E: 0.5, 1, 2, 4, then capped at T2 = 4 s; F at 32 s.
    let expected: Vec<u64> = vec![
        0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500, 33000, 33500, 34500, 36500,
    ];
    assert_eq!(h.times("REGISTER"), expected);
    assert_eq!(
        h.has_event(|e| matches!(e, Event::RegistrationFailed { reason } if reason.starts_with("no response from 127.0.0.1:5060"))),
        Some(secs(32.0)),
        "{:?}",
        h.events
    );
    assert!(!h.ua.is_registered());
}

#[test]
fn register_over_tcp_is_not_retransmitted() {
    let mut h = Harness::new(config(Transport::Tcp, None));
    h.command(Command::Register);
    h.run_until(secs(31.9));
    assert_eq!(h.times("REGISTER"), vec![0]);
    let via = h.last("REGISTER").top_via;
    assert_eq!(via.transport, "TCP");
    h.run_until(secs(32.0));
    assert!(h
        .has_event(|e| matches!(e, Event::RegistrationFailed { .. }))
        .is_some());
}

#[test]
fn register_with_digest_through_loss_then_refresh_and_unregister() {
    let mut h = Harness::new(config(Transport::Udp, Some(Duration::from_secs(25))));
    // The wire loses the first REGISTER; the retransmission at 500 ms gets through.
    h.lose = vec![0];
    h.command(Command::Register);
    h.run_until(secs(0.5));
    assert_eq!(h.times("REGISTER"), vec![500]);
    let first = h.last("REGISTER");
    assert_eq!(first.value("expires"), Some("300"));
    assert_eq!(first.value("contact"), Some("<sip:1050@127.0.0.1:5070>"));
    h.reply(&first, 401, &[("WWW-Authenticate", CHALLENGE)], b"");
    let second = h.last("REGISTER");
    assert_eq!(second.cseq, first.cseq + 1);
    assert_eq!(second.call_id, first.call_id);
    assert_ne!(second.top_via.branch(), first.top_via.branch());
    assert!(verify_digest(
        &second,
        "authorization",
        "secret-pw",
        rsip::headers::auth::Algorithm::Md5
    ));
    h.reply(
        &second,
        200,
        &[("Contact", "<sip:1050@127.0.0.1:5070>;expires=120")],
        b"",
    );
    assert!(h.ua.is_registered());
    assert_eq!(
        h.has_event(|e| *e == Event::Registered { expires: 120 }),
        Some(secs(0.5))
    );
    // Refresh at min(4/5 of 120 s, 25 s) = 25 s after the 200.
    h.run_until(secs(30.0));
    let after: Vec<u64> = h.times("REGISTER").into_iter().filter(|t| *t > 1000).collect();
    assert_eq!(
        after,
        vec![25_500, 26_000, 27_000, 29_000],
        "refresh at 25.5 s, then timer E"
    );
    let refresh = h.last("REGISTER");
    assert_eq!(refresh.call_id, first.call_id);
    h.reply(&refresh, 200, &[("Expires", "120")], b"");
    // Graceful shutdown: Expires: 0, then Unregistered.
    h.command(Command::Unregister);
    let bye = h.last("REGISTER");
    assert_eq!(bye.value("expires"), Some("0"));
    h.reply(
        &bye,
        401,
        &[(
            "WWW-Authenticate",
            r#"Digest realm="127.0.0.1", nonce="n0nce-2", qop="auth""#,
        )],
        b"",
    );
    let bye2 = h.last("REGISTER");
    assert_eq!(bye2.value("expires"), Some("0"));
    assert!(verify_digest(
        &bye2,
        "authorization",
        "secret-pw",
        rsip::headers::auth::Algorithm::Md5
    ));
    h.reply(&bye2, 200, &[], b"");
    assert!(h.has_event(|e| *e == Event::Unregistered).is_some());
    assert!(!h.ua.is_registered());
    h.run_until(secs(400.0));
    assert_eq!(
        h.times("REGISTER").last().copied(),
        Some(30_000),
        "no refresh after unregistering"
    );
}

#[test]
fn a_second_challenge_is_rejected_and_retried_slowly_but_stale_is_followed() {
    let mut h = Harness::new(config(Transport::Udp, None));
    h.command(Command::Register);
    let r1 = h.last("REGISTER");
    h.reply(&r1, 401, &[("WWW-Authenticate", CHALLENGE)], b"");
    let r2 = h.last("REGISTER");
    let stale = r#"Digest realm="127.0.0.1", nonce="n0nce-2", qop="auth", stale=true"#;
    h.reply(&r2, 401, &[("WWW-Authenticate", stale)], b"");
    let r3 = h.last("REGISTER");
    assert!(
        r3.value("authorization").is_some_and(|v| v.contains("n0nce-2")),
        "stale=true is answered"
    );
    h.reply(&r3, 401, &[("WWW-Authenticate", CHALLENGE)], b"");
    assert_eq!(
        h.has_event(
            |e| matches!(e, Event::RegistrationFailed { reason } if reason == "authentication rejected")
        ),
        Some(Duration::ZERO)
    );
    let n = h.requests("REGISTER").len();
    h.run_until(secs(59.0));
    assert_eq!(
        h.requests("REGISTER").len(),
        n,
        "no hammering after a rejected password"
    );
    h.run_until(secs(60.0));
    assert_eq!(h.requests("REGISTER").len(), n + 1);
}

#[test]
fn registration_failures_back_off_up_to_20_seconds() {
    let mut h = Harness::new(config(Transport::Tcp, None));
    h.command(Command::Register);
    for _ in 0..7 {
        let r = h.last("REGISTER");
        let n = h.requests("REGISTER").len();
        h.reply(&r, 503, &[], b"");
        // Step 100 ms at a time until the retry goes out.
        for _ in 0..300 {
            let t = h.ms() + Duration::from_millis(100);
            h.run_until(t);
            if h.requests("REGISTER").len() > n {
                break;
            }
        }
    }
    let t = h.times("REGISTER");
    let gaps: Vec<u64> = t.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps, vec![1000, 2000, 4000, 8000, 16000, 20000, 20000]);
}

fn start_call(h: &mut Harness, ring: u64) -> Message {
    h.command(Command::Call {
        id: 7,
        uri: "sip:1001@127.0.0.1".into(),
        local_host: None,
        ring_timeout: Duration::from_secs(ring),
        sdp: sdp_offer_g711("127.0.0.1", 40000, 1),
    });
    h.last("INVITE")
}

#[test]
fn invite_retransmits_on_timer_a_and_times_out_on_timer_b() {
    let mut h = Harness::new(config(Transport::Udp, None));
    let inv = start_call(&mut h, 60);
    assert_eq!(inv.content_type().as_deref(), Some("application/sdp"));
    assert!(String::from_utf8_lossy(&inv.body).contains("m=audio 40000 RTP/AVP 0 8 101"));
    h.run_until(secs(40.0));
    assert_eq!(h.times("INVITE"), vec![0, 500, 1500, 3500, 7500, 15500, 31500]);
    let ended = h.events.iter().find_map(|(t, e)| match e {
        Event::Ended {
            id: 7,
            end: CallEnd::Failed { reason },
        } => Some((*t, reason.clone())),
        _ => None,
    });
    assert_eq!(
        ended,
        Some((
            secs(32.0),
            "no response from 127.0.0.1:5060 over UDP to the INVITE".into()
        ))
    );
}

#[test]
fn provisional_stops_retransmission_and_answer_is_acked_through_the_route_set() {
    let mut h = Harness::new(config(Transport::Udp, None));
    let inv = start_call(&mut h, 30);
    h.run_until(secs(0.2));
    h.reply(&inv, 407, &[("Proxy-Authenticate", CHALLENGE)], b"");
    // The 407 is ACKed on the INVITE's branch, and the INVITE resent with credentials.
    let ack = h.last("ACK");
    assert_eq!(ack.top_via.branch(), inv.top_via.branch());
    assert_eq!((ack.cseq, ack.cseq_method.as_str()), (1, "ACK"));
    let inv2 = h.last("INVITE");
    assert_eq!(inv2.cseq, 2);
    assert!(verify_digest(
        &inv2,
        "proxy-authorization",
        "secret-pw",
        rsip::headers::auth::Algorithm::Md5
    ));
    h.reply(&inv2, 100, &[], b"");
    h.reply(&inv2, 180, &[], b"");
    assert!(h.has_event(|e| *e == Event::Ringing { id: 7 }).is_some());
    h.run_until(secs(5.0));
    assert_eq!(
        h.requests("INVITE").len(),
        2,
        "no retransmission after a provisional"
    );
    let rr = [
        ("Record-Route", "<sip:127.0.0.1:5060;lr;ftag=x>"),
        ("Contact", "<sip:1001@127.0.0.1:5080>"),
        ("Content-Type", "application/sdp"),
    ];
    h.reply(&inv2, 200, &rr, b"v=0\r\n");
    let ack = h.last("ACK");
    assert_eq!(
        ack.start,
        crate::sip::message::Start::Request {
            method: "ACK".into(),
            uri: "sip:1001@127.0.0.1:5080".into()
        }
    );
    assert_eq!(ack.value("route"), Some("<sip:127.0.0.1:5060;lr;ftag=x>"));
    assert_eq!(ack.cseq, 2);
    assert_ne!(
        ack.top_via.branch(),
        inv2.top_via.branch(),
        "a 2xx ACK is a new transaction"
    );
    assert_eq!(ack.to.tag(), Some("pbx-tag"));
    assert!(h
        .has_event(|e| matches!(e, Event::Answered { id: 7, sdp } if sdp == b"v=0\r\n"))
        .is_some());
    // A retransmitted 200 is ACKed again.
    let acks = h.requests("ACK").len();
    h.reply(&inv2, 200, &rr, b"v=0\r\n");
    assert_eq!(h.requests("ACK").len(), acks + 1);
    // Hang up: BYE through the route set, challenged once.
    h.command(Command::Hangup { id: 7 });
    let bye = h.last("BYE");
    assert_eq!(bye.value("route"), Some("<sip:127.0.0.1:5060;lr;ftag=x>"));
    assert_eq!(bye.cseq, 3);
    h.reply(
        &bye,
        407,
        &[(
            "Proxy-Authenticate",
            r#"Digest realm="127.0.0.1", nonce="n0nce-9", qop="auth""#,
        )],
        b"",
    );
    let bye2 = h.last("BYE");
    assert_eq!(bye2.cseq, 4);
    assert!(verify_digest(
        &bye2,
        "proxy-authorization",
        "secret-pw",
        rsip::headers::auth::Algorithm::Md5
    ));
    h.reply(&bye2, 200, &[], b"");
    assert!(h
        .has_event(|e| *e
            == Event::Ended {
                id: 7,
                end: CallEnd::HungUpLocal
            })
        .is_some());
}

#[test]
fn ring_timeout_cancels_and_487_means_no_answer() {
    let mut h = Harness::new(config(Transport::Udp, None));
    let inv = start_call(&mut h, 10);
    h.reply(&inv, 180, &[], b"");
    h.run_until(secs(9.9));
    assert!(h.requests("CANCEL").is_empty());
    h.run_until(secs(10.0));
    let cancel = h.last("CANCEL");
    assert_eq!(cancel.top_via.branch(), inv.top_via.branch());
    assert_eq!((cancel.cseq, cancel.cseq_method.as_str()), (1, "CANCEL"));
    h.reply(&cancel, 200, &[], b"");
    h.reply(&inv, 487, &[], b"");
    let ack = h.last("ACK");
    assert_eq!(ack.top_via.branch(), inv.top_via.branch());
    assert_eq!(
        h.has_event(|e| *e
            == Event::Ended {
                id: 7,
                end: CallEnd::NoAnswer
            }),
        Some(secs(10.0))
    );
}

#[test]
fn cancel_waits_for_a_provisional() {
    let mut h = Harness::new(config(Transport::Tcp, None));
    let inv = start_call(&mut h, 5);
    h.run_until(secs(6.0));
    assert!(
        h.requests("CANCEL").is_empty(),
        "no CANCEL before a provisional response"
    );
    h.reply(&inv, 183, &[], b"");
    assert_eq!(h.requests("CANCEL").len(), 1);
}

#[test]
fn a_200_crossing_the_cancel_is_acked_then_byed() {
    let mut h = Harness::new(config(Transport::Udp, None));
    let inv = start_call(&mut h, 5);
    h.reply(&inv, 180, &[], b"");
    h.run_until(secs(5.0));
    let cancel = h.last("CANCEL");
    // The phone answered just as we cancelled.
    h.reply(&inv, 200, &[("Contact", "<sip:1001@127.0.0.1:5080>")], b"v=0\r\n");
    h.reply(&cancel, 200, &[], b"");
    let ack = h.last("ACK");
    assert_eq!(ack.cseq, 1);
    let bye = h.last("BYE");
    assert_eq!(bye.cseq, 2);
    assert!(
        h.has_event(|e| matches!(e, Event::Answered { .. })).is_none(),
        "never reported as answered"
    );
    h.reply(&bye, 200, &[], b"");
    assert!(h
        .has_event(|e| *e
            == Event::Ended {
                id: 7,
                end: CallEnd::NoAnswer
            })
        .is_some());
}

#[test]
fn final_responses_map_to_outcomes() {
    let cases: Vec<(u16, CallEnd)> = vec![
        (
            486,
            CallEnd::Busy {
                code: 486,
                reason: "Busy Here".into(),
            },
        ),
        (
            600,
            CallEnd::Busy {
                code: 600,
                reason: "Busy Everywhere".into(),
            },
        ),
        (
            603,
            CallEnd::Busy {
                code: 603,
                reason: "Decline".into(),
            },
        ),
        (
            404,
            CallEnd::Failed {
                reason: "404 Not Found".into(),
            },
        ),
        (
            480,
            CallEnd::Failed {
                reason: "480 Temporarily Unavailable".into(),
            },
        ),
        (
            484,
            CallEnd::Failed {
                reason: "484 Address Incomplete".into(),
            },
        ),
        (
            503,
            CallEnd::Failed {
                reason: "503 Service Unavailable".into(),
            },
        ),
    ];
    for (code, want) in cases {
        let mut h = Harness::new(config(Transport::Udp, None));
        let inv = start_call(&mut h, 30);
        h.reply(&inv, code, &[], b"");
        assert_eq!(
            h.last("ACK").top_via.branch(),
            inv.top_via.branch(),
            "{code} is ACKed"
        );
        assert!(
            h.has_event(|e| *e
                == Event::Ended {
                    id: 7,
                    end: want.clone()
                })
            .is_some(),
            "{code}: {:?}",
            h.events
        );
        // A retransmitted final response gets the same ACK again, and no second end.
        h.reply(&inv, code, &[], b"");
        assert_eq!(h.requests("ACK").len(), 2);
        assert_eq!(
            h.events
                .iter()
                .filter(|(_, e)| matches!(e, Event::Ended { .. }))
                .count(),
            1
        );
    }
}

#[test]
fn the_pbx_ring_timer_after_ringing_is_no_answer() {
    let mut h = Harness::new(config(Transport::Udp, None));
    let inv = start_call(&mut h, 60);
    h.reply(&inv, 180, &[], b"");
    h.reply(&inv, 408, &[], b"");
    assert!(h
        .has_event(|e| *e
            == Event::Ended {
                id: 7,
                end: CallEnd::NoAnswer
            })
        .is_some());
}

#[test]
fn one_redirect_is_followed() {
    let mut h = Harness::new(config(Transport::Udp, None));
    let inv = start_call(&mut h, 30);
    h.reply(&inv, 302, &[("Contact", "<sip:2002@127.0.0.1>")], b"");
    let inv2 = h.last("INVITE");
    assert_eq!(
        inv2.start,
        crate::sip::message::Start::Request {
            method: "INVITE".into(),
            uri: "sip:2002@127.0.0.1".into()
        }
    );
    assert_eq!(inv2.call_id, inv.call_id);
    h.reply(&inv2, 301, &[("Contact", "<sip:3003@127.0.0.1>")], b"");
    assert!(h
        .has_event(|e| matches!(e, Event::Ended { end: CallEnd::Failed { reason }, .. } if reason.contains("redirected more than once")))
        .is_some());
}

fn answered(h: &mut Harness) -> Message {
    let inv = start_call(h, 30);
    h.reply(&inv, 200, &[("Contact", "<sip:1001@127.0.0.1:5080>")], b"v=0\r\n");
    inv
}

/// A request from the far end inside our dialog.
fn in_dialog(inv: &Message, method: &str, cseq: u32, branch: &str, extra: &str, body: &str) -> Vec<u8> {
    let from_tag = inv.from.tag().unwrap_or_default();
    format!(
        "{method} sip:1050@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\n\
         From: <sip:1001@127.0.0.1>;tag=pbx-tag\r\nTo: <sip:1050@127.0.0.1>;tag={from_tag}\r\nCall-ID: {}\r\n\
         CSeq: {cseq} {method}\r\nContact: <sip:1001@127.0.0.1:5080>\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        inv.call_id,
        body.len()
    )
    .into_bytes()
}

fn responses(h: &Harness, code: u16) -> usize {
    h.sent.iter().filter(|s| s.msg.code() == Some(code)).count()
}

#[test]
fn remote_bye_dtmf_info_and_reinvite() {
    let mut h = Harness::new(config(Transport::Udp, None));
    let inv = answered(&mut h);
    h.deliver(in_dialog(
        &inv,
        "INFO",
        1,
        "z9hG4bKi1",
        "Content-Type: application/dtmf-relay\r\n",
        "Signal=5\r\nDuration=160\r\n",
    ));
    assert!(h.has_event(|e| *e == Event::Dtmf { id: 7, digit: '5' }).is_some());
    assert_eq!(responses(&h, 200), 1);
    // A retransmitted INFO is answered again, not reported twice.
    h.deliver(in_dialog(
        &inv,
        "INFO",
        1,
        "z9hG4bKi1",
        "Content-Type: application/dtmf-relay\r\n",
        "Signal=5\r\nDuration=160\r\n",
    ));
    assert_eq!(responses(&h, 200), 2);
    assert_eq!(
        h.events
            .iter()
            .filter(|(_, e)| matches!(e, Event::Dtmf { .. }))
            .count(),
        1
    );

    // re-INVITE (hold): 200 with our SDP, resent at 0.5, 1.5 s until the ACK.
    h.deliver(in_dialog(
        &inv,
        "INVITE",
        2,
        "z9hG4bKr1",
        "Content-Type: application/sdp\r\n",
        "v=0\r\na=sendonly\r\n",
    ));
    let ok = h.sent.last().map(|s| s.msg.clone()).expect("200");
    assert_eq!(ok.code(), Some(200));
    assert!(String::from_utf8_lossy(&ok.body).contains("m=audio 40000"));
    let t = h.ms();
    h.run_until(t + secs(1.6));
    assert_eq!(
        responses(&h, 200),
        5,
        "the 200 to the re-INVITE is retransmitted twice"
    );
    h.deliver(in_dialog(&inv, "ACK", 2, "z9hG4bKa2", "", ""));
    h.run_until(t + secs(10.0));
    assert_eq!(responses(&h, 200), 5, "no retransmission after the ACK");

    h.deliver(in_dialog(&inv, "BYE", 3, "z9hG4bKb1", "", ""));
    assert_eq!(responses(&h, 200), 6);
    assert!(h
        .has_event(|e| *e
            == Event::Ended {
                id: 7,
                end: CallEnd::HungUpRemote
            })
        .is_some());
}

#[test]
fn out_of_dialog_requests_get_clear_answers() {
    let mut h = Harness::new(config(Transport::Udp, None));
    let opts = "OPTIONS sip:1050@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKo1\r\n\
                From: <sip:pbx@127.0.0.1>;tag=q\r\nTo: <sip:1050@127.0.0.1>\r\nCall-ID: q1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    h.deliver(opts.as_bytes().to_vec());
    let reply = h.sent.last().map(|s| s.msg.clone()).expect("reply");
    assert_eq!(reply.code(), Some(200));
    assert!(reply.value("allow").is_some_and(|a| a.contains("INFO")));
    assert_eq!(
        h.sent.last().map(|s| s.dest.port),
        Some(5060),
        "answered to the source address"
    );
    let invite = opts.replace("OPTIONS", "INVITE").replace("o1", "o2");
    h.deliver(invite.into_bytes());
    assert_eq!(h.sent.last().and_then(|s| s.msg.code()), Some(480));
    let bye = "BYE sip:1050@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKo3\r\n\
               From: <sip:pbx@127.0.0.1>;tag=q\r\nTo: <sip:1050@127.0.0.1>;tag=nope\r\nCall-ID: q9\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n";
    h.deliver(bye.as_bytes().to_vec());
    assert_eq!(h.sent.last().and_then(|s| s.msg.code()), Some(481));
}

#[test]
fn malformed_messages_are_dropped_without_effect() {
    let mut h = Harness::new(config(Transport::Udp, None));
    let inv = start_call(&mut h, 30);
    let before = h.sent.len();
    let mut junk: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"SIP/2.0 200 OK\r\n\r\n".to_vec(),
        b"\xff\xfe\x00garbage".to_vec(),
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=x\r\nCall-ID: a\r\nCSeq: 1 INVITE\r\nContent-Length: 99\r\n\r\n".to_vec(),
        format!("SIP/2.0 999 Weird\r\nVia: {}\r\n\r\n", inv.value("via").unwrap_or_default()).into_bytes(),
    ];
    let mut x: u64 = 99;
    for _ in 0..500 {
        let mut b = build_response(&inv, 180, "", Some("t"), Headers::new(), b"");
        for _ in 0..3 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x % b.len() as u64) as usize;
            b[i] = (x >> 8) as u8;
        }
        junk.push(b);
    }
    for j in junk {
        h.deliver(j);
    }
    assert!(h.events.iter().any(|(_, e)| matches!(e, Event::Dropped { .. })));
    assert!(h.sent.len() >= before, "nothing panicked");
}
