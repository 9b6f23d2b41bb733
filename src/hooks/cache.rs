//! The on-disk cache of precompiled hooks: `Component::serialize` output stored as
//! `<content sha256>-<engine compatibility hash>.cwasm`, next to a `.mac`: HMAC-SHA256 of the
//! engine key, the content hash and the file, keyed with a per-installation secret (`cache.key`,
//! 32 random bytes, mode 0600, made on first use). Deserialising is `unsafe` (the bytes become
//! machine code), so before it the cache folder and the file must belong to this user and not be
//! writable by group or others, and the MAC must verify: a file planted by another user or copied
//! from another installation is compiled afresh, never loaded. A folder that fails the check is
//! not used at all (a warning says why). The compatibility hash covers the wasmtime version and
//! the engine settings, so an upgrade or a setting change compiles afresh. Files are written
//! (mode 0600) to a temporary name and renamed into place; the folder is made with mode 0700.

use std::collections::hash_map::DefaultHasher;
use std::fs::{DirBuilder, Metadata, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

type HmacSha256 = Hmac<Sha256>;

/// The per-installation secret's file, inside the cache folder.
const KEY_FILE: &str = "cache.key";
const KEY_LEN: usize = 32;

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a cache folder or file is not trusted.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0} is a symbolic link")]
    Symlink(String),
    #[error("{0} belongs to uid {1}, not to this service (uid {2})")]
    Owner(String, u32, u32),
    #[error("{0} is writable by group or others (mode {1:04o})")]
    Writable(String, u32),
    #[error("{0} is readable by group or others (mode {1:04o})")]
    Readable(String, u32),
    #[error("{0} is not a {1}")]
    Kind(String, &'static str),
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// `path` (not followed if a link) is a `dir`/file of ours, not writable by group or others;
/// with `private`, not readable by them either.
fn check_owned(path: &Path, dir: bool, private: bool) -> Result<Metadata, TrustError> {
    let shown = path.display().to_string();
    let m = std::fs::symlink_metadata(path).map_err(|e| TrustError::Io(shown.clone(), e))?;
    if m.file_type().is_symlink() {
        return Err(TrustError::Symlink(shown));
    }
    if dir && !m.is_dir() || !dir && !m.is_file() {
        return Err(TrustError::Kind(shown, if dir { "folder" } else { "file" }));
    }
    let me = euid();
    if m.uid() != me {
        return Err(TrustError::Owner(shown, m.uid(), me));
    }
    let mode = m.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(TrustError::Writable(shown, mode));
    }
    if private && mode & 0o077 != 0 {
        return Err(TrustError::Readable(shown, mode));
    }
    Ok(m)
}

/// Create `dir` (mode 0700) if missing and check it is ours and not writable by others.
fn prepare_dir(dir: &Path) -> Result<(), TrustError> {
    if std::fs::symlink_metadata(dir).is_err() {
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(|e| TrustError::Io(parent.display().to_string(), e))?;
        }
        DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .map_err(|e| TrustError::Io(dir.display().to_string(), e))?;
    }
    check_owned(dir, true, false).map(|_| ())
}

/// Write `bytes` to `path` with mode 0600 through a temporary file; `create_new` so a planted
/// temporary (or a link in its place) makes the write fail rather than follow it.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The installation's key in `dir`, made on first use.
fn load_or_make_key(dir: &Path) -> Result<Vec<u8>, String> {
    let path = dir.join(KEY_FILE);
    if std::fs::symlink_metadata(&path).is_ok() {
        check_owned(&path, false, true).map_err(|e| e.to_string())?;
        let key = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if key.len() == KEY_LEN {
            return Ok(key);
        }
        tracing::warn!(file = %path.display(), "hook cache key has the wrong length; making a new one");
    }
    let mut key = vec![0u8; KEY_LEN];
    rand::rngs::OsRng
        .try_fill_bytes(&mut key)
        .map_err(|e| format!("no randomness for the hook cache key: {e}"))?;
    write_private(&path, &key)?;
    Ok(key)
}

/// The cache folder and its key; without them nothing is cached.
#[derive(Clone)]
struct Trusted {
    dir: PathBuf,
    key: Vec<u8>,
}

/// The cache folder; `None` caches nothing.
#[derive(Clone)]
pub struct Cache {
    trusted: Option<Trusted>,
    engine_key: String,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("dir", &self.trusted.as_ref().map(|t| &t.dir))
            .field("engine_key", &self.engine_key)
            .finish()
    }
}

impl Cache {
    /// Use `dir` (made with mode 0700 if missing) when it passes the ownership and mode checks
    /// and its key can be read or made; else cache nothing, with a warning.
    pub fn new(dir: Option<PathBuf>, engine: &Engine) -> Self {
        let mut h = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        let trusted = dir.and_then(|dir| {
            let checked = prepare_dir(&dir)
                .map_err(|e| e.to_string())
                .and_then(|()| load_or_make_key(&dir));
            match checked {
                Ok(key) => Some(Trusted { dir, key }),
                Err(reason) => {
                    tracing::warn!(dir = %dir.display(), %reason, "precompiled hook cache refused: hooks are compiled at every start");
                    None
                }
            }
        });
        Self {
            trusted,
            engine_key: format!("{:016x}", h.finish()),
        }
    }

