//! Attacks on SIP over TCP against the real binary (issue #14, finding 5), loopback only: the
//! 30-byte message whose Content-Length overflows, a peer that sends and never reads, more
//! connections than allowed, idle connections, and running out of file descriptors. Through all of
//! them the process stays small, `/health` answers in under a second and other peers still get
//! their answers.

use crate::binary;
use crate::harness;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use binary::{http, Service};
use harness::wait_for;

/// Start the binary with SIP over TCP and `env` on top; returns it and its SIP port.
fn start(dir: &std::path::Path, env: &[(&str, &str)]) -> (Service, u16) {
    let mut all = vec![("SIP_ASSISTANT__SIP__TRANSPORT", "tcp".to_string())];
    all.extend(env.iter().map(|(k, v)| (*k, v.to_string())));
    let service = Service::start(dir, &all);
    let port = || {
        service.log.lock().expect("lock").iter().find_map(|l| {
            let rest = l.split("SIP listening").nth(1)?;
            let digits: String = rest
                .split("port=")
                .nth(1)?
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse::<u16>().ok()
        })
    };
    assert!(
        wait_for(Duration::from_secs(10), || port().is_some()),
        "no SIP port in the log: {}",
        service.lines()
    );
    let sip = port().expect("port");
    (service, sip)
}

fn options(n: usize, local: u16) -> String {
    format!(
        "OPTIONS sip:sip-assistant@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/TCP 127.0.0.1:{local};branch=z9hG4bK-attack-{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p{n}\r\nTo: <sip:sip-assistant@127.0.0.1>\r\n\
         Call-ID: attack-{n}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Send one OPTIONS on a new connection and read until the status line: the status code, or
/// `None` when nothing came within `timeout`.
fn probe(sip: u16, n: usize, timeout: Duration) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], sip).into(), timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    let local = s.local_addr().ok()?.port();
    s.write_all(options(n, local).as_bytes()).ok()?;
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while !got.windows(2).any(|w| w == b"\r\n") {
        let k = s.read(&mut buf).ok()?;
        if k == 0 {
            return None;
        }
        got.extend_from_slice(&buf[..k]);
    }
    String::from_utf8_lossy(&got)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// `/health` answers 200: how long it took.
fn health_time(api: u16) -> Duration {
    let t = Instant::now();
    let (status, _) = http(api, "GET", "/health", "");
    let took = t.elapsed();
    assert_eq!(status, 200, "/health did not answer");
    took
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .count()
}

/// Whether the server closes `s` (EOF or reset) within `timeout`.
fn closed_by_server(s: &mut TcpStream, timeout: Duration) -> bool {
    let until = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    while Instant::now() < until {
        let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn a_huge_content_length_closes_that_connection_and_nothing_else() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut service, sip) = start(dir.path(), &[]);
    let pid = service.child.0.id();
    assert_eq!(
        probe(sip, 0, Duration::from_secs(5)),
        Some(200),
        "{}",
        service.lines()
    );
    let before = rss_kib(pid);

    let attack = b"X\r\nl: 18446744073709551615\r\n\r\n";
    assert_eq!(attack.len(), 30);
    let mut s = TcpStream::connect(("127.0.0.1", sip)).expect("connect");
    let peer = s.local_addr().expect("local").to_string();
    s.write_all(attack).expect("send");
    let sent = Instant::now();
    let mut worst = Duration::ZERO;
    let mut peak = before;
    while sent.elapsed() < Duration::from_secs(3) {
        worst = worst.max(health_time(service.api));
        peak = peak.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        closed_by_server(&mut s, Duration::from_secs(2)),
        "the connection stayed open"
    );
    eprintln!(
        "huge Content-Length: RSS {before} KiB before, peak {peak} KiB after; slowest /health {} ms",
        worst.as_millis()
    );
    assert!(worst < Duration::from_secs(1), "/health took {worst:?}");
    assert!(peak < before + 20 * 1024, "RSS grew from {before} to {peak} KiB");
    // The log names the peer and why; another peer is still answered.
    assert!(
        wait_for(Duration::from_secs(2), || service.lines().contains(&peer)),
        "no log line names {peer}: {}",
        service.lines()
    );
    assert!(service.lines().contains("larger than"), "{}", service.lines());
    assert_eq!(probe(sip, 1, Duration::from_secs(5)), Some(200));
    // SIGTERM still ends it.
    service.signal("TERM");
    let (exited, _, log) = service.wait_exit(Duration::from_secs(10));
    assert!(exited, "SIGTERM ignored: {log}");
}

