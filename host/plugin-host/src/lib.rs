//! cgcloud's plugin host: finds role plugins, checks them before loading, loads them through
//! the frozen ABI of `cgcloud-plugin-api`, and keeps built-in and plugin roles in one registry.
//!
//! | module | job | entry point |
//! |---|---|---|
//! | `sources` | where plugins come from, in precedence order | [`PluginSources::from_config`] |
//! | `integrity` | permissions, ELF/Mach-O structure, before `dlopen` | (used by the loader) |
//! | `lock` | the lock file of trusted plugin files and their sha256 | [`Lock`] |
//! | [`loader`] | checks, pins, `dlopen` of the checked file, manifest | [`loader::inspect`], [`loader::load`] |
//! | `registry` | roles, `extends`, conflicts, `verify` | [`Registry::load`], [`verify`] |
//! | `role` | one role chain and its hooks, host services | [`RoleHandle`], [`HostServices`] |
//! | `add` | `cgcloud plugin add` | [`add_plugin`] |
//!
//! This crate never prints: errors are one-line values, summaries are `Serialize`, and plugin
//! log lines go to the host's [`HostServices::log`].

mod add;
mod error;
mod integrity;
pub mod loader;
mod lock;
mod registry;
mod role;
mod sources;

pub use add::{add_plugin, AddReport};
pub use error::{HookError, PluginError, Problem};
pub use lock::{ensure_private_dir, sha256_hex, write_atomic, Lock, LockEntry};
pub use registry::{load_what_loads, verify, ClusterSummary, PluginSummary, Registry, RoleSummary};
pub use role::{HostServices, Offline, RoleData, RoleHandle};
pub use sources::{default_data_dir, Candidate, Origin, PluginSources, DATA_DIR_ENV, LOCK_FILE};

pub use cgcloud_plugin_api::{CmdOutput, Level, RoleError};
