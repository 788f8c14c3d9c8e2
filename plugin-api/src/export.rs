//! Declaring a plugin: [`PluginDef`] and [`RoleDef`] (plain data), and the `export_plugin!`
//! macro that turns them into the plugin's single exported entry point.

use crate::proto::{ClusterDecl, Manifest, RoleDecl, SharedSecret};
use crate::role::{Role, HOOK_NAMES};

/// One role of a plugin: its identity and how to make it. Made by `export_plugin!`, or with
/// [`RoleDef::new`] (tests, built-in roles).
#[non_exhaustive]
pub struct RoleDef {
    pub name: String,
    /// The parent role (`role` or `plugin/role`), or `None` for a root role.
    pub extends: Option<String>,
    pub description: String,
    pub new: fn() -> Box<dyn Role>,
}

/// A cluster type: a leader role and a worker role (`role` or `plugin/role`), usually both
/// extending one node role whose image they boot and whose security group they share.
#[non_exhaustive]
pub struct ClusterDef {
    pub name: String,
    pub leader: String,
    pub worker: String,
    pub description: String,
    /// The secret the cluster's nodes share, if they share one.
    pub shared_secret: Option<SharedSecret>,
}

impl ClusterDef {
    /// Cluster type `name` of a `leader` and `worker`s.
    pub fn new(name: &str, leader: &str, worker: &str, description: &str) -> Self {
        Self {
            name: name.into(),
            leader: leader.into(),
            worker: worker.into(),
            description: description.into(),
            shared_secret: None,
        }
    }

    #[doc(hidden)]
    pub fn __with_secret(mut self, secret: Option<SharedSecret>) -> Self {
        self.shared_secret = secret;
        self
    }

    /// The same cluster type, whose nodes share `secret`.
    pub fn with_shared_secret(mut self, secret: SharedSecret) -> Self {
        self.shared_secret = Some(secret);
        self
    }
}

/// A plugin: a name, a version, its roles and its cluster types. Built-in roles are a
/// `PluginDef` too.
#[non_exhaustive]
pub struct PluginDef {
    pub name: &'static str,
    pub version: &'static str,
    pub roles: Vec<RoleDef>,
    pub clusters: Vec<ClusterDef>,
}

impl PluginDef {
    /// A plugin named `name` at `version` with `roles` (and no cluster types).
    pub fn new(name: &'static str, version: &'static str, roles: Vec<RoleDef>) -> Self {
        Self {
            name,
            version,
            roles,
            clusters: Vec::new(),
        }
    }

    /// The same plugin with `clusters`.
    pub fn with_clusters(mut self, clusters: Vec<ClusterDef>) -> Self {
        self.clusters = clusters;
        self
    }

    /// The manifest the host reads after loading.
    pub fn manifest(&self) -> Manifest {
        Manifest {
            name: self.name.into(),
            version: self.version.into(),
            api: crate::API_VERSION.into(),
            abi: crate::abi::ABI_MAJOR,
            roles: self
                .roles
                .iter()
                .map(|r| RoleDecl {
                    name: r.name.clone(),
                    extends: r.extends.clone(),
                    description: r.description.clone(),
                })
                .collect(),
            hooks: HOOK_NAMES.iter().map(|h| h.to_string()).collect(),
            clusters: self
                .clusters
                .iter()
                .map(|c| ClusterDecl {
                    name: c.name.clone(),
                    leader: c.leader.clone(),
                    worker: c.worker.clone(),
                    description: c.description.clone(),
                    shared_secret: c.shared_secret.clone(),
                })
                .collect(),
        }
    }
}

