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
