//! SSH to boxes, always with a verified host key.
//!
//! cgcloud generates each instance's host key itself ([`hostkey`]), hands it to the instance in
//! its cloud-config, and pins it in a known_hosts file of its own keyed by instance ID
//! ([`known_hosts`]). Every connection — provisioning, `cgcloud ssh`, `cgcloud rsync` — runs
//! OpenSSH with a per-box ssh_config ([`BoxConfig`]) that says `HostKeyAlias <instance-id>`,
//! `StrictHostKeyChecking yes` and points at that file, so a recycled IP address or DNS name
//! never prompts and never connects to the wrong machine. Nothing here accepts an unknown key.

pub mod executor;
pub mod hostkey;
pub mod known_hosts;
pub mod remote;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;

use crate::errors::Result;

/// How long one TCP connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where cgcloud keeps its SSH state: the pinned host keys and per-box ssh_config files.
#[derive(Debug, Clone)]
pub struct SshSettings {
    /// cgcloud's data directory (`CGCLOUD_DATA_DIR`, else the platform's data directory).
    pub data_dir: PathBuf,
    /// `--ssh-key` / `CGCLOUD_SSH_KEY`: the identity file; else the agent and ssh's defaults.
    pub identity: Option<PathBuf>,
    /// `CGCLOUD_SSH_CONFIG` or the config file's `ssh_config`: included for every box (bastions,
    /// ProxyCommand, the local cloud).
    pub user_config: Option<PathBuf>,
}

impl SshSettings {
    pub fn known_hosts(&self) -> PathBuf {
        self.data_dir.join("known_hosts")
    }
}

/// The box to reach.
#[derive(Debug, Clone)]
pub struct Target {
    pub instance_id: String,
    /// The address cgcloud connects to: the public IP (or DNS name), or the private one.
    pub address: String,
    pub user: String,
}

/// A generated ssh_config for one box.
pub struct BoxConfig {
    pub path: PathBuf,
}

impl BoxConfig {
    /// Writes `<data_dir>/ssh/<instance-id>.config`. Our settings come first so nothing included
    /// after them can weaken host-key checking (ssh_config: the first value obtained wins).
    pub fn write(settings: &SshSettings, target: &Target) -> Result<BoxConfig> {
        check_account(&target.user)?;
        let dir = settings.data_dir.join("ssh");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("failed to create `{}`", dir.display()))?;
        let known_hosts = settings.known_hosts();
        let mut text = format!(
            "# Written by cgcloud for instance {id}; rewritten on every connection.\n\
             Host {addr}\n\
             \x20 HostKeyAlias {id}\n\
             \x20 UserKnownHostsFile \"{kh}\"\n\
             \x20 GlobalKnownHostsFile none\n\
             \x20 KnownHostsCommand none\n\
             \x20 StrictHostKeyChecking yes\n\
             \x20 CheckHostIP no\n\
             \x20 UpdateHostKeys no\n\
             \x20 User {user}\n\
             \x20 ConnectTimeout {timeout}\n\
             \x20 ServerAliveInterval 15\n\
             \x20 ServerAliveCountMax 4\n\
             \x20 PasswordAuthentication no\n\
             \x20 KbdInteractiveAuthentication no\n",
            id = target.instance_id,
            addr = target.address,
            kh = known_hosts.display(),
            user = target.user,
            timeout = CONNECT_TIMEOUT.as_secs(),
        );
        if let Some(identity) = &settings.identity {
            let abs = absolute(identity)?;
            text.push_str(&format!("  IdentityFile \"{}\"\n", abs.display()));
        }
        let mut includes = Vec::new();
        if let Some(user_config) = &settings.user_config {
            let abs = absolute(user_config)?;
            if !abs.exists() {
                crate::bail_user!("the ssh_config file `{}` does not exist", abs.display());
            }
            includes.push(abs);
        }
        if let Some(home) = std::env::var_os("HOME") {
            let own = Path::new(&home).join(".ssh/config");
            if own.exists() {
                includes.push(own);
            }
        }
        if !includes.is_empty() {
            text.push_str("Host *\n");
            for inc in includes {
                text.push_str(&format!("  Include \"{}\"\n", inc.display()));
            }
        }
        let path = dir.join(format!("{}.config", target.instance_id));
        crate::fsutil::write_atomic(&path, text.as_bytes(), 0o600)?;
        Ok(BoxConfig { path })
    }
}

/// Refuses an account name that is not a plain user name (it goes into ssh_config, where a
/// newline or quote would add directives).
pub fn check_account(user: &str) -> Result<()> {
    let mut chars = user.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest_ok = user
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !first_ok || !rest_ok || user.len() > 32 {
        crate::bail_user!(
            "`{}` is not an account name: a letter or `_`, then letters, digits, `_`, `.` or `-`, at most 32 characters",
            user.escape_debug()
        );
    }
    Ok(())
}

fn absolute(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    let cwd = std::env::current_dir().context("failed to read the current directory")?;
    Ok(cwd.join(p))
}
