//! Where plugins come from, highest precedence first: `--plugin` paths, `CGCLOUD_PLUGIN_PATH`,
//! `[plugins] paths` in the config file, and the user data directory's `plugins/`. A
//! directory contributes its `lib*.so` (`lib*.dylib` on macOS) files, in name order.

use crate::error::PluginError;
use serde::Serialize;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The environment variable that overrides the data directory.
pub const DATA_DIR_ENV: &str = "CGCLOUD_DATA_DIR";
/// The lock file's name, in the data directory.
pub const LOCK_FILE: &str = "plugins.lock";

/// Plugin locations and admin pins, from the command line, environment and config.
#[derive(Debug, Clone, Default)]
pub struct PluginSources {
    /// `--plugin PATH` (files or directories); need no lock entry.
    pub cli: Vec<PathBuf>,
    /// `CGCLOUD_PLUGIN_PATH`, split like `PATH`; need no lock entry (set per shell, like `--plugin`).
    pub env: Vec<PathBuf>,
    /// `[plugins] paths` in the config file; loaded only if locked.
    pub config: Vec<PathBuf>,
    /// The user data directory; its `plugins/` holds added plugins, and the lock file lives
    /// here. Plugins found there are loaded only if locked.
    pub data_dir: PathBuf,
    /// `[plugins.require]`: plugin name to semver requirement.
    pub pins: BTreeMap<String, semver::VersionReq>,
}

/// Where a plugin file was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    Builtin,
    Cli,
    Env,
    Config,
    DataDir,
}

impl Origin {
    /// Whether files from here must match the lock file.
    pub fn needs_lock(self) -> bool {
        matches!(self, Origin::Config | Origin::DataDir)
    }
}

/// A file to consider loading.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub path: PathBuf,
    pub origin: Origin,
}

impl PluginSources {
    /// Builds the sources from what was typed (`--plugin`), `CGCLOUD_PLUGIN_PATH` and the
    /// config file's `[plugins]` section (`paths = [...]`, `[plugins.require]`).
    pub fn from_config(
        cli: Vec<PathBuf>,
        env_var: Option<&OsStr>,
        config_plugins_section: Option<&toml::Value>,
        data_dir: PathBuf,
    ) -> Result<Self, PluginError> {
        let env = env_var
            .map(|v| {
                std::env::split_paths(v)
                    .filter(|p| !p.as_os_str().is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let mut config = Vec::new();
        let mut pins = BTreeMap::new();
        if let Some(section) = config_plugins_section {
            let table = section
                .as_table()
                .ok_or_else(|| PluginError::BadConfig("`plugins` is not a table".into()))?;
            for (key, value) in table {
                match key.as_str() {
                    "paths" => {
                        let list = value.as_array().ok_or_else(|| {
                            PluginError::BadConfig("`paths` is not a list".into())
                        })?;
                        for item in list {
                            let s = item.as_str().ok_or_else(|| {
                                PluginError::BadConfig("an entry of `paths` is not a string".into())
                            })?;
                            config.push(PathBuf::from(s));
                        }
                    }
                    "require" => {
                        let reqs = value.as_table().ok_or_else(|| {
                            PluginError::BadConfig("`require` is not a table".into())
                        })?;
                        for (name, req) in reqs {
                            let text = req.as_str().ok_or_else(|| {
                                PluginError::BadConfig(format!(
                                    "the pin of `{name}` is not a string"
                                ))
                            })?;
                            let parsed = semver::VersionReq::parse(text).map_err(|e| {
                                PluginError::BadPin {
                                    name: name.clone(),
                                    req: text.into(),
                                    detail: e.to_string(),
                                }
                            })?;
                            pins.insert(name.clone(), parsed);
                        }
                    }
                    other => {
                        return Err(PluginError::BadConfig(format!("unknown key `{other}`")));
                    }
                }
            }
        }
        Ok(Self {
            cli,
            env,
            config,
            data_dir,
            pins,
        })
    }

    /// The lock file.
    pub fn lock_path(&self) -> PathBuf {
        self.data_dir.join(LOCK_FILE)
    }

    /// The directory `cgcloud plugin add` copies plugins into.
    pub fn plugins_dir(&self) -> PathBuf {
        self.data_dir.join("plugins")
    }

    /// Every candidate file, highest precedence first, each file once.
    pub fn candidates(&self) -> Result<Vec<Candidate>, PluginError> {
        let mut out: Vec<Candidate> = Vec::new();
        let push = |path: PathBuf, origin: Origin, out: &mut Vec<Candidate>| {
            let canonical = path.canonicalize().unwrap_or(path);
            if !out.iter().any(|c| c.path == canonical) {
                out.push(Candidate {
                    path: canonical,
                    origin,
                });
            }
        };
        for p in &self.cli {
            if !p.exists() {
                return Err(PluginError::Missing(p.clone()));
            }
            for f in expand(p)? {
                push(f, Origin::Cli, &mut out);
            }
        }
        let rest = [(&self.env, Origin::Env), (&self.config, Origin::Config)];
        for (paths, origin) in rest {
            for p in paths.iter().filter(|p| p.exists()) {
                for f in expand(p)? {
                    push(f, origin, &mut out);
                }
            }
        }
        let dir = self.plugins_dir();
        if dir.is_dir() {
            for f in expand(&dir)? {
                push(f, Origin::DataDir, &mut out);
            }
        }
        Ok(out)
    }
}

/// A file as is; a directory's `lib*.so` / `lib*.dylib` files in name order.
fn expand(path: &Path) -> Result<Vec<PathBuf>, PluginError> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path).map_err(|e| PluginError::Io(path.to_path_buf(), e))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| PluginError::Io(path.to_path_buf(), e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let is_lib = name.starts_with(std::env::consts::DLL_PREFIX)
            && name.ends_with(std::env::consts::DLL_SUFFIX);
        if is_lib && entry.path().is_file() {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// The user data directory: `CGCLOUD_DATA_DIR` if set, else the platform's (XDG data home on
/// Linux, Application Support on macOS) `cgcloud` directory.
pub fn default_data_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(DATA_DIR_ENV).filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    directories::ProjectDirs::from("", "", "cgcloud").map(|d| d.data_dir().to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_section_parses_paths_and_pins() {
        let section: toml::Value = toml::from_str(
            "paths = [\"/opt/a\", \"/opt/b\"]\n[require]\nmongodb-roles = \"^0.3\"\n",
        )
        .expect("toml");
        let s = PluginSources::from_config(
            vec![PathBuf::from("/x.so")],
            Some(OsStr::new("/e1::/e2")),
            Some(&section),
            PathBuf::from("/data"),
        )
        .expect("parses");
        assert_eq!(s.env, [PathBuf::from("/e1"), PathBuf::from("/e2")]);
        assert_eq!(s.config, [PathBuf::from("/opt/a"), PathBuf::from("/opt/b")]);
        assert!(s.pins["mongodb-roles"].matches(&semver::Version::new(0, 3, 9)));
        assert_eq!(s.lock_path(), PathBuf::from("/data/plugins.lock"));
    }

    #[test]
    fn bad_pin_is_one_line_error() {
        let section: toml::Value = toml::from_str("[require]\nx = \"not a req\"\n").expect("toml");
        let err = PluginSources::from_config(vec![], None, Some(&section), PathBuf::from("/d"))
            .expect_err("bad pin");
        assert!(
            err.to_string().starts_with(
                "the pin `x = \"not a req\"` in `[plugins.require]` is not a semver requirement"
            ),
            "{err}"
        );
    }
}
