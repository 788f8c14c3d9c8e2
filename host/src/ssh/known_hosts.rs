//! cgcloud's own known_hosts file: one line per instance, `<instance-id> <type> <base64>`.
//!
//! Entries are keyed by instance ID (ssh's `HostKeyAlias`), never by address. Every change is a
//! read-modify-write under an exclusive lock on `<file>.lock`, so concurrent cgcloud processes
//! (parallel `create`s, a teammate's pin on a shared data directory) never lose a pin; writes
//! replace the file atomically.

use std::path::Path;

use anyhow::Context as _;

use crate::errors::Result;

/// The pinned key of an instance, `<type> <base64>`, if any.
pub fn lookup(file: &Path, instance_id: &str) -> Result<Option<String>> {
    Ok(read(file)?
        .into_iter()
        .find(|(id, _)| id == instance_id)
        .map(|(_, key)| key))
}

/// Holds the exclusive lock on `<file>.lock` while `f` runs.
fn locked<T>(file: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let dir = file.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)
        .with_context(|| format!("failed to create `{}`", dir.display()))?;
    let lock_path = file.with_extension("lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("failed to open `{}`", lock_path.display()))?;
    // NOTE: released when `lock` is dropped, also if `f` panics.
    lock.lock()
        .with_context(|| format!("failed to lock `{}`", lock_path.display()))?;
    f()
}

/// Pins `public_key` (`<type> <base64>`) for the instance, replacing an older pin.
pub fn pin(file: &Path, instance_id: &str, public_key: &str) -> Result<()> {
    locked(file, || pin_unlocked(file, instance_id, public_key))
}

/// Pins `public_key` only if the instance has no pin yet; returns the pin in force.
pub fn pin_if_absent(file: &Path, instance_id: &str, public_key: &str) -> Result<String> {
    locked(file, || {
        match read(file)?.into_iter().find(|(id, _)| id == instance_id) {
            Some((_, key)) => Ok(key),
            None => {
                pin_unlocked(file, instance_id, public_key)?;
                Ok(public_key
                    .split_whitespace()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" "))
            }
        }
    })
}

fn pin_unlocked(file: &Path, instance_id: &str, public_key: &str) -> Result<()> {
    let mut entries: Vec<(String, String)> = read(file)?
        .into_iter()
        .filter(|(id, _)| id != instance_id)
        .collect();
    let key = public_key
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    entries.push((instance_id.to_string(), key));
    write(file, &entries)
}

/// Removes the instance's pin, if any.
pub fn forget(file: &Path, instance_id: &str) -> Result<()> {
    locked(file, || {
        let entries = read(file)?;
        let kept: Vec<(String, String)> = entries
            .iter()
            .filter(|(id, _)| id != instance_id)
            .cloned()
            .collect();
        if kept.len() != entries.len() {
            write(file, &kept)?;
        }
        Ok(())
    })
}

fn read(file: &Path) -> Result<Vec<(String, String)>> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("failed to read `{}`", file.display())),
    };
    Ok(text
        .lines()
        // Markers (`@cert-authority`, `@revoked`) and comments are not pins; writing drops them.
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#') && !l.starts_with('@'))
        .filter_map(|l| {
            l.split_once(' ')
                .map(|(id, key)| (id.to_string(), key.trim().to_string()))
        })
        .collect())
}

fn write(file: &Path, entries: &[(String, String)]) -> Result<()> {
    let text: String = entries
        .iter()
        .map(|(id, key)| format!("{id} {key}\n"))
        .collect();
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
        assert_eq!(
            lookup(&f, "i-1").unwrap().as_deref(),
            Some("ssh-ed25519 AAAA3")
        );
        assert_eq!(
            std::fs::read_to_string(&f).unwrap(),
            "i-2 ssh-ed25519 AAAA2\ni-1 ssh-ed25519 AAAA3\n"
        );
        forget(&f, "i-2").unwrap();
        assert_eq!(lookup(&f, "i-2").unwrap(), None);
        assert_eq!(
            lookup(&f, "i-1").unwrap().as_deref(),
            Some("ssh-ed25519 AAAA3")
        );
        assert_eq!(
            pin_if_absent(&f, "i-1", "ssh-ed25519 OTHER").unwrap(),
            "ssh-ed25519 AAAA3"
        );
        assert_eq!(
            pin_if_absent(&f, "i-9", "ssh-ed25519 AAAA9 c").unwrap(),
            "ssh-ed25519 AAAA9"
        );
    }

    #[test]
    fn concurrent_writers_lose_no_pin() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("known_hosts");
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let f = f.clone();
                std::thread::spawn(move || {
                    for n in 0..25 {
                        pin(&f, &format!("i-{t}-{n}"), &format!("ssh-ed25519 K{t}x{n}")).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        for t in 0..8 {
            for n in 0..25 {
                assert_eq!(
                    lookup(&f, &format!("i-{t}-{n}")).unwrap(),
                    Some(format!("ssh-ed25519 K{t}x{n}"))
                );
            }
        }
    }
}
