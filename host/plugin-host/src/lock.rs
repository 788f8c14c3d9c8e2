//! The lock file (`plugins.lock` in the data directory): which plugin files the admin trusts,
//! with their sha256. Written by `cgcloud plugin add`, read before any `dlopen`.

use crate::error::PluginError;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::path::{Path, PathBuf};

/// One trusted plugin file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockEntry {
    pub name: String,
    pub version: String,
    pub abi: u32,
    pub file: PathBuf,
    pub sha256: String,
}

/// The lock file's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    #[serde(default, rename = "plugin")]
    pub plugins: Vec<LockEntry>,
}

impl Lock {
    /// Reads `path`; a missing file is an empty lock.
    pub fn read(path: &Path) -> Result<Lock, PluginError> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text)
                .map_err(|e| PluginError::BadLock(path.to_path_buf(), first_line(&e.to_string()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Lock::default()),
            Err(e) => Err(PluginError::Io(path.to_path_buf(), e)),
        }
    }

    /// Writes `path` atomically (temporary file in the same directory, then rename).
    pub fn write(&self, path: &Path) -> Result<(), PluginError> {
        let text = toml::to_string(self)
            .map_err(|e| PluginError::Write(path.to_path_buf(), std::io::Error::other(e)))?;
        let text =
            format!("# Written by `cgcloud plugin add`: plugin files cgcloud trusts.\n{text}");
        write_atomic(path, text.as_bytes(), 0o644)
    }

    /// The entry for `file`, if any.
    pub fn entry(&self, file: &Path) -> Option<&LockEntry> {
        self.plugins.iter().find(|e| e.file == file)
    }
}

pub(crate) fn first_line(s: &str) -> String {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}

/// The hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Writes `data` to `path` atomically with `mode` (`cgcloud_common::fsutil::write_atomic`),
/// creating the folder if needed.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), PluginError> {
    let err = |e| PluginError::Write(path.to_path_buf(), e);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    cgcloud_common::fsutil::write_atomic(path, data, mode, None).map_err(err)
}

/// Creates cgcloud's data directory `dir` (mode 0700) if it is missing, and takes group and
/// other permissions away from it if it has them: it holds pinned host keys and the plugin
/// lock, which decide what cgcloud trusts.
pub fn ensure_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
        match std::fs::metadata(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::DirBuilder::new().mode(0o700).create(dir)?;
            }
            Err(e) => return Err(e),
            // Only its owner may change its mode: anyone else's directory is refused.
            Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!("it is open to others (mode {:o}, owner uid {}) and cannot be made private: {e}", m.mode() & 0o7777, m.uid()),
                    )
                })?;
            }
            Ok(_) => {}
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn atomic_writes_have_their_mode_from_the_start_and_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("plugins.lock");
        // A planted file or link at a guessable temporary name changes nothing.
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join(".plugins.lock.tmp1")).unwrap();
        write_atomic(&target, b"one\n", 0o600).unwrap();
        write_atomic(&target, b"two\n", 0o644).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "two\n");
        assert_eq!(mode(&target), 0o644);
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names.len(),
            2,
            "only the target and the planted link: {names:?}"
        );
    }

    #[test]
    fn the_data_directory_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("a/b/cgcloud");
        ensure_private_dir(&data).unwrap();
        assert_eq!(mode(&data), 0o700);
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        ensure_private_dir(&data).unwrap();
        assert_eq!(
            mode(&data),
            0o700,
            "an existing open directory is made private"
        );
    }
}
