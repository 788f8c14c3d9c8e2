//! The role registry: built-in roles and plugin roles in one table, `extends` resolved across
//! plugins and built-ins (qualified `plugin/role` or plain `role`), unknown parents, cycles and
//! ambiguous names reported with the files involved.

use crate::error::{HookError, PluginError, Problem};
use crate::loader::{inspect, load, Loaded};
use crate::lock::Lock;
use crate::role::RoleHandle;
use crate::sources::{Origin, PluginSources};
use cgcloud_plugin_api::abi::{instantiate_local, instantiate_plugin, OwnedRole, PluginModRef};
use cgcloud_plugin_api::{PluginDef, SharedSecret};
use serde::Serialize;
use std::path::PathBuf;

enum Kind {
    Builtin(PluginDef),
    Loaded(PluginModRef),
}

struct PluginRec {
    name: String,
    version: String,
    api: String,
    abi: u32,
    file: Option<PathBuf>,
    origin: Origin,
    sha256: Option<String>,
    kind: Kind,
}

struct RoleRec {
    plugin: usize,
    name: String,
    extends: Option<String>,
    description: String,
}

struct ClusterRec {
    plugin: usize,
    name: String,
    leader: String,
    worker: String,
    description: String,
    shared_secret: Option<SharedSecret>,
}

/// All roles cgcloud knows: built-ins plus those of the loaded plugins; and their cluster types.
pub struct Registry {
    plugins: Vec<PluginRec>,
    roles: Vec<RoleRec>,
    clusters: Vec<ClusterRec>,
    warnings: Vec<String>,
}

/// A cluster type as `list-roles` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ClusterSummary {
    pub name: String,
    /// `plugin/name`.
    pub qualified: String,
    /// The description's first line.
    pub description: String,
    pub plugin: String,
    /// The leader's role, qualified.
    pub leader: String,
    /// The workers' role, qualified.
    pub worker: String,
    /// The secret its nodes share.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_secret: Option<SharedSecret>,
}

/// A role as `list-roles` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RoleSummary {
    pub name: String,
    /// `plugin/role`.
    pub qualified: String,
    /// The description's first line.
    pub description: String,
    pub plugin: String,
    pub plugin_version: String,
    pub origin: Origin,
    pub file: Option<PathBuf>,
    /// The `extends` chain, nearest parent first, as qualified names; empty for root roles.
    pub extends: Vec<String>,
    /// Whether another plugin defines a role with the same name (use the qualified name).
    pub conflict: bool,
}

/// A plugin as `cgcloud plugin list` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PluginSummary {
    pub name: String,
    pub version: String,
    /// The cgcloud-plugin-api version it was built with.
    pub api: String,
    pub abi: u32,
    pub origin: Origin,
    pub file: Option<PathBuf>,
    pub sha256: Option<String>,
    pub roles: Vec<String>,
}

impl Registry {
    /// Only the built-in roles.
    pub fn builtins_only() -> Registry {
        let def = cgcloud_builtin_roles::plugin();
        let mut reg = Registry {
            plugins: Vec::new(),
            roles: Vec::new(),
            clusters: Vec::new(),
            warnings: Vec::new(),
        };
        reg.clusters.extend(def.clusters.iter().map(|c| ClusterRec {
            plugin: 0,
            name: c.name.clone(),
            leader: c.leader.clone(),
            worker: c.worker.clone(),
            description: c.description.clone(),
            shared_secret: c.shared_secret.clone(),
        }));
        reg.roles.extend(def.roles.iter().map(|r| RoleRec {
            plugin: 0,
            name: r.name.clone(),
            extends: r.extends.clone(),
            description: r.description.clone(),
        }));
        reg.plugins.push(PluginRec {
            name: def.name.into(),
            version: def.version.into(),
            api: cgcloud_plugin_api::API_VERSION.into(),
            abi: cgcloud_plugin_api::abi::ABI_MAJOR,
            file: None,
            origin: Origin::Builtin,
            sha256: None,
            kind: Kind::Builtin(def),
        });
        reg
    }

