//! The real binary under a systemd-style watchdog: with `NOTIFY_SOCKET` and `WATCHDOG_USEC` set it
//! sends `READY=1`, then `WATCHDOG=1` every half interval while its loops beat, and `STOPPING=1`
//! on SIGTERM; with `WATCHDOG_PID` naming another process it sends no pings. Only our binary runs
//! (API and SIP on loopback port 0), no peers.

use crate::binary;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use binary::Service;

/// Every datagram that arrives on `sock` within `window`.
fn collect(sock: &UnixDatagram, window: Duration) -> Vec<String> {
    let end = Instant::now() + window;
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        if left.is_zero() {
            break;
        }
        sock.set_read_timeout(Some(left)).expect("timeout");
        match sock.recv(&mut buf) {
            Ok(n) => out.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(_) => break,
        }
    }
    out
}

fn notify_socket(dir: &std::path::Path) -> (UnixDatagram, std::path::PathBuf) {
    let path = dir.join("notify.sock");
    (UnixDatagram::bind(&path).expect("bind the notify socket"), path)
}

#[test]
fn watchdog_pings_follow_ready_while_the_loops_beat() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sock, path) = notify_socket(dir.path());
    let mut service = Service::start(
        dir.path(),
        &[
            ("NOTIFY_SOCKET", path.display().to_string()),
            ("WATCHDOG_USEC", "1000000".into()),
        ],
    );
    let got = collect(&sock, Duration::from_millis(3200));
    assert_eq!(got.first().map(String::as_str), Some("READY=1"), "{got:?}");
    let pings = got.iter().filter(|m| *m == "WATCHDOG=1").count();
    // Every 500 ms for 3.2 s: about 6; allow for a slow start.
    assert!(pings >= 4, "{pings} pings: {got:?}\n{}", service.lines());
    assert!(
        service.lines().contains("systemd watchdog"),
        "{}",
        service.lines()
    );
    service.signal("TERM");
    let (exited, status, lines) = service.wait_exit(Duration::from_secs(20));
    assert!(exited && status.success(), "{status:?}\n{lines}");
    let after = collect(&sock, Duration::from_millis(200));
    assert!(after.iter().any(|m| m == "STOPPING=1"), "{after:?}");
}

#[test]
fn no_pings_when_the_watchdog_is_for_another_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sock, path) = notify_socket(dir.path());
    let mut service = Service::start(
        dir.path(),
        &[
            ("NOTIFY_SOCKET", path.display().to_string()),
            ("WATCHDOG_USEC", "1000000".into()),
            ("WATCHDOG_PID", "1".into()),
        ],
    );
    let got = collect(&sock, Duration::from_millis(1500));
    assert_eq!(got, vec!["READY=1".to_string()], "{}", service.lines());
    service.signal("TERM");
    let (exited, status, lines) = service.wait_exit(Duration::from_secs(20));
    assert!(exited && status.success(), "{status:?}\n{lines}");
}
