//! Errors of the plugin host. Each displays as one line that names the file or plugin and
//! says what to do; the host prints it as `ERROR: …` and exits 255.

use cgcloud_plugin_api::{ErrorKind, RoleError};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Shows a path in messages.
pub(crate) fn show(p: &Path) -> String {
    p.display().to_string()
}

/// A plugin-host failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    #[error("`{}` does not exist; check the `--plugin` path", show(.0))]
    Missing(PathBuf),

    #[error("failed to read `{}`: {}", show(.0), .1)]
    Io(PathBuf, std::io::Error),

    #[error("`{}` is not a plugin: it is neither an ELF nor a Mach-O shared library; pass the `lib*.so` (or `lib*.dylib`) file your plugin's build produced", show(.0))]
    NotALibrary(PathBuf),

    #[error("`{}` is an executable, not a plugin library; pass the `lib*.so` (or `lib*.dylib`) file your plugin's `cdylib` build produced", show(.0))]
    Executable(PathBuf),

    #[error("`{}` is truncated or corrupt ({}); rebuild the plugin or copy it again", show(.0), .1)]
    Corrupt(PathBuf, String),

    #[error("`{}` is not a cgcloud plugin: it has no cgcloud plugin entry point; declare its roles with `cgcloud_plugin_api::export_plugin!`", show(.0))]
    NoEntry(PathBuf),

    #[error("`{}` is writable by group or others (mode {:o}), so anyone could replace it; run `chmod go-w {}`", show(.0), .1, show(.0))]
    Writable(PathBuf, u32),

    #[error("`{}` belongs to uid {}, neither you nor root, so its owner could replace the code cgcloud runs; copy it to a file of yours", show(.0), .1)]
    NotOwned(PathBuf, u32),

    #[error("`{}` is in folder `{}`, which {}, so the plugin could be swapped there; keep plugins in folders only you (or root) can write", show(.file), show(.folder), .why)]
    UnsafeFolder {
        file: PathBuf,
        folder: PathBuf,
        why: String,
    },

    #[error("plugin `{name}` (`{}`) was built with cgcloud-plugin-api {api} (plugin ABI {abi}); this cgcloud was built with cgcloud-plugin-api {host_api} (ABI {host}); rebuild the plugin against cgcloud-plugin-api {host}.x, or use a cgcloud built with cgcloud-plugin-api {abi}.x", show(file))]
    AbiMismatch {
        name: String,
        file: PathBuf,
        /// The plugin's cgcloud-plugin-api version.
        api: String,
        abi: u32,
        /// This cgcloud's cgcloud-plugin-api version.
        host_api: &'static str,
        host: u32,
    },

    #[error("plugin `{name}` (`{}`) was built with `panic = \"abort\"`, so a panic in it would kill cgcloud; rebuild it with the default `panic = \"unwind\"`", show(file))]
    PanicAbort { name: String, file: PathBuf },

    #[error("plugin `{name}` (`{}`) was built against an incompatible cgcloud-plugin-api ({detail}); this cgcloud was built with cgcloud-plugin-api {}; rebuild the plugin against cgcloud-plugin-api 1.x", show(file), cgcloud_plugin_api::API_VERSION)]
    Incompatible {
        name: String,
        file: PathBuf,
        detail: String,
    },

    #[error("could not load plugin `{}`: {}", show(.0), .1)]
    LoadFailed(PathBuf, String),

    #[error(
        "`{}` is not in the lock file `{}`; run `cgcloud plugin add {}` to trust it",
        show(file),
        show(lock),
        show(file)
    )]
    NotLocked { file: PathBuf, lock: PathBuf },

    #[error("sha256 of `{}` does not match the lock file `{}` (found {found}, locked {locked}); if you replaced it on purpose, run `cgcloud plugin add {}`", show(file), show(lock), show(file))]
    HashMismatch {
        file: PathBuf,
        lock: PathBuf,
        found: String,
        locked: String,
    },

    #[error("the lock file `{}` is malformed ({}); fix it or delete it and run `cgcloud plugin add` again", show(.0), .1)]
    BadLock(PathBuf, String),

    #[error("plugin `{name}` {version} (`{}`) does not satisfy the pinned requirement `{req}` in `[plugins.require]`; install a matching version or change the pin", show(file))]
    PinMismatch {
        name: String,
        version: String,
        file: PathBuf,
        req: String,
    },

    #[error("the pin `{name} = \"{req}\"` in `[plugins.require]` is not a semver requirement ({detail}); write it like `\"^0.3\"`")]
    BadPin {
        name: String,
        req: String,
        detail: String,
    },

    #[error("the `[plugins]` section of the config is malformed: {0}; write `paths = [\"/dir\", …]` and `[plugins.require]` with `name = \"^x.y\"` entries")]
    BadConfig(String),

    #[error(
        "plugin `{name}` is loaded twice: from `{}` and `{}`; remove one of them",
        show(first),
        show(second)
    )]
    LoadedTwice {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },

    #[error("role `{role}` is defined by plugin `{first}` (`{first_file}`) and plugin `{second}` (`{second_file}`); say which one with `{first}/{role}` or `{second}/{role}`")]
    DuplicateRole {
        role: String,
        first: String,
        first_file: String,
        second: String,
        second_file: String,
    },

    #[error("no such role: `{0}`; run `cgcloud list-roles` to see the roles of the built-ins and loaded plugins")]
    NoSuchRole(String),

    #[error("role `{role}` (plugin `{plugin}`, `{file}`) extends `{parent}`, which no built-in role or loaded plugin defines; load the plugin that defines it or fix `extends`")]
    UnknownParent {
        role: String,
        plugin: String,
        file: String,
        parent: String,
    },

    #[error("cluster type `{cluster}` (plugin `{plugin}`, `{file}`) has {part} role `{role}`, which no built-in role or loaded plugin defines; load the plugin that defines it or fix the cluster type")]
    UnknownClusterRole {
        cluster: String,
        plugin: String,
        file: String,
        /// `leader` or `worker`.
        part: &'static str,
        role: String,
    },

    #[error("no such role or cluster type: `{0}`; run `cgcloud list-roles` to see them")]
    NoSuchCluster(String),

    #[error("roles {chain} form an `extends` cycle (plugin `{plugin}`, `{file}`); fix `extends` in one of them")]
    Cycle {
        chain: String,
        /// The cycle's members, sorted (the same cycle is found from each member).
        members: Vec<String>,
        plugin: String,
        file: String,
    },

    #[error("{0}")]
    Hook(Box<HookError>),

    #[error("failed to write `{}`: {}", show(.0), .1)]
    Write(PathBuf, std::io::Error),

    #[error("no data directory for plugins: set `CGCLOUD_DATA_DIR` or `HOME`")]
    NoDataDir,
}

