//! Test support for role authors: a fake host that records what hooks do on the "box", and
//! [`TestRole`], which builds a role chain exactly as cgcloud does (same vtables, same
//! `catch_unwind` guards), without cgcloud, SSH or a VM.
//!
//! ```
//! use cgcloud_plugin_api::prelude::*;
//! use cgcloud_plugin_api::testing::{FakeHost, TestRole};
//!
//! #[derive(Default)]
//! struct Hello;
//! impl Role for Hello {
//!     fn post_install_packages(&self, cx: &Cx) -> Result<()> {
//!         cx.sudo("touch /etc/hello")?;
//!         Ok(())
//!     }
//! }
//!
//! let role = TestRole::new(&RoleDef::new::<Hello>("hello-box", "says hello"), &[]);
//! let host = FakeHost::new();
//! role.hooks(&host).post_install_packages().expect("the hook runs");
//! assert_eq!(host.commands(), ["sudo: touch /etc/hello"]);
//! ```

use crate::abi::{instantiate_local, OwnedRole};
use crate::export::RoleDef;
use crate::host::{run_setup, Invoker, Services};
use crate::proto::{CmdOutput, Level};
use crate::role::{Caller, Hooks};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// A fake host: records commands and files, answers commands with canned outputs (status 0
/// and empty output unless told otherwise), serves role options and collects log lines.
#[derive(Default)]
pub struct FakeHost {
    commands: Mutex<Vec<String>>,
    files: Mutex<BTreeMap<String, (u32, Vec<u8>)>>,
    logs: Mutex<Vec<(Level, String)>>,
    options: BTreeMap<String, String>,
    responses: Vec<(String, CmdOutput)>,
    cancelled: AtomicBool,
}

impl FakeHost {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets role option `name`.
    pub fn with_option(mut self, name: &str, value: &str) -> Self {
        self.options.insert(name.into(), value.into());
        self
    }

    /// Answers every command containing `needle` with `output` (last match wins).
    pub fn respond(mut self, needle: &str, output: CmdOutput) -> Self {
        self.responses.push((needle.into(), output));
        self
    }

    /// Makes every later remote call fail as cancelled.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    /// The remote calls so far: `run: CMD`, `sudo: CMD`, `sudo -u USER: CMD`,
    /// `put: PATH (MODE)`, `sudo put: PATH (MODE)`, `get: PATH`.
    pub fn commands(&self) -> Vec<String> {
        self.commands.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// The files written so far, by path.
    pub fn file(&self, path: &str) -> Option<Vec<u8>> {
        self.files.lock().ok()?.get(path).map(|(_, d)| d.clone())
    }

    /// The log lines so far.
    pub fn logs(&self) -> Vec<(Level, String)> {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn record(&self, line: String) {
        if let Ok(mut c) = self.commands.lock() {
            c.push(line);
        }
    }

    fn answer(&self, command: &str) -> CmdOutput {
        self.responses
            .iter()
            .rev()
            .find(|(needle, _)| command.contains(needle.as_str()))
            .map(|(_, out)| out.clone())
            .unwrap_or_default()
    }
}

impl Services for FakeHost {
    fn run(&self, command: &str) -> Result<CmdOutput, String> {
        self.record(format!("run: {command}"));
        Ok(self.answer(command))
    }
    fn sudo(&self, command: &str, user: Option<&str>) -> Result<CmdOutput, String> {
        match user {
            Some(u) => self.record(format!("sudo -u {u}: {command}")),
            None => self.record(format!("sudo: {command}")),
        }
        Ok(self.answer(command))
    }
    fn put_file(&self, path: &str, data: &[u8], mode: u32, sudo: bool) -> Result<(), String> {
        let who = if sudo { "sudo put" } else { "put" };
        self.record(format!("{who}: {path} ({mode:o})"));
        if let Ok(mut f) = self.files.lock() {
            f.insert(path.into(), (mode, data.to_vec()));
        }
        Ok(())
    }
    fn get_file(&self, path: &str, _sudo: bool) -> Result<Vec<u8>, String> {
        self.record(format!("get: {path}"));
        self.file(path)
            .ok_or_else(|| format!("no such file on the fake box: `{path}`"))
    }
    fn log(&self, level: Level, message: &str) {
        if let Ok(mut l) = self.logs.lock() {
            l.push((level, message.into()));
        }
    }
    fn option(&self, name: &str) -> Option<String> {
        self.options.get(name).cloned()
    }
    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }
}

/// A role chain built like cgcloud builds it: `role` with its `parents`, nearest first.
pub struct TestRole {
    chain: Vec<OwnedRole>,
    name: String,
    /// The declared defaults of the role's options, which cgcloud supplies when no value is
    /// given.
    defaults: BTreeMap<String, String>,
}

/// What a [`TestRole`]'s hooks run with: the test's host, with the role's option defaults
/// filled in as cgcloud fills them in.
struct WithDefaults<'a> {
    host: &'a dyn Services,
    defaults: &'a BTreeMap<String, String>,
}

