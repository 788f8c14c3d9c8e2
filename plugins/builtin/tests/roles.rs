//! Every built-in role against a fake host: declared data, the exact remote command sequence
//! of set-up with and without `--upgrade`, substitutions, lock waits, retries on mirror
//! errors only, verification after dnf, and the features a plugin role composes with.
#![allow(clippy::unwrap_used)] // A test crate: an unwrap that fails is a failing test.

use std::collections::VecDeque;
use std::sync::Mutex;

use cgcloud_builtin_roles::package_manager::{LOCK_POLLS, LOCK_POLL_SECS, MIRROR_ATTEMPTS};
use cgcloud_builtin_roles::{ephemeral, plugin, systemd, DISTROS};
use cgcloud_plugin_api::host::Services;
use cgcloud_plugin_api::prelude::*;
use cgcloud_plugin_api::testing::{FakeHost, TestRole};

fn role(name: &str) -> TestRole {
    let def = plugin();
    let r = def
        .roles
        .iter()
        .find(|r| r.name == name)
        .expect("built-in role exists");
    TestRole::new(r, &[])
}

/// A role extending the built-in `parent`, as a plugin would.
fn child<R: Role + Default>(name: &str, parent: &str) -> TestRole {
    let builtins = plugin();
    let parent = builtins
        .roles
        .iter()
        .find(|r| r.name == parent)
        .expect("built-in parent");
    let def = RoleDef::new::<R>(name, "test role").extending(&parent.name);
    TestRole::new(&def, &[parent])
}

const APT: &str =
    "sudo -n env LC_ALL=C DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=300";
const DPKG: &str = "-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold";
const DNF4: &str = "sudo -n env LC_ALL=C dnf -q -y --setopt=exit_on_lock=True";
const DNF5: &str = "sudo -n env LC_ALL=C dnf -q -y";
const DISKS: [&str; 2] = [
    "sudo put: /usr/local/sbin/cgcloud-ephemeral-disks (755)",
    "sudo: /usr/local/sbin/cgcloud-ephemeral-disks",
];

fn apt_setup(upgrade: bool) -> Vec<String> {
    let mut c = vec![
        "sudo put: /etc/apt/apt.conf.d/99timeout (644)".to_string(),
        format!("run: {APT} --error-on=any update"),
        format!("run: {APT} {DPKG} --no-install-recommends install htop mdadm"),
    ];
    c.extend(DISKS.map(String::from));
    if upgrade {
        c.push(format!("run: {APT} {DPKG} dist-upgrade"));
    }
    c
}

fn dnf_setup(dnf: &str, packages: &str, upgrade: bool) -> Vec<String> {
    let mut c = vec![
        format!("run: {dnf} makecache"),
        format!("run: {dnf} install {packages}"),
        format!("run: rpm -q --whatprovides {packages}"),
    ];
    c.extend(DISKS.map(String::from));
    if upgrade {
        c.push(format!("run: {dnf} upgrade"));
    }
    c
}

/// The exact set-up sequence of every built-in role.
fn expected_setup(role: &str, upgrade: bool) -> Vec<String> {
    match role {
        "generic-debian-bookworm-box"
        | "generic-debian-trixie-box"
        | "generic-ubuntu-jammy-box"
        | "generic-ubuntu-noble-box" => apt_setup(upgrade),
        "generic-amazonlinux-2023-box" => dnf_setup(DNF4, "htop mdadm", upgrade),
        // htop is substituted away on Rocky (EPEL only).
        "generic-rocky-9-box" => dnf_setup(DNF4, "mdadm", upgrade),
        "generic-fedora-43-box" => dnf_setup(DNF5, "htop mdadm", upgrade),
        other => panic!("no expected sequence for `{other}`: add one"),
    }
}

#[test]
fn every_role_sets_up_with_the_exact_command_sequence() {
    assert_eq!(DISTROS.len(), 7);
    for d in DISTROS {
        for upgrade in [false, true] {
            let host = FakeHost::new();
            role(d.role)
                .setup(&host, upgrade)
                .unwrap_or_else(|e| panic!("{} (upgrade {upgrade}): {e}", d.role));
            assert_eq!(
                host.commands(),
                expected_setup(d.role, upgrade),
                "{} (upgrade {upgrade})",
                d.role
            );
            let script = host
                .file(ephemeral::SCRIPT_PATH)
                .expect("the disk script is installed");
            assert_eq!(script, ephemeral::SCRIPT.as_bytes());
        }
    }
}

