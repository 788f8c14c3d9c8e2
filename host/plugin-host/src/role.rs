//! [`RoleHandle`]: one role with its `extends` chain, ready to answer hooks. The host calls
//! hooks with its own [`HostServices`] (its SSH connection to the box, its logger, role
//! options, cancellation); plugin code reaches those through the ABI.
//!
//! Hooks are synchronous. An async host runs them on a blocking thread
//! (`tokio::task::spawn_blocking`) and bridges its services with `Handle::block_on`; never
//! call a hook on a runtime worker thread. `RoleHandle` is `Send + Sync`.

// Hook errors are the cold path of calls that do SSH; their size does not matter.
#![allow(clippy::result_large_err)]

use crate::error::HookError;
use cgcloud_plugin_api::abi::OwnedRole;
use cgcloud_plugin_api::host::{run_setup, Invoker};
use cgcloud_plugin_api::proto::substitute_packages;
use cgcloud_plugin_api::{
    Arch, BaseImageQuery, BlockDevice, CloudConfig, CmdOutput, Hooks, IamPolicy, Level, RoleError,
    RoleOption, SecurityGroupRule, Virtualization,
};
use serde::Serialize;
use sha2::Digest;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What the host gives hooks: implement this on the host's per-box context.
pub use cgcloud_plugin_api::host::Services as HostServices;

/// Host services for declared-data hooks, before any box exists: role options only; remote
/// calls fail with a clear error; log lines go to `logger`.
pub struct Offline<'a> {
    pub options: BTreeMap<String, String>,
    pub logger: &'a (dyn Fn(Level, &str) + Sync),
}

impl Offline<'static> {
    /// No options, log lines dropped.
    pub fn quiet() -> Self {
        Offline {
            options: BTreeMap::new(),
            logger: &|_, _| {},
        }
    }
}

impl Offline<'_> {
    fn no_box(what: &str) -> String {
        format!("no box exists yet: declared-data hooks cannot {what}")
    }
}

impl HostServices for Offline<'_> {
    fn run(&self, command: &str) -> Result<CmdOutput, String> {
        Err(Self::no_box(&format!("run `{command}`")))
    }
    fn sudo(&self, command: &str, _user: Option<&str>) -> Result<CmdOutput, String> {
        Err(Self::no_box(&format!("run `{command}`")))
    }
    fn put_file(&self, path: &str, _: &[u8], _: u32, _: bool) -> Result<(), String> {
        Err(Self::no_box(&format!("write `{path}`")))
    }
    fn get_file(&self, path: &str, _: bool) -> Result<Vec<u8>, String> {
        Err(Self::no_box(&format!("read `{path}`")))
    }
    fn log(&self, level: Level, message: &str) {
        (self.logger)(level, message)
    }
    fn option(&self, name: &str) -> Option<String> {
        self.options.get(name).cloned()
    }
}

/// Everything a role declares, as the host uses it to prepare a box (and `create --plan`
/// prints it).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RoleData {
    pub name: String,
    pub plugin: String,
    pub plugin_version: String,
    pub extends: Vec<String>,
    pub options: Vec<RoleOption>,
    pub recommended_instance_type: String,
    pub virtualization_types: Vec<Virtualization>,
    pub architectures: Vec<Arch>,
    pub admin_account: String,
    pub default_account: String,
    pub base_image: BaseImageQuery,
    pub security_group_rules: Vec<SecurityGroupRule>,
    pub iam_role_features: Vec<String>,
    pub iam_policies: Vec<IamPolicy>,
    pub image_name_prefix: String,
    pub features: Vec<String>,
    pub block_devices: Vec<BlockDevice>,
    pub cloud_config: CloudConfig,
    pub init_commands: Vec<String>,
    /// The package list after substitutions.
    pub packages: Vec<String>,
}

/// A role, instantiated with its parents, whose hooks the host can run.
pub struct RoleHandle {
    chain: Vec<OwnedRole>,
    name: String,
    description: String,
    plugin: String,
    plugin_version: String,
    file: Option<PathBuf>,
    extends: Vec<String>,
}