impl Services for WithDefaults<'_> {
    fn run(&self, command: &str) -> Result<CmdOutput, String> {
        self.host.run(command)
    }
    fn sudo(&self, command: &str, user: Option<&str>) -> Result<CmdOutput, String> {
        self.host.sudo(command, user)
    }
    fn put_file(&self, path: &str, data: &[u8], mode: u32, sudo: bool) -> Result<(), String> {
        self.host.put_file(path, data, mode, sudo)
    }
    fn get_file(&self, path: &str, sudo: bool) -> Result<Vec<u8>, String> {
        self.host.get_file(path, sudo)
    }
    fn log(&self, level: Level, message: &str) {
        self.host.log(level, message)
    }
    fn option(&self, name: &str) -> Option<String> {
        self.host
            .option(name)
            .or_else(|| self.defaults.get(name).cloned())
    }
    fn is_cancelled(&self) -> bool {
        self.host.is_cancelled()
    }
    fn hook_started(&self, hook: &str) {
        self.host.hook_started(hook)
    }
    fn hook_finished(&self, hook: &str) {
        self.host.hook_finished(hook)
    }
}

/// Calls a [`TestRole`]'s hooks (see [`TestRole::hooks`]).
pub struct TestCaller<'a> {
    chain: &'a [OwnedRole],
    services: WithDefaults<'a>,
    role: &'a str,
}

impl Caller for TestCaller<'_> {
    fn call_json(&self, hook: &str, args: Vec<u8>) -> crate::Result<Vec<u8>> {
        Invoker::new(self.chain, &self.services, self.role).call_json(hook, args)
    }
}