#[test]
fn apt_network_settings_are_short_timeouts() {
    let host = FakeHost::new();
    role("generic-debian-trixie-box")
        .setup(&host, false)
        .expect("setup");
    let conf = String::from_utf8(host.file("/etc/apt/apt.conf.d/99timeout").expect("written"))
        .expect("text");
    assert!(conf.contains("Acquire::http::Timeout \"10\";\n"), "{conf}");
    assert!(conf.contains("Acquire::Retries \"3\";\n"), "{conf}");
}

#[test]
fn every_role_declares_owner_pattern_admin_and_features() {
    let admins = [
        ("generic-debian-bookworm-box", "admin", "136693071363"),
        ("generic-debian-trixie-box", "admin", "136693071363"),
        ("generic-ubuntu-jammy-box", "ubuntu", "099720109477"),
        ("generic-ubuntu-noble-box", "ubuntu", "099720109477"),
        ("generic-amazonlinux-2023-box", "ec2-user", "137112412989"),
        ("generic-rocky-9-box", "rocky", "792107900819"),
        ("generic-fedora-43-box", "fedora", "125523088429"),
    ];
    assert_eq!(admins.len(), DISTROS.len());
    for (d, (name, admin, owner)) in DISTROS.iter().zip(admins) {
        assert_eq!(d.role, name);
        let r = role(d.role);
        let host = FakeHost::new();
        let hooks = r.hooks(&host);
        let image = hooks.base_image().expect("base image");
        assert_eq!(image.owner, owner);
        assert_eq!(image.name_pattern, d.image_name_pattern);
        assert_eq!(image.arch, Arch::X86_64);
        assert_eq!(hooks.admin_account().expect("admin"), admin);
        // default_account goes through `this()` back to the role's admin account.
        assert_eq!(hooks.default_account().expect("default"), admin);
        assert_eq!(hooks.image_name_prefix().expect("prefix"), d.role);
        assert_eq!(hooks.recommended_instance_type().expect("type"), "t3.micro");
        let pm = if d.image_name_pattern.starts_with("debian")
            || d.image_name_pattern.starts_with("ubuntu")
        {
            "apt"
        } else {
            "dnf"
        };
        assert_eq!(
            hooks.features().expect("features"),
            [pm, "systemd", "cloud-init", "ephemeral-disks"]
        );
        assert!(host.commands().is_empty(), "declared data touches no box");
    }
}

#[test]
fn every_role_contributes_the_disk_bootcmd_and_keeps_cloud_init_off_ephemeral0() {
    for d in DISTROS {
        let host = FakeHost::new();
        let config = role(d.role)
            .hooks(&host)
            .cloud_config()
            .expect("cloud config");
        let json = serde_json::to_value(&config).expect("json");
        assert_eq!(
            json,
            serde_json::json!({
                "bootcmd": [ephemeral::bootcmd()],
                "mounts": [["ephemeral0"]],
            }),
            "{}",
            d.role
        );
        assert!(host.commands().is_empty());
    }
}

/// A plugin role on top of a built-in one: more packages, its own substitution, a service.
#[derive(Default)]
struct Tools;
impl Role for Tools {
    fn packages(&self, cx: &Cx) -> Result<Vec<String>> {
        let mut p = cx.sup().packages()?;
        p.extend(["python-dev", "build-essential", "htop"].map(String::from));
        Ok(p)
    }
    fn package_substitutions(&self, cx: &Cx) -> Result<Vec<Substitution>> {
        let mut s = cx.sup().package_substitutions()?;
        s.push(Substitution::new("python3-devel", &["python3.12-devel"]));
        Ok(s)
    }
    fn post_install_packages(&self, cx: &Cx) -> Result<()> {
        cx.sup().post_install_packages()?;
        systemd::install_service(
            cx,
            "tools",
            &systemd::simple_service("Tools", "/usr/bin/tools"),
        )
    }
    fn cloud_config(&self, cx: &Cx) -> Result<CloudConfig> {
        let mut c = cx.sup().cloud_config()?;
        cgcloud_builtin_roles::cloud_init::CloudInit::new()
            .runcmd("touch /tools")
            .merge_into(&mut c);
        Ok(c)
    }
}

