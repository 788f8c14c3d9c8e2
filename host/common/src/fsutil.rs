//! The one atomic file writer of cgcloud, its plugin host and its agent.

use std::collections::hash_map::RandomState;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Replaces `path` atomically with `content`, with `mode` and, if given, owner `(uid, gid)`:
/// an exclusive temporary file with an unpredictable name in the same folder (never following
/// anything already there), the mode set from the start and again after writing (the umask
/// may narrow it), the owner set, synced, renamed over `path`, and the folder synced. A crash
/// leaves the old file or the new one, never a mix, and at worst a temporary file that the
/// next write to `path` removes. Nobody can plant the temporary file or read it half-written.
pub fn write_atomic(
    path: &Path,
    content: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> io::Result<()> {
    write_atomic_with(path, content, mode, owner, |_| Ok(()))
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Removes the temporary file unless it was renamed into place.
struct TempGuard<'a>(&'a Path);

impl Drop for TempGuard<'_> {
    fn drop(&mut self) {
        let _ = fs::remove_file(self.0);
    }
}

/// A name part nobody can guess: a per-process random hasher over the process ID, a counter
/// and the time.
fn unpredictable() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(TEMP_COUNTER.fetch_add(1, Ordering::Relaxed));
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish()
}

/// [`write_atomic`] with a hook that runs after the temporary file is complete and synced,
/// right before the rename; tests make it fail to act out a crash at that point.
pub fn write_atomic_with(
    path: &Path,
    content: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
    before_rename: impl FnOnce(&Path) -> io::Result<()>,
) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let base = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let temp_prefix = format!(".{base}.tmp.");
    remove_stale_temps(dir, &temp_prefix);
    let temp = dir.join(format!("{temp_prefix}{:016x}", unpredictable()));
    // create_new: O_EXCL, so an existing file or symbolic link at that name is never followed.
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temp)?;
    let guard = TempGuard(&temp);
    file.write_all(content)?;
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
    }
    file.sync_all()?;
    drop(file);
    before_rename(&temp)?;
    fs::rename(&temp, path)?;
    std::mem::forget(guard);
    File::open(dir)?.sync_all()
}

/// Removes temporary files an interrupted write left behind.
fn remove_stale_temps(dir: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(prefix))
        {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Reads a regular file of at most `limit` bytes. Anything else (a FIFO, a device, a
/// directory, a larger file) is an error of kind `InvalidInput` that says what the path is,
/// without blocking on it or reading it whole.
pub fn read_small(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    use std::io::Read as _;
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidInput, what);
    let meta = fs::metadata(path)?;
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        };
        return Err(invalid(what.to_string()));
    }
    // O_NONBLOCK: should the path have been swapped for a FIFO since, opening does not hang.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(o_nonblock())
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(invalid("not a regular file".to_string()));
    }
    let mut data = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut data)?;
    if data.len() as u64 > limit {
        return Err(invalid(format!("larger than {limit} bytes")));
    }
    Ok(data)
}

/// `O_NONBLOCK`: 0o4000 on Linux (x86_64 and arm64 alike), 4 on macOS.
const fn o_nonblock() -> i32 {
    if cfg!(target_os = "macos") {
        0x0004
    } else {
        0o4000
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn temp_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("cgcloud-fsutil-{:x}", unpredictable()));
        fs::create_dir_all(&dir).expect("dir");
        dir
    }

    #[test]
    fn writes_with_the_mode_and_leaves_nothing_behind() {
        let dir = temp_dir();
        let path = dir.join("f");
        write_atomic(&path, b"one", 0o600, None).expect("writes");
        write_atomic(&path, b"two", 0o640, None).expect("replaces");
        assert_eq!(fs::read(&path).expect("reads"), b"two");
        assert_eq!(fs::metadata(&path).expect("meta").mode() & 0o777, 0o640);
        let names: Vec<_> = fs::read_dir(&dir)
            .expect("lists")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["f"]);
        fs::remove_dir_all(dir).expect("cleans up");
    }

    #[test]
    fn a_crash_before_the_rename_keeps_the_old_file_and_the_next_write_tidies_up() {
        let dir = temp_dir();
        let path = dir.join("f");
        write_atomic(&path, b"old", 0o600, None).expect("writes");
        let crash = write_atomic_with(&path, b"new", 0o600, None, |temp| {
            // Keep the temporary file as a crash would, then fail.
            fs::copy(temp, temp.with_extension("kept"))?;
            Err(io::Error::other("crash"))
        });
        assert!(crash.is_err());
        assert_eq!(fs::read(&path).expect("reads"), b"old");
        write_atomic(&path, b"newer", 0o600, None).expect("writes");
        let left: Vec<String> = fs::read_dir(&dir)
            .expect("lists")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".f.tmp."))
            .collect();
        assert_eq!(left, Vec::<String>::new());
        fs::remove_dir_all(dir).expect("cleans up");
    }

    #[test]
    fn temporary_names_differ_every_time() {
        assert_ne!(unpredictable(), unpredictable());
    }
}
