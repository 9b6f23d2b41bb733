//! `sip-assistant models fetch NAME`: download a catalogue model into the models directory.
//!
//! The bytes go to `<file>.part`; a download cut short is resumed from the part's length with an
//! HTTP `Range` request (in the same run after a pause, or by running the command again). The size
//! is bounded by the catalogue's: a server that sends more, or says the file is shorter, is
//! refused. Only once the part is complete and its SHA-256 is the pinned one is it renamed to the
//! final name (an atomic rename in the same directory) and recorded in the manifest; a part whose
//! hash differs is deleted. Redirects (the public repository answers with one to its CDN) are
//! followed, at most [`MAX_REDIRECTS`].

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::catalogue::{url_for, CatalogueEntry};
use super::manifest::{Installed, Manifest, Source};
use super::progress::{Progress, Style};
use super::verify::sha256_file;
use super::ModelsError;
use crate::http_client::{HttpClient, HttpError, StreamingResponse};

/// Redirects followed for one request.
pub const MAX_REDIRECTS: usize = 5;

/// How a download runs.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// `speech.models.base_url`.
    pub base_url: String,
    pub connect_timeout: Duration,
    /// Until the status and headers of a response have arrived.
    pub header_timeout: Duration,
    /// A read of the body that brings nothing for this long fails (the download resumes).
    pub idle_timeout: Duration,
    /// Attempts in a row that add nothing to the part before giving up (it is kept for later).
    pub attempts: u32,
    /// Pause before resuming; doubled each attempt in a row that added nothing.
    pub retry_delay: Duration,
    pub progress: Style,
}

impl FetchOptions {
    /// The command line's settings for `base_url`.
    pub fn new(base_url: &str) -> Self {
        Self {
            base_url: base_url.into(),
            connect_timeout: Duration::from_secs(15),
            header_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            attempts: 5,
            retry_delay: Duration::from_secs(2),
            progress: Style::for_stderr(),
        }
    }
}

/// What `fetch` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// Downloaded (or finished a resumed download) and installed at `path`.
    Installed { path: PathBuf, downloaded: u64 },
    /// The file was already in place with the pinned hash.
    AlreadyInstalled { path: PathBuf },
}