    /// Built-ins plus every plugin from `sources`. Stops at the first problem.
    ///
    /// A plugin found twice (same name) is loaded from the higher-precedence place; the other
    /// is skipped with a warning (see [`Registry::warnings`]; `verify` reports it as a problem).
    pub fn load(sources: &PluginSources) -> Result<Registry, PluginError> {
        Self::load_with(sources, &mut |e| Err(e), false)
    }

    /// Loads what it can; `on_error` decides whether a problem stops loading. With
    /// `strict`, a plugin found twice is a problem too, not only a warning.
    pub(crate) fn load_with(
        sources: &PluginSources,
        on_error: &mut dyn FnMut(PluginError) -> Result<(), PluginError>,
        strict: bool,
    ) -> Result<Registry, PluginError> {
        let mut reg = Self::builtins_only();
        let lock_path = sources.lock_path();
        let lock = match Lock::read(&lock_path) {
            Ok(lock) => lock,
            Err(e) => {
                on_error(e)?;
                Lock::default()
            }
        };
        let candidates = match sources.candidates() {
            Ok(c) => c,
            Err(e) => {
                on_error(e)?;
                Vec::new()
            }
        };
        for candidate in &candidates {
            let inspected =
                match inspect(candidate, Some((&lock, &lock_path)), &sources.pins, false) {
                    Ok(i) => i,
                    Err(e) => {
                        on_error(e)?;
                        continue;
                    }
                };
            if let Some(first) = reg.plugins.iter().find(|p| p.name == inspected.info.name) {
                let e = PluginError::LoadedTwice {
                    name: inspected.info.name.clone(),
                    first: first
                        .file
                        .clone()
                        .unwrap_or_else(|| PathBuf::from("(built in)")),
                    second: inspected.path.clone(),
                };
                reg.warnings
                    .push(format!("{e}; using the first (higher precedence)"));
                if strict {
                    on_error(e)?;
                }
                continue;
            }
            match load(inspected) {
                Ok(loaded) => reg.add(loaded),
                Err(e) => on_error(e)?,
            }
        }
        for e in reg.graph_problems() {
            on_error(e)?;
        }
        Ok(reg)
    }

    fn add(&mut self, loaded: Loaded) {
        let index = self.plugins.len();
        let m = &loaded.manifest;
        self.roles.extend(m.roles.iter().map(|r| RoleRec {
            plugin: index,
            name: r.name.clone(),
            extends: r.extends.clone(),
            description: r.description.clone(),
        }));
        self.clusters.extend(m.clusters.iter().map(|c| ClusterRec {
            plugin: index,
            name: c.name.clone(),
            leader: c.leader.clone(),
            worker: c.worker.clone(),
            description: c.description.clone(),
            shared_secret: c.shared_secret.clone(),
        }));
        self.plugins.push(PluginRec {
            name: m.name.clone(),
            version: m.version.clone(),
            api: m.api.clone(),
            abi: m.abi,
            file: Some(loaded.inspected.path.clone()),
            origin: loaded.inspected.origin,
            sha256: loaded.inspected.sha256.clone(),
            kind: Kind::Loaded(loaded.module),
        });
    }

