//! The serde payloads that cross the plugin boundary: declared role data, hook results and
//! host-service requests. Everything here is plain data with no I/O.
//!
//! Compatibility rule (ABI v1): fields are only ever added, always with `#[serde(default)]`, and
//! unknown fields are ignored, so a plugin and a host built against different 1.x versions still
//! understand each other. Enums that may grow have an `Unknown` variant that older code decodes
//! new values into.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a plugin says about itself, read by the host right after loading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The plugin's name (its crate name).
    pub name: String,
    /// The plugin's own semver version (its crate version), pinned by admins.
    pub version: String,
    /// The cgcloud-plugin-api version the plugin was built with.
    pub api: String,
    /// The ABI major the plugin speaks.
    pub abi: u32,
    /// The roles the plugin defines.
    pub roles: Vec<RoleDecl>,
    /// The hooks this build of plugin-api knows; informative.
    #[serde(default)]
    pub hooks: Vec<String>,
}

/// A role as declared in `export_plugin!`: identity only; everything else comes from hooks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleDecl {
    /// The role's name, e.g. `mongodb-box`.
    pub name: String,
    /// The parent role: a role name, or `plugin/role`. `None` for a root role.
    #[serde(default)]
    pub extends: Option<String>,
    /// Free text; its first line is what `list-roles` shows.
    #[serde(default)]
    pub description: String,
}

/// The type of a role option's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum OptionKind {
    String,
    Bool,
    Int,
    /// A kind this build does not know; treat the value as a string.
    #[serde(other)]
    Unknown,
}

/// A role option: set with `-O NAME=VALUE` or in the config file, read with `Cx::option`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleOption {
    /// `^[A-Za-z][0-9A-Za-z_]*$`
    pub name: String,
    pub kind: OptionKind,
    pub help: String,
    /// The value used when none is given.
    #[serde(default)]
    pub default: Option<String>,
    /// Whether images made from a box carry the option on to boxes made from them.
    #[serde(default)]
    pub inherited: bool,
}

impl RoleOption {
    /// A string option without default.
    pub fn string(name: &str, help: &str) -> Self {
        Self {
            name: name.into(),
            kind: OptionKind::String,
            help: help.into(),
            default: None,
            inherited: false,
        }
    }
    /// Sets the default value.
    pub fn with_default(mut self, value: &str) -> Self {
        self.default = Some(value.into());
        self
    }
    /// Marks the option as inherited by images.
    pub fn inherited(mut self) -> Self {
        self.inherited = true;
        self
    }
}

/// EC2 virtualization types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Virtualization {
    Hvm,
    Paravirtual,
    /// A value this build does not know; the host ignores it.
    #[serde(other)]
    Unknown,
}

/// CPU architectures of images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Arch {
    X86_64,
    Arm64,
    /// A value this build does not know; the host ignores it.
    #[serde(other)]
    Unknown,
}

/// How to find a role's base image: images owned by `owner` whose name matches `name_pattern`
/// (EC2 wildcards), newest first. The owner is always checked, never the name alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseImageQuery {
    /// The AWS account id that must own the image.
    pub owner: String,
    /// An EC2 `name` filter, e.g. `debian-12-amd64-*`.
    pub name_pattern: String,
    pub arch: Arch,
}

/// Where a security-group rule lets traffic in from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "value")]
#[non_exhaustive]
pub enum RuleSource {
    /// A CIDR block, e.g. `10.0.0.0/8`.
    Cidr(String),
    /// The security group itself (cluster members talking to each other).
    SameGroup,
    /// Wherever the host lets SSH in from (its configuration decides).
    SshClients,
    /// A source this build does not know; the host refuses the rule.
    #[serde(other)]
    Unknown,
}

/// One ingress rule of a role's security group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityGroupRule {
    /// `tcp`, `udp` or `icmp`.
    pub protocol: String,
    /// First port (ICMP: the type).
    pub from_port: i32,
    /// Last port (ICMP: the code).
    pub to_port: i32,
    pub source: RuleSource,
}

/// An inline IAM policy of a role's instance profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IamPolicy {
    /// The inline policy's name, e.g. `ec2_read_only`.
    pub name: String,
    /// The policy document as JSON text.
    pub document: String,
}

/// A block device a role wants at launch, in addition to the root volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockDevice {
    /// e.g. `/dev/sdf`.
    pub device_name: String,
    /// An EBS volume of this many GiB, or `None` for an instance-store volume.
    #[serde(default)]
    pub size_gib: Option<u32>,
    /// For instance-store volumes: `ephemeral0`, …
    #[serde(default)]
    pub virtual_name: Option<String>,
}

/// Cloud-config contributions, merged by the host into the instance's user data: top-level
/// keys to values (e.g. `runcmd`, `bootcmd`, `write_files`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CloudConfig(pub BTreeMap<String, serde_json::Value>);

