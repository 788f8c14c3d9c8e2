//! The cloud-init feature: a role's contribution to the instance's cloud-config. cgcloud
//! merges the `cloud_config` hook's result into the user data of every instance it launches,
//! and waits for `cloud-init status --wait` before set-up, so cloud-init needs no readiness
//! marker of its own.
//!
//! Hook it contributes to: `cloud_config`, after the parent's contribution (lists such as
//! `bootcmd` are appended to, so parents' commands run first).
//!
//! What runs when (cloud-init's module order on every built-in distribution): `bootcmd` on
//! every boot, early, before `mounts` and before SSH answers; `mounts` on every boot; `runcmd`
//! once per instance, late, after SSH answers.

use cgcloud_plugin_api::prelude::*;
use serde_json::Value;

/// A cloud-config contribution under construction.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CloudInit {
    bootcmd: Vec<Value>,
    runcmd: Vec<Value>,
    mounts: Vec<Value>,
}

impl CloudInit {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a shell snippet to run on every boot, early (`bootcmd`). It is run by `sh` as part
    /// of one script with the other entries, so it must not `exit`; multi-line snippets and
    /// here-documents are fine.
    pub fn bootcmd(mut self, script: impl Into<String>) -> Self {
        self.bootcmd.push(Value::String(script.into()));
        self
    }

    /// Adds a shell snippet to run once per instance, late (`runcmd`).
    pub fn runcmd(mut self, script: impl Into<String>) -> Self {
        self.runcmd.push(Value::String(script.into()));
        self
    }

    /// Adds an fstab entry cloud-init writes and mounts (`mounts`).
    pub fn mount(mut self, spec: &str, point: &str, fs_type: &str, options: &str) -> Self {
        self.mounts.push(Value::Array(
            [spec, point, fs_type, options]
                .into_iter()
                .map(Value::from)
                .collect(),
        ));
        self
    }

    /// Removes a mount cloud-init would otherwise set up by default, e.g. `ephemeral0` at
    /// `/mnt` (an entry that names only the device removes it).
    pub fn unmount(mut self, spec: &str) -> Self {
        self.mounts.push(Value::Array(vec![Value::from(spec)]));
        self
    }

    /// Appends this contribution to `config`, after what is already there.
    pub fn merge_into(self, config: &mut CloudConfig) {
        for (key, items) in [
            ("bootcmd", self.bootcmd),
            ("mounts", self.mounts),
            ("runcmd", self.runcmd),
        ] {
            if !items.is_empty() {
                config.append(key, items);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn contributions_are_appended_after_the_parents() {
        let mut config = CloudConfig::default();
        config.append("bootcmd", [json!("echo parent")]);
        CloudInit::new()
            .bootcmd("echo child")
            .runcmd("touch /ran")
            .unmount("ephemeral0")
            .mount("/dev/sdf", "/data", "ext4", "defaults,nofail")
            .merge_into(&mut config);
        assert_eq!(
            serde_json::to_value(&config).expect("json"),
            json!({
                "bootcmd": ["echo parent", "echo child"],
                "mounts": [["ephemeral0"], ["/dev/sdf", "/data", "ext4", "defaults,nofail"]],
                "runcmd": ["touch /ran"],
            })
        );
    }

    #[test]
    fn an_empty_contribution_adds_no_keys() {
        let mut config = CloudConfig::default();
        CloudInit::new().merge_into(&mut config);
        assert!(config.0.is_empty());
    }
}
