//! What cgcloud role-plugin authors depend on.
//!
//! A role is a Rust type implementing [`Role`]; every hook has a default that delegates to
//! the parent role, so a role overrides only what it changes. A plugin is a `cdylib` crate
//! that declares its roles with [`export_plugin!`]. Roles are plain Rust: no `unsafe` and no
//! ABI types in what an author writes.
//!
//! ```
//! use cgcloud_plugin_api::prelude::*;
//!
//! #[derive(Default)]
//! struct MongoDbBox;
//!
//! impl Role for MongoDbBox {
//!     fn packages(&self, cx: &Cx) -> Result<Vec<String>> {
//!         let mut packages = cx.sup().packages()?; // the parent's, then ours
//!         packages.push("mongodb-org".into());
//!         Ok(packages)
//!     }
//!     fn post_install_packages(&self, cx: &Cx) -> Result<()> {
//!         cx.sup().post_install_packages()?;
//!         cx.sudo("systemctl enable --now mongod")?;
//!         Ok(())
//!     }
//! }
//!
//! // In the plugin crate's lib.rs:
//! cgcloud_plugin_api::export_plugin! {
//!     roles: [
//!         {
//!             name: "mongodb-box",
//!             extends: "generic-ubuntu-noble-box",
//!             description: "MongoDB on Ubuntu 24.04",
//!             new: MongoDbBox::default,
//!         },
//!     ]
//! }
//! ```
//!
//! Stability: this crate's major version is the plugin ABI's major. Within 1.x, hooks, host
//! services, constructors and fields are only added; a plugin built against any 1.x loads in
//! a cgcloud built with any other 1.x, and code written against 1.0 compiles against every
//! later 1.x. What is documented here is that promise; items hidden from these docs (the
//! `abi` and `host` modules, the manifest and wire requests) are cgcloud's own and may change
//! in any release.
//!
//! Modules: [`role`] (the trait and its hooks), [`cx`] (the hook context), [`proto`] (the
//! data that crosses the boundary), [`features`] (package managers to compose), [`testing`]
//! (a fake host for unit tests), [`base`] (what a hook does when no role overrides it).

#[doc(hidden)]
pub mod abi;
pub mod base;
pub mod cx;
mod error;
mod export;
pub mod features;
#[doc(hidden)]
pub mod host;
pub mod proto;
pub mod role;
pub mod testing;

pub use cx::Cx;
pub use error::{ErrorKind, Result, RoleError};
pub use export::{BuildInfo, ClusterDef, PluginDef, RoleDef};
pub use proto::{
    Arch, BaseImageQuery, BlockDevice, CloudConfig, CmdOutput, HostInfo, IamPolicy, Level,
    OptionKind, RoleOption, RuleSource, SecurityGroupRule, SharedSecret, Substitution,
    Virtualization,
};
pub use role::{Hooks, Role};

/// This crate's version: the plugin-api version plugins are built against.
pub const API_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Everything a role author needs: `use cgcloud_plugin_api::prelude::*;`.
pub mod prelude {
    pub use crate::features::{apt, dnf, shell_quote, PackageManager};
    pub use crate::{
        Arch, BaseImageQuery, BlockDevice, CloudConfig, CmdOutput, Cx, HostInfo, IamPolicy, Level,
        OptionKind, Result, Role, RoleDef, RoleError, RoleOption, RuleSource, SecurityGroupRule,
        SharedSecret, Substitution, Virtualization,
    };
}
