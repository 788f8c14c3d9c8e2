//! File-system helpers.

use std::path::Path;

use crate::errors::Result;

/// Writes `bytes` to `path` atomically with `mode` (`cgcloud_common::fsutil::write_atomic`).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    cgcloud_common::fsutil::write_atomic(path, bytes, mode, None)
        .map_err(|e| anyhow::anyhow!("failed to write `{}`: {e}", path.display()))
}

/// Reads a regular file of at most `limit` bytes. Anything else (a FIFO, a device, a
/// directory, a larger file) is an error of kind `InvalidInput` that says what the path is,
/// without blocking on it or reading it whole.
pub fn read_small(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let invalid = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, what);
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        };
        return Err(invalid(what.to_string()));
    }
    // O_NONBLOCK: should the path have been swapped for a FIFO since, opening does not hang.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_o_nonblock())
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(invalid("not a regular file".to_string()));
    }
    let mut data = Vec::new();
    file.take(limit + 1).read_to_end(&mut data)?;
    if data.len() as u64 > limit {
        return Err(invalid(format!("larger than {limit} bytes")));
    }
    Ok(data)
}

/// [`read_small`] for UTF-8 text.
pub fn read_small_text(path: &Path, limit: u64) -> std::io::Result<String> {
    String::from_utf8(read_small(path, limit)?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// `O_NONBLOCK`: 0o4000 on Linux (x86_64 and arm64 alike), 4 on macOS.
const fn libc_o_nonblock() -> i32 {
    if cfg!(target_os = "macos") {
        0x0004
    } else {
        0o4000
    }
}