    /// Warnings from loading (e.g. a plugin found twice).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn file_of(&self, plugin: usize) -> String {
        match &self.plugins[plugin].file {
            Some(f) => f.display().to_string(),
            None => "built in".into(),
        }
    }

    fn qualified(&self, role: usize) -> String {
        let r = &self.roles[role];
        format!("{}/{}", self.plugins[r.plugin].name, r.name)
    }

    /// Finds a role by `name` or `plugin/name`.
    fn find(&self, name: &str) -> Result<usize, Option<PluginError>> {
        let matches: Vec<usize> = match name.split_once('/') {
            Some((plugin, role)) => (0..self.roles.len())
                .filter(|&i| {
                    self.roles[i].name == role && self.plugins[self.roles[i].plugin].name == plugin
                })
                .collect(),
            None => (0..self.roles.len())
                .filter(|&i| self.roles[i].name == name)
                .collect(),
        };
        match matches.as_slice() {
            [] => Err(None),
            [one] => Ok(*one),
            [a, b, ..] => {
                let (pa, pb) = (self.roles[*a].plugin, self.roles[*b].plugin);
                Err(Some(PluginError::DuplicateRole {
                    role: name.into(),
                    first: self.plugins[pa].name.clone(),
                    first_file: self.file_of(pa),
                    second: self.plugins[pb].name.clone(),
                    second_file: self.file_of(pb),
                }))
            }
        }
    }

    fn parent_of(&self, role: usize) -> Result<Option<usize>, PluginError> {
        let r = &self.roles[role];
        let Some(parent) = &r.extends else {
            return Ok(None);
        };
        match self.find(parent) {
            Ok(p) => Ok(Some(p)),
            Err(Some(e)) => Err(e),
            Err(None) => Err(PluginError::UnknownParent {
                role: r.name.clone(),
                plugin: self.plugins[r.plugin].name.clone(),
                file: self.file_of(r.plugin),
                parent: parent.clone(),
            }),
        }
    }

    /// The chain from `role` to its root, leaf first.
    fn chain(&self, role: usize) -> Result<Vec<usize>, PluginError> {
        let mut chain = vec![role];
        let mut current = role;
        while let Some(parent) = self.parent_of(current)? {
            if let Some(pos) = chain.iter().position(|&c| c == parent) {
                let mut names: Vec<String> = chain[pos..]
                    .iter()
                    .map(|&i| format!("`{}`", self.roles[i].name))
                    .collect();
                names.push(format!("`{}`", self.roles[parent].name));
                let p = self.roles[parent].plugin;
                let mut members: Vec<String> =
                    chain[pos..].iter().map(|&i| self.qualified(i)).collect();
                members.sort();
                return Err(PluginError::Cycle {
                    chain: names.join(" → "),
                    members,
                    plugin: self.plugins[p].name.clone(),
                    file: self.file_of(p),
                });
            }
            chain.push(parent);
            current = parent;
        }
        Ok(chain)
    }

    /// A cluster type's role `name` (`role` or `plugin/role`): a plain name means the role of
    /// the cluster type's own plugin when it has one.
    fn cluster_role(&self, c: &ClusterRec, name: &str) -> Result<usize, Option<PluginError>> {
        if !name.contains('/') {
            let own = format!("{}/{name}", self.plugins[c.plugin].name);
            if let Ok(i) = self.find(&own) {
                return Ok(i);
            }
        }
        self.find(name)
    }

    /// Unknown parents, cycles and cluster types whose roles are unknown, once each.
    fn graph_problems(&self) -> Vec<PluginError> {
        let mut seen = Vec::<String>::new();
        let mut out = Vec::new();
        for i in 0..self.roles.len() {
            if let Err(e) = self.chain(i) {
                // A cycle shows up from each of its members; report it once.
                let key = match &e {
                    PluginError::Cycle { members, .. } => members.join(","),
                    other => other.to_string(),
                };
                if !seen.contains(&key) {
                    seen.push(key);
                    out.push(e);
                }
            }
        }
        for c in &self.clusters {
            for (part, role) in [("leader", &c.leader), ("worker", &c.worker)] {
                match self.cluster_role(c, role) {
                    Ok(_) => {}
                    Err(Some(e)) => out.push(e),
                    Err(None) => out.push(PluginError::UnknownClusterRole {
                        cluster: c.name.clone(),
                        plugin: self.plugins[c.plugin].name.clone(),
                        file: self.file_of(c.plugin),
                        part,
                        role: role.clone(),
                    }),
                }
            }
        }
        out
    }

    /// Every role, built-ins first, in load order.
    pub fn roles(&self) -> Vec<RoleSummary> {
        (0..self.roles.len())
            .map(|i| {
                let r = &self.roles[i];
                let p = &self.plugins[r.plugin];
                let extends = self
                    .chain(i)
                    .map(|c| c[1..].iter().map(|&j| self.qualified(j)).collect())
                    .unwrap_or_default();
                RoleSummary {
                    name: r.name.clone(),
                    qualified: self.qualified(i),
                    description: r.description.lines().next().unwrap_or("").to_string(),
                    plugin: p.name.clone(),
                    plugin_version: p.version.clone(),
                    origin: p.origin,
                    file: p.file.clone(),
                    extends,
                    conflict: self.roles.iter().filter(|o| o.name == r.name).count() > 1,
                }
            })
            .collect()
    }

    /// Every cluster type, in load order; those whose roles cannot be found are left out
    /// (loading reported them).
    pub fn clusters(&self) -> Vec<ClusterSummary> {
        self.clusters
            .iter()
            .filter_map(|c| {
                let leader = self.cluster_role(c, &c.leader).ok()?;
                let worker = self.cluster_role(c, &c.worker).ok()?;
                Some(ClusterSummary {
                    name: c.name.clone(),
                    qualified: format!("{}/{}", self.plugins[c.plugin].name, c.name),
                    description: c.description.lines().next().unwrap_or("").to_string(),
                    plugin: self.plugins[c.plugin].name.clone(),
                    leader: self.qualified(leader),
                    worker: self.qualified(worker),
                    shared_secret: c.shared_secret.clone(),
                })
            })
            .collect()
    }

    /// The cluster type `name` (or `plugin/name`).
    pub fn cluster(&self, name: &str) -> Result<ClusterSummary, PluginError> {
        let found: Vec<ClusterSummary> = self
            .clusters()
            .into_iter()
            .filter(|c| c.name == name || c.qualified == name)
            .collect();
        match found.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(PluginError::NoSuchCluster(name.into())),
            [a, b, ..] => {
                let file = |plugin: &str| {
                    self.plugins
                        .iter()
                        .position(|p| p.name == plugin)
                        .map(|i| self.file_of(i))
                        .unwrap_or_default()
                };
                Err(PluginError::DuplicateRole {
                    role: name.into(),
                    first: a.plugin.clone(),
                    first_file: file(&a.plugin),
                    second: b.plugin.clone(),
                    second_file: file(&b.plugin),
                })
            }
        }
    }

    /// Every plugin, the built-ins first.
    pub fn plugins(&self) -> Vec<PluginSummary> {
        self.plugins
            .iter()
            .enumerate()
            .map(|(i, p)| PluginSummary {
                name: p.name.clone(),
                version: p.version.clone(),
                api: p.api.clone(),
                abi: p.abi,
                origin: p.origin,
                file: p.file.clone(),
                sha256: p.sha256.clone(),
                roles: self
                    .roles
                    .iter()
                    .filter(|r| r.plugin == i)
                    .map(|r| r.name.clone())
                    .collect(),
            })
            .collect()
    }

    /// Role names defined by more than one plugin, each with its providers' qualified names.
    pub fn conflicts(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for (i, r) in self.roles.iter().enumerate() {
            if self.roles.iter().filter(|o| o.name == r.name).count() > 1 {
                match out.iter_mut().find(|(n, _)| *n == r.name) {
                    Some((_, list)) => list.push(self.qualified(i)),
                    None => out.push((r.name.clone(), vec![self.qualified(i)])),
                }
            }
        }
        out
    }

    /// The role `name` (or `plugin/name`), instantiated with its whole `extends` chain.
    pub fn role(&self, name: &str) -> Result<RoleHandle, PluginError> {
        let leaf = match self.find(name) {
            Ok(i) => i,
            Err(Some(e)) => return Err(e),
            Err(None) => return Err(PluginError::NoSuchRole(name.into())),
        };
        let chain = self.chain(leaf)?;
        let mut built: Vec<OwnedRole> = Vec::with_capacity(chain.len());
        for &i in chain.iter().rev() {
            let r = &self.roles[i];
            let p = &self.plugins[r.plugin];
            // Each role's parent is the element before it in `built`, which is reversed (leaf
            // first) before anything is dropped, here on failure and below for the handle, so
            // every child is dropped before its parent: what both `instantiate_*` require.
            let role = match &p.kind {
                Kind::Builtin(def) => match def.roles.iter().find(|d| d.name == r.name) {
                    Some(role_def) => {
                        // SAFETY: see above.
                        let role = unsafe { instantiate_local(def.name, role_def, built.last()) };
                        Ok(role)
                    }
                    None => Err(PluginError::NoSuchRole(r.name.clone())),
                },
                Kind::Loaded(module) => {
                    // SAFETY: see above.
                    unsafe { instantiate_plugin(*module, &r.name, built.last()) }.map_err(|e| {
                        PluginError::from(HookError::new(
                            &p.name,
                            &p.version,
                            &r.name,
                            "instantiate",
                            e,
                        ))
                    })
                }
            };
            match role {
                Ok(role) => built.push(role),
                Err(e) => {
                    built.reverse();
                    return Err(e);
                }
            }
        }
        built.reverse();
        let r = &self.roles[leaf];
        let p = &self.plugins[r.plugin];
        Ok(RoleHandle::new(
            built,
            r.name.clone(),
            r.description.clone(),
            p.name.clone(),
            p.version.clone(),
            p.file.clone(),
            chain[1..].iter().map(|&j| self.qualified(j)).collect(),
        ))
    }
}

