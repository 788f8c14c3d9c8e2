//! Built-in roles, linked into cgcloud and called through the same `Role` trait and vtable as
//! plugin roles, so plugins can extend them. Written against the public plugin API only.
//!
//! Roles are composed from features instead of a class hierarchy; each feature is a module
//! whose doc says which hooks it contributes to and in what order:
//!
//! | module | job |
//! |---|---|
//! | [`distro`] | the seven roles' declared data: image owner and name pattern, admin account, packages |
//! | [`roles`] | [`Generic`], the role composing a `Distro` with the features; [`plugin()`] |
//! | [`package_manager`], [`apt`], [`dnf`] | the package managers: `cgcloud_plugin_api::features`, which plugins use too |
//! | [`systemd`] | installing and starting a role's services |
//! | [`cloud_init`] | a role's cloud-config contribution (`bootcmd`, `runcmd`, `mounts`) |
//! | [`ephemeral`] | instance-store and NVMe disks at `/mnt/ephemeral`, RAID 0 when several, on every boot |
//!
//! To add a role, add a `Distro` constant in `distro.rs`, list it in `DISTROS`, and give it a
//! constructor in `roles.rs`.

pub mod cloud_init;
pub mod distro;
pub mod ephemeral;
pub mod roles;
pub mod systemd;

pub use cgcloud_plugin_api::features::{apt, dnf, package_manager};

pub use distro::{Distro, DISTROS, FEDORA_RELEASE};
pub use package_manager::PackageManager;
pub use roles::{plugin, Generic, PLUGIN_NAME};
