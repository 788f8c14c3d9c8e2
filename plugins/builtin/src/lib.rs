//! Built-in roles, linked into cgcloud and called through the same `Role` trait and vtable as
//! plugin roles, so plugins can extend them.
//!
//! Each role is a [`Distro`] (declared data) composed with a package-manager feature from
//! `cgcloud_plugin_api::features`, instead of a deep class hierarchy. To add a role, add a
//! `Distro` constant here and list it in [`DISTROS`].

use cgcloud_plugin_api::prelude::*;
use cgcloud_plugin_api::PluginDef;

/// The plugin name built-in roles are listed under.
pub const PLUGIN_NAME: &str = "builtin";

/// A package-manager feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageManager {
    Apt,
    Dnf,
}

/// The declared data of a generic distribution role.
#[derive(Debug)]
pub struct Distro {
    pub role: &'static str,
    pub description: &'static str,
    pub admin: &'static str,
    /// The AWS account that publishes the distribution's official images.
    pub image_owner: &'static str,
    pub image_name_pattern: &'static str,
    pub package_manager: PackageManager,
    pub packages: &'static [&'static str],
}

/// Debian's cloud team account.
const DEBIAN_OWNER: &str = "136693071363";
/// Canonical's account.
const CANONICAL_OWNER: &str = "099720109477";
/// Amazon's account for Amazon Linux.
const AMAZON_OWNER: &str = "137112412989";
/// The Rocky Enterprise Software Foundation's account.
const ROCKY_OWNER: &str = "792107900819";
/// The Fedora project's account.
const FEDORA_OWNER: &str = "125523088429";

/// The current Fedora release of `generic-fedora-<release>-box`.
pub const FEDORA_RELEASE: u32 = 43;

pub const DEBIAN_BOOKWORM: Distro = Distro {
    role: "generic-debian-bookworm-box",
    description: "A generic Debian 12 (bookworm) box",
    admin: "admin",
    image_owner: DEBIAN_OWNER,
    image_name_pattern: "debian-12-amd64-*",
    package_manager: PackageManager::Apt,
    packages: &["htop", "mdadm"],
};

pub const DEBIAN_TRIXIE: Distro = Distro {
    role: "generic-debian-trixie-box",
    description: "A generic Debian 13 (trixie) box",
    admin: "admin",
    image_owner: DEBIAN_OWNER,
    image_name_pattern: "debian-13-amd64-*",
    package_manager: PackageManager::Apt,
    packages: &["htop", "mdadm"],
};

pub const UBUNTU_JAMMY: Distro = Distro {
    role: "generic-ubuntu-jammy-box",
    description: "A generic Ubuntu 22.04 LTS (jammy) box",
    admin: "ubuntu",
    image_owner: CANONICAL_OWNER,
    image_name_pattern: "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*",
    package_manager: PackageManager::Apt,
    packages: &["htop", "mdadm"],
};

pub const UBUNTU_NOBLE: Distro = Distro {
    role: "generic-ubuntu-noble-box",
    description: "A generic Ubuntu 24.04 LTS (noble) box",
    admin: "ubuntu",
    image_owner: CANONICAL_OWNER,
    image_name_pattern: "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*",
    package_manager: PackageManager::Apt,
    packages: &["htop", "mdadm"],
};

pub const AMAZONLINUX_2023: Distro = Distro {
    role: "generic-amazonlinux-2023-box",
    description: "A generic Amazon Linux 2023 box",
    admin: "ec2-user",
    image_owner: AMAZON_OWNER,
    image_name_pattern: "al2023-ami-2023.*-x86_64",
    package_manager: PackageManager::Dnf,
    packages: &["htop", "mdadm"],
};

pub const ROCKY_9: Distro = Distro {
    role: "generic-rocky-9-box",
    description: "A generic Rocky Linux 9 box",
    admin: "rocky",
    image_owner: ROCKY_OWNER,
    image_name_pattern: "Rocky-9-EC2-Base-9.*x86_64*",
    package_manager: PackageManager::Dnf,
    // htop is in EPEL only, which a generic box does not enable.
    packages: &["mdadm"],
};

pub const FEDORA: Distro = Distro {
    role: "generic-fedora-43-box",
    description: "A generic Fedora 43 box",
    admin: "fedora",
    image_owner: FEDORA_OWNER,
    image_name_pattern: "Fedora-Cloud-Base-AmazonEC2.x86_64-43-*",
    package_manager: PackageManager::Dnf,
    packages: &["htop", "mdadm"],
};

/// Every built-in role, in listing order.
pub const DISTROS: &[&Distro] = &[
    &DEBIAN_BOOKWORM,
    &DEBIAN_TRIXIE,
    &UBUNTU_JAMMY,
    &UBUNTU_NOBLE,
    &AMAZONLINUX_2023,
    &ROCKY_9,
    &FEDORA,
];