impl CloudConfig {
    /// Appends `items` to the list under `key`, creating it if needed.
    pub fn append(&mut self, key: &str, items: impl IntoIterator<Item = serde_json::Value>) {
        let entry = self
            .0
            .entry(key.to_string())
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if !entry.is_array() {
            *entry = serde_json::Value::Array(vec![entry.take()]);
        }
        if let serde_json::Value::Array(list) = entry {
            list.extend(items);
        }
    }
}

/// A package substitution: `package` is replaced by `replacement` (empty: dropped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Substitution {
    pub package: String,
    pub replacement: Vec<String>,
}

/// Applies substitutions transitively, cycle-safe, keeping first-seen order and removing
/// duplicates. A package that is reached again while being substituted is kept as is.
pub fn substitute_packages(packages: &[String], subs: &[Substitution]) -> Vec<String> {
    fn expand(p: &str, subs: &[Substitution], stack: &mut Vec<String>, out: &mut Vec<String>) {
        let rule = subs.iter().rev().find(|s| s.package == p);
        match rule {
            Some(rule) if !stack.iter().any(|s| s == p) => {
                stack.push(p.to_string());
                for r in &rule.replacement {
                    expand(r, subs, stack, out);
                }
                stack.pop();
            }
            _ => {
                if !out.iter().any(|o| o == p) {
                    out.push(p.to_string());
                }
            }
        }
    }
    let mut out = Vec::new();
    for p in packages {
        expand(p, subs, &mut Vec::new(), &mut out);
    }
    out
}

/// The result of a remote command.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CmdOutput {
    /// The exit status; `-1` if the command was killed by a signal.
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Log levels of `Cx::log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
    /// A level this build does not know; logged as `info`.
    #[serde(other)]
    Unknown,
}

/// A call from role code to the host, serialized as JSON with a `service` tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "service", rename_all = "snake_case")]
pub enum ServiceRequest {
    /// Run a command as the admin account.
    Run { command: String },
    /// Run a command with sudo, as root or as `user`.
    Sudo {
        command: String,
        #[serde(default)]
        user: Option<String>,
    },
    /// Write a file on the box.
    PutFile {
        path: String,
        #[serde(with = "b64")]
        data: Vec<u8>,
        mode: u32,
        #[serde(default)]
        sudo: bool,
    },
    /// Read a file from the box.
    GetFile {
        path: String,
        #[serde(default)]
        sudo: bool,
    },
    /// A log line for the host's logger.
    Log { level: Level, message: String },
    /// A role option's value.
    Option { name: String },
    /// Whether the host asked the hook to stop.
    Cancelled,
    /// The name of the role being provisioned (the most derived one).
    Role,
    /// Call `hook` on the most derived role (virtual dispatch), args as JSON text.
    Leaf { hook: String, args: String },
}

impl ServiceRequest {
    /// The service's name as it travels.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Run { .. } => "run",
            Self::Sudo { .. } => "sudo",
            Self::PutFile { .. } => "put_file",
            Self::GetFile { .. } => "get_file",
            Self::Log { .. } => "log",
            Self::Option { .. } => "option",
            Self::Cancelled => "cancelled",
            Self::Role => "role",
            Self::Leaf { .. } => "leaf",
        }
    }
}

/// Bytes as base64 text in JSON.
pub mod b64 {
    use super::*;
    pub fn serialize<S: serde::Serializer>(data: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(data))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(list: &[&str]) -> Vec<String> {
        list.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn substitution_is_transitive_cycle_safe_and_dedups() {
        let subs = vec![
            Substitution {
                package: "python".into(),
                replacement: s(&["python3", "openssl-devel"]),
            },
            Substitution {
                package: "python3".into(),
                replacement: s(&["python3.12"]),
            },
            Substitution {
                package: "a".into(),
                replacement: s(&["b"]),
            },
            Substitution {
                package: "b".into(),
                replacement: s(&["a"]),
            },
            Substitution {
                package: "drop-me".into(),
                replacement: vec![],
            },
        ];
        let got = substitute_packages(&s(&["htop", "python", "a", "drop-me", "htop"]), &subs);
        assert_eq!(got, s(&["htop", "python3.12", "openssl-devel", "a"]));
    }

    #[test]
    fn unknown_enum_values_decode_to_unknown() {
        let v: Virtualization = serde_json::from_str("\"nitro-v9\"").expect("decodes");
        assert_eq!(v, Virtualization::Unknown);
        let l: Level = serde_json::from_str("\"trace\"").expect("decodes");
        assert_eq!(l, Level::Unknown);
    }

    #[test]
    fn service_request_wire_format_is_pinned() {
        let req = ServiceRequest::PutFile {
            path: "/etc/x".into(),
            data: b"hi".to_vec(),
            mode: 0o644,
            sudo: true,
        };
        let text = serde_json::to_string(&req).expect("serializes");
        assert_eq!(
            text,
            r#"{"service":"put_file","path":"/etc/x","data":"aGk=","mode":420,"sudo":true}"#
        );
        let back: ServiceRequest = serde_json::from_str(&text).expect("decodes");
        assert_eq!(back, req);
    }
}