#[test]
fn substitutions_apply_transitively_across_the_chain() {
    let r = child::<Tools>("tools-box", "generic-rocky-9-box");
    let host = FakeHost::new();
    r.setup(&host, false).expect("setup");
    // python-dev -> python3-dev (family) -> python3-devel (family) -> python3.12-devel (the
    // plugin's own); build-essential -> gcc gcc-c++ make; htop dropped (Rocky).
    let packages = "mdadm python3.12-devel gcc gcc-c++ make";
    assert_eq!(
        host.commands(),
        [
            format!("run: {DNF4} makecache"),
            format!("run: {DNF4} install {packages}"),
            format!("run: rpm -q --whatprovides {packages}"),
            DISKS[0].to_string(),
            DISKS[1].to_string(),
            "sudo put: /etc/systemd/system/tools.service (644)".to_string(),
            "sudo: systemctl daemon-reload".to_string(),
            "sudo: systemctl enable --now tools.service".to_string(),
        ]
    );
    let unit = String::from_utf8(
        host.file("/etc/systemd/system/tools.service")
            .expect("unit"),
    )
    .expect("text");
    assert!(unit.contains("ExecStart=/usr/bin/tools\n"), "{unit}");

    // On apt the same names stay Debian's.
    let r = child::<Tools>("tools-box", "generic-ubuntu-noble-box");
    let host = FakeHost::new();
    r.setup(&host, false).expect("setup");
    assert_eq!(
        host.commands()[2],
        format!("run: {APT} {DPKG} --no-install-recommends install htop mdadm python3-dev build-essential")
    );
}

#[test]
fn a_plugin_role_appends_to_the_cloud_config_after_the_features() {
    let r = child::<Tools>("tools-box", "generic-debian-bookworm-box");
    let host = FakeHost::new();
    let json = serde_json::to_value(r.hooks(&host).cloud_config().expect("config")).expect("json");
    assert_eq!(json["bootcmd"], serde_json::json!([ephemeral::bootcmd()]));
    assert_eq!(json["runcmd"], serde_json::json!(["touch /tools"]));
}

#[test]
fn a_service_name_with_a_slash_is_refused_before_touching_the_box() {
    #[derive(Default)]
    struct Bad;
    impl Role for Bad {
        fn post_install_packages(&self, cx: &Cx) -> Result<()> {
            systemd::install_service(cx, "../evil", "[Service]\n")
        }
    }
    let r = child::<Bad>("bad-box", "generic-fedora-43-box");
    let host = FakeHost::new();
    let e = r.hooks(&host).post_install_packages().expect_err("refused");
    assert!(
        e.message
            .contains("`../evil` is not a usable systemd service name"),
        "{e}"
    );
    assert!(host.commands().is_empty());
}

/// A fake host that answers commands containing a needle from a queue of outputs, in order,
/// then with success; it records calls like `FakeHost`.
#[derive(Default)]
struct ScriptedHost {
    commands: Mutex<Vec<String>>,
    script: Mutex<Vec<(String, VecDeque<CmdOutput>)>>,
    logs: Mutex<Vec<(Level, String)>>,
}

impl ScriptedHost {
    fn answer(self, needle: &str, outputs: Vec<CmdOutput>) -> Self {
        self.script
            .lock()
            .expect("lock")
            .push((needle.into(), outputs.into()));
        self
    }
    fn commands(&self) -> Vec<String> {
        self.commands.lock().expect("lock").clone()
    }
    fn logs(&self) -> Vec<(Level, String)> {
        self.logs.lock().expect("lock").clone()
    }
    fn next(&self, command: &str) -> CmdOutput {
        let mut script = self.script.lock().expect("lock");
        script
            .iter_mut()
            .find(|(needle, _)| command.contains(needle.as_str()))
            .and_then(|(_, queue)| queue.pop_front())
            .unwrap_or_default()
    }
}