impl TestRole {
    /// Builds `role` on top of `parents` (nearest parent first; roots last).
    pub fn new(role: &RoleDef, parents: &[&RoleDef]) -> Self {
        let mut built: Vec<OwnedRole> = Vec::new();
        for def in parents.iter().rev().chain(std::iter::once(&role)) {
            // SAFETY: every role's parent is the element before it in `built`; after the
            // reverse below the leaf is first, and a `Vec` drops its elements in order, so
            // each child is dropped before its parent.
            let child = unsafe { instantiate_local("testing", def, built.last()) };
            built.push(child);
        }
        built.reverse();
        // The declared options, read as cgcloud reads them: offline, before any box exists.
        let defaults = Invoker::hooks(&built, &FakeHost::new(), &role.name)
            .options()
            .map(|options| {
                options
                    .into_iter()
                    .filter_map(|o| o.default.map(|d| (o.name, d)))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            chain: built,
            name: role.name.clone(),
            defaults,
        }
    }

    /// The role's hooks, run against `host`. As in cgcloud, an option the host has no value
    /// for has its declared default.
    pub fn hooks<'a>(&'a self, host: &'a dyn Services) -> Hooks<TestCaller<'a>> {
        Hooks(TestCaller {
            chain: &self.chain,
            services: WithDefaults {
                host,
                defaults: &self.defaults,
            },
            role: &self.name,
        })
    }

    /// Runs the whole set-up template against `host`.
    pub fn setup(&self, host: &dyn Services, upgrade: bool) -> crate::Result<()> {
        run_setup(&self.hooks(host), upgrade)
            .map_err(|(hook, e)| e.context(format!("hook `{hook}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;
    use crate::ErrorKind;

    #[derive(Default)]
    struct Parent;
    impl Role for Parent {
        fn admin_account(&self, _cx: &Cx) -> Result<String> {
            Ok("admin".into())
        }
        fn packages(&self, _cx: &Cx) -> Result<Vec<String>> {
            Ok(vec!["a".into()])
        }
        fn post_install_packages(&self, cx: &Cx) -> Result<()> {
            cx.sudo(&format!("parent of {}", cx.role_name()?))?;
            Ok(())
        }
    }

    #[derive(Default)]
    struct Child;
    impl Role for Child {
        fn packages(&self, cx: &Cx) -> Result<Vec<String>> {
            let mut p = cx.sup().packages()?;
            p.push("b".into());
            Ok(p)
        }
        fn post_install_packages(&self, cx: &Cx) -> Result<()> {
            cx.sup().post_install_packages()?;
            let out = cx.run("whoami")?;
            cx.info(&out.stdout);
            Ok(())
        }
        fn install_packages(&self, cx: &Cx, packages: Vec<String>) -> Result<()> {
            cx.sudo(&format!("install {}", packages.join(" ")))?;
            Ok(())
        }
    }

    #[derive(Default)]
    struct Panicky;
    impl Role for Panicky {
        fn packages(&self, _cx: &Cx) -> Result<Vec<String>> {
            panic!("boom in packages")
        }
    }

    fn chain() -> TestRole {
        let parent = RoleDef::new::<Parent>("parent-box", "p");
        let child = RoleDef::new::<Child>("child-box", "c").extending("parent-box");
        TestRole::new(&child, &[&parent])
    }

    #[test]
    fn defaults_delegate_to_the_parent_and_sup_calls_it() {
        let role = chain();
        let host = FakeHost::new().respond(
            "whoami",
            CmdOutput {
                status: 0,
                stdout: "ubuntu".into(),
                stderr: String::new(),
            },
        );
        let hooks = role.hooks(&host);
        assert_eq!(hooks.admin_account().expect("inherited"), "admin");
        assert_eq!(hooks.default_account().expect("base via this()"), "admin");
        assert_eq!(hooks.packages().expect("sup + own"), ["a", "b"]);
        role.setup(&host, false).expect("setup");
        assert_eq!(
            host.commands(),
            [
                "sudo: install a b",
                "sudo: parent of child-box",
                "run: whoami"
            ]
        );
        assert_eq!(host.logs(), [(Level::Info, "ubuntu".to_string())]);
    }

    #[test]
    fn failing_command_is_an_error_with_command_status_and_stderr() {
        let role = chain();
        let host = FakeHost::new().respond(
            "whoami",
            CmdOutput {
                status: 3,
                stdout: String::new(),
                stderr: "nope".into(),
            },
        );
        let e = role
            .hooks(&host)
            .post_install_packages()
            .expect_err("fails");
        assert_eq!(e.kind, ErrorKind::Failed);
        let ruler = "-".repeat(40);
        assert_eq!(
            e.message,
            format!("command `whoami` exited with status 3\n{ruler} stderr\nnope\n{ruler}")
        );
    }

    #[test]
    fn panic_in_a_hook_is_caught_and_reported() {
        let role = TestRole::new(&RoleDef::new::<Panicky>("panicky-box", "p"), &[]);
        let host = FakeHost::new();
        let e = role.hooks(&host).packages().expect_err("panics");
        assert_eq!(e.kind, ErrorKind::Panicked);
        assert_eq!(e.message, "boom in packages");
        // The role still answers other hooks.
        assert_eq!(role.hooks(&host).options().expect("options"), []);
    }

    #[test]
    fn cancelled_host_stops_remote_calls() {
        let role = chain();
        let host = FakeHost::new();
        host.cancel();
        let e = role.setup(&host, false).expect_err("cancelled");
        assert_eq!(e.kind, ErrorKind::Cancelled);
        assert!(host.commands().is_empty());
    }

    #[derive(Default)]
    struct WithOption;
    impl Role for WithOption {
        fn options(&self, _cx: &Cx) -> Result<Vec<RoleOption>> {
            Ok(vec![
                RoleOption::string("title", "t").with_default("cgcloud"),
                RoleOption::string("plain", "p"),
            ])
        }
        fn post_install_packages(&self, cx: &Cx) -> Result<()> {
            cx.info(&format!(
                "title={:?} plain={:?}",
                cx.option("title")?,
                cx.option("plain")?
            ));
            Ok(())
        }
    }

    #[test]
    fn options_have_their_declared_defaults_as_in_cgcloud() {
        let role = TestRole::new(&RoleDef::new::<WithOption>("o-box", "o"), &[]);
        let host = FakeHost::new();
        role.hooks(&host).post_install_packages().expect("runs");
        let given = FakeHost::new().with_option("title", "mine");
        role.hooks(&given).post_install_packages().expect("runs");
        assert_eq!(
            [host.logs(), given.logs()].concat(),
            [
                (
                    Level::Info,
                    r#"title=Some("cgcloud") plain=None"#.to_string()
                ),
                (Level::Info, r#"title=Some("mine") plain=None"#.to_string()),
            ]
        );
    }

    #[test]
    fn root_without_package_manager_says_what_to_do() {
        let role = TestRole::new(&RoleDef::new::<Parent>("parent-box", "p"), &[]);
        let e = role
            .setup(&FakeHost::new(), false)
            .expect_err("no package manager");
        assert_eq!(
            e.message,
            "hook `install_packages`: role `parent-box` declares no package manager; extend a built-in role or implement `install_packages`"
        );
    }
}
