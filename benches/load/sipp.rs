//! SIPp for the load bench: a UAS that answers every INVITE at once with an SDP pointing the media at
//! the bench's receiver, a UAC that places N calls and replays a pcap in each (the floor), and the
//! pcap writer. Both run on 127.0.0.1 and are stopped by their own PID.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The SDP media lines for `codecs` ("PCMU" or "opus") on `port`.
fn sdp_media(port: &str, codecs: &str) -> String {
    if codecs == "opus" {
        format!("m=audio {port} RTP/AVP 96\n      a=rtpmap:96 opus/48000/2\n      a=ptime:20")
    } else {
        format!("m=audio {port} RTP/AVP 0\n      a=rtpmap:0 PCMU/8000\n      a=ptime:20")
    }
}

const UAS: &str = r#"<?xml version="1.0" encoding="UTF-8" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="load uas">
  __INVITE__
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]L[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:uas@[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=- 2 2 IN IP4 127.0.0.1
      s=-
      c=IN IP4 127.0.0.1
      t=0 0
      __MEDIA__
      a=sendrecv

    ]]>
  </send>
  <recv request="ACK" crlf="true"/>
  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  __END__
</scenario>
"#;

/// How the listen case's UAS receives an INVITE: it reads the port its Request-URI names
/// (`sip:p<port>@...`, the bench's phone for that call) into `$port` for the SDP.
const LISTEN_INVITE: &str = r#"<recv request="INVITE" crlf="true">
    <action>
      <ereg regexp="INVITE sip:p([0-9]+)@" search_in="msg" check_it="true" assign_to="all,port"/>
    </action>
  </recv>"#;

