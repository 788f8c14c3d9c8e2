//! The configuration file and the environment values cgcloud reads, loaded and checked once
//! per invocation ([`load`], called by `cli::run` before any command runs): a bad value stops
//! the command with one line naming the file and line (or the variable), the key and what is
//! accepted.
//!
//! The file is `$CGCLOUD_CONFIG`, else `config.toml` in cgcloud's configuration directory
//! (`~/.config/cgcloud/` on Linux, `~/Library/Application Support/cgcloud/` on macOS):
//!
//! ```toml
//! ssh_config = "~/.ssh/cgcloud_config"   # passed to ssh with -F (CGCLOUD_SSH_CONFIG wins)
//! [plugins]
//! paths = ["/opt/cgcloud/plugins"]
//! [plugins.require]
//! myroles = "^0.3"
//! [timeouts]
//! ssh = 900                              # CGCLOUD_TIMEOUT_SSH wins
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use serde::Deserialize;

use crate::errors::Result;
use crate::user_error;

/// The most any wait may be set to: a week, in seconds.
pub const MAX_TIMEOUT_SECONDS: u64 = 7 * 86_400;

/// The waits of the box lifecycle: `(key, default seconds, what it bounds)`.
pub const TIMEOUTS: &[(&str, u64, &str)] = &[
    ("running", 600, "pending to running"),
    (
        "address",
        300,
        "until the instance has the address cgcloud connects to",
    ),
    ("ssh", 600, "until SSH answers with the pinned host key"),
    (
        "cloud_init",
        1200,
        "until `cloud-init status --wait` returns",
    ),
    ("stop", 900, "running to stopped"),
    ("image", 3600, "until a new image is available"),
    ("terminate", 600, "until a terminated instance is gone"),
    ("step", 3600, "each command cgcloud or a role runs on a box"),
    (
        "api",
        30,
        "each attempt of an AWS API call (an operation, retries included, gets 4 times this)",
    ),
    (
        "lease",
        600,
        "how long a box cgcloud is setting up stays claimed by its run without a renewal; `cleanup` removes unfinished boxes whose claim ran out",
    ),
];

/// The configuration file as written, every key checked.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    ssh_config: Option<String>,
    #[allow(dead_code)] // read here only to check its shape; the plugin host reads the values
    plugins: Option<PluginsFile>,
    timeouts: Option<BTreeMap<TimeoutKey, Seconds>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read only to check its shape; the plugin host reads the values
struct PluginsFile {
    paths: Option<Vec<String>>,
    require: Option<BTreeMap<String, String>>,
}

/// A key of `[timeouts]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct TimeoutKey(String);

impl<'de> Deserialize<'de> for TimeoutKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if TIMEOUTS.iter().any(|(k, _, _)| *k == s) {
            Ok(TimeoutKey(s))
        } else {
            let known: Vec<&str> = TIMEOUTS.iter().map(|(k, _, _)| *k).collect();
            Err(serde::de::Error::custom(format!(
                "unknown wait `{s}` in `[timeouts]`; known: {}",
                known.join(", ")
            )))
        }
    }
}

/// A number of seconds, 1 to [`MAX_TIMEOUT_SECONDS`].
#[derive(Debug, Clone, Copy)]
struct Seconds(u64);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = toml::Value::deserialize(d)?;
        v.as_integer()
            .and_then(|n| u64::try_from(n).ok())
            .filter(|n| (1..=MAX_TIMEOUT_SECONDS).contains(n))
            .map(Seconds)
            .ok_or_else(|| serde::de::Error::custom(format!("a timeout is a whole number of seconds from 1 to {MAX_TIMEOUT_SECONDS}, not `{v}`")))
    }
}

/// Each wait's seconds and where they came from: `(key, seconds, source)`.
pub type TimeoutSources = Vec<(&'static str, u64, Source)>;

/// Where a value came from, as `cgcloud config` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    File(PathBuf),
    Env(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Env(v) => f.write_str(v),
        }
    }
}

/// The configuration in force.
#[derive(Debug, Default, Clone)]
pub struct Config {
    /// The file's path, whether or not it exists.
    pub path: Option<PathBuf>,
    /// Whether the file exists.
    pub exists: bool,
    pub table: toml::Table,
    file: FileConfig,
}

