//! The lock file (`plugins.lock` in the data directory): which plugin files the admin trusts,
//! with their sha256. Written by `cgcloud plugin add`, read before any `dlopen`.

use crate::error::PluginError;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::path::{Path, PathBuf};

/// The largest lock file read: a few hundred bytes an entry.
pub const LOCK_LIMIT: u64 = 1 << 20;

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
    /// Reads `path`: a regular file of at most [`LOCK_LIMIT`] bytes (a FIFO, a device or a
    /// huge file is refused without blocking or reading it whole); a missing file is an empty
    /// lock.
    pub fn read(path: &Path) -> Result<Lock, PluginError> {
        match cgcloud_common::fsutil::read_small(path, LOCK_LIMIT) {
            Ok(bytes) => {
                let text = String::from_utf8(bytes).map_err(|_| {
                    PluginError::BadLock(path.to_path_buf(), "it is not UTF-8 text".into())
                })?;
                Self::parse(&text).map_err(|why| PluginError::BadLock(path.to_path_buf(), why))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Lock::default()),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Err(PluginError::BadLock(
                path.to_path_buf(),
                format!("it is {e}"),
            )),
            Err(e) => Err(PluginError::Io(path.to_path_buf(), e)),
        }
    }

    /// Parses a lock file's text; the error is one line.
    pub fn parse(text: &str) -> Result<Lock, String> {
        toml::from_str(text).map_err(|e| first_line(&e.to_string()))
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
    fn a_lock_that_is_no_small_regular_file_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.lock");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let big = dir.path().join("big.lock");
        std::fs::write(&big, vec![b'#'; LOCK_LIMIT as usize + 1]).unwrap();
        let binary = dir.path().join("binary.lock");
        std::fs::write(&binary, [0xff, 0xfe, 0]).unwrap();
        for (path, why) in [
            (fifo, "it is not a regular file"),
            (big, "it is larger than 1048576 bytes"),
            (dir.path().to_path_buf(), "it is a directory"),
            (binary, "it is not UTF-8 text"),
        ] {
            let e = Lock::read(&path).unwrap_err();
            assert!(e.to_string().contains(why), "{}: {e}", path.display());
            assert!(e.to_string().contains("is malformed"), "{e}");
        }
        assert_eq!(
            Lock::read(&dir.path().join("missing")).unwrap(),
            Lock::default()
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

#[cfg(test)]
mod fuzz {
    //! The lock file and the build-info string are read from files anyone may hand cgcloud.
    use super::*;
    use cgcloud_plugin_api::BuildInfo;
    use proptest::prelude::*;

    /// Text shaped like a lock file: its keys and brackets among arbitrary characters.
    fn lockish() -> impl Strategy<Value = String> {
        let part = prop_oneof![
            Just("[[plugin]]\n".to_string()),
            Just("name = ".to_string()),
            Just("version = ".to_string()),
            Just("abi = ".to_string()),
            Just("file = ".to_string()),
            Just("sha256 = ".to_string()),
            Just("\"".to_string()),
            Just("\n".to_string()),
            "[ -~]{0,12}",
            any::<String>(),
        ];
        proptest::collection::vec(part, 0..24).prop_map(|p| p.concat())
    }

    /// Bytes holding a build-info string, whole, cut or garbled, among arbitrary bytes.
    fn with_build_info() -> impl Strategy<Value = Vec<u8>> {
        let field = prop_oneof![
            "abi=[0-9]{0,12}",
            "api=[ -~]{0,10}",
            "panic=(unwind|abort|)",
            "name=[ -~]{0,10}",
            "version=[ -~]{0,10}",
            "[ -~]{0,8}",
        ];
        (
            proptest::collection::vec(any::<u8>(), 0..200),
            proptest::collection::vec(field, 0..7),
            prop_oneof![Just(";end"), Just(""), Just(";en")],
            proptest::collection::vec(any::<u8>(), 0..200),
        )
            .prop_map(|(before, fields, end, after)| {
                let mut b = before;
                b.extend_from_slice(cgcloud_plugin_api::abi::BUILD_INFO_PREFIX.as_bytes());
                b.extend_from_slice(fields.join(";").as_bytes());
                b.extend_from_slice(end.as_bytes());
                b.extend(after);
                b
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any lock text is parsed or refused with one line, never a panic; what parses writes
        /// back to the same lock.
        #[test]
        fn any_lock_text_is_judged(text in lockish()) {
            if let Ok(lock) = Lock::parse(&text) {
                let again = toml::to_string(&lock).unwrap();
                prop_assert_eq!(Lock::parse(&again).unwrap(), lock);
            } else if let Err(why) = Lock::parse(&text) {
                prop_assert!(!why.contains('\n'));
            }
        }

        /// Any bytes are searched for a build-info string without a panic; what is found has
        /// an ABI and a name.
        #[test]
        fn any_build_info_is_judged(bytes in with_build_info()) {
            if let Some(info) = BuildInfo::find(&bytes) {
                prop_assert!(info.abi != 0 && !info.name.is_empty());
            }
        }

        #[test]
        fn arbitrary_bytes_hold_no_build_info(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let _ = BuildInfo::find(&bytes);
        }
    }
}