/// A generic distribution role: declared data plus its package-manager feature.
pub struct Generic(pub &'static Distro);

impl Role for Generic {
    fn admin_account(&self, _cx: &Cx) -> Result<String> {
        Ok(self.0.admin.into())
    }

    fn base_image(&self, _cx: &Cx) -> Result<BaseImageQuery> {
        Ok(BaseImageQuery {
            owner: self.0.image_owner.into(),
            name_pattern: self.0.image_name_pattern.into(),
            arch: Arch::X86_64,
        })
    }

    fn features(&self, cx: &Cx) -> Result<Vec<String>> {
        let mut features = cx.sup().features()?;
        let pm = match self.0.package_manager {
            PackageManager::Apt => "apt",
            PackageManager::Dnf => "dnf",
        };
        features.extend([pm, "systemd", "cloud-init"].map(String::from));
        Ok(features)
    }

    fn packages(&self, cx: &Cx) -> Result<Vec<String>> {
        let mut packages = cx.sup().packages()?;
        packages.extend(self.0.packages.iter().map(|p| p.to_string()));
        Ok(packages)
    }

    fn sync_package_repos(&self, cx: &Cx) -> Result<()> {
        match self.0.package_manager {
            PackageManager::Apt => apt::sync(cx),
            PackageManager::Dnf => dnf::sync(cx),
        }
    }

    fn install_packages(&self, cx: &Cx, packages: Vec<String>) -> Result<()> {
        match self.0.package_manager {
            PackageManager::Apt => apt::install(cx, &packages),
            PackageManager::Dnf => dnf::install(cx, &packages),
        }
    }

    fn upgrade_packages(&self, cx: &Cx) -> Result<()> {
        match self.0.package_manager {
            PackageManager::Apt => apt::upgrade(cx),
            PackageManager::Dnf => dnf::upgrade(cx),
        }
    }
}

macro_rules! constructors {
    ($($f:ident => $d:ident),* $(,)?) => {
        $( fn $f() -> Box<dyn Role> { Box::new(Generic(&$d)) } )*
        const CONSTRUCTORS: &[(&str, fn() -> Box<dyn Role>)] = &[$(($d.role, $f)),*];
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
    PluginDef {
        name: PLUGIN_NAME,
        version: env!("CARGO_PKG_VERSION"),
        roles: DISTROS
            .iter()
            .zip(CONSTRUCTORS)
            .map(|(d, (_, new))| RoleDef {
                name: d.role.into(),
                extends: None,
                description: d.description.into(),
                new: *new,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cgcloud_plugin_api::testing::{FakeHost, TestRole};

    fn role(name: &str) -> TestRole {
        let def = plugin();
        let r = def
            .roles
            .iter()
            .find(|r| r.name == name)
            .expect("built-in role exists");
        TestRole::new(r, &[])
    }

    #[test]
    fn constructors_match_distros() {
        assert_eq!(DISTROS.len(), 7);
        for (d, (name, _)) in DISTROS.iter().zip(CONSTRUCTORS) {
            assert_eq!(d.role, *name);
        }
        assert!(FEDORA.role.contains(&FEDORA_RELEASE.to_string()));
    }

    #[test]
    fn every_role_declares_owner_pattern_and_admin() {
        for d in DISTROS {
            let r = role(d.role);
            let host = FakeHost::new();
            let hooks = r.hooks(&host);
            let image = hooks.base_image().expect("base image");
            assert!(image.owner.len() == 12 && image.owner.chars().all(|c| c.is_ascii_digit()));
            assert_eq!(image.name_pattern, d.image_name_pattern);
            assert_eq!(hooks.admin_account().expect("admin"), d.admin);
            // default_account goes through `this()` back to the role's admin account.
            assert_eq!(hooks.default_account().expect("default"), d.admin);
            assert_eq!(hooks.image_name_prefix().expect("prefix"), d.role);
            assert_eq!(hooks.recommended_instance_type().expect("type"), "t3.micro");
            assert!(host.commands().is_empty(), "declared data touches no box");
        }
    }

    #[test]
    fn debian_setup_runs_apt_in_order() {
        let r = role("generic-debian-bookworm-box");
        let host = FakeHost::new();
        r.setup(&host, true).expect("setup");
        assert_eq!(
            host.commands(),
            [
                "sudo put: /etc/apt/apt.conf.d/99timeout (644)",
                "run: sudo DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=300 update",
                "sudo: DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=300 --no-install-recommends install htop mdadm",
                "sudo: DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=300 dist-upgrade",
            ]
        );
    }

    #[test]
    fn apt_update_retries_on_mirror_errors_only() {
        let r = role("generic-ubuntu-noble-box");
        let bad = CmdOutput {
            status: 100,
            stdout: String::new(),
            stderr: "E: Failed to fetch … Hash Sum mismatch".into(),
        };
        let host = FakeHost::new().respond("update", bad);
        let err = r.setup(&host, false).expect_err("update keeps failing");
        let updates = host
            .commands()
            .iter()
            .filter(|c| c.ends_with(" update"))
            .count();
        assert_eq!(updates as u32, apt::UPDATE_ATTEMPTS);
        assert!(
            err.message
                .starts_with("hook `sync_package_repos`: command `DEBIAN_FRONTEND"),
            "{err}"
        );
        assert!(err.message.contains("exited with status 100"), "{err}");
    }

    #[test]
    fn rocky_setup_uses_dnf_and_checks_with_rpm() {
        let r = role("generic-rocky-9-box");
        let host = FakeHost::new();
        r.setup(&host, false).expect("setup");
        assert_eq!(
            host.commands(),
            [
                "sudo: dnf -q -y makecache",
                "sudo: dnf -q -y install mdadm",
                "run: rpm -q mdadm"
            ]
        );
    }
}
