//! Proves the real-peer harness (`tests/support/peers.rs`) with the real peers alone, independent of our
//! UA: Kamailio registrar/proxy with digest auth, baresip phones (auto-answer, ring, reject; UDP and TCP),
//! SIPp UAC/UAS scenarios, and a Kamailio restart with re-registration.

use crate::peers;

use std::time::{Duration, Instant};

use peers::{Kamailio, Phone, PhoneMode, Sipp, SippScenario, UacScenario};

/// Peers whose logs are printed when a check fails.
#[derive(Default)]
struct Ladder<'a> {
    kamailio: Option<&'a Kamailio>,
    phones: Vec<&'a Phone>,
    sipps: Vec<(&'a str, &'a Sipp)>,
}

impl Ladder<'_> {
    fn dump(&self) -> String {
        let mut out = String::new();
        if let Some(k) = self.kamailio {
            out.push_str(&format!("===== kamailio :{} =====\n{}\n", k.port, k.log()));
        }
        for p in &self.phones {
            out.push_str(&format!(
                "===== baresip {} :{} =====\n{}\n",
                p.user,
                p.port,
                p.log()
            ));
        }
        for (name, s) in &self.sipps {
            out.push_str(&format!(
                "===== sipp {name} :{} =====\n{}\n{}\n",
                s.port,
                s.messages(),
                s.output()
            ));
        }
        out
    }

    fn check(&self, ok: bool, what: &str) {
        if !ok {
            panic!("{what}\n{}", self.dump());
        }
    }
}

const USERS: &[(&str, &str)] = &[
    ("1001", "pw-1001"),
    ("1002", "pw-1002"),
    ("1003", "pw-1003"),
    ("1004", "pw-1004"),
];

/// Tests 1-3: registration over UDP and TCP (401 then 200), lookup, and calls from an authenticated SIPp
/// UAC (407 then INVITE with credentials) through Kamailio: answered by baresip (200, ACK, BYE 200),
/// rejected by baresip (486), ringing until the proxy's fr_inv_timer (408), unregistered user (404), and
/// relayed to a SIPp UAS that is not registered (R-URI with the UAS's own port; Record-Route honoured).
#[test]
fn kamailio_registers_phones_and_routes_calls() {
    let t0 = Instant::now();
    let k = Kamailio::start(USERS, 3000);
    let wav = k.dir().join("answer.wav");
    peers::wav_tone_or_speech(&wav, "", 10.0);
    let answer = Phone::start(
        "1001",
        "pw-1001",
        k.port,
        "udp",
        PhoneMode::AutoAnswer,
        Some(&wav),
    );
    let ring = Phone::start("1002", "pw-1002", k.port, "udp", PhoneMode::Ring, None);
    let reject = Phone::start("1004", "pw-1004", k.port, "tcp", PhoneMode::Reject, None);
    let mut ladder = Ladder {
        kamailio: Some(&k),
        phones: vec![&answer, &ring, &reject],
        sipps: vec![],
    };

    for p in [&answer, &ring, &reject] {
        ladder.check(
            p.wait_registered(&k, Duration::from_secs(10)),
            &format!("{} did not register", p.user),
        );
    }
    let t_reg = t0.elapsed();
    let ladder_text = k.ladder();
    for user in ["1001", "1002", "1004"] {
        let contact = k.lookup(user);
        ladder.check(contact.is_some(), &format!("lookup {user} is None"));
        eprintln!("{user} registered: {}", contact.unwrap_or_default());
        ladder.check(
            ladder_text.contains(&format!("OUT 200 (local) REGISTER {user}")),
            &format!("no 200 to REGISTER of {user}"),
        );
    }
    ladder.check(
        ladder_text.contains("OUT 401 (local) REGISTER"),
        "REGISTER was not challenged with 401",
    );
    ladder.check(ladder_text.contains("src=tcp:127.0.0.1"), "no REGISTER over TCP");
    ladder.check(k.lookup("1003").is_none(), "1003 should not be registered");

    // Calls from 1003 (SIPp, authenticating) through the proxy, all at once.
    let auth = Some(("1003", "pw-1003"));
    let hangup_after = Duration::from_millis(1500);
    let call = |sc: UacScenario, user: &str| Sipp::uac(sc, k.port, user, "1003", auth);
    let mut uas = Sipp::uas(SippScenario::Answer { bye_after: None });
    let t_calls = Instant::now();
    let mut calls = [
        ("answered", call(UacScenario::Answered { hangup_after }, "1001")),
        ("busy", call(UacScenario::Rejected { status: 486 }, "1004")),
        ("timeout", call(UacScenario::Rejected { status: 408 }, "1002")),
        ("404", call(UacScenario::Rejected { status: 404 }, "1099")),
        (
            "to-sipp",
            Sipp::uac_via(
                UacScenario::Answered { hangup_after },
                Some(k.port),
                uas.port,
                "x",
                "1003",
                auth,
            ),
        ),
    ];
    let mut codes = Vec::new();
    for (name, s) in calls.iter_mut() {
        codes.push((*name, s.wait_exit(Duration::from_secs(20)), t_calls.elapsed()));
    }
    let uas_code = uas.wait_exit(Duration::from_secs(5));
    ladder.sipps = calls.iter().map(|(n, s)| (*n, s)).collect();
    ladder.sipps.push(("uas behind the proxy", &uas));
    ladder.check(
        uas_code == Some(0),
        &format!("sipp uas behind the proxy: exit {uas_code:?}"),
    );
    for (name, code, at) in &codes {
        eprintln!("call {name}: sipp exit {code:?} after {at:?}");
        ladder.check(*code == Some(0), &format!("call {name}: sipp exit {code:?}"));
    }
    let msgs = calls[0].1.messages();
    ladder.check(
        msgs.contains("SIP/2.0 407"),
        "answered call: no 407 challenge seen by the UAC",
    );
    ladder.check(
        msgs.contains("Proxy-Authorization:"),
        "answered call: no Proxy-Authorization sent",
    );
    ladder.check(
        msgs.contains("qop=\"auth\""),
        "407 challenge without qop=\"auth\"",
    );
    let timeout_at = codes[2].2;
    ladder.check(
        timeout_at >= Duration::from_millis(2900),
        "408 came before fr_inv_timer (3 s)",
    );
    ladder.check(
        k.ladder().contains("CANCEL"),
        "proxy did not CANCEL the ringing phone",
    );
    ladder.check(
        !answer.recordings().is_empty(),
        "auto-answer phone recorded nothing",
    );
    eprintln!("recordings of 1001: {:?}", answer.recordings());
    if std::env::var_os("PEERS_LADDER").is_some() {
        eprintln!("{}", ladder.dump());
    }
    eprintln!(
        "registered 3 phones in {t_reg:?}; calls done in {:?}; total {:?}",
        t_calls.elapsed(),
        t0.elapsed()
    );
}

