//! cgcloud's own known_hosts file: one line per instance, `<instance-id> <type> <base64>`.
//!
//! Entries are keyed by instance ID (ssh's `HostKeyAlias`), never by address. Writes replace the
//! file atomically.

use std::path::Path;

use anyhow::Context as _;

use crate::errors::Result;

/// The pinned key of an instance, `<type> <base64>`, if any.
pub fn lookup(file: &Path, instance_id: &str) -> Result<Option<String>> {
    Ok(read(file)?.into_iter().find(|(id, _)| id == instance_id).map(|(_, key)| key))
}

/// Pins `public_key` (`<type> <base64>`) for the instance, replacing an older pin.
pub fn pin(file: &Path, instance_id: &str, public_key: &str) -> Result<()> {
    let mut entries: Vec<(String, String)> = read(file)?.into_iter().filter(|(id, _)| id != instance_id).collect();
    let key = public_key.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    entries.push((instance_id.to_string(), key));
    write(file, &entries)
}

/// Removes the instance's pin, if any.
pub fn forget(file: &Path, instance_id: &str) -> Result<()> {
    let entries = read(file)?;
    let kept: Vec<(String, String)> = entries.iter().filter(|(id, _)| id != instance_id).cloned().collect();
    if kept.len() != entries.len() {
        write(file, &kept)?;
    }
    Ok(())
}

fn read(file: &Path) -> Result<Vec<(String, String)>> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("failed to read `{}`", file.display())),
    };
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(' ').map(|(id, key)| (id.to_string(), key.trim().to_string())))
        .collect())
}

fn write(file: &Path, entries: &[(String, String)]) -> Result<()> {
    let text: String = entries.iter().map(|(id, key)| format!("{id} {key}\n")).collect();
    crate::fsutil::write_atomic(file, text.as_bytes(), 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_replace_and_forget_by_instance_id() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("known_hosts");
        assert_eq!(lookup(&f, "i-1").unwrap(), None);
        pin(&f, "i-1", "ssh-ed25519 AAAA1 comment").unwrap();
        pin(&f, "i-2", "ssh-ed25519 AAAA2").unwrap();
        pin(&f, "i-1", "ssh-ed25519 AAAA3").unwrap();
        assert_eq!(lookup(&f, "i-1").unwrap().as_deref(), Some("ssh-ed25519 AAAA3"));
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "i-2 ssh-ed25519 AAAA2\ni-1 ssh-ed25519 AAAA3\n");
        forget(&f, "i-2").unwrap();
        assert_eq!(lookup(&f, "i-2").unwrap(), None);
        assert_eq!(lookup(&f, "i-1").unwrap().as_deref(), Some("ssh-ed25519 AAAA3"));
    }
}
