//! Real SIP peers for interop tests (included with `#[path = "support/peers.rs"] mod peers;`):
//! a Kamailio 5.6 registrar/proxy (the PBX), baresip 1.0 phones and SIPp 3.6 scripted UAS/UAC, each started
//! by the test on free loopback ports, in its own temp directory, and stopped by PID (its own process group)
//! on `Drop`. Templates live in `tests/support/peers/`. Needs the Debian packages `kamailio`, `baresip-core`,
//! `sip-tester`, `sox` and `espeak-ng` (installed by `.ci/dev`).
//!
//! Everything is on 127.0.0.1 over UDP unless said otherwise. Call `log()` / `messages()` of each peer in a
//! failing test to print the SIP ladder.
#![allow(dead_code)]

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The digest realm Kamailio challenges with (401 and 407). It is deliberately *not* the SIP domain
/// (`127.0.0.1`), like Asterisk's "asterisk": a UA must hash with the realm from the challenge.
/// Users register as `<user>@127.0.0.1` (any port in the AOR is ignored: `use_domain` is off).
pub const REALM: &str = "sip-assistant.test";

fn template_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/peers")
}

fn template(name: &str) -> String {
    let path = template_dir().join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Next candidate port; below the Linux ephemeral range (32768+) so outgoing connections never take them.
static NEXT_PORT: AtomicU32 = AtomicU32::new(0);

fn port_free(port: u16) -> bool {
    UdpSocket::bind(("127.0.0.1", port)).is_ok() && TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// The first port of a block of `n` consecutive ports, each free for both UDP and TCP on 127.0.0.1 right
/// now. Ports are never handed out twice by one test process (a counter walks the range 20000..32000).
pub fn free_port_block(n: u16) -> u16 {
    const LO: u32 = 20000;
    const HI: u32 = 32000;
    let _ = NEXT_PORT.compare_exchange(
        0,
        LO + (std::process::id() * 97) % (HI - LO - 2000),
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..2000 {
        let mut start = NEXT_PORT.fetch_add(u32::from(n), Ordering::SeqCst);
        if start + u32::from(n) >= HI {
            NEXT_PORT.store(LO, Ordering::SeqCst);
            start = NEXT_PORT.fetch_add(u32::from(n), Ordering::SeqCst);
        }
        let start = start as u16;
        if (start..start + n).all(port_free) {
            return start;
        }
    }
    panic!("no block of {n} free ports on 127.0.0.1");
}

/// A port free for both UDP and TCP on 127.0.0.1 (never returned twice in one test process).
pub fn free_udp_tcp_port() -> u16 {
    free_port_block(1)
}

/// Poll `f` every 50 ms until it is true or `timeout` passes.
/// The service's SIP over UDP on a free port and a block of `rtp_ports` free RTP ports, offering
/// `codecs`: the one way the tests pick the service's ports (never a fixed range: the tests of a tier
/// share a process).
pub fn loopback_service(config: &mut sip_assistant::config::Config, codecs: &str, rtp_ports: u16) {
    config.sip.local_port = free_udp_tcp_port();
    config.sip.transport = sip_assistant::config::Transport::Udp;
    config.media.codecs = codecs.into();
    let base = free_port_block(rtp_ports);
    config.media.rtp_port_min = base;
    config.media.rtp_port_max = base + rtp_ports - 1;
}

/// As [`loopback_service`], registered to Kamailio on 127.0.0.1:`registrar` as `user` / `password`.
pub fn register_to(
    config: &mut sip_assistant::config::Config,
    registrar: u16,
    user: &str,
    password: &str,
    codecs: &str,
    rtp_ports: u16,
) {
    loopback_service(config, codecs, rtp_ports);
    config.sip.user = Some(user.into());
    config.sip.password = Some(sip_assistant::config::Secret::new(password));
    config.sip.registrar = Some(format!("127.0.0.1:{registrar}"));
}

/// Kamailio with `users` and phone `ext` on it (password `pw-<ext>`, over UDP) in `mode` with `wav`
/// as its microphone, registered: the PBX-and-phone rig of the call tests.
pub fn pbx_with_phone(
    users: &[(&str, &str)],
    ext: &str,
    mode: PhoneMode,
    wav: Option<&Path>,
) -> (Kamailio, Phone) {
    let pw = format!("pw-{ext}");
    let mut all: Vec<(&str, &str)> = users.to_vec();
    all.push((ext, pw.as_str()));
    let k = Kamailio::start(&all, 30_000);
    let phone = Phone::start(ext, &pw, k.port, "udp", mode, wav);
    assert!(
        phone.wait_registered(&k, Duration::from_secs(10)),
        "{}",
        phone.log()
    );
    (k, phone)
}

pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Spawn `cmd` in its own process group (so its children can be stopped with it), stdout and stderr
/// appended to `log`.
fn spawn_logged(cmd: &mut Command, log: &Path) -> Child {
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .expect("open log");
    let err = out.try_clone().expect("clone log");
    cmd.stdin(Stdio::null()).stdout(out).stderr(err).process_group(0);
    cmd.spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e} (is the Debian package installed?)"))
}

/// Stop a child we spawned: SIGTERM to its PID, then after `grace` SIGKILL to its process group (its
/// own, see `spawn_logged`), then reap it.
fn stop_child(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let pid = child.id().to_string();
    let _ = Command::new("kill")
        .args(["-TERM", &pid])
        .stderr(Stdio::null())
        .status();
    let end = Instant::now() + grace;
    while Instant::now() < end {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Send one `OPTIONS sip:127.0.0.1:port` over UDP and return the status code of the answer, if any.
pub fn options_ping(port: u16, timeout: Duration) -> Option<u16> {
    let sock = UdpSocket::bind("127.0.0.1:0").ok()?;
    sock.set_read_timeout(Some(timeout)).ok()?;
    let me = sock.local_addr().ok()?.port();
    let n = NEXT_PORT.load(Ordering::Relaxed);
    let msg = format!(
        "OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK-probe{n}{me};rport\r\n\
         From: <sip:probe@127.0.0.1>;tag=probe{me}\r\nTo: <sip:127.0.0.1:{port}>\r\nCall-ID: probe-{n}-{me}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    sock.send_to(msg.as_bytes(), ("127.0.0.1", port)).ok()?;
    let mut buf = [0u8; 4096];
    let (len, _) = sock.recv_from(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf[..len]);
    text.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
}

/// Write a mono s16 WAV of silence at `rate` Hz (the microphone of phones that need none).
pub fn write_silence_wav(path: &Path, rate: u32, seconds: f32) {
    let samples = (rate as f32 * seconds) as u32;
    let data_len = samples * 2;
    let mut w = Vec::with_capacity(44 + data_len as usize);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data_len).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes()); // PCM
    w.extend_from_slice(&1u16.to_le_bytes()); // mono
    w.extend_from_slice(&rate.to_le_bytes());
    w.extend_from_slice(&(rate * 2).to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data_len.to_le_bytes());
    w.resize(44 + data_len as usize, 0);
    fs::write(path, w).expect("write silence wav");
}

/// Make a 16 kHz mono s16 WAV at `path`: `text` spoken by espeak-ng (or a 2 s 440 Hz tone when `text` is
/// empty), followed by `seconds_padding` of silence (baresip's aufile hangs up when its file ends).
pub fn wav_tone_or_speech(path: &Path, text: &str, seconds_padding: f32) {
    let pad = format!("{seconds_padding}");
    let status = if text.is_empty() {
        Command::new("sox")
            .args(["-n", "-r", "16000", "-c", "1", "-b", "16"])
            .arg(path)
            .args(["synth", "2", "sine", "440", "vol", "0.5", "pad", "0", &pad])
            .status()
    } else {
        let raw = path.with_extension("espeak.wav");
        let st = Command::new("espeak-ng")
            .arg("-w")
            .arg(&raw)
            .arg(text)
            .status()
            .expect("run espeak-ng");
        assert!(st.success(), "espeak-ng failed: {st}");
        let st = Command::new("sox")
            .arg(&raw)
            .args(["-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer"])
            .arg(path)
            .args(["pad", "0", &pad])
            .status();
        let _ = fs::remove_file(&raw);
        st
    };
    let status = status.expect("run sox");
    assert!(status.success(), "sox failed: {status}");
}

/// A 16 kHz mono WAV of espeak-ng saying `text`, after `lead` seconds of silence and followed by
/// `tail` seconds of it (a phone's microphone: baresip hangs up when its file ends).
#[allow(dead_code)]
pub fn speech_wav(path: &Path, text: &str, lead: f32, tail: f32) {
    let raw = path.with_extension("espeak.wav");
    let st = Command::new("espeak-ng")
        .args(["-s", "150", "-w"])
        .arg(&raw)
        .arg(text)
        .status()
        .expect("run espeak-ng");
    assert!(st.success(), "espeak-ng failed: {st}");
    let st = Command::new("sox")
        .arg(&raw)
        .args(["-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer"])
        .arg(path)
        .args(["pad", &lead.to_string(), &tail.to_string()])
        .status()
        .expect("run sox");
    let _ = fs::remove_file(&raw);
    assert!(st.success(), "sox failed: {st}");
}

// ---------------------------------------------------------------------------------------------------------
// Kamailio
// ---------------------------------------------------------------------------------------------------------

/// A Kamailio 5.6 registrar + proxy (config: `tests/support/peers/kamailio.cfg`) on `127.0.0.1:port`, UDP
/// and TCP.
///
/// - Subscribers: a db_text `subscriber` table with plaintext passwords (`calculate_ha1`), realm [`REALM`],
///   `qop=auth`. The auth user must equal the From user (INVITE) / To user (REGISTER), else 403.
/// - REGISTER: 401 (`www_challenge`), then 200 with the binding saved (memory only: a restart forgets it).
///   The source address is saved as `received` (`fix_nated_register`), so TCP phones are reached over
///   their own connection. Expires is clamped to 5..3600 s.
/// - OPTIONS with no user in the R-URI: 200 from the proxy itself (liveness/keepalive).
/// - Every other initial request: 407 (`proxy_challenge`), then with credentials: `record_route` (INVITE),
///   `set_contact_alias` for TCP callers; R-URI host 127.0.0.1 with no port or this port is a local user:
///   `lookup("location")`, 404 if not registered; any other R-URI (e.g. `sip:x@127.0.0.1:<sipp port>`)
///   is relayed as is. `fr_inv_timer` (ms) turns an INVITE that rings too long into 408 (+ CANCEL out).
/// - In-dialog requests: `loose_route` + `handle_ruri_alias`, else 404 (ACKs absorbed).
/// - Each request/reply in and out is logged (`log()`), lines "KAM <script>: IN .../OUT ...".
pub struct Kamailio {
    /// SIP port (UDP and TCP) on 127.0.0.1.
    pub port: u16,
    /// The ctl module's binrpc unix socket (`kamcmd -s unix:<ctl_socket> ...`).
    pub ctl_socket: PathBuf,
    child: Option<Child>,
    cfg: PathBuf,
    dir: tempfile::TempDir,
}

impl Kamailio {
    /// Start Kamailio with `users` (user, plaintext password) on a free port and wait (10 s at most) until
    /// it answers an OPTIONS with 200. `fr_inv_timer_ms`: how long an INVITE may ring before the proxy
    /// answers 408 (and CANCELs the callee).
    pub fn start(users: &[(&str, &str)], fr_inv_timer_ms: u32) -> Kamailio {
        let dir = tempfile::Builder::new()
            .prefix("kamailio-")
            .tempdir()
            .expect("tempdir");
        let db = dir.path().join("db");
        fs::create_dir_all(&db).expect("mkdir db");
        fs::write(
            db.join("version"),
            "id(int,auto) table_name(string) table_version(int) \n0:subscriber:7\n",
        )
        .expect("write version table");
        let mut sub = String::from(
            "id(int,auto) username(string) domain(string) password(string) ha1(string,null) ha1b(string,null) \n",
        );
        for (i, (user, pass)) in users.iter().enumerate() {
            assert!(
                !user.contains(':') && !pass.contains(':'),
                "':' not allowed in db_text values"
            );
            sub.push_str(&format!("{}:{user}:127.0.0.1:{pass}::\n", i + 1));
        }
        fs::write(db.join("subscriber"), sub).expect("write subscriber table");
        let port = free_udp_tcp_port();
        let ctl_socket = dir.path().join("kamailio_ctl");
        let cfg = dir.path().join("kamailio.cfg");
        let text = template("kamailio.cfg")
            .replace("__PORT__", &port.to_string())
            .replace("__REALM__", REALM)
            .replace("__CTL__", &ctl_socket.display().to_string())
            .replace("__DBDIR__", &db.display().to_string())
            .replace("__FR_INV__", &fr_inv_timer_ms.to_string());
        fs::write(&cfg, text).expect("write kamailio.cfg");
        let mut k = Kamailio {
            port,
            ctl_socket,
            child: None,
            cfg,
            dir,
        };
        k.spawn();
        k
    }

    fn spawn(&mut self) {
        let _ = fs::remove_file(&self.ctl_socket);
        let d = self.dir.path();
        let mut cmd = Command::new("kamailio");
        cmd.arg("-f")
            .arg(&self.cfg)
            .args(["-DD", "-E", "-m", "32", "-M", "8"]);
        cmd.arg("-Y")
            .arg(d)
            .arg("-P")
            .arg(d.join("kamailio.pid"))
            .arg("-w")
            .arg(d)
            .current_dir(d);
        self.child = Some(spawn_logged(&mut cmd, &d.join("kamailio.log")));
        let started = Instant::now();
        let ok = wait_until(Duration::from_secs(10), || {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("kamailio exited at start ({st}):\n{}", self.log());
            }
            options_ping(self.port, Duration::from_millis(200)) == Some(200) && self.ctl_socket.exists()
        });
        assert!(ok, "kamailio did not answer OPTIONS within 10 s:\n{}", self.log());
        eprintln!(
            "kamailio up on 127.0.0.1:{} in {:?}",
            self.port,
            started.elapsed()
        );
    }

    /// Stop (by PID) and start again on the same port with the same config. Registrations are lost
    /// (usrloc keeps them in memory only), as after a real PBX restart.
    pub fn restart(&mut self) {
        self.stop();
        let port = self.port;
        wait_until(Duration::from_secs(5), || port_free(port));
        self.spawn();
    }

    /// Stop the Kamailio this handle started (SIGTERM to its PID, SIGKILL to its group after 3 s).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, Duration::from_secs(3));
        }
    }

    /// The contact address registered for `user` (`kamcmd ul.lookup location s:<user>`), if any.
    pub fn lookup(&self, user: &str) -> Option<String> {
        self.contacts(user).into_iter().next()
    }

    /// All contact addresses registered for `user`.
    pub fn contacts(&self, user: &str) -> Vec<String> {
        let out = Command::new("kamcmd")
            .arg("-s")
            .arg(format!("unix:{}", self.ctl_socket.display()))
            .args(["ul.lookup", "location", &format!("s:{user}")])
            .output();
        let Ok(out) = out else { return Vec::new() };
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Address:").map(|a| a.trim().to_string()))
            .collect()
    }

    /// Kamailio's stderr (all starts appended): startup messages and one line per SIP message in/out.
    pub fn log(&self) -> String {
        read_lossy(&self.dir.path().join("kamailio.log"))
    }

    /// Only the SIP ladder lines of `log()`.
    pub fn ladder(&self) -> String {
        self.log()
            .lines()
            .filter(|l| l.contains("<script>"))
            .map(|l| l.split("<script>: ").nth(1).unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The temp directory (config, db, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------------------------------------
// baresip
// ---------------------------------------------------------------------------------------------------------

/// How a [`Phone`] treats incoming calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhoneMode {
    /// `answermode=auto`: 180 then 200 within ~10 ms; plays its WAV as microphone, records what it hears.
    AutoAnswer,
    /// A contacts entry `<sip:*@*>;access=block`: 180 then 486 Busy Here.
    Reject,
    /// `answermode=manual`: 180 and rings until CANCELled (or the proxy's 408).
    Ring,
}

/// A baresip 1.0 softphone registered to a Kamailio, in its own config directory.
///
/// Ports: SIP `port` (UDP and TCP), `port + 1` (baresip's TLS listener), ctrl_tcp `port + 2`, RTP
/// `port + 4 ..= port + 23`. Audio: `audio_source aufile,<wav>` (converted to 8 kHz into its dir, since
/// baresip 1.0's aufile refuses a file whose rate differs from the codec's; silence when no WAV is given),
/// `audio_player aubridge,nil`, `sndfile` records both directions as WAVs into its dir.
pub struct Phone {
    /// Extension (SIP user) it registers as.
    pub user: String,
    /// Its SIP listen port on 127.0.0.1.
    pub port: u16,
    /// Its ctrl_tcp port (netstring JSON commands, see [`Phone::command`]).
    pub ctrl_port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Phone {
    /// Start a phone registering as `user`/`password` to the Kamailio on `pbx_port` over `transport`
    /// ("udp" or "tcp"), registration interval 60 s. `wav` (any WAV sox reads, e.g. 16 kHz mono s16 from
    /// [`wav_tone_or_speech`]) is its microphone in `AutoAnswer` mode, converted to 8 kHz; baresip hangs up
    /// with BYE when it ends, so pad it with silence.
    pub fn start(
        user: &str,
        password: &str,
        pbx_port: u16,
        transport: &str,
        mode: PhoneMode,
        wav: Option<&Path>,
    ) -> Phone {
        Phone::start_with_regint(user, password, pbx_port, transport, mode, wav, 60)
    }

    /// [`Phone::start`] with the registration interval `regint` seconds (baresip refreshes before it
    /// expires; a short one makes it re-register soon after a PBX restart).
    pub fn start_with_regint(
        user: &str,
        password: &str,
        pbx_port: u16,
        transport: &str,
        mode: PhoneMode,
        wav: Option<&Path>,
        regint: u32,
    ) -> Phone {
        Phone::spawn(user, password, pbx_port, transport, mode, wav, regint, false)
    }

    /// An auto-answering UDP phone that offers and accepts only Opus; `wav` is converted to
    /// 48 kHz stereo for its microphone (aufile's requirement for opus/48000/2).
    pub fn start_opus(user: &str, password: &str, pbx_port: u16, wav: &Path) -> Phone {
        Phone::spawn(
            user,
            password,
            pbx_port,
            "udp",
            PhoneMode::AutoAnswer,
            Some(wav),
            60,
            true,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn spawn(
        user: &str,
        password: &str,
        pbx_port: u16,
        transport: &str,
        mode: PhoneMode,
        wav: Option<&Path>,
        regint: u32,
        opus: bool,
    ) -> Phone {
        // aufile has no resampler or channel mixer: the source must match the codec (opus/48000/2).
        let (rate, channels) = if opus { ("48000", "2") } else { ("8000", "1") };
        let dir = tempfile::Builder::new()
            .prefix(&format!("baresip-{user}-"))
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        let port = free_port_block(24);
        let media = d.join("media");
        fs::create_dir_all(&media).expect("mkdir media");
        // baresip 1.0's aufile has no resampler: the file must have the codec's rate (8 kHz for G.711).
        let source = media.join("mic.wav");
        match wav {
            Some(w) => {
                let st = Command::new("sox")
                    .arg(w)
                    .args(["-r", rate, "-c", channels, "-b", "16", "-e", "signed-integer"])
                    .arg(&source)
                    .status()
                    .expect("run sox");
                assert!(st.success(), "sox could not convert {} to {rate} Hz", w.display());
            }
            None => write_silence_wav(&source, rate.parse().unwrap_or(8000), 60.0),
        }
        let config = template("baresip.config")
            .replace("__SIP_PORT__", &port.to_string())
            .replace("__AUDIO_SOURCE__", &format!("aufile,{}", source.display()))
            .replace("__RTP_LO__", &(port + 4).to_string())
            .replace("__RTP_HI__", &(port + 23).to_string())
            .replace("__CTRL_PORT__", &(port + 2).to_string())
            .replace("__DIR__", &d.display().to_string());
        let config = if opus {
            config.replace(
                "module\t\t\tg711.so\n",
                "module\t\t\tg711.so\nmodule\t\t\topus.so\n",
            )
        } else {
            config
        };
        fs::write(d.join("config"), config).expect("write config");
        let codecs = if opus { "opus" } else { "pcmu,pcma" };
        let answermode = if mode == PhoneMode::AutoAnswer {
            "auto"
        } else {
            "manual"
        };
        let transport = transport.to_ascii_lowercase();
        assert!(
            transport == "udp" || transport == "tcp",
            "transport must be udp or tcp"
        );
        fs::write(
            d.join("accounts"),
            format!(
                "<sip:{user}@127.0.0.1:{pbx_port};transport={transport}>;auth_pass={password};\
                 answermode={answermode};regint={regint};audio_codecs={codecs}\n"
            ),
        )
        .expect("write accounts");
        let contacts = if mode == PhoneMode::Reject {
            "\"Everyone\" <sip:*@*>;access=block\n"
        } else {
            "\n"
        };
        fs::write(d.join("contacts"), contacts).expect("write contacts");
        let mut cmd = Command::new("baresip");
        cmd.arg("-f").arg(d).current_dir(d);
        let child = Some(spawn_logged(&mut cmd, &d.join("baresip.log")));
        Phone {
            user: user.to_string(),
            port,
            ctrl_port: port + 2,
            child,
            dir,
        }
    }

    /// Wait until Kamailio has a binding for this phone (a contact with its port).
    pub fn wait_registered(&self, k: &Kamailio, timeout: Duration) -> bool {
        let needle = format!("@127.0.0.1:{}", self.port);
        wait_until(timeout, || {
            k.contacts(&self.user).iter().any(|c| c.contains(&needle))
        })
    }

    /// The WAV files sndfile wrote into the phone's dir (`dump-*-enc.wav` = what it sent,
    /// `dump-*-dec.wav` = what it heard).
    pub fn recordings(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(self.dir.path())
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        v.retain(|p| p.extension().is_some_and(|e| e == "wav"));
        v.sort();
        v
    }

    /// Send a ctrl_tcp command (`dial` with params "sip:...", `hangup`, `accept`, `reginfo`, ...) and return
    /// the JSON response.
    pub fn command(&self, command: &str, params: &str) -> std::io::Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.ctrl_port))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let body = serde_json::json!({"command": command, "params": params, "token": "harness"}).to_string();
        s.write_all(format!("{}:{},", body.len(), body).as_bytes())?;
        let mut buf: Vec<u8> = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            // Complete netstrings at the head of `buf`: events are skipped, the response is returned.
            while let Some(colon) = buf.iter().position(|&b| b == b':') {
                let Some(len) = std::str::from_utf8(&buf[..colon])
                    .ok()
                    .and_then(|l| l.parse::<usize>().ok())
                else {
                    break;
                };
                if buf.len() < colon + len + 2 {
                    break;
                }
                let msg = String::from_utf8_lossy(&buf[colon + 1..colon + 1 + len]).into_owned();
                buf.drain(..colon + len + 2);
                if msg.contains("\"response\"") {
                    return Ok(msg);
                }
            }
            let n = s.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// baresip's stdout/stderr (registrations, calls, errors).
    pub fn log(&self) -> String {
        read_lossy(&self.dir.path().join("baresip.log"))
    }

    /// The phone's config directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stop the baresip this handle started.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, Duration::from_secs(2));
        }
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------------------------------------
// SIPp
// ---------------------------------------------------------------------------------------------------------

/// What a SIPp UAS ([`Sipp::uas`], scenario `tests/support/peers/uas.xml`) does with the one INVITE it
/// handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SippScenario {
    /// 100, 180, 200 with a PCMU SDP (c= 127.0.0.1, m= its media port), waits for ACK; then with
    /// `bye_after: None` waits for the caller's BYE and answers 200, with `Some(d)` sends BYE itself after
    /// `d` and waits for its 200.
    Answer { bye_after: Option<Duration> },
    /// As `Answer { bye_after: None }`, but the 200's SDP offers only G.729 (payload type 18).
    AnswerG729,
    /// As `Answer { bye_after: None }`, with `ring` between the 180 and the 200.
    AnswerAfterRinging { ring: Duration },
    /// 100, 486 Busy Here, waits for the ACK.
    Busy,
    /// 100, 180, then waits for CANCEL: 200 to the CANCEL, 487 to the INVITE, waits for the ACK.
    RingForever,
}

/// What a SIPp UAC ([`Sipp::uac`], scenario `tests/support/peers/uac.xml`) expects after its INVITE
/// (PCMU offer; with credentials, the first INVITE's 407 is ACKed and the INVITE re-sent with
/// Proxy-Authorization).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UacScenario {
    /// 200 (after optional 100/180/183), ACK, then BYE after `hangup_after` and its 200.
    Answered { hangup_after: Duration },
    /// 200, ACK, then waits for the callee's BYE and answers 200.
    AnsweredRemoteHangup,
    /// A final `status` (e.g. 486, 404, 408) after optional 100/180/183; ACKs it.
    Rejected { status: u16 },
    /// 180 (required), then CANCEL after `after`; expects 200 (CANCEL) then 487, ACKs it.
    Cancel { after: Duration },
}

/// A SIPp 3.6 process running one call (`-m 1`) over UDP on `127.0.0.1:port`; media port `port + 2`
/// (SIPp also binds `port + 4`), control port `port + 1`. `-trace_msg` goes to `messages()`.
pub struct Sipp {
    /// Its SIP port on 127.0.0.1 (UDP).
    pub port: u16,
    child: Option<Child>,
    status: Option<i32>,
    dir: tempfile::TempDir,
}

fn keep_blocks(mut xml: String, all: &[&str], keep: &[&str]) -> String {
    for name in all {
        let open = format!("<!--{name}-->\n");
        let close = format!("<!--/{name}-->\n");
        let (Some(a), Some(b)) = (xml.find(&open), xml.find(&close)) else {
            panic!("scenario block {name} missing");
        };
        if keep.contains(name) {
            xml.replace_range(b..b + close.len(), "");
            xml.replace_range(a..a + open.len(), "");
        } else {
            xml.replace_range(a..b + close.len(), "");
        }
    }
    xml
}

impl Sipp {
    /// Start a SIPp UAS for one call with `scenario`; it is listening when this returns.
    pub fn uas(scenario: SippScenario) -> Sipp {
        Sipp::uas_calls(scenario, 1)
    }

    /// As [`Sipp::uas`], handling `calls` calls (concurrent ones too) before it exits.
    pub fn uas_calls(scenario: SippScenario, calls: u32) -> Sipp {
        let all = ["ANSWER", "WAITBYE", "SENDBYE", "BUSY", "RING"];
        let (keep, bye_ms): (&[&str], u128) = match scenario {
            SippScenario::Answer { bye_after: None }
            | SippScenario::AnswerG729
            | SippScenario::AnswerAfterRinging { .. } => (&["ANSWER", "WAITBYE"], 0),
            SippScenario::Answer { bye_after: Some(d) } => (&["ANSWER", "SENDBYE"], d.as_millis()),
            SippScenario::Busy => (&["BUSY"], 0),
            SippScenario::RingForever => (&["RING"], 0),
        };
        let actions = match scenario {
            SippScenario::Answer { bye_after: Some(_) } => {
                r#"<action>
      <ereg regexp="[^ ].*" search_in="hdr" header="From:" assign_to="remote_from"/>
      <ereg regexp="[^ ].*" search_in="hdr" header="To:" assign_to="local_to"/>
    </action>"#
            }
            SippScenario::RingForever => {
                r#"<action>
      <ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" assign_to="invite_cseq"/>
    </action>"#
            }
            _ => "",
        };
        let mut xml = keep_blocks(template("uas.xml"), &all, keep);
        if scenario == SippScenario::AnswerG729 {
            xml = xml
                .replace("RTP/AVP 0\n", "RTP/AVP 18\n")
                .replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:18 G729/8000");
        }
        if let SippScenario::AnswerAfterRinging { ring } = scenario {
            let pause = format!(
                "  <pause milliseconds=\"{}\"/>\n  <send retrans=\"500\">",
                ring.as_millis()
            );
            xml = xml.replacen("  <send retrans=\"500\">", &pause, 1);
        }
        let xml = xml
            .replace("__BYE_MS__", &bye_ms.to_string())
            .replace(
                "<!-- __ACTIONS__: eregs the chosen blocks need (SIPp rejects variables that are set but never used) -->",
                actions,
            );
        let sipp = Sipp::spawn(&xml, &[], calls);
        // SIPp binds its SIP socket a few ms after start: wait until the port is taken.
        let port = sipp.port;
        wait_until(Duration::from_secs(5), || {
            UdpSocket::bind(("127.0.0.1", port)).is_err()
        });
        sipp
    }

    /// Start a SIPp UAC placing one call to `sip:<service>@127.0.0.1:<target_port>` (the Kamailio port, or
    /// a UAS/phone port directly) with From `sip:<from_user>@127.0.0.1`; `auth` (user, password) answers a
    /// 407 with digest credentials (the first INVITE then must be challenged).
    pub fn uac(
        scenario: UacScenario,
        target_port: u16,
        service: &str,
        from_user: &str,
        auth: Option<(&str, &str)>,
    ) -> Sipp {
        Sipp::uac_via(scenario, None, target_port, service, from_user, auth)
    }

    /// [`Sipp::uac`] with the R-URI `sip:<service>@127.0.0.1:<target_port>` but every request sent to
    /// `127.0.0.1:<proxy_port>` when given (SIPp `-rsa`): e.g. through Kamailio to a SIPp UAS, which the
    /// proxy relays without a location lookup (the R-URI port is not its own).
    pub fn uac_via(
        scenario: UacScenario,
        proxy_port: Option<u16>,
        target_port: u16,
        service: &str,
        from_user: &str,
        auth: Option<(&str, &str)>,
    ) -> Sipp {
        let all = ["AUTH", "CANCEL", "REJECTED", "ANSWERED", "REMOTEBYE"];
        let mut keep = vec![];
        if auth.is_some() {
            keep.push("AUTH");
        }
        let (mut hangup_ms, mut cancel_ms, mut expect) = (0u128, 0u128, 0u16);
        match scenario {
            UacScenario::Answered { hangup_after } => {
                keep.push("ANSWERED");
                hangup_ms = hangup_after.as_millis();
            }
            UacScenario::AnsweredRemoteHangup => keep.push("REMOTEBYE"),
            UacScenario::Rejected { status } => {
                keep.push("REJECTED");
                expect = status;
            }
            UacScenario::Cancel { after } => {
                keep.push("CANCEL");
                cancel_ms = after.as_millis();
            }
        }
        let mut xml = keep_blocks(template("uac.xml"), &all, &keep)
            .replace("__FROM_USER__", from_user)
            .replace("__HANGUP_MS__", &hangup_ms.to_string())
            .replace("__CANCEL_MS__", &cancel_ms.to_string())
            .replace("__EXPECT__", &expect.to_string());
        xml = if auth.is_some() {
            xml.replace("__AUTH_HEADER__", "[authentication]")
        } else {
            xml.replace("      __AUTH_HEADER__\n", "")
        };
        let target = format!("127.0.0.1:{target_port}");
        let mut args = vec![target, "-s".to_string(), service.to_string()];
        if let Some(proxy) = proxy_port {
            args.extend(["-rsa".to_string(), format!("127.0.0.1:{proxy}")]);
        }
        if let Some((user, pass)) = auth {
            args.extend([
                "-au".to_string(),
                user.to_string(),
                "-ap".to_string(),
                pass.to_string(),
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Sipp::spawn(&xml, &args, 1)
    }

    /// SIPp running `xml` for `calls` calls; it gives up 40 s plus 5 s per further call after start.
    fn spawn(xml: &str, extra: &[&str], calls: u32) -> Sipp {
        let dir = tempfile::Builder::new()
            .prefix("sipp-")
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        let scenario = d.join("scenario.xml");
        fs::write(&scenario, xml).expect("write scenario");
        let port = free_port_block(6);
        let mut cmd = Command::new("sipp");
        cmd.args(extra).arg("-sf").arg(&scenario);
        cmd.args([
            "-i",
            "127.0.0.1",
            "-mi",
            "127.0.0.1",
            "-t",
            "u1",
            "-m",
            &calls.to_string(),
            "-nostdin",
        ]);
        cmd.args([
            "-p",
            &port.to_string(),
            "-cp",
            &(port + 1).to_string(),
            "-mp",
            &(port + 2).to_string(),
        ]);
        let timeout = format!("{}s", 40 + 5 * calls.saturating_sub(1));
        cmd.args(["-timeout", &timeout, "-timeout_error", "-trace_msg", "-trace_err"]);
        cmd.arg("-message_file").arg(d.join("messages.log"));
        cmd.arg("-error_file").arg(d.join("errors.log"));
        cmd.current_dir(d);
        let child = Some(spawn_logged(&mut cmd, &d.join("sipp.out")));
        Sipp {
            port,
            child,
            status: None,
            dir,
        }
    }

    /// `sip:<user>@127.0.0.1:<port>`.
    pub fn uri(&self, user: &str) -> String {
        format!("sip:{user}@127.0.0.1:{}", self.port)
    }

    /// Wait for SIPp to exit: `Some(code)` (0 = the call followed the scenario, 1 = it failed, 99 = no
    /// call was processed), `None` if still running after `timeout` (it is stopped on drop).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        if self.status.is_some() {
            return self.status;
        }
        let child = self.child.as_mut()?;
        let mut status = None;
        wait_until(timeout, || match child.try_wait() {
            Ok(Some(st)) => {
                status = Some(st.code().unwrap_or(-1));
                true
            }
            _ => false,
        });
        self.status = status;
        status
    }

    /// SIPp's `-trace_msg` log (every message sent and received), plus its errors log.
    pub fn messages(&self) -> String {
        let d = self.dir.path();
        format!(
            "{}\n--- sipp errors ---\n{}",
            read_lossy(&d.join("messages.log")),
            read_lossy(&d.join("errors.log"))
        )
    }

    /// SIPp's own output (screen statistics at exit, fatal errors).
    pub fn output(&self) -> String {
        read_lossy(&self.dir.path().join("sipp.out"))
    }

    /// Stop the SIPp this handle started, if still running.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_child(&mut child, Duration::from_secs(1));
        }
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        self.stop();
    }
}
