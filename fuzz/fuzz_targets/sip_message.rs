//! Fuzz the SIP message path: `sip::message::parse` on arbitrary bytes, then a `UserAgent` that
//! has sent a REGISTER and an INVITE and is fed the input as a sequence of datagrams. Nothing may
//! panic, every message the UA transmits must parse again, the drain loop must reach
//! `Output::Timeout`, and the transaction tables stay bounded.
//!
//! Input layout: chunks separated by NUL bytes, at most 8. The first byte of a chunk picks what the
//! shell does before delivering the rest (`op % 4`: 0 nothing, 1 deliver over TCP, 2 step the clock
//! to the next deadline, 3 hang up the call). In the rest, `$B` becomes the INVITE's branch, `$R`
//! the REGISTER's branch, `$C` the call's Call-ID, `$F` our From tag of the call, `$G` the
//! registration's Call-ID and `$Y` the branch of our last BYE, so the fuzzer reaches responses
//! that match our transactions and requests inside our dialog without guessing seeded
//! identifiers. `seeds/sip_message/` holds one real exchange per file in this layout.

#![no_main]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sip_assistant::sip::message::{parse, Message};
use sip_assistant::sip::ua::{
    Command, Dest, Input, Output, Transport, UaConfig, UserAgent, MAX_SERVER_TRANSACTIONS,
};

#[derive(Default)]
struct Ids {
    invite_branch: String,
    register_branch: String,
    call_id: String,
    from_tag: String,
    register_call_id: String,
    bye_branch: String,
    /// Transmissions already checked (retransmissions are byte-identical; parse each once).
    seen: HashSet<Vec<u8>>,
}

impl Ids {
    fn learn(&mut self, m: &Message) {
        let branch = m.top_via.branch().unwrap_or_default().to_string();
        match m.method() {
            Some("INVITE") => {
                self.invite_branch = branch;
                self.call_id = m.call_id.clone();
                self.from_tag = m.from.tag().unwrap_or_default().to_string();
            }
            Some("BYE") => self.bye_branch = branch,
            Some("REGISTER") => {
                self.register_branch = branch;
                self.register_call_id = m.call_id.clone();
            }
            _ => {}
        }
    }

    fn expand(&self, chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(chunk.len() + 64);
        let mut i = 0;
        while i < chunk.len() {
            let sub = match (chunk[i], chunk.get(i + 1)) {
                (b'$', Some(b'B')) => Some(&self.invite_branch),
                (b'$', Some(b'R')) => Some(&self.register_branch),
                (b'$', Some(b'C')) => Some(&self.call_id),
                (b'$', Some(b'F')) => Some(&self.from_tag),
                (b'$', Some(b'G')) => Some(&self.register_call_id),
                (b'$', Some(b'Y')) => Some(&self.bye_branch),
                _ => None,
            };
            match sub {
                Some(s) => {
                    out.extend_from_slice(s.as_bytes());
                    i += 2;
                }
                None => {
                    out.push(chunk[i]);
                    i += 1;
                }
            }
        }
        out
    }
}

fn config() -> UaConfig {
    UaConfig {
        user: "1050".into(),
        auth_user: None,
        password: Some("secret-pw".into()),
        domain: "127.0.0.1".into(),
        outbound_proxy: Some(Dest {
            host: "127.0.0.1".into(),
            port: 5060,
            transport: Transport::Udp,
        }),
        transport: Transport::Udp,
        local_host: "127.0.0.1".into(),
        local_port: 5070,
        register_expires: 300,
        register_refresh_max: Some(Duration::from_secs(60)),
        user_agent: "fuzz".into(),
        auth_realms: vec!["127.0.0.1".into()],
        trust_registrar_realm: true,
    }
}

/// Drain until `Output::Timeout`; every transmission must parse. Returns the next deadline.
fn drain(ua: &mut UserAgent, ids: &mut Ids) -> Instant {
    for _ in 0..10_000 {
        match ua.poll_output() {
            Output::Transmit { bytes, dest } => {
                if ids.seen.contains(&bytes) {
                    continue;
                }
                match parse(&bytes) {
                    Ok(m) => ids.learn(&m),
                    Err(e) => panic!(
                        "the UA sent an unparseable message to {dest}: {e}\n{}",
                        String::from_utf8_lossy(&bytes)
                    ),
                }
                ids.seen.insert(bytes);
            }
            Output::Event(_) => {}
            Output::Timeout(at) => return at,
        }
    }
    panic!("poll_output never returned Timeout");
}

fuzz_target!(|data: &[u8]| {
    // The parser alone, with the accessors every layer uses.
    if let Ok(m) = parse(data) {
        let _ = (m.vias(), m.contact_uri(), m.content_type(), m.reason());
    }

    // The user agent, after a REGISTER and an INVITE.
    let t0 = Instant::now();
    let mut now = t0;
    let mut ua = UserAgent::new(config(), [7; 32], now);
    let mut ids = Ids::default();
    ua.handle_command(now, Command::Register);
    drain(&mut ua, &mut ids);
    ua.handle_command(
        now,
        Command::Call {
            id: 7,
            uri: "sip:1001@127.0.0.1".into(),
            local_host: None,
            ring_timeout: Duration::from_secs(30),
            sdp: b"v=0\r\n".to_vec(),
        },
    );
    let mut deadline = drain(&mut ua, &mut ids);
    let from: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 5060));
    for chunk in data.split(|b| *b == 0).take(8) {
        let Some((&op, rest)) = chunk.split_first() else {
            continue;
        };
        let mut transport = Transport::Udp;
        match op % 4 {
            1 => transport = Transport::Tcp,
            2 => {
                now = now.max(deadline);
                ua.handle_timeout(now);
                drain(&mut ua, &mut ids);
            }
            3 => {
                ua.handle_command(now, Command::Hangup { id: 7 });
                drain(&mut ua, &mut ids);
            }
            _ => {}
        }
        let bytes = ids.expand(rest);
        ua.handle_input(
            now,
            Input::Message {
                from,
                transport,
                bytes: &bytes,
            },
        );
        deadline = drain(&mut ua, &mut ids);
        assert!(deadline >= t0, "a deadline before the start");
        let (clients, servers) = ua.transactions();
        assert!(
            servers <= MAX_SERVER_TRANSACTIONS && clients <= 64,
            "{clients} / {servers}"
        );
    }
    // Run every timer out: the UA must settle without panicking.
    for _ in 0..16 {
        now = now.max(deadline);
        ua.handle_timeout(now);
        deadline = drain(&mut ua, &mut ids);
        if deadline > now + Duration::from_secs(600) {
            break;
        }
    }
});