/// Loads what can be loaded, collecting each problem instead of stopping at it.
fn load_collecting(
    sources: &PluginSources,
    strict: bool,
) -> (Result<Registry, PluginError>, Vec<Problem>) {
    let mut problems: Vec<Problem> = Vec::new();
    let result = Registry::load_with(
        sources,
        &mut |e| {
            problems.push(Problem::from(&e));
            Ok(())
        },
        strict,
    );
    (result, problems)
}

/// Loads every plugin that can be loaded and lists, one each, the problems of those that
/// cannot (what `cgcloud plugin list` shows instead of failing). The registry has at least the
/// built-in roles.
pub fn load_what_loads(sources: &PluginSources) -> (Registry, Vec<Problem>) {
    let (result, mut problems) = load_collecting(sources, false);
    match result {
        Ok(reg) => (reg, problems),
        Err(e) => {
            problems.push(Problem::from(&e));
            (Registry::builtins_only(), problems)
        }
    }
}

/// Checks everything `load` checks, without stopping at the first problem, plus lock entries
/// whose file is gone and roles defined twice. Empty means all is well.
pub fn verify(sources: &PluginSources) -> Vec<Problem> {
    let (result, mut problems) = load_collecting(sources, true);
    if let Ok(reg) = result {
        for (role, providers) in reg.conflicts() {
            let first = reg.find(&providers[0]).ok();
            let second = reg.find(&providers[1]).ok();
            if let (Some(a), Some(b)) = (first, second) {
                let (pa, pb) = (reg.roles[a].plugin, reg.roles[b].plugin);
                let e = PluginError::DuplicateRole {
                    role,
                    first: reg.plugins[pa].name.clone(),
                    first_file: reg.file_of(pa),
                    second: reg.plugins[pb].name.clone(),
                    second_file: reg.file_of(pb),
                };
                problems.push(Problem::from(&e));
            }
        }
    }
    if let Ok(lock) = Lock::read(&sources.lock_path()) {
        for entry in lock.plugins.iter().filter(|e| !e.file.exists()) {
            problems.push(Problem {
                file: Some(entry.file.clone()),
                message: format!(
                    "the lock file `{}` lists `{}` (plugin `{}`), which does not exist; add it again with `cgcloud plugin add` or remove the entry",
                    sources.lock_path().display(),
                    entry.file.display(),
                    entry.name
                ),
            });
        }
    }
    problems
}
