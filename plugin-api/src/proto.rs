//! The serde payloads that cross the plugin boundary: declared role data, hook results and
//! host-service requests. Everything here is plain data with no I/O.
//!
//! Compatibility rule (ABI v1): fields are only ever added, always with `#[serde(default)]`, and
//! unknown fields are ignored, so a plugin and a host built against different 1.x versions still
//! understand each other. Every enum that crosses the boundary has an `Unknown` variant that
//! older code decodes new values into, whatever they carry. Structs authors build are
//! `#[non_exhaustive]` and built with constructors (`SecurityGroupRule::tcp`, …), so a field
//! added in a later 1.x breaks no author's code.

/// Implements `Deserialize` for a wire enum of unit variants: its names, and anything else (a
/// name this build does not know, or a value carrying data) as `Unknown`.
macro_rules! lenient_enum {
    ($ty:ident { $($variant:ident = $name:literal),* $(,)? }) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let value = serde_json::Value::deserialize(d)?;
                Ok(match value.as_str() {
                    $(Some($name) => Self::$variant,)*
                    _ => Self::Unknown,
                })
            }
        }
    };
}
pub(crate) use lenient_enum;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a plugin says about itself, read by the host right after loading. For cgcloud itself.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
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
    /// The cluster types the plugin defines (added in 1.0 after the roles; absent from the
    /// manifests of plugins that define none).
    #[serde(default)]
    pub clusters: Vec<ClusterDecl>,
}

/// A cluster type as declared in `export_plugin!`: a leader role and a worker role, usually
/// both extending one node role whose image they boot. For cgcloud itself.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ClusterDecl {
    /// The cluster type's name, e.g. `slurm`.
    pub name: String,
    /// The leader's role (`role` or `plugin/role`).
    pub leader: String,
    /// The workers' role (`role` or `plugin/role`).
    pub worker: String,
    /// Free text; its first line is what `list-roles` shows.
    #[serde(default)]
    pub description: String,
    /// The secret every node of a cluster shares (added in 1.0 after the description).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_secret: Option<SharedSecret>,
}

/// A secret all nodes of a cluster share, such as a munge key: random bytes that cgcloud makes
/// when it creates the cluster's leader and copies, over SSH with the box's verified host key,
/// to a file on every node before the node's `on_instance_ready` hook runs. The file is written
/// (atomically) and read as its owner, in a folder that must exist on the node image and be
/// writable by the owner (`/etc/munge` for the munge account). It is never in user
/// data, tags or images: cgcloud keeps no copy, and reads it back from the leader to give it to
/// the workers `grow-cluster` adds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SharedSecret {
    /// The file on every node, an absolute path.
    pub path: String,
    /// The account that owns the file (it must exist on the node image).
    pub owner: String,
    /// The file's mode, e.g. `0o400`.
    pub mode: u32,
    /// How many random bytes, 16 to 65536.
    pub bytes: u32,
}

impl SharedSecret {
    /// `bytes` random bytes in file `path`, owned by `owner` with `mode`.
    pub fn new(path: &str, owner: &str, mode: u32, bytes: u32) -> Self {
        Self {
            path: path.into(),
            owner: owner.into(),
            mode,
            bytes,
        }
    }

    /// Why this secret cannot be used, if it cannot.
    pub fn problem(&self) -> Option<String> {
        let path_ok = self.path.starts_with('/')
            && self.path.len() > 1
            && !self.path.ends_with('/')
            && !self.path.split('/').any(|c| c == "." || c == "..")
            && self
                .path
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/._-+@".contains(c));
        let owner_ok = !self.owner.is_empty()
            && self.owner.len() <= 32
            && !self.owner.starts_with('-')
            && self
                .owner
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !path_ok {
            Some(format!(
                "shared secret path `{}` is not an absolute path of letters, digits and `/._-+@`",
                self.path
            ))
        } else if !owner_ok {
            Some(format!(
                "shared secret owner `{}` is not an account name",
                self.owner
            ))
        } else if self.mode > 0o777 {
            Some(format!(
                "shared secret mode {:o} is not a file mode",
                self.mode
            ))
        } else if !(16..=65536).contains(&self.bytes) {
            Some(format!(
                "a shared secret of {} bytes: it takes 16 to 65536",
                self.bytes
            ))
        } else {
            None
        }
    }
}