impl Services for ScriptedHost {
    fn run(&self, command: &str) -> std::result::Result<CmdOutput, String> {
        self.commands
            .lock()
            .expect("lock")
            .push(format!("run: {command}"));
        Ok(self.next(command))
    }
    fn sudo(&self, command: &str, _user: Option<&str>) -> std::result::Result<CmdOutput, String> {
        self.commands
            .lock()
            .expect("lock")
            .push(format!("sudo: {command}"));
        Ok(self.next(command))
    }
    fn put_file(
        &self,
        path: &str,
        _data: &[u8],
        mode: u32,
        _sudo: bool,
    ) -> std::result::Result<(), String> {
        self.commands
            .lock()
            .expect("lock")
            .push(format!("sudo put: {path} ({mode:o})"));
        Ok(())
    }
    fn get_file(&self, path: &str, _sudo: bool) -> std::result::Result<Vec<u8>, String> {
        Err(format!("no file `{path}` on the scripted host"))
    }
    fn log(&self, level: Level, message: &str) {
        self.logs
            .lock()
            .expect("lock")
            .push((level, message.into()));
    }
    fn option(&self, _name: &str) -> Option<String> {
        None
    }
}

fn failed(status: i32, stderr: &str) -> CmdOutput {
    CmdOutput::new(status, "", stderr)
}

const HASH_SUM: &str = "E: Failed to fetch http://mirror/debian/dists/bookworm/main/binary-amd64/Packages.xz  Hash Sum mismatch";
const LISTS_LOCK: &str =
    "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 912 (apt-get)";

#[test]
fn apt_update_retries_a_mirror_hiccup_and_then_goes_on() {
    let host = ScriptedHost::default().answer(
        " update",
        vec![
            failed(100, HASH_SUM),
            failed(
                100,
                "E: Failed to fetch http://mirror/x  503  Service Unavailable [IP: 10.0.0.1 80]",
            ),
        ],
    );
    role("generic-debian-bookworm-box")
        .setup(&host, false)
        .expect("the third update succeeds");
    let update = format!("run: {APT} --error-on=any update");
    let mut want = vec![
        "sudo put: /etc/apt/apt.conf.d/99timeout (644)".to_string(),
        update.clone(),
        "run: sleep 5".into(),
        update.clone(),
        "run: sleep 10".into(),
        update,
    ];
    want.extend(apt_setup(false).into_iter().skip(2));
    assert_eq!(host.commands(), want);
    let warnings: Vec<_> = host
        .logs()
        .into_iter()
        .filter(|(l, _)| *l == Level::Warn)
        .map(|(_, m)| m)
        .collect();
    assert_eq!(
        warnings,
        [
            "a package mirror hiccuped (attempt 1 of 5); retrying in 5s",
            "a package mirror hiccuped (attempt 2 of 5); retrying in 10s"
        ]
    );
}

#[test]
fn apt_update_gives_up_after_the_last_attempt() {
    let host = ScriptedHost::default().answer(" update", vec![failed(100, HASH_SUM); 10]);
    let e = role("generic-ubuntu-noble-box")
        .setup(&host, false)
        .expect_err("the mirror stays broken");
    let commands = host.commands();
    let updates = commands.iter().filter(|c| c.ends_with(" update")).count();
    assert_eq!(updates as u32, MIRROR_ATTEMPTS);
    let sleeps: Vec<_> = commands
        .iter()
        .filter(|c| c.starts_with("run: sleep"))
        .collect();
    assert_eq!(
        sleeps,
        [
            "run: sleep 5",
            "run: sleep 10",
            "run: sleep 15",
            "run: sleep 20"
        ]
    );
    assert!(
        !commands.iter().any(|c| c.contains(" install ")),
        "set-up stopped"
    );
    let ruler = "-".repeat(40);
    assert_eq!(
        e.message,
        format!(
            "hook `sync_package_repos`: the package mirror kept failing (5 attempts): command `{} --error-on=any update` exited with status 100\n{ruler} stderr\n{HASH_SUM}\n{ruler}",
            APT.trim_start_matches("sudo -n ")
        )
    );
}

