//! The declared data of the built-in roles: one [`Distro`] per role, plain constants. To add a
//! role, add a constant here, list it in [`DISTROS`] and give it a constructor in `roles.rs`.
//!
//! Base images are found by owner account plus name pattern (the newest match), never by name
//! alone. The accounts are the distributions' own publishing accounts.

use crate::package_manager::PackageManager;

/// The declared data of a generic distribution role.
#[derive(Debug)]
pub struct Distro {
    pub role: &'static str,
    pub description: &'static str,
    /// The account with passwordless sudo that the distribution's images create.
    pub admin: &'static str,
    /// The AWS account that publishes the distribution's official images.
    pub image_owner: &'static str,
    /// An EC2 `name` filter matching the release's images (x86_64).
    pub image_name_pattern: &'static str,
    pub package_manager: PackageManager,
    /// What every box of the role gets installed.
    pub packages: &'static [&'static str],
    /// Package substitutions of this release on top of its package manager's (see
    /// [`PackageManager::substitutions`]): `(package, replacements)`, no replacement drops it.
    pub substitutions: &'static [(&'static str, &'static [&'static str])],
}

/// Debian's cloud team account.
pub const DEBIAN_OWNER: &str = "136693071363";
/// Canonical's account.
pub const CANONICAL_OWNER: &str = "099720109477";
/// Amazon's account for Amazon Linux.
pub const AMAZON_OWNER: &str = "137112412989";
/// The Rocky Enterprise Software Foundation's account.
pub const ROCKY_OWNER: &str = "792107900819";
/// The Fedora project's account.
pub const FEDORA_OWNER: &str = "125523088429";

/// The current Fedora release of `generic-fedora-<release>-box`.
pub const FEDORA_RELEASE: u32 = 43;

/// `htop` (base list of the original) and `mdadm` (RAID 0 of instance-store disks).
const BASE_PACKAGES: &[&str] = &["htop", "mdadm"];

pub const DEBIAN_BOOKWORM: Distro = Distro {
    role: "generic-debian-bookworm-box",
    description: "A generic Debian 12 (bookworm) box",
    admin: "admin",
    image_owner: DEBIAN_OWNER,
    image_name_pattern: "debian-12-amd64-*",
    package_manager: PackageManager::Apt,
    packages: BASE_PACKAGES,
    substitutions: &[],
};

pub const DEBIAN_TRIXIE: Distro = Distro {
    role: "generic-debian-trixie-box",
    description: "A generic Debian 13 (trixie) box",
    admin: "admin",
    image_owner: DEBIAN_OWNER,
    image_name_pattern: "debian-13-amd64-*",
    package_manager: PackageManager::Apt,
    packages: BASE_PACKAGES,
    substitutions: &[],
};

pub const UBUNTU_JAMMY: Distro = Distro {
    role: "generic-ubuntu-jammy-box",
    description: "A generic Ubuntu 22.04 LTS (jammy) box",
    admin: "ubuntu",
    image_owner: CANONICAL_OWNER,
    image_name_pattern: "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*",
    package_manager: PackageManager::Apt,
    packages: BASE_PACKAGES,
    substitutions: &[],
};

pub const UBUNTU_NOBLE: Distro = Distro {
    role: "generic-ubuntu-noble-box",
    description: "A generic Ubuntu 24.04 LTS (noble) box",
    admin: "ubuntu",
    image_owner: CANONICAL_OWNER,
    // NOTE: Canonical publishes noble only with gp3 root volumes, under `hvm-ssd-gp3`.
    image_name_pattern: "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*",
    package_manager: PackageManager::Apt,
    packages: BASE_PACKAGES,
    substitutions: &[],
};

pub const AMAZONLINUX_2023: Distro = Distro {
    role: "generic-amazonlinux-2023-box",
    description: "A generic Amazon Linux 2023 box",
    admin: "ec2-user",
    image_owner: AMAZON_OWNER,
    image_name_pattern: "al2023-ami-2023.*-x86_64",
    package_manager: PackageManager::Dnf4,
    packages: BASE_PACKAGES,
    substitutions: &[],
};

pub const ROCKY_9: Distro = Distro {
    role: "generic-rocky-9-box",
    description: "A generic Rocky Linux 9 box",
    admin: "rocky",
    image_owner: ROCKY_OWNER,
    image_name_pattern: "Rocky-9-EC2-Base-9.*x86_64*",
    package_manager: PackageManager::Dnf4,
    packages: BASE_PACKAGES,
    // htop is in EPEL only, which a generic box does not enable.
    substitutions: &[("htop", &[])],
};

pub const FEDORA: Distro = Distro {
    role: "generic-fedora-43-box",
    description: "A generic Fedora 43 box",
    admin: "fedora",
    image_owner: FEDORA_OWNER,
    image_name_pattern: "Fedora-Cloud-Base-AmazonEC2.x86_64-43-*",
    package_manager: PackageManager::Dnf5,
    packages: BASE_PACKAGES,
    substitutions: &[],
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