/// A role as declared in `export_plugin!`: identity only; everything else comes from hooks.
/// For cgcloud itself.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum OptionKind {
    String,
    /// `true` or `false` (`True` and `False` are accepted too).
    Bool,
    /// A whole number (64 bits, signed).
    Int,
    /// A kind this build does not know; treat the value as a string.
    Unknown,
}

lenient_enum!(OptionKind { String = "string", Bool = "bool", Int = "int" });

/// A role option: set with `-O NAME=VALUE` or in the config file, read with `Cx::option`.
/// Built with [`RoleOption::string`], [`RoleOption::bool`] or [`RoleOption::int`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
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
    /// An option of `kind` without default.
    pub fn new(name: &str, kind: OptionKind, help: &str) -> Self {
        Self {
            name: name.into(),
            kind,
            help: help.into(),
            default: None,
            inherited: false,
        }
    }
    /// A string option without default.
    pub fn string(name: &str, help: &str) -> Self {
        Self::new(name, OptionKind::String, help)
    }
    /// A boolean option without default (`true` or `false`).
    pub fn bool(name: &str, help: &str) -> Self {
        Self::new(name, OptionKind::Bool, help)
    }
    /// A whole-number option without default.
    pub fn int(name: &str, help: &str) -> Self {
        Self::new(name, OptionKind::Int, help)
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Virtualization {
    Hvm,
    Paravirtual,
    /// A value this build does not know; the host ignores it.
    Unknown,
}

lenient_enum!(Virtualization { Hvm = "hvm", Paravirtual = "paravirtual" });

/// CPU architectures of images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Arch {
    X86_64,
    Arm64,
    /// A value this build does not know; the host ignores it.
    Unknown,
}

lenient_enum!(Arch { X86_64 = "x86_64", Arm64 = "arm64" });

/// How to find a role's base image: images owned by `owner` whose name matches `name_pattern`
/// (EC2 wildcards), newest first. The owner is always checked, never the name alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BaseImageQuery {
    /// The AWS account id that must own the image.
    pub owner: String,
    /// An EC2 `name` filter, e.g. `debian-12-amd64-*`.
    pub name_pattern: String,
    pub arch: Arch,
}

impl BaseImageQuery {
    /// Images of `arch` owned by account `owner` whose name matches `name_pattern`.
    pub fn new(owner: &str, name_pattern: &str, arch: Arch) -> Self {
        Self {
            owner: owner.into(),
            name_pattern: name_pattern.into(),
            arch,
        }
    }
}

/// Where a security-group rule lets traffic in from. On the wire: `{"kind": "cidr", "value":
/// "10.0.0.0/8"}`, `{"kind": "same-group"}`, `{"kind": "ssh-clients"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "value")]
#[non_exhaustive]
pub enum RuleSource {
    /// A CIDR block, e.g. `10.0.0.0/8`.
    Cidr(String),
    /// The security group itself (cluster members talking to each other).
    SameGroup,
    /// Wherever the host lets SSH in from (its configuration decides).
    SshClients,
    /// A source this build does not know (whatever it carries); the host refuses the rule.
    Unknown,
}

impl<'de> Deserialize<'de> for RuleSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        let kind = value.get("kind").and_then(|k| k.as_str());
        let carried = value.get("value");
        Ok(match (kind, carried) {
            (Some("cidr"), Some(serde_json::Value::String(cidr))) => Self::Cidr(cidr.clone()),
            (Some("same-group"), _) => Self::SameGroup,
            (Some("ssh-clients"), _) => Self::SshClients,
            _ => Self::Unknown,
        })
    }
}