#[test]
fn other_failures_are_not_retried() {
    let missing = "E: Unable to locate package htop";
    let host = ScriptedHost::default().answer(" install ", vec![failed(100, missing)]);
    let e = role("generic-debian-trixie-box")
        .setup(&host, false)
        .expect_err("no such package");
    let installs = host
        .commands()
        .iter()
        .filter(|c| c.contains(" install "))
        .count();
    assert_eq!(installs, 1);
    assert!(!host.commands().iter().any(|c| c.contains("sleep")));
    assert!(
        e.message
            .starts_with("hook `install_packages`: command `env LC_ALL=C"),
        "{e}"
    );
    assert!(e.message.contains(missing), "{e}");

    // A 404 is permanent even when a timeout shows up next to it.
    let host = ScriptedHost::default().answer(
        " update",
        vec![failed(
            100,
            "E: Failed to fetch http://m/dists/x/InRelease  404  Not Found\nE: Failed to fetch http://m/y  Connection timed out",
        )],
    );
    role("generic-debian-bookworm-box")
        .setup(&host, false)
        .expect_err("missing repository");
    assert_eq!(
        host.commands()
            .iter()
            .filter(|c| c.ends_with(" update"))
            .count(),
        1
    );
}

#[test]
fn a_held_lock_is_waited_for_then_set_up_goes_on() {
    let host = ScriptedHost::default().answer(" update", vec![failed(100, LISTS_LOCK); 2]);
    role("generic-ubuntu-jammy-box")
        .setup(&host, false)
        .expect("the lock is released");
    let update = format!("run: {APT} --error-on=any update");
    assert_eq!(
        host.commands()[1..6],
        [
            update.clone(),
            format!("run: sleep {LOCK_POLL_SECS}"),
            update.clone(),
            format!("run: sleep {LOCK_POLL_SECS}"),
            update,
        ]
    );
    assert_eq!(
        host.logs(),
        [(
            Level::Info,
            "another process holds the package manager's lock; waiting up to 300s".to_string()
        )]
    );
}

#[test]
fn a_lock_held_too_long_is_an_error_naming_the_wait() {
    let polls = LOCK_POLLS as usize;
    let host = ScriptedHost::default().answer(" update", vec![failed(100, LISTS_LOCK); polls + 5]);
    let e = role("generic-debian-bookworm-box")
        .setup(&host, false)
        .expect_err("the lock is never released");
    let commands = host.commands();
    assert_eq!(
        commands.iter().filter(|c| c.ends_with(" update")).count(),
        polls + 1
    );
    assert_eq!(
        commands
            .iter()
            .filter(|c| c.starts_with("run: sleep"))
            .count(),
        polls
    );
    assert!(
        e.message.starts_with("hook `sync_package_repos`: the package manager's lock was still held after 300s; find what holds it on the box (`ps -ef`) and try again: command `"),
        "{e}"
    );
}

#[test]
fn a_dnf4_lock_exit_is_waited_for() {
    let host = ScriptedHost::default().answer(
        " install ",
        vec![failed(200, "Error: RPMDB already locked by 4242")],
    );
    role("generic-amazonlinux-2023-box")
        .setup(&host, false)
        .expect("the lock is released");
    let install = format!("run: {DNF4} install htop mdadm");
    assert_eq!(
        host.commands()[1..4],
        [
            install.clone(),
            format!("run: sleep {LOCK_POLL_SECS}"),
            install
        ]
    );
}

#[test]
fn a_dnf_mirror_hiccup_is_retried() {
    let host = ScriptedHost::default().answer(
        "makecache",
        vec![failed(
            1,
            "Curl error (28): Timeout was reached for https://mirror/repodata/repomd.xml",
        )],
    );
    role("generic-fedora-43-box")
        .setup(&host, true)
        .expect("the second makecache succeeds");
    let mut want = vec![format!("run: {DNF5} makecache"), "run: sleep 5".to_string()];
    want.extend(expected_setup("generic-fedora-43-box", true));
    assert_eq!(host.commands(), want);
}

#[test]
fn a_package_dnf_did_not_install_is_an_error() {
    let host = FakeHost::new().respond(
        "rpm -q",
        CmdOutput::new(
            1,
            "htop-3.3.0-1.fc43.x86_64\nno package provides mdadm\n",
            "",
        ),
    );
    let e = role("generic-fedora-43-box")
        .setup(&host, false)
        .expect_err("mdadm is missing");
    assert_eq!(
        e.message,
        "hook `install_packages`: dnf reported success but this package is not installed: `mdadm`; check the names and that the repositories providing them are enabled"
    );
    assert!(
        !host.commands().iter().any(|c| c.contains("ephemeral")),
        "set-up stopped"
    );
}
