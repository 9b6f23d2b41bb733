//! Making a sled flush survive a power cut.
//!
//! sled 0.34 ends a flush of its log with `sync_file_range(2)`: the pages are written, but neither
//! the file's metadata (its size, as the log grows) nor the disk's write cache are flushed, and the
//! directory entries of new files (`snap.*` renamed into place, `blobs/*`) are never synced. After
//! each durable flush [`SyncState::sync`] therefore fsyncs, in sled's directory:
//! - `db` (the log) every time;
//! - every other file (`conf`, `snap.*`, `blobs/*`) once, when it first appears (sled never
//!   rewrites them in place: a new snapshot is a new file);
//! - the directory itself (and `blobs/`) when its list of names changed since the last sync, and
//!   on the first sync its parent (the data dir, where sled created it).

use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// The log file sled appends to.
const LOG_FILE: &str = "db";
/// Where sled puts values too large for the log.
const BLOB_DIR: &str = "blobs";

/// What one [`SyncState::sync`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyncReport {
    /// Regular files fsynced.
    pub files: u32,
    /// Directories fsynced.
    pub dirs: u32,
}

/// The names last seen in sled's directories, and the fsync counters.
pub struct SyncState {
    dir: PathBuf,
    /// Per directory (sled's and `blobs/`): the names seen at the last sync.
    seen: Mutex<[BTreeSet<String>; 2]>,
    fsyncs: AtomicU64,
}

impl SyncState {
    /// For sled's directory `dir`; the first [`sync`](Self::sync) fsyncs every file and directory.
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            seen: Mutex::new([BTreeSet::new(), BTreeSet::new()]),
            fsyncs: AtomicU64::new(0),
        }
    }

    /// fsync calls made since open (files and directories).
    pub fn fsync_count(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }

    /// fsync what sled's flush left in the disk cache (see the module docs).
    pub fn sync(&self) -> io::Result<SyncReport> {
        let started = Instant::now();
        // A poisoned lock only means a sync panicked; the sets then just cause extra fsyncs.
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let mut report = SyncReport::default();
        let [top, blobs] = &mut *seen;
        let first = top.is_empty();
        self.sync_dir(&self.dir, top, &mut report)?;
        if first {
            if let Some(parent) = self.dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                File::open(parent)?.sync_all()?;
                report.dirs += 1;
            }
        }
        let blob_dir = self.dir.join(BLOB_DIR);
        if blob_dir.is_dir() {
            self.sync_dir(&blob_dir, blobs, &mut report)?;
        }
        self.fsyncs
            .fetch_add(u64::from(report.files + report.dirs), Ordering::Relaxed);
        tracing::debug!(
            files = report.files,
            dirs = report.dirs,
            micros = started.elapsed().as_micros() as u64,
            total = self.fsync_count(),
            "store fsync"
        );
        Ok(report)
    }

    fn sync_dir(&self, dir: &Path, seen: &mut BTreeSet<String>, report: &mut SyncReport) -> io::Result<()> {
        let mut now = BTreeSet::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if !entry.file_type()?.is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            // `snap.*.generating` is a snapshot being written; sled fsyncs it before the rename.
            if name.ends_with(".generating") {
                continue;
            }
            let always = dir == self.dir && name == LOG_FILE;
            if always || !seen.contains(&name) {
                match File::open(entry.path()) {
                    Ok(f) => {
                        f.sync_all()?;
                        report.files += 1;
                    }
                    // Removed since read_dir (an old snapshot, a collected blob): nothing to sync.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                }
            }
            now.insert(name);
        }
        if now != *seen {
            File::open(dir)?.sync_all()?;
            report.dirs += 1;
            *seen = now;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_every_time_other_files_and_the_directory_only_when_new() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("db"), b"log").expect("write");
        std::fs::write(dir.path().join("conf"), b"conf").expect("write");
        let s = SyncState::new(dir.path().to_path_buf());
        assert_eq!(
            s.sync().expect("sync"),
            SyncReport { files: 2, dirs: 2 },
            "the parent too"
        );
        assert_eq!(s.sync().expect("sync"), SyncReport { files: 1, dirs: 0 });
        std::fs::write(dir.path().join("snap.00000000000000AB"), b"s").expect("write");
        std::fs::create_dir(dir.path().join("blobs")).expect("mkdir");
        std::fs::write(dir.path().join("blobs/7"), b"b").expect("write");
        assert_eq!(s.sync().expect("sync"), SyncReport { files: 3, dirs: 2 });
        std::fs::remove_file(dir.path().join("snap.00000000000000AB")).expect("rm");
        assert_eq!(s.sync().expect("sync"), SyncReport { files: 1, dirs: 1 });
        assert_eq!(s.fsync_count(), 4 + 1 + 5 + 2);
    }
}