/// One ingress rule of a role's security group, e.g.
/// `SecurityGroupRule::tcp(80, RuleSource::Cidr("0.0.0.0/0".into()))`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SecurityGroupRule {
    /// `tcp`, `udp` or `icmp`.
    pub protocol: String,
    /// First port (ICMP: the type).
    pub from_port: i32,
    /// Last port (ICMP: the code).
    pub to_port: i32,
    pub source: RuleSource,
}

impl SecurityGroupRule {
    /// Traffic of `protocol` (`tcp`, `udp`, `icmp`) to ports `from_port..=to_port` (ICMP: type
    /// and code) from `source`.
    pub fn new(protocol: &str, from_port: i32, to_port: i32, source: RuleSource) -> Self {
        Self {
            protocol: protocol.into(),
            from_port,
            to_port,
            source,
        }
    }
    /// TCP to `port` from `source`.
    pub fn tcp(port: u16, source: RuleSource) -> Self {
        Self::new("tcp", port.into(), port.into(), source)
    }
    /// TCP to ports `from..=to` from `source`.
    pub fn tcp_range(from: u16, to: u16, source: RuleSource) -> Self {
        Self::new("tcp", from.into(), to.into(), source)
    }
    /// UDP to `port` from `source`.
    pub fn udp(port: u16, source: RuleSource) -> Self {
        Self::new("udp", port.into(), port.into(), source)
    }
    /// ICMP of type `icmp_type` and code `code` from `source`.
    pub fn icmp(icmp_type: i32, code: i32, source: RuleSource) -> Self {
        Self::new("icmp", icmp_type, code, source)
    }
}

/// An inline IAM policy of a role's instance profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IamPolicy {
    /// The inline policy's name, e.g. `ec2_read_only`.
    pub name: String,
    /// The policy document as JSON text.
    pub document: String,
}

impl IamPolicy {
    /// The inline policy `name` with `document` (JSON text).
    pub fn new(name: &str, document: &str) -> Self {
        Self {
            name: name.into(),
            document: document.into(),
        }
    }
}

/// A block device a role wants at launch, in addition to the root volume: built with
/// [`BlockDevice::ebs`] or [`BlockDevice::instance_store`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
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

impl BlockDevice {
    /// An EBS volume of `size_gib` GiB at `device_name` (e.g. `/dev/sdf`).
    pub fn ebs(device_name: &str, size_gib: u32) -> Self {
        Self {
            device_name: device_name.into(),
            size_gib: Some(size_gib),
            virtual_name: None,
        }
    }
    /// Instance-store volume `virtual_name` (`ephemeral0`, …) at `device_name`.
    pub fn instance_store(device_name: &str, virtual_name: &str) -> Self {
        Self {
            device_name: device_name.into(),
            size_gib: None,
            virtual_name: Some(virtual_name.into()),
        }
    }
}

/// Cloud-config contributions, merged by the host into the instance's user data: top-level
/// keys to values (e.g. `runcmd`, `bootcmd`, `write_files`). Start from
/// `CloudConfig::default()` (or the parent's) and use [`CloudConfig::set`] and
/// [`CloudConfig::append`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CloudConfig(pub BTreeMap<String, serde_json::Value>);

impl CloudConfig {
    /// Sets top-level `key` to `value`, replacing what was there.
    pub fn set(&mut self, key: &str, value: serde_json::Value) {
        self.0.insert(key.to_string(), value);
    }
    /// The value under top-level `key`.
    pub fn get(&self, key: &str) -> Option<&serde_json::Value> {
        self.0.get(key)
    }

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
#[non_exhaustive]
pub struct Substitution {
    pub package: String,
    pub replacement: Vec<String>,
}

impl Substitution {
    /// `package` is replaced by `replacement` (none: the package is dropped).
    pub fn new<S: AsRef<str>>(package: &str, replacement: &[S]) -> Self {
        Self {
            package: package.into(),
            replacement: replacement.iter().map(|r| r.as_ref().to_string()).collect(),
        }
    }
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

/// The result of a remote command: what `cx.run` and `cx.run_unchecked` return, e.g.
/// `cx.run("hostname")?.stdout`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CmdOutput {
    /// The exit status as the account's login shell reports it: 0 to 255, 127 for a command
    /// not found, 128 + N for a command killed by signal N.
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    /// A command's result (for fake hosts in tests).
    pub fn new(status: i32, stdout: &str, stderr: &str) -> Self {
        Self {
            status,
            stdout: stdout.into(),
            stderr: stderr.into(),
        }
    }
    /// A successful command that printed `stdout`.
    pub fn success(stdout: &str) -> Self {
        Self::new(0, stdout, "")
    }
}

/// Log levels of `Cx::log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
    /// A level this build does not know; logged as `info`.
    Unknown,
}

