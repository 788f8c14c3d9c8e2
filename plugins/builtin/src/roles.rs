//! The generic distribution roles: each is a [`Distro`] (declared data) composed with the
//! features of this crate. The composition, hook by hook (a feature's part runs after the
//! parent's, so plugin roles that call `cx.sup()` first see the features' work done):
//!
//! | hook | contributions, in order |
//! |---|---|
//! | `features` | parent's, then the package manager's name, `systemd`, `cloud-init`, `ephemeral-disks` |
//! | `cloud_config` | parent's, then [`ephemeral::cloud_init`] |
//! | `sync_package_repos` | parent's, then [`PackageManager::sync`] |
//! | `package_substitutions` | parent's, then [`PackageManager::substitutions`], then the release's |
//! | `packages` | parent's, then the release's |
//! | `install_packages` | [`PackageManager::install`], then [`ephemeral::setup`] if `mdadm` was in the list |
//! | `upgrade_packages` | [`PackageManager::upgrade`] |

use cgcloud_plugin_api::prelude::*;
use cgcloud_plugin_api::PluginDef;

use crate::distro::*;
use crate::ephemeral;
use crate::package_manager::{self, PackageManager};

/// The plugin name built-in roles are listed under.
pub const PLUGIN_NAME: &str = "builtin";

/// A generic distribution role: declared data plus its features.
pub struct Generic(pub &'static Distro);

impl Generic {
    fn pm(&self) -> PackageManager {
        self.0.package_manager
    }
}

impl Role for Generic {
    fn admin_account(&self, _cx: &Cx) -> Result<String> {
        Ok(self.0.admin.into())
    }

    fn base_image(&self, _cx: &Cx) -> Result<BaseImageQuery> {
        Ok(BaseImageQuery::new(
            self.0.image_owner,
            self.0.image_name_pattern,
            Arch::X86_64,
        ))
    }

    fn features(&self, cx: &Cx) -> Result<Vec<String>> {
        let mut features = cx.sup().features()?;
        features.extend(
            [
                self.pm().feature(),
                "systemd",
                "cloud-init",
                "ephemeral-disks",
            ]
            .map(String::from),
        );
        Ok(features)
    }

    fn cloud_config(&self, cx: &Cx) -> Result<CloudConfig> {
        let mut config = cx.sup().cloud_config()?;
        ephemeral::cloud_init().merge_into(&mut config);
        Ok(config)
    }

    fn sync_package_repos(&self, cx: &Cx) -> Result<()> {
        cx.sup().sync_package_repos()?;
        self.pm().sync(cx)
    }

    fn package_substitutions(&self, cx: &Cx) -> Result<Vec<Substitution>> {
        let mut subs = cx.sup().package_substitutions()?;
        subs.extend(self.pm().substitutions());
        subs.extend(package_manager::substitutions(self.0.substitutions));
        Ok(subs)
    }

    fn packages(&self, cx: &Cx) -> Result<Vec<String>> {
        let mut packages = cx.sup().packages()?;
        packages.extend(self.0.packages.iter().map(|p| p.to_string()));
        Ok(packages)
    }

    fn install_packages(&self, cx: &Cx, packages: Vec<String>) -> Result<()> {
        self.pm().install(cx, &packages)?;
        if packages.iter().any(|p| p == ephemeral::RAID_PACKAGE) {
            ephemeral::setup(cx)?;
        }
        Ok(())
    }

    fn upgrade_packages(&self, cx: &Cx) -> Result<()> {
        self.pm().upgrade(cx)
    }
}

macro_rules! constructors {
    ($($f:ident => $d:ident),* $(,)?) => {
        $( fn $f() -> Box<dyn Role> { Box::new(Generic(&$d)) } )*
        /// Each role's name and constructor, in [`DISTROS`] order.
        pub(crate) const CONSTRUCTORS: &[(&str, fn() -> Box<dyn Role>)] = &[$(($d.role, $f)),*];
    };
}

constructors! {
    debian_bookworm => DEBIAN_BOOKWORM,
    debian_trixie => DEBIAN_TRIXIE,
    ubuntu_jammy => UBUNTU_JAMMY,
    ubuntu_noble => UBUNTU_NOBLE,
    amazonlinux_2023 => AMAZONLINUX_2023,
    rocky_9 => ROCKY_9,
    fedora => FEDORA,
}

/// The built-in roles as a plugin definition.
pub fn plugin() -> PluginDef {
    PluginDef::new(
        PLUGIN_NAME,
        env!("CARGO_PKG_VERSION"),
        DISTROS
            .iter()
            .zip(CONSTRUCTORS)
            .map(|(d, (_, new))| RoleDef::with_constructor(d.role, None, d.description, *new))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_match_distros() {
        assert_eq!(DISTROS.len(), 7);
        assert_eq!(CONSTRUCTORS.len(), DISTROS.len());
        for (d, (name, _)) in DISTROS.iter().zip(CONSTRUCTORS) {
            assert_eq!(d.role, *name);
        }
        assert_eq!(FEDORA.role, format!("generic-fedora-{FEDORA_RELEASE}-box"));
        assert!(FEDORA
            .image_name_pattern
            .contains(&format!("-{FEDORA_RELEASE}-")));
    }
}