impl From<HookError> for PluginError {
    fn from(e: HookError) -> Self {
        PluginError::Hook(Box::new(e))
    }
}

/// A hook that failed or panicked, named with its plugin, role and hook.
#[derive(Debug, Clone, thiserror::Error, Serialize)]
#[error("{}", self.line())]
pub struct HookError {
    pub plugin: String,
    pub plugin_version: String,
    pub role: String,
    pub hook: String,
    #[serde(skip)]
    pub error: RoleError,
}

impl HookError {
    pub(crate) fn new(
        plugin: &str,
        version: &str,
        role: &str,
        hook: &str,
        error: RoleError,
    ) -> Self {
        Self {
            plugin: plugin.into(),
            plugin_version: version.into(),
            role: role.into(),
            hook: hook.into(),
            error,
        }
    }

    /// Whether the hook panicked (the panic was caught in the plugin).
    pub fn panicked(&self) -> bool {
        self.error.kind == ErrorKind::Panicked
    }

    /// Whether the host cancelled the hook.
    pub fn cancelled(&self) -> bool {
        self.error.kind == ErrorKind::Cancelled
    }

    fn line(&self) -> String {
        let what = match self.error.kind {
            ErrorKind::Panicked => "panicked in",
            ErrorKind::Cancelled => "was cancelled in",
            _ => "failed in",
        };
        format!(
            "role `{}` (plugin `{}` {}) {what} hook `{}`: {}",
            self.role, self.plugin, self.plugin_version, self.hook, self.error.message
        )
    }
}

/// A problem found by [`crate::verify`], for admins' CI.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// The file concerned, if any.
    pub file: Option<PathBuf>,
    /// The one-line message.
    pub message: String,
}

impl From<&PluginError> for Problem {
    fn from(e: &PluginError) -> Self {
        let file = match e {
            PluginError::Missing(f)
            | PluginError::Io(f, _)
            | PluginError::NotALibrary(f)
            | PluginError::Executable(f)
            | PluginError::Corrupt(f, _)
            | PluginError::NoEntry(f)
            | PluginError::Writable(f, _)
            | PluginError::NotOwned(f, _)
            | PluginError::LoadFailed(f, _)
            | PluginError::BadLock(f, _) => Some(f.clone()),
            PluginError::AbiMismatch { file, .. }
            | PluginError::PanicAbort { file, .. }
            | PluginError::Incompatible { file, .. }
            | PluginError::NotLocked { file, .. }
            | PluginError::HashMismatch { file, .. }
            | PluginError::PinMismatch { file, .. }
            | PluginError::UnsafeFolder { file, .. } => Some(file.clone()),
            PluginError::LoadedTwice { second, .. } => Some(second.clone()),
            _ => None,
        };
        Problem {
            file,
            message: e.to_string(),
        }
    }
}