lenient_enum!(Level { Error = "error", Warn = "warn", Info = "info", Debug = "debug" });

/// What the host says about itself in answer to the plugin's hello (`Cx::host`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HostInfo {
    /// The cgcloud-plugin-api version cgcloud was built with.
    pub api: String,
    /// The plugin ABI major cgcloud speaks.
    pub abi: u32,
    /// The host services cgcloud offers, by name (`run`, `sudo`, `put_file`, …).
    #[serde(default)]
    pub services: Vec<String>,
}

impl HostInfo {
    /// What this build of plugin-api offers (the host's answer).
    pub fn this_build() -> Self {
        Self {
            api: crate::API_VERSION.into(),
            abi: crate::abi::ABI_MAJOR,
            services: SERVICES.iter().map(|s| s.to_string()).collect(),
        }
    }
    /// Whether the host offers service `name`.
    pub fn offers(&self, name: &str) -> bool {
        self.services.iter().any(|s| s == name)
    }
}

/// The host services of this build, by name.
pub const SERVICES: &[&str] = &[
    "run",
    "sudo",
    "put_file",
    "get_file",
    "log",
    "option",
    "cancelled",
    "role",
    "leaf",
    "hello",
];

/// A call from role code to the host, serialized as JSON with a `service` tag. For cgcloud
/// itself; a host answers a service it does not know with `STATUS_UNKNOWN`.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "service", rename_all = "snake_case")]
#[non_exhaustive]
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
    /// The plugin's hello: its plugin-api version; the host answers with its [`HostInfo`].
    Hello { api: String },
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
            Self::Hello { .. } => "hello",
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

    /// Every known value survives the wire; anything else, also a value carrying data,
    /// decodes into `Unknown`.
    fn check_wire_enum<T>(known: &[T], unknown: T)
    where
        T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug + Clone,
    {
        for k in known {
            let text = serde_json::to_string(k).expect("serializes");
            let back: T = serde_json::from_str(&text).expect("decodes");
            assert_eq!(&back, k, "{text}");
        }
        for text in [
            r#""from-the-future""#,
            r#"{"kind":"from-the-future","value":{"a":[1,2]}}"#,
            r#"{"from-the-future":"x"}"#,
            "42",
            "null",
            r#"["a"]"#,
        ] {
            let got: T = serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(got, unknown.clone(), "{text}");
        }
    }

    #[test]
    fn every_wire_enum_decodes_unknown_values_into_unknown() {
        use OptionKind as K;
        check_wire_enum(&[K::String, K::Bool, K::Int, K::Unknown], K::Unknown);
        use Virtualization as V;
        check_wire_enum(&[V::Hvm, V::Paravirtual, V::Unknown], V::Unknown);
        check_wire_enum(&[Arch::X86_64, Arch::Arm64, Arch::Unknown], Arch::Unknown);
        use Level as L;
        check_wire_enum(
            &[L::Error, L::Warn, L::Info, L::Debug, L::Unknown],
            L::Unknown,
        );
        use crate::ErrorKind as E;
        check_wire_enum(
            &[E::Failed, E::Panicked, E::Cancelled, E::Host, E::Unknown],
            E::Unknown,
        );
        use RuleSource as R;
        check_wire_enum(
            &[
                R::Cidr("10.0.0.0/8".into()),
                R::SameGroup,
                R::SshClients,
                R::Unknown,
            ],
            R::Unknown,
        );
        // A known kind carrying what it does not carry in this build is still understood;
        // a CIDR without one is not.
        let r: RuleSource =
            serde_json::from_str(r#"{"kind":"same-group","value":"sg-1"}"#).expect("decodes");
        assert_eq!(r, R::SameGroup);
        let r: RuleSource = serde_json::from_str(r#"{"kind":"cidr"}"#).expect("decodes");
        assert_eq!(r, R::Unknown);
    }

    #[test]
    fn wire_names_are_pinned() {
        let names = |v: Vec<String>| v.join(" ");
        assert_eq!(
            names(vec![
                serde_json::to_string(&OptionKind::Bool).unwrap(),
                serde_json::to_string(&Virtualization::Paravirtual).unwrap(),
                serde_json::to_string(&Arch::X86_64).unwrap(),
                serde_json::to_string(&Level::Warn).unwrap(),
                serde_json::to_string(&RuleSource::Cidr("1.2.3.4/32".into())).unwrap(),
                serde_json::to_string(&RuleSource::SshClients).unwrap(),
            ]),
            r#""bool" "paravirtual" "x86_64" "warn" {"kind":"cidr","value":"1.2.3.4/32"} {"kind":"ssh-clients"}"#
        );
    }

    #[test]
    fn manifests_of_older_and_newer_plugins_decode() {
        // An older plugin's manifest: no `hooks`, no `clusters`.
        let old = r#"{"name":"p","version":"0.1.0","api":"1.0.0","abi":1,"roles":[{"name":"r"}]}"#;
        let m: Manifest = serde_json::from_str(old).expect("decodes");
        assert!(m.clusters.is_empty() && m.hooks.is_empty());
        // A newer plugin's: fields this build does not know are ignored.
        let new = r#"{"name":"p","version":"0.1.0","api":"1.9.0","abi":1,"roles":[],
            "clusters":[{"name":"c","leader":"l","worker":"w","gpus":4}],"placement":"spread"}"#;
        let m: Manifest = serde_json::from_str(new).expect("decodes");
        assert_eq!(m.clusters[0].leader, "l");
        assert_eq!(m.clusters[0].shared_secret, None);
        // A cluster type whose nodes share a secret, and what a host makes of a bad one.
        let with = r#"{"name":"c","leader":"l","worker":"w","shared_secret":
            {"path":"/etc/munge/munge.key","owner":"munge","mode":256,"bytes":1024}}"#;
        let c: ClusterDecl = serde_json::from_str(with).expect("decodes");
        let secret = c.shared_secret.expect("a secret");
        assert_eq!(
            secret,
            SharedSecret::new("/etc/munge/munge.key", "munge", 0o400, 1024)
        );
        assert_eq!(secret.problem(), None);
        for (bad, why) in [
            (
                SharedSecret::new("etc/key", "munge", 0o400, 64),
                "absolute path",
            ),
            (
                SharedSecret::new("/etc/../key", "munge", 0o400, 64),
                "absolute path",
            ),
            (
                SharedSecret::new("/etc/k y", "munge", 0o400, 64),
                "absolute path",
            ),
            (
                SharedSecret::new("/etc/key", "-r", 0o400, 64),
                "account name",
            ),
            (
                SharedSecret::new("/etc/key", "a b", 0o400, 64),
                "account name",
            ),
            (
                SharedSecret::new("/etc/key", "munge", 0o4755, 64),
                "file mode",
            ),
            (
                SharedSecret::new("/etc/key", "munge", 0o400, 8),
                "16 to 65536",
            ),
            (
                SharedSecret::new("/etc/key", "munge", 0o400, 1 << 20),
                "16 to 65536",
            ),
        ] {
            let p = bad.problem().expect("refused");
            assert!(p.contains(why), "{bad:?}: {p}");
        }
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