    /// Whether a cache folder is in use.
    pub fn enabled(&self) -> bool {
        self.trusted.is_some()
    }

    fn paths(&self, content_hash: &str) -> Option<(PathBuf, PathBuf)> {
        let dir = &self.trusted.as_ref()?.dir;
        let stem = format!("{content_hash}-{}", self.engine_key);
        Some((dir.join(format!("{stem}.cwasm")), dir.join(format!("{stem}.mac"))))
    }

    fn mac(&self, content_hash: &str, bytes: &[u8]) -> Option<HmacSha256> {
        let key = &self.trusted.as_ref()?.key;
        let mut mac = HmacSha256::new_from_slice(key).ok()?;
        mac.update(self.engine_key.as_bytes());
        mac.update(b".");
        mac.update(content_hash.as_bytes());
        mac.update(b".");
        mac.update(bytes);
        Some(mac)
    }

    /// The precompiled component for `content_hash`, when cached by this installation, intact,
    /// compatible, and in a folder and file only this service can write.
    pub fn load(&self, engine: &Engine, content_hash: &str) -> Option<Component> {
        let trusted = self.trusted.as_ref()?;
        let (cwasm, mac_file) = self.paths(content_hash)?;
        if std::fs::symlink_metadata(&cwasm).is_err() {
            return None;
        }
        let owned = check_owned(&trusted.dir, true, false)
            .and_then(|_| check_owned(&cwasm, false, false))
            .and_then(|_| check_owned(&mac_file, false, false));
        if let Err(e) = owned {
            tracing::warn!(file = %cwasm.display(), reason = %e, "precompiled hook not trusted; recompiling");
            return None;
        }
        let bytes = std::fs::read(&cwasm).ok()?;
        let expected = std::fs::read_to_string(&mac_file).ok()?;
        let verified = decode_hex(expected.trim())
            .zip(self.mac(content_hash, &bytes))
            .is_some_and(|(tag, mac)| mac.verify_slice(&tag).is_ok());
        if !verified {
            tracing::warn!(file = %cwasm.display(), "precompiled hook fails its MAC (damaged, or not made by this installation); recompiling");
            return None;
        }
        // SAFETY: the bytes are a `Component::serialize` output written by this installation
        // (their HMAC under its private key verifies) into a folder and file only this user can
        // write; wasmtime checks version and settings compatibility itself and errors on a
        // mismatch.
        match unsafe { Component::deserialize(engine, &bytes) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::info!(file = %cwasm.display(), error = %e, "precompiled hook unusable; recompiling");
                None
            }
        }
    }

    /// Store `component` under `content_hash`; failures are logged, never fatal.
    pub fn store(&self, content_hash: &str, component: &Component) {
        let Some((cwasm, mac_file)) = self.paths(content_hash) else {
            return;
        };
        let result = (|| -> Result<(), String> {
            let bytes = component.serialize().map_err(|e| e.to_string())?;
            let tag = self
                .mac(content_hash, &bytes)
                .ok_or("no cache key")?
                .finalize()
                .into_bytes();
            write_private(&cwasm, &bytes)?;
            write_private(&mac_file, hex(&tag).as_bytes())
        })();
        if let Err(e) = result {
            tracing::warn!(file = %cwasm.display(), error = %e, "cannot cache the precompiled hook");
        }
    }

    /// Delete cache files of content hashes not in `keep` (old versions of hooks), and files of
    /// the earlier unkeyed format (`.sha256`).
    pub fn prune(&self, keep: &[String]) {
        let Some(trusted) = &self.trusted else { return };
        let Ok(entries) = std::fs::read_dir(&trusted.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some((hash, rest)) = name.split_once('-') else {
                continue;
            };
            let old_format = rest.ends_with(".sha256");
            let ours = rest.ends_with(".cwasm") || rest.ends_with(".mac") || old_format;
            if ours && hash.len() == 64 && (old_format || !keep.iter().any(|k| k == hash)) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn hex_round_trips() {
        assert_eq!(
            decode_hex(&hex(&[0, 1, 0xab, 0xff])),
            Some(vec![0, 1, 0xab, 0xff])
        );
        assert_eq!(decode_hex("abc"), None);
        assert_eq!(decode_hex("zz"), None);
    }

    #[test]
    fn folders_writable_by_others_or_links_are_not_trusted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = dir.path().join("cache");
        prepare_dir(&cache).expect("made");
        let mode = std::fs::metadata(&cache).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        assert!(matches!(prepare_dir(&cache), Err(TrustError::Writable(_, 0o777))));
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o770)).expect("chmod");
        assert!(matches!(prepare_dir(&cache), Err(TrustError::Writable(_, 0o770))));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&cache, &link).expect("symlink");
        assert!(matches!(prepare_dir(&link), Err(TrustError::Symlink(_))));
    }

    #[test]
    fn the_key_is_private_and_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = load_or_make_key(dir.path()).expect("key");
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_or_make_key(dir.path()).expect("key"), a);
        let other = tempfile::tempdir().expect("tempdir");
        assert_ne!(load_or_make_key(other.path()).expect("key"), a);
        let key = dir.path().join(KEY_FILE);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(
            load_or_make_key(dir.path()).is_err(),
            "a readable key is not used"
        );
    }
}