const UAC: &str = r#"<?xml version="1.0" encoding="UTF-8" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="load uac">
  <send retrans="500">
    <![CDATA[
      INVITE sip:floor@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:sipp@[local_ip]:[local_port]>;tag=[pid]F[call_number]
      To: <sip:floor@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=- 1 1 IN IP4 127.0.0.1
      s=-
      c=IN IP4 127.0.0.1
      t=0 0
      __MEDIA__

    ]]>
  </send>
  <recv response="200" rtd="true"/>
  <send>
    <![CDATA[
      ACK sip:floor@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:sipp@[local_ip]:[local_port]>;tag=[pid]F[call_number]
      To: <sip:floor@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <nop>
    <action>
      <exec play_pcap_audio="__PCAP__"/>
    </action>
  </nop>
  <pause milliseconds="__MS__"/>
  <send retrans="500">
    <![CDATA[
      BYE sip:floor@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:sipp@[local_ip]:[local_port]>;tag=[pid]F[call_number]
      To: <sip:floor@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
"#;

/// A SIPp process we started; stopped by its PID on drop.
struct Process {
    child: Child,
    dir: PathBuf,
}

impl Process {
    fn spawn(dir: &Path, name: &str, xml: &str, args: &[String]) -> Process {
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).expect("sipp dir");
        let scenario = dir.join("scenario.xml");
        std::fs::write(&scenario, xml).expect("scenario");
        let out = std::fs::File::create(dir.join("sipp.out")).expect("sipp.out");
        let child = Command::new("sipp")
            .arg("-sf")
            .arg(&scenario)
            .args(args)
            .args(["-i", "127.0.0.1", "-nostdin", "-trace_err"])
            .arg("-error_file")
            .arg(dir.join("errors.log"))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().expect("out")))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("sipp (apt-get install sip-tester)");
        Process { child, dir }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A SIPp UAS answering `calls` calls at once, the media pointed at 127.0.0.1:`media_port`.
pub struct Uas {
    pub port: u16,
    _process: Process,
}

impl Uas {
    pub fn start(dir: &Path, name: &str, media_port: u16, codecs: &str, calls: usize) -> Uas {
        let xml = UAS
            .replace("__INVITE__", r#"<recv request="INVITE" crlf="true"/>"#)
            .replace("__MEDIA__", &sdp_media(&media_port.to_string(), codecs))
            .replace("__END__", "");
        Self::with_scenario(dir, name, &xml, calls)
    }

    /// A UAS answering `calls` calls with PCMU, each call's media to the port its Request-URI
    /// names: `sip:p<port>@` ([`Uas::uri_for`]).
    pub fn start_per_call_media(dir: &Path, name: &str, calls: usize) -> Uas {
        let xml = UAS
            .replace("__INVITE__", LISTEN_INVITE)
            .replace("__MEDIA__", &sdp_media("[$port]", "PCMU"))
            .replace("__END__", r#"<Reference variables="all"/>"#);
        Self::with_scenario(dir, name, &xml, calls)
    }

    fn with_scenario(dir: &Path, name: &str, xml: &str, calls: usize) -> Uas {
        let port = crate::peers::free_port_block(4);
        let process = Process::spawn(
            dir,
            name,
            xml,
            &[
                "-p".into(),
                port.to_string(),
                "-mp".into(),
                (port + 2).to_string(),
                "-m".into(),
                calls.to_string(),
                "-t".into(),
                "u1".into(),
            ],
        );
        crate::peers::wait_until(Duration::from_secs(5), || {
            std::net::UdpSocket::bind(("127.0.0.1", port)).is_err()
        });
        Uas {
            port,
            _process: process,
        }
    }

    pub fn uri(&self) -> String {
        format!("sip:load@127.0.0.1:{}", self.port)
    }

    /// The URI of a call whose media goes to 127.0.0.1:`media_port` (a per-call-media UAS).
    pub fn uri_for(&self, media_port: u16) -> String {
        format!("sip:p{media_port}@127.0.0.1:{}", self.port)
    }
}

/// A SIPp UAC placing `calls` calls at once to a [`Uas`], replaying a pcap in each for `length`.
pub struct Uac {
    process: Process,
}

impl Uac {
    pub fn start(dir: &Path, uas: &Uas, pcap: &Path, codecs: &str, calls: usize, length: Duration) -> Uac {
        let port = crate::peers::free_port_block(4);
        let xml = UAC
            .replace("__MEDIA__", &sdp_media("[auto_media_port]", codecs))
            .replace("__PCAP__", &pcap.display().to_string())
            .replace("__MS__", &length.as_millis().to_string());
        let process = Process::spawn(
            dir,
            "floor-uac",
            &xml,
            &[
                format!("127.0.0.1:{}", uas.port),
                "-p".into(),
                port.to_string(),
                "-mp".into(),
                "50000".into(),
                "-m".into(),
                calls.to_string(),
                "-l".into(),
                calls.to_string(),
                "-r".into(),
                calls.to_string(),
                "-t".into(),
                "u1".into(),
            ],
        );
        Uac { process }
    }

    /// Wait for SIPp to end its calls; the CPU seconds it used.
    pub fn wait(mut self, timeout: Duration) -> f64 {
        let pid = self.process.child.id();
        let end = Instant::now() + timeout;
        let mut cpu = 0.0;
        while Instant::now() < end {
            if let Ok(Some(status)) = self.process.child.try_wait() {
                if !status.success() {
                    let out = std::fs::read_to_string(self.process.dir.join("sipp.out")).unwrap_or_default();
                    println!(
                        "SIPp UAC exited with {status}: {}",
                        out.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
                    );
                }
                break;
            }
            let (c, _) = crate::proc_usage(pid);
            cpu = c.max(cpu);
            std::thread::sleep(Duration::from_millis(200));
        }
        cpu
    }
}

/// Write `payloads` as a pcap of RTP packets (payload type `pt`, 20 ms apart, clock `clock`) in
/// Ethernet/IPv4/UDP frames, the form SIPp's `play_pcap_audio` reads.
pub fn write_pcap(path: &Path, payloads: &[Vec<u8>], pt: u8, clock: u32) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
    let step = clock / 50;
    for (i, payload) in payloads.iter().enumerate() {
        let i = u32::try_from(i).expect("packets");
        let mut rtp = vec![0x80, pt];
        rtp.extend_from_slice(&(i as u16).to_be_bytes());
        rtp.extend_from_slice(&(i * step).to_be_bytes());
        rtp.extend_from_slice(&0x5151_5151u32.to_be_bytes());
        rtp.extend_from_slice(payload);
        let udp_len = u16::try_from(8 + rtp.len()).expect("udp");
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x08, 0x00]);
        let ip_len = 20 + udp_len;
        frame.extend_from_slice(&[0x45, 0]);
        frame.extend_from_slice(&ip_len.to_be_bytes());
        frame.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1]);
        frame.extend_from_slice(&40000u16.to_be_bytes());
        frame.extend_from_slice(&40002u16.to_be_bytes());
        frame.extend_from_slice(&udp_len.to_be_bytes());
        frame.extend_from_slice(&[0, 0]);
        frame.extend_from_slice(&rtp);
        let micros = u64::from(i) * 20_000;
        out.extend_from_slice(&u32::try_from(micros / 1_000_000).expect("s").to_le_bytes());
        out.extend_from_slice(&u32::try_from(micros % 1_000_000).expect("us").to_le_bytes());
        let len = u32::try_from(frame.len()).expect("len");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&frame);
    }
    std::fs::File::create(path)
        .and_then(|mut f| f.write_all(&out))
        .expect("write pcap");
}