#[test]
fn a_peer_that_never_reads_does_not_stall_other_peers() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Default limits: the 32-message send queue fills as soon as writes block.
    let (service, sip) = start(dir.path(), &[]);
    // The silent peer sends requests from a thread of its own and never reads a response.
    let mut silent = TcpStream::connect(("127.0.0.1", sip)).expect("connect");
    let silent_addr = silent.local_addr().expect("local");
    let mut writer = silent.try_clone().expect("clone");
    let _ = writer.set_write_timeout(Some(Duration::from_secs(20)));
    let flood = std::thread::spawn(move || {
        let mut sent = 0;
        for n in 0..20_000 {
            if writer
                .write_all(options(n, silent_addr.port()).as_bytes())
                .is_err()
            {
                break;
            }
            sent += 1;
        }
        sent
    });
    // Meanwhile, and after it, another peer's OPTIONS are answered, and quickly.
    let started = Instant::now();
    let mut answered = 0;
    for n in 0..10 {
        let t = Instant::now();
        let code = probe(sip, 100_000 + n, Duration::from_secs(3));
        assert_eq!(
            code,
            Some(200),
            "peer {n} unanswered after {:?}: {}",
            t.elapsed(),
            service.lines()
        );
        answered += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    let sent = flood.join().expect("flood thread");
    assert!(health_time(service.api) < Duration::from_secs(1));
    // The silent peer lost its connection, with a log line naming it.
    assert!(
        closed_by_server(&mut silent, Duration::from_secs(10)),
        "the silent peer kept its connection"
    );
    let named = format!("peer={silent_addr}");
    assert!(
        wait_for(Duration::from_secs(2), || {
            service
                .lines()
                .lines()
                .any(|l| l.contains(&named) && l.contains("closing SIP TCP connection"))
        }),
        "no log line closes {silent_addr}: {}",
        service.lines()
    );
    eprintln!(
        "silent peer sent {sent} OPTIONS; another peer got {answered}/10 answers in {:?}",
        started.elapsed()
    );
    assert_eq!(probe(sip, 200_000, Duration::from_secs(3)), Some(200));
}

#[test]
fn connections_beyond_the_limit_and_idle_ones_are_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (service, sip) = start(
        dir.path(),
        &[
            ("SIP_ASSISTANT__SIP__TCP_MAX_CONNECTIONS", "8"),
            ("SIP_ASSISTANT__SIP__TCP_IDLE_SECONDS", "2"),
        ],
    );
    let mut held: Vec<TcpStream> = (0..8)
        .map(|_| TcpStream::connect(("127.0.0.1", sip)).expect("connect"))
        .collect();
    // Let the service take them all before the ninth.
    std::thread::sleep(Duration::from_millis(300));
    let mut ninth = TcpStream::connect(("127.0.0.1", sip)).expect("connect");
    assert!(
        closed_by_server(&mut ninth, Duration::from_secs(1)),
        "a ninth connection was kept"
    );
    assert!(
        wait_for(Duration::from_secs(2), || service
            .lines()
            .contains("connection limit reached")),
        "{}",
        service.lines()
    );
    // Silent for 2 s: closed by the service, which then takes new connections again.
    let t = Instant::now();
    for s in held.iter_mut() {
        assert!(
            closed_by_server(s, Duration::from_secs(5)),
            "an idle connection stayed open"
        );
    }
    assert!(
        t.elapsed() >= Duration::from_millis(1200),
        "closed too early: {:?}",
        t.elapsed()
    );
    assert!(wait_for(Duration::from_secs(3), || probe(
        sip,
        1,
        Duration::from_secs(2)
    ) == Some(200)));
}

#[test]
fn the_listener_survives_running_out_of_file_descriptors() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The default sip.tcp_max_connections (256) is far above the descriptors left.
    let (service, sip) = start(dir.path(), &[]);
    let pid = service.child.0.id();
    assert_eq!(probe(sip, 0, Duration::from_secs(5)), Some(200));
    // Leave the running service 24 descriptors to spare.
    let limit = open_fds(pid) + 24;
    let lowered = std::process::Command::new("prlimit")
        .arg("--pid")
        .arg(pid.to_string())
        .arg(format!("--nofile={limit}:{limit}"))
        .status()
        .expect("prlimit runs (util-linux)");
    assert!(lowered.success());
    let conns: Vec<TcpStream> = (0..80)
        .filter_map(|_| {
            TcpStream::connect_timeout(&([127, 0, 0, 1], sip).into(), Duration::from_secs(1)).ok()
        })
        .collect();
    // Every descriptor it may have is taken.
    assert!(
        wait_for(Duration::from_secs(5), || open_fds(pid) + 1 >= limit),
        "the service never ran out of descriptors ({} connections, {} of {limit} open)",
        conns.len(),
        open_fds(pid)
    );
    eprintln!(
        "{} connections against a limit of {limit} descriptors",
        conns.len()
    );
    for c in &conns {
        let _ = c.shutdown(Shutdown::Both);
    }
    drop(conns);
    // The listener is still there: a new peer is answered once descriptors are free again.
    let t = Instant::now();
    assert!(
        wait_for(Duration::from_secs(10), || probe(sip, 1, Duration::from_secs(2))
            == Some(200)),
        "the SIP TCP listener stopped accepting: {}",
        service.lines()
    );
    eprintln!("answered again {:?} after the connections closed", t.elapsed());
    assert!(
        service.lines().contains("out of descriptors"),
        "no warning about the descriptors: {}",
        service.lines()
    );
    assert!(health_time(service.api) < Duration::from_secs(1));
}
