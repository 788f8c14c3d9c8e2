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

/// Writes `data` to `path` through a temporary file in the same directory, then renames it.
pub(crate) fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), PluginError> {
    use std::io::Write;
    let err = |e| PluginError::Write(path.to_path_buf(), e);
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    f.write_all(data).map_err(err)?;
    f.sync_all().map_err(err)?;
    drop(f);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).map_err(err)?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    std::fs::rename(&tmp, path).map_err(err)?;
    Ok(())
}
