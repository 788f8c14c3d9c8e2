//! The host's view of the role registry: built-in roles and plugin roles in one registry
//! (`cgcloud_plugin_host`), adapted to what commands need.

use std::path::PathBuf;

use cgcloud_plugin_host::{Offline, PluginSources, Registry, RoleData, RoleHandle, RoleSummary};
use serde::Serialize;

use crate::ctx::Globals;
use crate::errors::Result;
use crate::user_error;

/// A role as `list-roles --json` shows it: the registry's summary plus its options and
/// image-name prefix. (Cluster types follow the roles, with `"kind": "cluster-type"`.)
#[derive(Debug, Clone, Serialize)]
pub struct RoleView {
    /// `role`.
    pub kind: &'static str,
    #[serde(flatten)]
    pub summary: RoleSummary,
    pub image_prefix: String,
    pub options: Vec<cgcloud_plugin_api::RoleOption>,
    /// Why the role cannot be used (one of its declared-data hooks failed); `None` if it can.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

pub struct Roles {
    pub registry: Registry,
}

/// Where plugins come from for this invocation: `--plugin`, `CGCLOUD_PLUGIN_PATH`, the config
/// file's `[plugins]`, the data directory.
pub fn sources(g: &Globals) -> Result<PluginSources> {
    let config = g.config()?;
    let data_dir = data_dir()?;
    let env = std::env::var_os("CGCLOUD_PLUGIN_PATH");
    Ok(PluginSources::from_config(
        g.plugin_paths.clone(),
        env.as_deref(),
        config.plugins_section(),
        data_dir,
    )?)
}

/// cgcloud's data directory (`CGCLOUD_DATA_DIR`, else the platform's), created private (0700)
/// if it is missing and made private if it is not.
pub fn data_dir() -> Result<PathBuf> {
    let dir = cgcloud_plugin_host::default_data_dir().ok_or_else(|| {
        user_error!("cannot tell where cgcloud's data directory is: set CGCLOUD_DATA_DIR or HOME")
    })?;
    cgcloud_plugin_host::ensure_private_dir(&dir).map_err(|e| {
        user_error!(
            "cannot use `{}` as cgcloud's data directory: {e}",
            dir.display()
        )
    })?;
    Ok(dir)
}

impl Roles {
    /// Built-in roles plus every plugin found; warnings (a plugin found twice) are shown.
    pub fn load(g: &Globals) -> Result<Roles> {
        let sources = sources(g)?;
        let registry = Registry::load(&sources)?;
        for w in registry.warnings() {
            g.shell.warn(w);
        }
        Ok(Roles { registry })
    }

    /// Every role with its declared options. A role whose declared-data hooks fail is listed
    /// with the problem, so that one broken role does not hide the others.
    pub fn list(&self) -> Vec<RoleView> {
        self.registry
            .roles()
            .into_iter()
            .map(|summary| match self.declared(&summary.qualified) {
                Ok(data) => RoleView {
                    kind: "role",
                    image_prefix: data.image_name_prefix,
                    options: data.options,
                    problem: None,
                    summary,
                },
                Err(e) => RoleView {
                    kind: "role",
                    image_prefix: String::new(),
                    options: Vec::new(),
                    problem: Some(crate::errors::one_line(&e)),
                    summary,
                },
            })
            .collect()
    }

    /// The role (`name` or `plugin/name`), with its `extends` chain.
    pub fn handle(&self, name: &str) -> Result<RoleHandle> {
        Ok(self.registry.role(name)?)
    }

    /// What the role declares, before any box exists.
    pub fn declared(&self, name: &str) -> Result<RoleData> {
        Ok(self.handle(name)?.declared(&Offline::quiet())?)
    }

    /// The role's declared data; an unknown role is an error naming the way out.
    pub fn get(&self, name: &str) -> Result<RoleData> {
        self.declared(name)
    }
}