/// Test 4: each SIPp UAS scenario driven by a direct SIPp UAC (no proxy).
#[test]
fn sipp_uas_scenarios_behave() {
    let t0 = Instant::now();
    let second = Duration::from_secs(1);
    let uas = [
        ("answer", Sipp::uas(SippScenario::Answer { bye_after: None })),
        (
            "answer_bye",
            Sipp::uas(SippScenario::Answer {
                bye_after: Some(second),
            }),
        ),
        ("busy", Sipp::uas(SippScenario::Busy)),
        ("ring", Sipp::uas(SippScenario::RingForever)),
    ];
    let uac_scenarios = [
        UacScenario::Answered { hangup_after: second },
        UacScenario::AnsweredRemoteHangup,
        UacScenario::Rejected { status: 486 },
        UacScenario::Cancel {
            after: Duration::from_secs(2),
        },
    ];
    let mut pairs: Vec<(&str, Sipp, Sipp)> = uas
        .into_iter()
        .zip(uac_scenarios)
        .map(|((name, uas), sc)| {
            let uac = Sipp::uac(sc, uas.port, "harness", "2001", None);
            (name, uas, uac)
        })
        .collect();
    let mut codes = Vec::new();
    for (name, uas, uac) in pairs.iter_mut() {
        let c_uac = uac.wait_exit(Duration::from_secs(15));
        let c_uas = uas.wait_exit(Duration::from_secs(5));
        codes.push((*name, c_uac, c_uas, t0.elapsed()));
    }
    let mut ladder = Ladder::default();
    for (_, uas, uac) in &pairs {
        ladder.sipps.push(("uas", uas));
        ladder.sipps.push(("uac", uac));
    }
    for (name, c_uac, c_uas, at) in &codes {
        eprintln!("{name}: uac exit {c_uac:?}, uas exit {c_uas:?} after {at:?}");
        ladder.check(
            *c_uac == Some(0) && *c_uas == Some(0),
            &format!("{name}: uac {c_uac:?} uas {c_uas:?}"),
        );
    }
    let ring_msgs = pairs[3].2.messages();
    ladder.check(ring_msgs.contains("SIP/2.0 487"), "ring: no 487 after CANCEL");
    eprintln!("SIPp scenarios done in {:?}", t0.elapsed());
}

/// Test 5: a Kamailio restart forgets the registrations; the phone re-registers on its own (short regint).
#[test]
fn kamailio_restart_and_reregistration() {
    let t0 = Instant::now();
    let mut k = Kamailio::start(USERS, 3000);
    let phone = Phone::start_with_regint("1001", "pw-1001", k.port, "udp", PhoneMode::Ring, None, 10);
    let ok = phone.wait_registered(&k, Duration::from_secs(10));
    {
        let ladder = Ladder {
            kamailio: Some(&k),
            phones: vec![&phone],
            sipps: vec![],
        };
        ladder.check(ok, "1001 did not register");
    }
    let t_first = t0.elapsed();
    let port = k.port;
    k.restart();
    assert_eq!(k.port, port);
    let t_restart = Instant::now();
    let gone = k.lookup("1001").is_none();
    let ok = phone.wait_registered(&k, Duration::from_secs(15));
    let ladder = Ladder {
        kamailio: Some(&k),
        phones: vec![&phone],
        sipps: vec![],
    };
    ladder.check(
        gone,
        "binding survived the restart (usrloc should be memory-only)",
    );
    ladder.check(ok, "1001 did not re-register after the restart");
    eprintln!(
        "first registration after {t_first:?}; re-registered {:?} after restart; total {:?}",
        t_restart.elapsed(),
        t0.elapsed()
    );
}
