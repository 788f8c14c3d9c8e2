//! File-system helpers.

use std::path::Path;

use crate::errors::Result;

/// Writes `bytes` to `path` atomically with `mode` (`cgcloud_common::fsutil::write_atomic`).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    cgcloud_common::fsutil::write_atomic(path, bytes, mode, None)
        .map_err(|e| anyhow::anyhow!("failed to write `{}`: {e}", path.display()))
}

pub use cgcloud_common::fsutil::read_small;

/// [`read_small`] for UTF-8 text.
pub fn read_small_text(path: &Path, limit: u64) -> std::io::Result<String> {
    String::from_utf8(read_small(path, limit)?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// `n` random bytes from the kernel (`/dev/urandom`).
pub fn random_bytes(n: usize) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = vec![0; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| crate::user_error!("failed to read random bytes from /dev/urandom: {e}"))?;
    Ok(bytes)
}