impl Config {
    /// The file's path, whether or not it exists.
    pub fn path() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("CGCLOUD_CONFIG").filter(|p| !p.is_empty()) {
            return Some(PathBuf::from(p));
        }
        directories::ProjectDirs::from("", "", "cgcloud")
            .map(|d| d.config_dir().join("config.toml"))
    }

    /// The configuration of this invocation, read and checked on first use.
    pub fn load() -> Result<Config> {
        load().cloned()
    }

    /// Reads and checks the file at [`Config::path`]; a missing file is an empty configuration.
    fn read() -> Result<Config> {
        let Some(path) = Config::path() else {
            return Ok(Config::default());
        };
        let text = match crate::fsutil::read_small_text(&path, 1 << 20) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Config {
                    path: Some(path),
                    ..Config::default()
                })
            }
            Err(e) => {
                return Err(user_error!(
                    "failed to read the configuration file `{}`: {e}",
                    path.display()
                ))
            }
        };
        let here = |e: toml::de::Error| {
            let at = e.span().map(|s| {
                let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                format!(", line {line}")
            });
            user_error!(
                "invalid configuration file `{}`{}: {}; accepted keys: `ssh_config`, `[plugins] paths`, \
                 `[plugins.require]`, `[timeouts]`",
                path.display(),
                at.unwrap_or_default(),
                e.message().trim()
            )
        };
        let table: toml::Table = toml::from_str(&text).map_err(here)?;
        let file: FileConfig = toml::from_str(&text).map_err(here)?;
        Ok(Config {
            path: Some(path),
            exists: true,
            table,
            file,
        })
    }

    pub fn plugins_section(&self) -> Option<&toml::Value> {
        self.table.get("plugins")
    }

    /// The ssh_config file for ssh's `-F`: `CGCLOUD_SSH_CONFIG`, else the `ssh_config` key.
    pub fn ssh_config(&self) -> Option<PathBuf> {
        self.ssh_config_with_source().map(|(p, _)| p)
    }

    /// [`Config::ssh_config`] and where it came from.
    pub fn ssh_config_with_source(&self) -> Option<(PathBuf, Source)> {
        if let Some(p) = std::env::var_os("CGCLOUD_SSH_CONFIG").filter(|p| !p.is_empty()) {
            return Some((PathBuf::from(p), Source::Env("CGCLOUD_SSH_CONFIG".into())));
        }
        let file = self
            .path
            .clone()
            .map(Source::File)
            .unwrap_or(Source::Default);
        self.file
            .ssh_config
            .as_deref()
            .map(|p| (expand_home(p), file))
    }

    /// The timeouts in force, each with where it came from; a bad environment value is an error.
    pub fn timeouts(&self) -> Result<(Timeouts, TimeoutSources)> {
        let section = self.file.timeouts.clone().unwrap_or_default();
        let known: Vec<String> = TIMEOUTS
            .iter()
            .map(|(k, _, _)| format!("CGCLOUD_TIMEOUT_{}", k.to_uppercase()))
            .collect();
        for (var, _) in std::env::vars_os() {
            let var = var.to_string_lossy();
            if var.starts_with("CGCLOUD_TIMEOUT_") && !known.iter().any(|k| *k == var) {
                return Err(user_error!(
                    "`{var}` is not a wait cgcloud knows; the waits are {}",
                    known.join(", ")
                ));
            }
        }
        let mut values = Vec::new();
        for (key, default, _) in TIMEOUTS {
            let var = format!("CGCLOUD_TIMEOUT_{}", key.to_uppercase());
            let (secs, source) = match std::env::var_os(&var) {
                Some(v) => (
                    parse_seconds(&var, &v.to_string_lossy(), MAX_TIMEOUT_SECONDS)?,
                    Source::Env(var),
                ),
                None => match section.get(&TimeoutKey(key.to_string())) {
                    Some(s) => (
                        s.0,
                        self.path
                            .clone()
                            .map(Source::File)
                            .unwrap_or(Source::Default),
                    ),
                    None => (*default, Source::Default),
                },
            };
            values.push((*key, secs, source));
        }
        let get = |k: &str| {
            Duration::from_secs(
                values
                    .iter()
                    .find(|(key, _, _)| *key == k)
                    .map_or(1, |(_, s, _)| *s),
            )
        };
        let t = Timeouts {
            running: get("running"),
            address: get("address"),
            ssh: get("ssh"),
            cloud_init: get("cloud_init"),
            stop: get("stop"),
            image: get("image"),
            terminate: get("terminate"),
            step: get("step"),
            api: get("api"),
            lease: get("lease"),
        };
        Ok((t, values))
    }
}

