//! Host keys cgcloud generates for its instances.

use std::process::Command;

use anyhow::Context as _;

use crate::bail_user;
use crate::errors::Result;

/// An ed25519 host key pair: the private key goes to the instance in its cloud-config
/// (`ssh_keys`), the public key into cgcloud's known_hosts.
#[derive(Clone)]
pub struct HostKey {
    /// OpenSSH private key text.
    pub private: String,
    /// `ssh-ed25519 AAAA…` without a comment.
    pub public: String,
}

impl std::fmt::Debug for HostKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl HostKey {
    /// Generates a key pair with `ssh-keygen`.
    pub fn generate() -> Result<HostKey> {
        let dir = tempfile::tempdir().context("failed to create a temporary directory")?;
        let path = dir.path().join("host_key");
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "", "-f"])
            .arg(&path)
            .output()
            .context("failed to run `ssh-keygen`; install OpenSSH's client tools")?;
        if !out.status.success() {
            bail_user!(
                "`ssh-keygen` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let private =
            std::fs::read_to_string(&path).context("failed to read the generated host key")?;
        let public = std::fs::read_to_string(path.with_extension("pub"))
            .context("failed to read the generated host key")?;
        let public = public
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        Ok(HostKey { private, public })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_an_ed25519_pair() {
        let k = HostKey::generate().unwrap();
        assert!(k.public.starts_with("ssh-ed25519 AAAA"), "{}", k.public);
        assert_eq!(k.public.split(' ').count(), 2);
        assert!(k.private.contains("BEGIN OPENSSH PRIVATE KEY"));
        assert_ne!(HostKey::generate().unwrap().public, k.public);
    }
}
