//! `file:PATH`: an exclusive lock around compare-and-swap, and atomic replacement
//! (temp file in the same directory, fsync, rename, fsync the directory).

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use super::envelope::hex;
use super::{StateError, StateStore, Stored, Version};

/// Threads syncing new segments at once.
const SYNC_THREADS: usize = 16;

pub struct FileStore {
    path: PathBuf,
    shown: String,
}

impl FileStore {
    pub fn new(path: PathBuf, shown: impl Into<String>) -> Self {
        FileStore { path, shown: shown.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, message: impl Into<String>) -> StateError {
        StateError::Store { store: self.describe(), message: message.into() }
    }

    fn read(&self) -> Result<Option<Stored>, StateError> {
        match fs::read(&self.path) {
            Ok(bytes) => Ok(Some(Stored { version: version_of(&bytes), bytes })),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.err(format!("cannot read {}: {e}", self.path.display()))),
        }
    }

    fn lock(&self) -> Result<File, StateError> {
        let lock_path = self.path.with_extension("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| self.err(format!("cannot open lock {}: {e}", lock_path.display())))?;
        file.lock().map_err(|e| self.err(format!("cannot lock {}: {e}", lock_path.display())))?;
        Ok(file)
    }

    /// Where segments live: `state-audit/` (audit segments) and `state-credentials/`
    /// (credential shards) next to `state.age`.
    fn segment_path(&self, name: &str) -> PathBuf {
        let stem = self.path.file_stem().map_or("state".into(), |s| s.to_string_lossy());
        let kind = if name.starts_with("cred-") { "credentials" } else { "audit" };
        self.path.with_file_name(format!("{stem}-{kind}")).join(format!("{name}.age"))
    }

    fn write_atomically(&self, bytes: &[u8]) -> Result<(), StateError> {
        self.write_file(&self.path, bytes)
    }

    fn write_file(&self, path: &Path, bytes: &[u8]) -> Result<(), StateError> {
        let dir = parent_dir(path);
        self.write_unsynced(path, bytes, true)?;
        // The rename is durable only once the directory entry is.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Writes `bytes` to a temporary file and renames it to `path`, the file's data
    /// synced first when `sync`.
    fn write_unsynced(&self, path: &Path, bytes: &[u8], sync: bool) -> Result<(), StateError> {
        let dir = parent_dir(path);
        let mut tmp = tempfile::Builder::new()
            .prefix(".state-")
            .suffix(".tmp")
            .permissions(private_permissions())
            .tempfile_in(dir)
            .map_err(|e| {
                self.err(format!("cannot create a temporary file in {}: {e}", dir.display()))
            })?;
        tmp.write_all(bytes)
            .and_then(|()| if sync { tmp.as_file().sync_all() } else { Ok(()) })
            .map_err(|e| self.err(format!("cannot write {}: {e}", path.display())))?;
        tmp.persist(path)
            .map_err(|e| self.err(format!("cannot replace {}: {}", path.display(), e.error)))?;
        Ok(())
    }
}

fn parent_dir(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

#[cfg(unix)]
fn private_permissions() -> fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    fs::Permissions::from_mode(0o600)
}

#[cfg(not(unix))]
fn private_permissions() -> fs::Permissions {
    fs::metadata(".").map(|m| m.permissions()).expect("current directory is readable")
}

fn version_of(bytes: &[u8]) -> Version {
    Version(hex(&Sha256::digest(bytes)))
}

#[async_trait]
impl StateStore for FileStore {
    fn describe(&self) -> String {
        self.shown.clone()
    }

    async fn load(&self) -> Result<Option<Stored>, StateError> {
        self.read()
    }

    async fn put_segment(&self, name: &str, bytes: &[u8]) -> Result<(), StateError> {
        let path = self.segment_path(name);
        if path.exists() {
            return Ok(());
        }
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)
                .map_err(|e| self.err(format!("cannot create {}: {e}", dir.display())))?;
        }
        self.write_file(&path, bytes)
    }

    /// Writes every new segment first and syncs them after, so the disk flushes them
    /// together rather than one round trip each.
    async fn put_segments(&self, segments: &[(String, Vec<u8>)]) -> Result<(), StateError> {
        let mut written = Vec::new();
        for (name, bytes) in segments {
            let path = self.segment_path(name);
            if path.exists() {
                continue;
            }
            let dir = parent_dir(&path);
            fs::create_dir_all(dir)
                .map_err(|e| self.err(format!("cannot create {}: {e}", dir.display())))?;
            self.write_unsynced(&path, bytes, false)?;
            written.push(path);
        }
        let sync = |path: &Path| {
            File::open(path)
                .and_then(|f| f.sync_all())
                .map_err(|e| self.err(format!("cannot sync {}: {e}", path.display())))
        };
        // Syncs issued side by side share the filesystem's journal commits.
        let per_thread = written.len().div_ceil(SYNC_THREADS).max(1);
        std::thread::scope(|scope| {
            let workers: Vec<_> = written
                .chunks(per_thread)
                .map(|part| scope.spawn(move || part.iter().try_for_each(|p| sync(p))))
                .collect();
            workers.into_iter().try_for_each(|w| w.join().expect("a sync thread panicked"))
        })?;
        let dirs: BTreeSet<&Path> = written.iter().map(|p| parent_dir(p)).collect();
        dirs.into_iter().try_for_each(sync)
    }

    fn keeps_shards(&self) -> bool {
        true
    }

    async fn get_segment(&self, name: &str) -> Result<Option<Vec<u8>>, StateError> {
        let path = self.segment_path(name);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.err(format!("cannot read {}: {e}", path.display()))),
        }
    }

    async fn save(&self, bytes: &[u8], expected: Option<&Version>) -> Result<Version, StateError> {
        if let Some(dir) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(dir)
                .map_err(|e| self.err(format!("cannot create {}: {e}", dir.display())))?;
        }
        let _lock = self.lock()?;
        let current = self.read()?.map(|s| s.version);
        if current.as_ref() != expected {
            return Err(StateError::Conflict(format!(
                "{} was rewritten by another run",
                self.path.display()
            )));
        }
        self.write_atomically(bytes)?;
        Ok(version_of(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn compare_and_swap_refuses_a_stale_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("s/state.age"), "file:s/state.age");
        assert!(store.load().await.unwrap().is_none());
        let v1 = store.save(b"one", None).await.unwrap();
        // A second writer that also believed the store empty loses.
        assert!(matches!(store.save(b"two", None).await, Err(StateError::Conflict(_))));
        let v2 = store.save(b"two", Some(&v1)).await.unwrap();
        assert!(matches!(store.save(b"three", Some(&v1)).await, Err(StateError::Conflict(_))));
        let stored = store.load().await.unwrap().unwrap();
        assert_eq!(stored.bytes, b"two");
        assert_eq!(stored.version, v2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(store.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