/// A whole number of seconds from 1 to `max`, from environment variable `var`.
pub fn parse_seconds(var: &str, value: &str, max: u64) -> Result<u64> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| {
            user_error!(
                "{var} must be a whole number of seconds from 1 to {max}, not `{}`",
                value.escape_debug()
            )
        })
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
    pub running: Duration,
    /// Until the instance has the address cgcloud connects to.
    pub address: Duration,
    /// Until SSH answers with the pinned host key.
    pub ssh: Duration,
    /// Until `cloud-init status --wait` returns.
    pub cloud_init: Duration,
    /// running → stopped.
    pub stop: Duration,
    /// Until a new image is available.
    pub image: Duration,
    /// Until a terminated instance is gone.
    pub terminate: Duration,
    /// Each command run on a box.
    pub step: Duration,
    /// Each attempt of an AWS API call.
    pub api: Duration,
    /// A run's claim on the boxes it is setting up, renewed every third of it
    /// (`ops::progress`).
    pub lease: Duration,
}

struct Loaded {
    config: Config,
    timeouts: Timeouts,
}

fn loaded() -> &'static std::result::Result<Loaded, String> {
    static LOADED: OnceLock<std::result::Result<Loaded, String>> = OnceLock::new();
    LOADED.get_or_init(|| {
        let config = Config::read().map_err(|e| crate::errors::one_line(&e))?;
        let (timeouts, _) = config.timeouts().map_err(|e| crate::errors::one_line(&e))?;
        crate::ops::agent::interval().map_err(|e| crate::errors::one_line(&e))?;
        Ok(Loaded { config, timeouts })
    })
}

/// Reads and checks the configuration file and cgcloud's environment values once; every later
/// call returns the same result.
pub fn load() -> Result<&'static Config> {
    match loaded() {
        Ok(l) => Ok(&l.config),
        Err(e) => Err(user_error!("{e}")),
    }
}

/// The timeouts in force for this invocation. `cli::run` has checked the configuration before
/// any command runs; should it not have been (unit tests), a bad configuration gives the
/// defaults.
pub fn timeouts() -> &'static Timeouts {
    static DEFAULTS: OnceLock<Timeouts> = OnceLock::new();
    match loaded() {
        Ok(l) => &l.timeouts,
        Err(_) => DEFAULTS.get_or_init(|| {
            let d = |k: &str| {
                Duration::from_secs(
                    TIMEOUTS
                        .iter()
                        .find(|(key, _, _)| *key == k)
                        .map_or(600, |t| t.1),
                )
            };
            Timeouts {
                running: d("running"),
                address: d("address"),
                ssh: d("ssh"),
                cloud_init: d("cloud_init"),
                stop: d("stop"),
                image: d("image"),
                terminate: d("terminate"),
                step: d("step"),
                api: d("api"),
                lease: d("lease"),
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> std::result::Result<FileConfig, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn the_documented_file_is_accepted() {
        let c = parse(
            "ssh_config = \"~/.ssh/x\"\n[plugins]\npaths = [\"/opt\"]\n[plugins.require]\nmyroles = \"^0.3\"\n[timeouts]\nssh = 900\n",
        )
        .unwrap();
        assert_eq!(c.timeouts.unwrap()[&TimeoutKey("ssh".into())].0, 900);
    }

    #[test]
    fn bad_values_are_refused_with_their_place() {
        for (text, needle) in [
            ("[timeouts]\nssh = \"soon\"\n", "whole number of seconds"),
            ("[timeouts]\nssh = 0\n", "from 1 to"),
            ("[timeouts]\nssh = 9223372036854775807\n", "from 1 to"),
            ("[timeouts]\nsssh = 5\n", "unknown wait `sssh`"),
            ("zone = \"us-west-2a\"\n", "unknown field `zone`"),
            ("[plugins]\npath = []\n", "unknown field `path`"),
            ("[plugins]\npaths = \"/opt\"\n", "invalid type"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.message().contains(needle), "{text:?}: {}", e.message());
            assert!(e.span().is_some(), "{text:?} has a place");
        }
    }

    #[test]
    fn environment_seconds_are_checked() {
        assert_eq!(parse_seconds("X", " 30 ", 60).unwrap(), 30);
        for bad in ["0", "-1", "61", "1e3", "", "18446744073709551616", "nan"] {
            let e = parse_seconds("CGCLOUD_TIMEOUT_SSH", bad, 60)
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("CGCLOUD_TIMEOUT_SSH must be a whole number of seconds from 1 to 60"),
                "{e}"
            );
        }
    }
}
