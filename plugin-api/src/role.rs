//! The `Role` trait: the hooks of cgcloud's box template, grouped by phase.
//!
//! Every hook is listed once in the `hooks!` table below, which generates the trait method
//! (whose default delegates to the parent role), the typed callers (`cx.sup()`, `cx.this()`,
//! the host's invoker) and the by-name dispatch. To add a hook in a 1.x release, add one line
//! to the table and its base default in `base.rs`: no layout changes, so plugins built before
//! keep working (the host falls back to the parent and then the base default for them), and
//! plugins built after still load in older hosts (which never call the new hook).
//!
//! Call order during `cgcloud create` (the host drives it): declared data, `validate_options`
//! and launch-time hooks while preparing (offline, before anything is launched);
//! `on_instance_running` once the instance runs; `on_instance_ready` once SSH answers and
//! cloud-init finished; then the set-up phases `setup_package_repos`, `sync_package_repos`,
//! `pre_install_packages`, `package_substitutions` + `packages` → `install_packages`,
//! `post_install_packages`, and with `--upgrade` `upgrade_packages`. Every later boot of the
//! box (`start`, `reboot`, the reboot after `--upgrade`, the restart after `--image`) runs
//! `on_instance_running` and `on_instance_ready` again with `first_boot` false.

use crate::cx::Cx;
use crate::error::{Result, RoleError};
#[allow(unused_imports)]
use crate::proto::{
    Arch, BaseImageQuery, BlockDevice, CloudConfig, IamPolicy, RoleOption, SecurityGroupRule,
    Substitution, Virtualization,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Something that can run a hook by name with JSON arguments: the parent chain (`cx.sup()`),
/// the most derived role (`cx.this()`) or the host's invoker.
pub trait Caller {
    /// Runs `hook` with JSON `args` and returns its JSON result.
    fn call_json(&self, hook: &str, args: Vec<u8>) -> Result<Vec<u8>>;
}

/// Typed access to every hook through a [`Caller`].
pub struct Hooks<C>(pub C);

impl<C: Caller> Hooks<C> {
    fn typed<A: Serialize, T: DeserializeOwned>(&self, hook: &str, args: &A) -> Result<T> {
        let args = serde_json::to_vec(args)?;
        let out = self.0.call_json(hook, args)?;
        serde_json::from_slice(&out).map_err(|e| {
            RoleError::failed(format!("hook `{hook}` returned a malformed result: {e}"))
        })
    }
}

fn encode<T: Serialize>(r: Result<T>) -> Result<Vec<u8>> {
    r.and_then(|v| serde_json::to_vec(&v).map_err(RoleError::from))
}

fn decode<T: DeserializeOwned>(hook: &str, args: &[u8]) -> Result<T> {
    serde_json::from_slice(args)
        .map_err(|e| RoleError::failed(format!("malformed arguments for hook `{hook}`: {e}")))
}

macro_rules! hooks {
    ($(
        $(#[$doc:meta])*
        fn $name:ident($($arg:ident : $ty:ty),*) -> $ret:ty;
    )*) => {
        /// A cgcloud role. Every hook has a default that delegates to the parent role
        /// (`extends`), and at the root of the chain to the base behaviour in
        /// [`crate::base`]; override only what your role changes, and call the parent
        /// explicitly with `cx.sup()`.
        ///
        /// # When hooks run
        ///
        /// - **Declared data** (`options` … `init_commands`, and `validate_options`): no box
        ///   exists; `cx.run` and the other remote calls fail, logging and options work.
        ///   cgcloud calls them as often as it needs (`list-roles`, `list-options`,
        ///   `create --plan`, every command that binds a box, image hashes) and expects the
        ///   same answer for the same options each time: keep them pure. An error makes the
        ///   role unusable: commands that need it stop with the error, and `list-roles` lists
        ///   the role as broken with the reason.
        /// - **Boot hooks** (`on_instance_running`, `on_instance_ready`): once per boot, in
        ///   every command that boots a box: `create`, `recreate`, `start`, `reboot`, the
        ///   reboot after `create --upgrade` and the restart after `create --image`.
        ///   `first_boot` is true only on an instance's first boot (`create`, `recreate`).
        /// - **Set-up phases** (`setup_package_repos` … `upgrade_packages`): once per box, in
        ///   `create`, after the first `on_instance_ready`; not in `recreate`, whose image has
        ///   them done. The box is reachable.
        ///
        /// A hook returning `Err` stops what cgcloud is doing with one line naming the plugin,
        /// the role and the hook (in `create`, the instance is then terminated unless `-N`);
        /// a panic is caught and reported the same way.
        pub trait Role: Send + Sync + 'static {
            $(
                $(#[$doc])*
                fn $name(&self, cx: &Cx<'_> $(, $arg: $ty)*) -> Result<$ret> {
                    cx.sup().$name($($arg),*)
                }
            )*
        }

        impl<C: Caller> Hooks<C> {
            $(
                $(#[$doc])*
                pub fn $name(&self $(, $arg: $ty)*) -> Result<$ret> {
                    self.typed(stringify!($name), &($($arg,)*))
                }
            )*
        }

        /// Runs `hook` on `role`; `None` if this build does not know the hook.
        pub(crate) fn dispatch(role: &dyn Role, cx: &Cx<'_>, hook: &str, args: &[u8]) -> Option<Result<Vec<u8>>> {
            match hook {
                $(
                    stringify!($name) => Some(
                        decode::<($($ty,)*)>(hook, args)
                            .and_then(|($($arg,)*)| encode(role.$name(cx $(, $arg)*)))
                    ),
                )*
                _ => None,
            }
        }

        /// Runs the base default of `hook`; `None` if this build does not know the hook.
        pub(crate) fn base_dispatch(cx: &Cx<'_>, hook: &str, args: &[u8]) -> Option<Result<Vec<u8>>> {
            match hook {
                $(
                    stringify!($name) => Some(
                        decode::<($($ty,)*)>(hook, args)
                            .and_then(|($($arg,)*)| encode(crate::base::$name(cx $(, $arg)*)))
                    ),
                )*
                _ => None,
            }
        }

        /// The names of the hooks this build knows, in table order.
        pub const HOOK_NAMES: &[&str] = &[$(stringify!($name)),*];
    };
}

hooks! {
    // --- Identity and declared data (see "When hooks run" on `Role`) ---

    /// The options this role accepts (`-O NAME=VALUE`). Declared data: pure, offline, called any
    /// number of times. Default: the parent's; base: none.
    fn options() -> Vec<RoleOption>;
    /// Checks the role options' values (defaults applied, `cx.option`) before anything is launched:
    /// `create`, `recreate` and `create --plan` call it after the host checked names and kinds, and
    /// an error stops the command with its message before any AWS resource is made. Pure and
    /// offline, like declared data. Base: accepts anything.
    fn validate_options() -> ();
    /// The instance type used when `-t` is not given. Declared data (pure, offline). Base:
    /// `t3.micro`.
    fn recommended_instance_type() -> String;
    /// Supported virtualization types, preferred first. Declared data (pure, offline). Base:
    /// `[hvm]`.
    fn virtualization_types() -> Vec<Virtualization>;
    /// Supported architectures, preferred first. Declared data (pure, offline). Base: `[x86_64]`.
    fn architectures() -> Vec<Arch>;
    /// The account with passwordless sudo that cgcloud provisions through. Declared data (pure,
    /// offline). Base: an error (extend a built-in role, which sets it).
    fn admin_account() -> String;
    /// The account `cgcloud ssh` logs into. Declared data (pure, offline). Base: the most derived
    /// role's admin account.
    fn default_account() -> String;
    /// How to find the base image: owner account plus name pattern. Declared data (pure, offline).
    /// Base: an error.
    fn base_image() -> BaseImageQuery;
    /// Ingress rules of the role's security group. Declared data (pure, offline). Base: SSH from
    /// the configured clients and ICMP "fragmentation needed" from anywhere.
    fn security_group_rules() -> Vec<SecurityGroupRule>;
    /// The features contributing to the role's IAM role, in order; they name the IAM role
    /// (`cgcloud--feature--…`, hashed). Declared data (pure, offline). Base: none.
    fn iam_role_features() -> Vec<String>;
    /// Inline policies of the role's instance profile. Declared data (pure, offline). Base: none.
    fn iam_policies() -> Vec<IamPolicy>;
    /// The prefix of the names of images made from boxes of this role. Declared data (pure,
    /// offline). Base: the role's name.
    fn image_name_prefix() -> String;
    /// Declared features, e.g. `apt`, `systemd`, `cloud-init`. Declared data (pure, offline). Base:
    /// none.
    fn features() -> Vec<String>;

    // --- Launch-time contributions (declared data too: pure, offline) ---

    /// Block devices besides the root volume. Declared data (pure, offline). Base: none.
    fn block_devices() -> Vec<BlockDevice>;
    /// Cloud-config contributions merged into the user data. Declared data (pure, offline). Base:
    /// empty.
    fn cloud_config() -> CloudConfig;
    /// Shell commands the box runs at the end of every boot (a systemd unit that `create`
    /// installs); each must tolerate `set -e`. Declared data (pure, offline). Base: none.
    fn init_commands() -> Vec<String>;

    // --- Boot hooks: once per boot of a box, in every command that boots one ---

    /// Runs once per boot, in every command that boots a box (`create`, `recreate`, `start`,
    /// `reboot`, the reboot after `create --upgrade`, the restart after `create --image`), after
    /// EC2 reports the instance `running` and before SSH is tried. `first_boot` is true only on the
    /// instance's first boot (`create`, `recreate`). The box cannot be reached yet: `cx.run`,
    /// `cx.sudo` and the file calls fail; logging and options work. An error stops the command; in
    /// `create` the instance is then terminated unless `-N`. Base: nothing.
    fn on_instance_running(first_boot: bool) -> ();
    /// Runs once per boot, in the same commands as `on_instance_running`, after SSH answers (the
    /// host key verified) and cloud-init finished, before anything else cgcloud does on the box.
    /// The box is reachable: `cx.run`, `cx.sudo` and the file calls work. `first_boot` as for
    /// `on_instance_running`. An error stops the command; in `create` the instance is then
    /// terminated unless `-N`. Base: nothing.
    fn on_instance_ready(first_boot: bool) -> ();

    // --- Set-up phases (see "When hooks run" on `Role`) ---

    /// Set-up phase 1 (once per box, in `create`): add package repositories. Base: nothing.
    fn setup_package_repos() -> ();
    /// Set-up phase 2 (once per box, in `create`): refresh the package index. Base: nothing.
    fn sync_package_repos() -> ();
    /// Set-up phase 3 (once per box, in `create`): anything needed before packages are installed
    /// (users, debconf). Base: nothing.
    fn pre_install_packages() -> ();
    /// Set-up phase 4a (once per box, in `create`): package substitutions, applied transitively.
    /// Also read as declared data (`create --plan`), so pure. Base: none.
    fn package_substitutions() -> Vec<Substitution>;
    /// Set-up phase 4b (once per box, in `create`): the packages to install. Also read as declared
    /// data, so pure. Base: none.
    fn packages() -> Vec<String>;
    /// Set-up phase 5 (once per box, in `create`): install the (substituted) packages. Base: an
    /// error unless the list is empty (a role needs a package-manager feature to install anything).
    fn install_packages(packages: Vec<String>) -> ();
    /// Set-up phase 6 (once per box, in `create`): the role's main work, after packages are
    /// installed. Base: nothing.
    fn post_install_packages() -> ();
    /// Set-up phase 7, only with `create --upgrade`: upgrade installed packages; the box is then
    /// rebooted (a boot: the boot hooks run again with `first_boot` false). Base: an error.
    fn upgrade_packages() -> ();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_table_has_no_duplicates() {
        let mut names = HOOK_NAMES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), HOOK_NAMES.len());
        assert!(HOOK_NAMES.contains(&"on_instance_ready"));
    }
}