impl RoleHandle {
    pub(crate) fn new(
        chain: Vec<OwnedRole>,
        name: String,
        description: String,
        plugin: String,
        plugin_version: String,
        file: Option<PathBuf>,
        extends: Vec<String>,
    ) -> Self {
        Self {
            chain,
            name,
            description,
            plugin,
            plugin_version,
            file,
            extends,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn description(&self) -> &str {
        &self.description
    }
    /// The plugin that defines the role (`builtin` for built-in roles).
    pub fn plugin(&self) -> &str {
        &self.plugin
    }
    pub fn plugin_version(&self) -> &str {
        &self.plugin_version
    }
    /// The plugin file, `None` for built-in roles.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }
    /// The `extends` chain, nearest parent first, as `plugin/role`.
    pub fn extends(&self) -> &[String] {
        &self.extends
    }

    /// Typed access to every hook with `services`; errors are bare [`RoleError`]s (wrap them
    /// with [`RoleHandle::error`]).
    pub fn hooks<'a>(&'a self, services: &'a dyn HostServices) -> Hooks<Invoker<'a>> {
        Invoker::hooks(&self.chain, services, &self.name)
    }

    /// Names a hook failure with this role's plugin, role and `hook`.
    pub fn error(&self, hook: &str, error: RoleError) -> HookError {
        HookError::new(&self.plugin, &self.plugin_version, &self.name, hook, error)
    }

    /// Collects every declared-data hook's answer.
    pub fn declared(&self, services: &dyn HostServices) -> Result<RoleData, HookError> {
        let h = self.hooks(services);
        let e = |hook: &'static str| move |err: RoleError| self.error(hook, err);
        let subs = h
            .package_substitutions()
            .map_err(e("package_substitutions"))?;
        let packages = h.packages().map_err(e("packages"))?;
        Ok(RoleData {
            name: self.name.clone(),
            plugin: self.plugin.clone(),
            plugin_version: self.plugin_version.clone(),
            extends: self.extends.clone(),
            options: h.options().map_err(e("options"))?,
            recommended_instance_type: h
                .recommended_instance_type()
                .map_err(e("recommended_instance_type"))?,
            virtualization_types: h
                .virtualization_types()
                .map_err(e("virtualization_types"))?,
            architectures: h.architectures().map_err(e("architectures"))?,
            admin_account: h.admin_account().map_err(e("admin_account"))?,
            default_account: h.default_account().map_err(e("default_account"))?,
            base_image: h.base_image().map_err(e("base_image"))?,
            security_group_rules: h
                .security_group_rules()
                .map_err(e("security_group_rules"))?,
            iam_role_features: h.iam_role_features().map_err(e("iam_role_features"))?,
            iam_policies: h.iam_policies().map_err(e("iam_policies"))?,
            image_name_prefix: h.image_name_prefix().map_err(e("image_name_prefix"))?,
            features: h.features().map_err(e("features"))?,
            block_devices: h.block_devices().map_err(e("block_devices"))?,
            cloud_config: h.cloud_config().map_err(e("cloud_config"))?,
            init_commands: h.init_commands().map_err(e("init_commands"))?,
            packages: substitute_packages(&packages, &subs),
        })
    }

    /// A stable hash of the role's definition (its declared data, chain and plugin version),
    /// for image tags: images made from a changed role get a different hash.
    pub fn definition_hash(&self, services: &dyn HostServices) -> Result<String, HookError> {
        let data = self.declared(services)?;
        let json = serde_json::to_vec(&data)
            .map_err(|e| self.error("definition_hash", RoleError::from(e)))?;
        Ok(hex::encode(sha2::Sha256::digest(&json)))
    }

    /// Runs `validate_options` (offline, with the options of the box about to be made).
    pub fn validate_options(&self, services: &dyn HostServices) -> Result<(), HookError> {
        self.hooks(services)
            .validate_options()
            .map_err(|e| self.error("validate_options", e))
    }

    /// Runs `on_instance_running`.
    pub fn on_instance_running(
        &self,
        services: &dyn HostServices,
        first_boot: bool,
    ) -> Result<(), HookError> {
        self.hooks(services)
            .on_instance_running(first_boot)
            .map_err(|e| self.error("on_instance_running", e))
    }

    /// Runs `on_instance_ready`.
    pub fn on_instance_ready(
        &self,
        services: &dyn HostServices,
        first_boot: bool,
    ) -> Result<(), HookError> {
        self.hooks(services)
            .on_instance_ready(first_boot)
            .map_err(|e| self.error("on_instance_ready", e))
    }

    /// Runs the set-up phases in order (repos, sync, pre-install, substitutions and packages,
    /// install, post-install, and with `upgrade` the upgrade).
    pub fn setup(&self, services: &dyn HostServices, upgrade: bool) -> Result<(), HookError> {
        run_setup(&self.hooks(services), upgrade).map_err(|(hook, e)| self.error(&hook, e))
    }
}