/// How one request ended.
enum Step {
    /// The part grew (or was restarted); go on.
    Progressed,
    /// Cut short by the network; the bytes received are kept.
    Interrupted(String),
    /// No response at all (connection refused, name unknown, timeout before the headers).
    NoResponse(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ModelsError + '_ {
    move |e| ModelsError::io(path, e)
}

fn part_len(part: &Path) -> Result<u64, ModelsError> {
    match std::fs::metadata(part) {
        Ok(m) => Ok(m.len()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(ModelsError::io(part, e)),
    }
}

/// Download `entry` into `dir` (created when missing), check it and install it.
pub async fn fetch(dir: &Path, entry: &CatalogueEntry, opts: &FetchOptions) -> Result<Fetched, ModelsError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let target = dir.join(&entry.file);
    if let Ok((hash, size)) = sha256_file(&target) {
        if size == entry.size && hash == entry.sha256 {
            record(dir, entry)?;
            return Ok(Fetched::AlreadyInstalled { path: target });
        }
    }
    let part = dir.join(format!("{}.part", entry.file));
    let url = url_for(&opts.base_url, &entry.file);
    let client = HttpClient::new(opts.connect_timeout, opts.header_timeout);
    let start_len = part_len(&part)?;
    let mut progress = Progress::new(&entry.name, entry.size, start_len, opts.progress);
    let mut failures = 0u32;
    // Until a server has answered once, a failure to reach it ends the run at once: a machine
    // without a route to the repository should hear so now, not after minutes of retries.
    let mut answered = false;
    loop {
        let have = part_len(&part)?;
        if have > entry.size {
            std::fs::remove_file(&part).map_err(io_err(&part))?;
            continue;
        }
        if have == entry.size {
            break;
        }
        if failures >= opts.attempts {
            progress.finish();
            return Err(ModelsError::Incomplete {
                file: entry.file.clone(),
                attempts: failures,
                have,
                want: entry.size,
                part,
            });
        }
        if failures > 0 {
            let pause = opts.retry_delay.saturating_mul(1 << (failures - 1).min(5));
            smol::Timer::after(pause).await;
        }
        match request(&client, &url, &part, have, entry, opts, &mut progress).await {
            Ok(Step::Progressed) => answered = true,
            Ok(Step::NoResponse(why)) if !answered => {
                progress.finish();
                return Err(ModelsError::Http { url, reason: why });
            }
            Ok(Step::Interrupted(why) | Step::NoResponse(why)) => {
                answered = true;
                progress.finish();
                eprintln!("{}: {why}; resuming", entry.name);
            }
            Err(e) => {
                progress.finish();
                return Err(e);
            }
        }
        if part_len(&part)? > have {
            failures = 0;
        } else {
            failures += 1;
        }
    }
    progress.finish();
    let (hash, size) = sha256_file(&part).map_err(io_err(&part))?;
    if size != entry.size || hash != entry.sha256 {
        std::fs::remove_file(&part).map_err(io_err(&part))?;
        return Err(ModelsError::Corrupt {
            file: entry.file.clone(),
            got: hash,
            want: entry.sha256.clone(),
        });
    }
    std::fs::rename(&part, &target).map_err(io_err(&target))?;
    if let Ok(d) = std::fs::File::open(dir) {
        // The rename is durable once the directory is synced; a failure here loses nothing.
        let _ = d.sync_all();
    }
    record(dir, entry)?;
    Ok(Fetched::Installed {
        path: target,
        downloaded: entry.size - start_len.min(entry.size),
    })
}

fn record(dir: &Path, entry: &CatalogueEntry) -> Result<(), ModelsError> {
    let mut m = Manifest::load(dir)?;
    m.record(Installed {
        name: entry.name.clone(),
        file: entry.file.clone(),
        size: entry.size,
        sha256: entry.sha256.clone(),
        source: Source::Catalogue,
    });
    m.save(dir)
}

/// Follow redirects from `url` asking for the bytes from `have` on.
async fn open(
    client: &HttpClient,
    url: &str,
    have: u64,
) -> Result<Result<StreamingResponse, HttpError>, ModelsError> {
    let mut current = url.to_string();
    let headers: Vec<(&str, String)> = if have > 0 {
        vec![("Range", format!("bytes={have}-"))]
    } else {
        Vec::new()
    };
    for _ in 0..=MAX_REDIRECTS {
        let resp = match client.get_streaming(&current, &headers).await {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        if !matches!(resp.status, 301 | 302 | 303 | 307 | 308) {
            return Ok(Ok(resp));
        }
        let location = resp.location.clone().ok_or_else(|| ModelsError::Http {
            url: current.clone(),
            reason: format!("redirect {} without a Location", resp.status),
        })?;
        let next = url::Url::parse(&current)
            .and_then(|base| base.join(&location))
            .map_err(|e| ModelsError::Http {
                url: current.clone(),
                reason: format!("bad redirect Location '{location}': {e}"),
            })?;
        if !matches!(next.scheme(), "http" | "https") {
            return Err(ModelsError::Http {
                url: current,
                reason: format!("redirect to a non-HTTP URL '{next}'"),
            });
        }
        current = next.to_string();
    }
    Err(ModelsError::Http {
        url: url.into(),
        reason: format!("more than {MAX_REDIRECTS} redirects"),
    })
}

/// `bytes START-END/TOTAL` (or `bytes */TOTAL`): (START, TOTAL) where given.
fn parse_content_range(v: &str) -> (Option<u64>, Option<u64>) {
    let rest = v.trim().strip_prefix("bytes").unwrap_or("").trim();
    let (range, total) = rest.split_once('/').unwrap_or((rest, "*"));
    let start = range.split_once('-').and_then(|(s, _)| s.trim().parse().ok());
    (start, total.trim().parse().ok())
}

/// One request: append what the server sends to the part.
async fn request(
    client: &HttpClient,
    url: &str,
    part: &Path,
    have: u64,
    entry: &CatalogueEntry,
    opts: &FetchOptions,
    progress: &mut Progress,
) -> Result<Step, ModelsError> {
    let mut resp = match open(client, url, have).await? {
        Ok(r) => r,
        Err(e) => return Ok(Step::NoResponse(e.to_string())),
    };
    let size_error = |reason: String| ModelsError::Size {
        file: entry.file.clone(),
        reason,
    };
    let offset = match resp.status {
        200 => {
            if let Some(len) = resp.content_length.filter(|&l| l != entry.size) {
                let _ = std::fs::remove_file(part);
                return Err(size_error(format!(
                    "the server's file has {len} bytes, the catalogue says {}",
                    entry.size
                )));
            }
            0
        }
        206 => {
            let (start, total) = resp
                .content_range
                .as_deref()
                .map(parse_content_range)
                .unwrap_or((None, None));
            if let Some(total) = total.filter(|&t| t != entry.size) {
                let _ = std::fs::remove_file(part);
                return Err(size_error(format!(
                    "the server's file has {total} bytes, the catalogue says {}",
                    entry.size
                )));
            }
            if start != Some(have) {
                // Not the range asked for: start again from the beginning.
                let _ = std::fs::remove_file(part);
                return Ok(Step::Progressed);
            }
            have
        }
        416 => {
            let total = resp
                .content_range
                .as_deref()
                .map(parse_content_range)
                .and_then(|(_, t)| t);
            let _ = std::fs::remove_file(part);
            return match total {
                Some(t) if t < entry.size => Err(size_error(format!(
                    "the server's file has only {t} bytes, the catalogue says {}",
                    entry.size
                ))),
                _ => Ok(Step::Interrupted(format!(
                    "the server refused the range from byte {have}; starting again"
                ))),
            };
        }
        404 => {
            return Err(ModelsError::Http {
                url: url.into(),
                reason: "404 not found (is speech.models.base_url right?)".into(),
            })
        }
        other => {
            return Err(ModelsError::Http {
                url: url.into(),
                reason: format!("HTTP status {other}"),
            })
        }
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(part)
        .map_err(io_err(part))?;
    file.set_len(offset).map_err(io_err(part))?;
    file.seek(SeekFrom::Start(offset)).map_err(io_err(part))?;
    let mut written = offset;
    let mut buf = vec![0u8; 64 * 1024];
    let outcome = loop {
        let n = match resp.read_chunk(&mut buf, opts.idle_timeout).await {
            Ok(0) => break Step::Progressed,
            Ok(n) => n,
            Err(e) => break Step::Interrupted(e.to_string()),
        };
        if written + n as u64 > entry.size {
            drop(file);
            let _ = std::fs::remove_file(part);
            return Err(size_error(format!(
                "the server sent more than the catalogue's {} bytes",
                entry.size
            )));
        }
        file.write_all(&buf[..n]).map_err(io_err(part))?;
        written += n as u64;
        progress.update(written);
    };
    file.sync_all().map_err(io_err(part))?;
    if matches!(outcome, Step::Progressed) && written < entry.size {
        return Ok(Step::Interrupted(format!(
            "the connection closed after {written} of {} bytes",
            entry.size
        )));
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::parse_content_range;

    #[test]
    fn content_ranges_parse() {
        assert_eq!(parse_content_range("bytes 100-199/200"), (Some(100), Some(200)));
        assert_eq!(parse_content_range("bytes */50"), (None, Some(50)));
        assert_eq!(parse_content_range("bytes 0-9/*"), (Some(0), None));
        assert_eq!(parse_content_range("junk"), (None, None));
    }
}
