//! The configuration file: `$CGCLOUD_CONFIG`, else `config.toml` in cgcloud's configuration
//! directory (`~/.config/cgcloud/` on Linux, `~/Library/Application Support/cgcloud/` on macOS).
//!
//! ```toml
//! ssh_config = "~/.ssh/cgcloud_config"   # passed to ssh with -F (CGCLOUD_SSH_CONFIG wins)
//! [plugins]
//! paths = ["/opt/cgcloud/plugins"]
//! [plugins.require]
//! myroles = "^0.3"
//! ```

use std::path::PathBuf;

use anyhow::Context as _;

use crate::errors::Result;

#[derive(Debug, Default, Clone)]
pub struct Config {
    pub path: Option<PathBuf>,
    pub table: toml::Table,
}

impl Config {
    /// The file's path, whether or not it exists.
    pub fn path() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("CGCLOUD_CONFIG").filter(|p| !p.is_empty()) {
            return Some(PathBuf::from(p));
        }
        directories::ProjectDirs::from("", "", "cgcloud").map(|d| d.config_dir().join("config.toml"))
    }

    /// Reads the file; a missing file is an empty configuration.
    pub fn load() -> Result<Config> {
        let Some(path) = Config::path() else { return Ok(Config::default()) };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Config { path: Some(path), table: toml::Table::new() })
            }
            Err(e) => return Err(e).with_context(|| format!("failed to read `{}`", path.display())),
        };
        let table: toml::Table =
            toml::from_str(&text).with_context(|| format!("invalid configuration file `{}`", path.display()))?;
        Ok(Config { path: Some(path), table })
    }

    pub fn plugins_section(&self) -> Option<&toml::Value> {
        self.table.get("plugins")
    }

    /// The ssh_config file for ssh's `-F`: `CGCLOUD_SSH_CONFIG`, else the `ssh_config` key.
    pub fn ssh_config(&self) -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("CGCLOUD_SSH_CONFIG").filter(|p| !p.is_empty()) {
            return Some(PathBuf::from(p));
        }
        self.table.get("ssh_config").and_then(|v| v.as_str()).map(expand_home)
    }
}

fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}

/// How long each wait of the box lifecycle may take. Defaults suit real EC2; override any of
/// them in the config file (`[timeouts] ssh = 900`, in seconds) or the environment
/// (`CGCLOUD_TIMEOUT_SSH=900`), which wins.
#[derive(Debug, Clone)]
pub struct Timeouts {
    /// pending → running.
    pub running: std::time::Duration,
    /// Until the instance has the address cgcloud connects to.
    pub address: std::time::Duration,
    /// Until SSH answers with the pinned host key.
    pub ssh: std::time::Duration,
    /// Until `cloud-init status --wait` returns.
    pub cloud_init: std::time::Duration,
    /// running → stopped.
    pub stop: std::time::Duration,
    /// Until a new image is available.
    pub image: std::time::Duration,
    /// Until a terminated instance is gone.
    pub terminate: std::time::Duration,
}

/// The timeouts in force for this invocation.
pub fn timeouts() -> &'static Timeouts {
    static T: std::sync::OnceLock<Timeouts> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let config = Config::load().unwrap_or_default();
        let section = config.table.get("timeouts").and_then(|v| v.as_table()).cloned().unwrap_or_default();
        let get = |name: &str, default: u64| {
            let env = std::env::var(format!("CGCLOUD_TIMEOUT_{}", name.to_uppercase()))
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok());
            let file = section.get(name).and_then(|v| v.as_integer()).and_then(|v| u64::try_from(v).ok());
            std::time::Duration::from_secs(env.or(file).unwrap_or(default).max(1))
        };
        Timeouts {
            running: get("running", 600),
            address: get("address", 300),
            ssh: get("ssh", 600),
            cloud_init: get("cloud_init", 1200),
            stop: get("stop", 900),
            image: get("image", 3600),
            terminate: get("terminate", 600),
        }
    })
}
