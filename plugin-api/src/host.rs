//! The host side of hook calls: the [`Services`] a host implements (its SSH connection, its
//! logger, role options, cancellation) and the [`Invoker`] that calls a role chain's hooks
//! with those services. Plugin authors do not need this module; cgcloud and the `testing`
//! fake host use it.

use crate::abi::{
    with_host, Answer, OwnedRole, ServiceHandler, STATUS_CANCELLED, STATUS_ERR, STATUS_OK,
    STATUS_UNKNOWN,
};
use crate::cx::{base_default, Cx};
use crate::error::{Result, RoleError};
use crate::proto::{substitute_packages, CmdOutput, Level, ServiceRequest};
use crate::role::{Caller, Hooks};

/// What a host gives hooks. Called on the hook's thread; must not block forever (every wait
/// needs a timeout) and should return errors rather than panic (panics are caught anyway).
pub trait Services: Sync {
    /// Runs `command` on the box as the admin account.
    fn run(&self, command: &str) -> Result<CmdOutput, String>;
    /// Runs `command` with sudo, as root or as `user`.
    fn sudo(&self, command: &str, user: Option<&str>) -> Result<CmdOutput, String>;
    /// Writes a file on the box.
    fn put_file(&self, path: &str, data: &[u8], mode: u32, sudo: bool) -> Result<(), String>;
    /// Reads a file from the box.
    fn get_file(&self, path: &str, sudo: bool) -> Result<Vec<u8>, String>;
    /// A log line from role code.
    fn log(&self, level: Level, message: &str);
    /// The value of a role option, if set.
    fn option(&self, name: &str) -> Option<String>;
    /// Whether hooks should stop; remote calls fail with `Cancelled` once this is true.
    fn is_cancelled(&self) -> bool {
        false
    }
    /// A hook of the role chain is about to run (hooks nest: a hook may call others). For
    /// progress display; the default ignores it.
    fn hook_started(&self, _hook: &str) {}
    /// The hook that [`Services::hook_started`] announced has returned.
    fn hook_finished(&self, _hook: &str) {}
}

/// Calls hooks on a role chain (most derived role first, then its parents) with `services`.
/// A hook the leaf does not know (built against an older plugin-api) goes to the parents and
/// finally to the base default.
pub struct Invoker<'a> {
    chain: &'a [OwnedRole],
    services: &'a dyn Services,
    role: &'a str,
}

impl<'a> Invoker<'a> {
    /// An invoker for `chain` (leaf first), the role named `role`.
    pub fn new(chain: &'a [OwnedRole], services: &'a dyn Services, role: &'a str) -> Self {
        Self {
            chain,
            services,
            role,
        }
    }

    /// Typed access to every hook.
    pub fn hooks(chain: &'a [OwnedRole], services: &'a dyn Services, role: &'a str) -> Hooks<Self> {
        Hooks(Self::new(chain, services, role))
    }
}

impl Caller for Invoker<'_> {
    fn call_json(&self, hook: &str, args: Vec<u8>) -> Result<Vec<u8>> {
        self.services.hook_started(hook);
        let result = self.call_chain(hook, args);
        self.services.hook_finished(hook);
        result
    }
}

impl Invoker<'_> {
    fn call_chain(&self, hook: &str, args: Vec<u8>) -> Result<Vec<u8>> {
        with_host(self, |host| {
            for role in self.chain {
                match role.call(hook, &args, host) {
                    Answer::Ok(v) => return Ok(v),
                    Answer::Err(e) => return Err(e),
                    Answer::Unknown => {}
                }
            }
            base_default(&Cx::new(host, None, self.role), hook, &args)
        })
    }
}

fn reply<T: serde::Serialize>(r: std::result::Result<T, String>) -> (u32, Vec<u8>) {
    match r {
        Ok(v) => match serde_json::to_vec(&v) {
            Ok(body) => (STATUS_OK, body),
            Err(e) => err_reply(RoleError::host(e.to_string())),
        },
        Err(e) => err_reply(RoleError::host(e)),
    }
}

fn err_reply(e: RoleError) -> (u32, Vec<u8>) {
    (STATUS_ERR, serde_json::to_vec(&e).unwrap_or_default())
}

impl ServiceHandler for Invoker<'_> {
    fn handle(&self, request: &[u8]) -> (u32, Vec<u8>) {
        let Ok(request) = serde_json::from_slice::<ServiceRequest>(request) else {
            return (STATUS_UNKNOWN, Vec::new());
        };
        let s = self.services;
        let remote = matches!(
            request,
            ServiceRequest::Run { .. }
                | ServiceRequest::Sudo { .. }
                | ServiceRequest::PutFile { .. }
                | ServiceRequest::GetFile { .. }
        );
        if remote && s.is_cancelled() {
            return (STATUS_CANCELLED, Vec::new());
        }
        match request {
            ServiceRequest::Run { command } => reply(s.run(&command)),
            ServiceRequest::Sudo { command, user } => reply(s.sudo(&command, user.as_deref())),
            ServiceRequest::PutFile {
                path,
                data,
                mode,
                sudo,
            } => reply(s.put_file(&path, &data, mode, sudo)),
            ServiceRequest::GetFile { path, sudo } => {
                #[derive(serde::Serialize)]
                struct File {
                    #[serde(with = "crate::proto::b64")]
                    data: Vec<u8>,
                }
                reply(s.get_file(&path, sudo).map(|data| File { data }))
            }
            ServiceRequest::Log { level, message } => {
                s.log(level, &message);
                reply(Ok(()))
            }
            ServiceRequest::Option { name } => reply(Ok(s.option(&name))),
            ServiceRequest::Cancelled => reply(Ok(s.is_cancelled())),
            ServiceRequest::Role => reply(Ok(self.role)),
            ServiceRequest::Hello { .. } => reply(Ok(crate::proto::HostInfo::this_build())),
            ServiceRequest::Leaf { hook, args } => match self.call_json(&hook, args.into_bytes()) {
                Ok(v) => (STATUS_OK, v),
                Err(e) => err_reply(e),
            },
        }
    }
}

/// The phases of set-up, in order (the original's `PackageManagerBox.setup`).
pub const SETUP_PHASES: &[&str] = &[
    "setup_package_repos",
    "sync_package_repos",
    "pre_install_packages",
    "install_packages",
    "post_install_packages",
    "upgrade_packages",
];

/// Runs the set-up template: repos → sync → pre-install → substitutions and package list →
/// install → post-install → (with `upgrade`) upgrade. Stops at the first error, returning it
/// with the phase's hook name.
pub fn run_setup<C: Caller>(
    hooks: &Hooks<C>,
    upgrade: bool,
) -> std::result::Result<(), (String, RoleError)> {
    let at = |hook: &str| {
        let hook = hook.to_string();
        move |e: RoleError| (hook, e)
    };
    hooks
        .setup_package_repos()
        .map_err(at("setup_package_repos"))?;
    hooks
        .sync_package_repos()
        .map_err(at("sync_package_repos"))?;
    hooks
        .pre_install_packages()
        .map_err(at("pre_install_packages"))?;
    let subs = hooks
        .package_substitutions()
        .map_err(at("package_substitutions"))?;
    let packages = hooks.packages().map_err(at("packages"))?;
    let packages = substitute_packages(&packages, &subs);
    hooks
        .install_packages(packages)
        .map_err(at("install_packages"))?;
    hooks
        .post_install_packages()
        .map_err(at("post_install_packages"))?;
    if upgrade {
        hooks.upgrade_packages().map_err(at("upgrade_packages"))?;
    }
    Ok(())
}