/// Declares the plugin: its roles, each with a name, an optional parent, a description and a
/// constructor; and, optionally, its cluster types, each with a name, a leader role, a worker
/// role, optionally the secret its nodes share ([`SharedSecret`]), and a description. Use it
/// once, at the root of a `cdylib` crate.
///
/// ```ignore
/// cgcloud_plugin_api::export_plugin! {
///     roles: [
///         {
///             name: "mongodb-box",
///             extends: "generic-ubuntu-noble-box",
///             description: "MongoDB on Ubuntu 24.04",
///             new: MongoDbBox::default,
///         },
///     ],
///     clusters: [
///         {
///             name: "mongodb",
///             leader: "mongodb-box",
///             worker: "mongodb-box",
///             shared_secret: SharedSecret::new("/etc/mongodb/keyfile", "mongodb", 0o400, 756),
///             description: "A MongoDB replica set",
///         },
///     ]
/// }
/// ```
///
/// The plugin's name and version are its crate's. The macro also records, in a string the
/// host reads *before* loading the library, the ABI, the plugin-api version and whether the
/// plugin was built with `panic = "unwind"` (plugins built with `panic = "abort"` are refused).
#[macro_export]
macro_rules! export_plugin {
    (roles: [ $( {
        name: $name:expr,
        $( extends: $extends:expr, )?
        description: $description:expr,
        new: $new:expr $(,)?
    } ),* $(,)? ]
    $(, clusters: [ $( {
        name: $cname:expr,
        leader: $leader:expr,
        worker: $worker:expr,
        $( shared_secret: $secret:expr, )?
        description: $cdescription:expr $(,)?
    } ),* $(,)? ] )? $(,)?) => {
        #[doc(hidden)]
        pub struct __CgcloudPlugin;

        impl $crate::abi::PluginEntry for __CgcloudPlugin {
            fn definition() -> &'static $crate::PluginDef {
                static DEF: ::std::sync::OnceLock<$crate::PluginDef> = ::std::sync::OnceLock::new();
                DEF.get_or_init(|| $crate::PluginDef::new(
                    env!("CARGO_PKG_NAME"),
                    env!("CARGO_PKG_VERSION"),
                    ::std::vec![ $( $crate::RoleDef::with_constructor(
                        $name,
                        $crate::__extends!($($extends)?),
                        $description,
                        {
                            fn make() -> ::std::boxed::Box<dyn $crate::Role> {
                                ::std::boxed::Box::new(($new)())
                            }
                            make
                        },
                    ) ),* ],
                ).with_clusters(::std::vec![ $( $( $crate::ClusterDef::new(
                    $cname,
                    $leader,
                    $worker,
                    $cdescription,
                ).__with_secret($crate::__secret!($($secret)?)) ),* )? ]))
            }
        }

        #[doc(hidden)]
        #[export_name = "_1as_0lib_1header_0root_bmodule_bloader"]
        pub static __CGCLOUD_PLUGIN_HEADER: $crate::abi::Header =
            $crate::abi::lib_header::<__CgcloudPlugin>();

        #[doc(hidden)]
        #[cfg(panic = "unwind")]
        #[no_mangle]
        pub static CGCLOUD_PLUGIN_BUILD_INFO: &str = concat!(
            "CGCLOUD_PLUGIN_BUILD;abi=1;api=1.0.0;panic=unwind;name=",
            env!("CARGO_PKG_NAME"),
            ";version=",
            env!("CARGO_PKG_VERSION"),
            ";end"
        );

        #[doc(hidden)]
        #[cfg(not(panic = "unwind"))]
        #[no_mangle]
        pub static CGCLOUD_PLUGIN_BUILD_INFO: &str = concat!(
            "CGCLOUD_PLUGIN_BUILD;abi=1;api=1.0.0;panic=abort;name=",
            env!("CARGO_PKG_NAME"),
            ";version=",
            env!("CARGO_PKG_VERSION"),
            ";end"
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __secret {
    () => {
        ::std::option::Option::None
    };
    ($e:expr) => {
        ::std::option::Option::Some($e)
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __extends {
    () => {
        ::std::option::Option::None
    };
    ($e:expr) => {
        ::std::option::Option::Some(::std::string::String::from($e))
    };
}

/// What the build-info string says, parsed by the host before `dlopen`. For cgcloud itself.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BuildInfo {
    pub abi: u32,
    pub api: String,
    pub panic_unwind: bool,
    pub name: String,
    pub version: String,
}

impl BuildInfo {
    /// Finds and parses the build-info string in a plugin file's bytes. `None` if absent or
    /// malformed (then the file was not made with `export_plugin!`).
    pub fn find(bytes: &[u8]) -> Option<BuildInfo> {
        let prefix = crate::abi::BUILD_INFO_PREFIX.as_bytes();
        // Scan for the first byte, then compare: a plugin is about a megabyte.
        let mut from = 0;
        let start = loop {
            let at = from + bytes.get(from..)?.iter().position(|&b| b == prefix[0])?;
            if bytes.get(at..at + prefix.len()) == Some(prefix) {
                break at;
            }
            from = at + 1;
        };
        let rest = &bytes[start + prefix.len()..];
        let end = rest.windows(4).position(|w| w == b";end")?;
        let text = std::str::from_utf8(&rest[..end]).ok()?;
        let mut info = BuildInfo {
            abi: 0,
            api: String::new(),
            panic_unwind: false,
            name: String::new(),
            version: String::new(),
        };
        for field in text.split(';') {
            let (k, v) = field.split_once('=')?;
            match k {
                "abi" => info.abi = v.parse().ok()?,
                "api" => info.api = v.into(),
                "panic" => info.panic_unwind = v == "unwind",
                "name" => info.name = v.into(),
                "version" => info.version = v.into(),
                _ => {}
            }
        }
        if info.abi == 0 || info.name.is_empty() {
            return None;
        }
        Some(info)
    }
}

impl RoleDef {
    /// A role made by `new` (what `export_plugin!` expands to).
    #[doc(hidden)]
    pub fn with_constructor(
        name: &str,
        extends: Option<String>,
        description: &str,
        new: fn() -> Box<dyn Role>,
    ) -> Self {
        Self {
            name: name.into(),
            extends,
            description: description.into(),
            new,
        }
    }

    /// A root role made with `R::default()`.
    pub fn new<R: Role + Default>(name: &str, description: &str) -> Self {
        fn make<R: Role + Default>() -> Box<dyn Role> {
            Box::new(R::default())
        }
        Self {
            name: name.into(),
            extends: None,
            description: description.into(),
            new: make::<R>,
        }
    }

    /// The same role, extending `parent`.
    pub fn extending(mut self, parent: &str) -> Self {
        self.extends = Some(parent.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_info_in_macro_names_this_crates_version_and_abi() {
        let source = include_str!("export.rs");
        let wanted = format!(
            "CGCLOUD_PLUGIN_BUILD;abi={};api={};panic=",
            crate::abi::ABI_MAJOR,
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(source.matches(&wanted).count(), 2, "{wanted}");
    }

    #[test]
    fn build_info_parses() {
        let bytes = b"\x00junkCGCLOUD_PLUGIN_BUILD;abi=7;api=1.2.0;panic=unwind;name=x-roles;version=0.3.1;end\x00";
        let info = BuildInfo::find(bytes).expect("found");
        assert_eq!(
            info,
            BuildInfo {
                abi: 7,
                api: "1.2.0".into(),
                panic_unwind: true,
                name: "x-roles".into(),
                version: "0.3.1".into()
            }
        );
        assert_eq!(BuildInfo::find(b"nothing here"), None);
    }
}
