//! Loads real plugin files built from `plugins/example` and `tests/plugins`: one test per bad
//! input of the issue, the two ABI-compatibility directions, discovery, the lock, pins and the
//! example plugin's hooks against the fake host.
//!
//! Files that must never be `dlopen`ed (truncated, `panic = "abort"`, …) are checked against
//! `/proc/self/maps` after the refusal.
#![allow(clippy::unwrap_used)] // A test crate: an unwrap that fails is a failing test.

mod support;

use cgcloud_plugin_api::testing::FakeHost;
use cgcloud_plugin_host::{
    add_plugin, loader, verify, Candidate, Offline, Origin, PluginError, PluginSources, Registry,
};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use support::fixtures;

/// Copies `file` into a fresh directory (mode 0644) and returns both.
fn copy_to_temp(file: &Path) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let dest = dir.path().join(file.file_name().expect("file name"));
    std::fs::copy(file, &dest).expect("copy");
    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    (dir, dest)
}

fn cli(files: &[&Path], data_dir: &Path) -> PluginSources {
    PluginSources {
        cli: files.iter().map(|f| f.to_path_buf()).collect(),
        data_dir: data_dir.to_path_buf(),
        ..PluginSources::default()
    }
}

fn load_err(sources: &PluginSources) -> PluginError {
    match Registry::load(sources) {
        Ok(_) => panic!("loading should fail"),
        Err(e) => e,
    }
}

fn is_mapped(path: &Path) -> bool {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("maps");
    maps.contains(&path.display().to_string())
}

/// Nothing else was affected: the data directory is untouched and a good plugin still loads.
fn assert_unaffected(data_dir: &Path) {
    assert!(
        !data_dir.join("plugins.lock").exists(),
        "no lock file written"
    );
    let (_d, example) = copy_to_temp(&fixtures().example);
    let reg = Registry::load(&cli(&[&example], data_dir)).expect("a good plugin still loads");
    assert!(reg.role("example-web-box").is_ok());
}

#[test]
fn text_file_is_refused() {
    let data = tempfile::tempdir().expect("dir");
    let file = data.path().join("libnotes.so");
    std::fs::write(&file, "just some text\n").expect("write");
    let e = load_err(&cli(&[&file], data.path()));
    assert_eq!(
        e.to_string(),
        format!("`{}` is not a plugin: it is neither an ELF nor a Mach-O shared library; pass the `lib*.so` (or `lib*.dylib`) file your plugin's build produced", file.canonicalize().expect("c").display())
    );
    assert_unaffected(data.path());
}

#[test]
fn executable_is_refused() {
    let f = fixtures();
    let (_d, exe) = copy_to_temp(&f.compat_host());
    let data = tempfile::tempdir().expect("dir");
    let e = load_err(&cli(&[&exe], data.path()));
    assert_eq!(
        e.to_string(),
        format!("`{}` is an executable, not a plugin library; pass the `lib*.so` (or `lib*.dylib`) file your plugin's `cdylib` build produced", exe.canonicalize().expect("c").display())
    );
    assert!(!is_mapped(&exe));
    assert_unaffected(data.path());
}

#[test]
fn library_without_entry_symbol_is_refused() {
    let (_d, lib) = copy_to_temp(&fixtures().lib("no-entry"));
    let data = tempfile::tempdir().expect("dir");
    let e = load_err(&cli(&[&lib], data.path()));
    assert_eq!(
        e.to_string(),
        format!("`{}` is not a cgcloud plugin: it has no cgcloud plugin entry point; declare its roles with `cgcloud_plugin_api::export_plugin!`", lib.canonicalize().expect("c").display())
    );
    assert!(!is_mapped(&lib), "refused before dlopen");
    assert_unaffected(data.path());
}

#[test]
fn truncated_plugin_is_refused_without_dlopen() {
    let (_d, lib) = copy_to_temp(&fixtures().example);
    let bytes = std::fs::read(&lib).expect("read");
    std::fs::write(&lib, &bytes[..bytes.len() / 3]).expect("truncate");
    let data = tempfile::tempdir().expect("dir");
    let e = load_err(&cli(&[&lib], data.path()));
    let line = e.to_string();
    let shown = lib.canonicalize().expect("c").display().to_string();
    assert!(
        line.starts_with(&format!("`{shown}` is truncated or corrupt (")),
        "{line}"
    );
    assert!(
        line.ends_with("); rebuild the plugin or copy it again"),
        "{line}"
    );
    assert!(!line.contains('\n'));
    assert!(!is_mapped(&lib), "a truncated file must never be dlopened");
    assert_unaffected(data.path());
}

#[test]
fn sha256_mismatch_is_refused_before_dlopen() {
    let f = fixtures();
    let data = tempfile::tempdir().expect("dir");
    let (_d, lib) = copy_to_temp(&f.example);
    let sources = cli(&[], data.path());
    let report = add_plugin(&lib, &sources).expect("add");
    assert!(report.copied);
    // Replace the trusted file's content behind the lock's back.
    let mut bytes = std::fs::read(&report.file).expect("read");
    bytes.extend_from_slice(b"tampered");
    std::fs::write(&report.file, &bytes).expect("tamper");
    let lock_before = std::fs::read(sources.lock_path()).expect("lock");
    let e = load_err(&sources);
    let found = cgcloud_plugin_host::sha256_hex(&bytes);
    assert_eq!(
        e.to_string(),
        format!(
            "sha256 of `{f}` does not match the lock file `{l}` (found {found}, locked {locked}); if you replaced it on purpose, run `cgcloud plugin add {f}`",
            f = report.file.display(),
            l = sources.lock_path().display(),
            locked = report.sha256
        )
    );
    assert!(!is_mapped(&report.file), "checked before dlopen");
    assert_eq!(
        std::fs::read(sources.lock_path()).expect("lock"),
        lock_before,
        "lock untouched"
    );
}

#[test]
fn unlocked_file_in_data_dir_is_refused() {
    let data = tempfile::tempdir().expect("dir");
    let plugins = data.path().join("plugins");
    std::fs::create_dir_all(&plugins).expect("mkdir");
    let dest = plugins.join("libexample_roles.so");
    std::fs::copy(&fixtures().example, &dest).expect("copy");
    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let sources = cli(&[], data.path());
    let e = load_err(&sources);
    let dest = dest.canonicalize().expect("c");
    assert_eq!(
        e.to_string(),
        format!(
            "`{f}` is not in the lock file `{l}`; run `cgcloud plugin add {f}` to trust it",
            f = dest.display(),
            l = sources.lock_path().display()
        )
    );
    assert!(!is_mapped(&dest));
}

#[test]
fn abi_major_the_host_does_not_speak_is_refused() {
    let (_d, lib) = copy_to_temp(&fixtures().lib("abi-two"));
    let data = tempfile::tempdir().expect("dir");
    let e = load_err(&cli(&[&lib], data.path()));
    assert_eq!(
        e.to_string(),
        format!("plugin `abi-two` (`{}`) was built with cgcloud-plugin-api 2.0.0 (plugin ABI 2); this cgcloud was built with cgcloud-plugin-api 1.0.0 (ABI 1); rebuild the plugin against cgcloud-plugin-api 1.x, or use a cgcloud built with cgcloud-plugin-api 2.x", lib.canonicalize().expect("c").display())
    );
    assert!(!is_mapped(&lib));
    assert_unaffected(data.path());
}

#[test]
fn panic_abort_build_is_refused_without_dlopen() {
    let (_d, lib) = copy_to_temp(&fixtures().panic_abort());
    let data = tempfile::tempdir().expect("dir");
    let e = load_err(&cli(&[&lib], data.path()));
    assert_eq!(
        e.to_string(),
        format!("plugin `panic-abort` (`{}`) was built with `panic = \"abort\"`, so a panic in it would kill cgcloud; rebuild it with the default `panic = \"unwind\"`", lib.canonicalize().expect("c").display())
    );
    assert!(
        !is_mapped(&lib),
        "a panic=abort plugin must never be dlopened"
    );
    assert_unaffected(data.path());
}

#[test]
fn panicking_hook_is_an_error_and_the_host_carries_on() {
    let (_d, lib) = copy_to_temp(&fixtures().lib("panicking-hook"));
    let data = tempfile::tempdir().expect("dir");
    let reg = Registry::load(&cli(&[&lib], data.path())).expect("loads");
    let role = reg.role("panicky-box").expect("role");
    let host = FakeHost::new();
    let e = role.setup(&host, false).expect_err("packages panics");
    assert!(e.panicked());
    let line = e.to_string();
    assert!(
        line.starts_with("role `panicky-box` (plugin `panicking-hook` 0.1.0) panicked in hook `packages`: index out of bounds: the len is 0 but the index is 3 (at "),
        "{line}"
    );
    assert!(!line.contains('\n'), "{line}");
    // The host carries on: the same role answers other hooks.
    role.hooks(&host)
        .post_install_packages()
        .expect("other hooks still work");
    assert_eq!(
        host.commands().last().map(String::as_str),
        Some("sudo: echo still alive")
    );
    assert_eq!(role.hooks(&host).admin_account().expect("admin"), "admin");
}

#[test]
fn duplicate_role_names_both_files_and_qualified_names_work() {
    let f = fixtures();
    let (_d1, example) = copy_to_temp(&f.example);
    let (_d2, dup) = copy_to_temp(&f.lib("dup-roles"));
    let data = tempfile::tempdir().expect("dir");
    let reg = Registry::load(&cli(&[&example, &dup], data.path())).expect("loads");
    let e = reg.role("example-web-box").err().expect("ambiguous");
    assert_eq!(
        e.to_string(),
        format!(
            "role `example-web-box` is defined by plugin `example-roles` (`{}`) and plugin `dup-roles` (`{}`); say which one with `example-roles/example-web-box` or `dup-roles/example-web-box`",
            example.canonicalize().expect("c").display(),
            dup.canonicalize().expect("c").display()
        )
    );
    assert_eq!(
        reg.role("dup-roles/example-web-box")
            .expect("qualified")
            .plugin(),
        "dup-roles"
    );
    assert_eq!(
        reg.role("example-roles/example-web-box")
            .expect("qualified")
            .plugin(),
        "example-roles"
    );
    let summaries = reg.roles();
    let conflicting: Vec<_> = summaries
        .iter()
        .filter(|r| r.conflict)
        .map(|r| r.qualified.as_str())
        .collect();
    assert_eq!(
        conflicting,
        ["example-roles/example-web-box", "dup-roles/example-web-box"]
    );
    assert_eq!(verify(&cli(&[&example, &dup], data.path())).len(), 1);
}

#[test]
fn extends_cycle_is_an_error() {
    let (_d, lib) = copy_to_temp(&fixtures().lib("cycle-roles"));
    let data = tempfile::tempdir().expect("dir");
    let e = load_err(&cli(&[&lib], data.path()));
    assert_eq!(
        e.to_string(),
        format!("roles `chicken-box` → `egg-box` → `chicken-box` form an `extends` cycle (plugin `cycle-roles`, `{}`); fix `extends` in one of them", lib.canonicalize().expect("c").display())
    );
    assert_unaffected(data.path());
}

#[test]
fn unknown_parent_is_an_error() {
    let (_d, lib) = copy_to_temp(&fixtures().lib("unknown-parent"));
    let data = tempfile::tempdir().expect("dir");
    let e = load_err(&cli(&[&lib], data.path()));
    assert_eq!(
        e.to_string(),
        format!("role `orphan-box` (plugin `unknown-parent`, `{}`) extends `no-such-box`, which no built-in role or loaded plugin defines; load the plugin that defines it or fix `extends`", lib.canonicalize().expect("c").display())
    );
    assert_unaffected(data.path());
}

#[test]
fn world_writable_plugin_is_refused() {
    let (_d, lib) = copy_to_temp(&fixtures().example);
    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let data = tempfile::tempdir().expect("dir");
    let e = load_err(&cli(&[&lib], data.path()));
    let shown = lib.canonicalize().expect("c").display().to_string();
    assert_eq!(
        e.to_string(),
        format!("`{shown}` is writable by group or others (mode 666), so anyone could replace it; run `chmod go-w {shown}`")
    );
    assert!(!is_mapped(&lib));
    assert_unaffected(data.path());
}

#[test]
fn pin_the_version_does_not_satisfy_is_refused() {
    let (_d, lib) = copy_to_temp(&fixtures().example);
    let data = tempfile::tempdir().expect("dir");
    let mut sources = cli(&[&lib], data.path());
    sources.pins.insert(
        "example-roles".into(),
        semver::VersionReq::parse("^0.3").expect("req"),
    );
    let e = load_err(&sources);
    assert_eq!(
        e.to_string(),
        format!("plugin `example-roles` 0.1.0 (`{}`) does not satisfy the pinned requirement `^0.3` in `[plugins.require]`; install a matching version or change the pin", lib.canonicalize().expect("c").display())
    );
    sources.pins.insert(
        "example-roles".into(),
        semver::VersionReq::parse("^0.1").expect("req"),
    );
    Registry::load(&sources).expect("a satisfied pin loads");
}

#[test]
fn plugin_built_against_newer_api_loads_in_this_host() {
    let (_d, lib) = copy_to_temp(&fixtures().lib("compat-new"));
    let data = tempfile::tempdir().expect("dir");
    let reg = Registry::load(&cli(&[&lib], data.path())).expect("a 1.1 plugin loads in a 1.0 host");
    let plugin = reg
        .plugins()
        .into_iter()
        .find(|p| p.name == "compat-new")
        .expect("listed");
    assert_eq!(plugin.api, "1.1.0");
    let role = reg.role("newer-box").expect("role");
    let host = FakeHost::new();
    role.setup(&host, false).expect("set-up runs");
    let commands = host.commands();
    assert!(
        commands
            .iter()
            .any(|c| c.ends_with("install htop mdadm newer-tool")),
        "{commands:?}"
    );
    assert_eq!(
        commands.last().map(String::as_str),
        Some("sudo: newer-tool --init")
    );
    // The hook only 1.1 knows is never called by this host.
    assert!(!cgcloud_plugin_api::role::HOOK_NAMES.contains(&"pre_terminate"));
    assert!(!commands.iter().any(|c| c.contains("--flush")));
}

#[test]
fn plugin_built_against_this_api_runs_in_a_newer_host() {
    let f = fixtures();
    let (_d, lib) = copy_to_temp(&f.example);
    let out = std::process::Command::new(f.compat_host())
        .arg(&lib)
        .arg("example-web-box")
        .output()
        .expect("run compat-host");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["api"], "1.1.0");
    // The 1.0 plugin does not know `pre_terminate`: the host fell back to the parent chain
    // and the base default, which logs this line.
    assert_eq!(json["pre_terminate"], serde_json::Value::Null);
    assert_eq!(json["logs"][0], "base pre_terminate: nothing to do");
    assert_eq!(json["setup"], serde_json::Value::Null);
    let commands: Vec<String> = serde_json::from_value(json["commands"].clone()).expect("list");
    assert_eq!(
        commands.last().map(String::as_str),
        Some("run: dpkg-query -W -f='${Version}' nginx")
    );
}

#[test]
fn example_plugin_hooks_run_against_the_fake_host() {
    let (_d, lib) = copy_to_temp(&fixtures().example);
    let data = tempfile::tempdir().expect("dir");
    let reg = Registry::load(&cli(&[&lib], data.path())).expect("loads");
    let summary = reg
        .roles()
        .into_iter()
        .find(|r| r.name == "example-web-box")
        .expect("listed");
    assert_eq!(summary.extends, ["builtin/generic-debian-bookworm-box"]);
    assert_eq!(summary.description, "An nginx web server on Debian 12");
    let role = reg.role("example-web-box").expect("role");

    let declared = role.declared(&Offline::quiet()).expect("declared data");
    assert_eq!(declared.admin_account, "admin");
    assert_eq!(declared.default_account, "admin");
    assert_eq!(declared.image_name_prefix, "example-web-box");
    assert_eq!(declared.base_image.owner, "136693071363");
    assert_eq!(declared.options.len(), 1);
    assert_eq!(declared.options[0].name, "site_title");
    assert_eq!(declared.packages, ["htop", "mdadm", "nginx"]);
    let hash = role.definition_hash(&Offline::quiet()).expect("hash");
    assert_eq!(
        hash,
        role.definition_hash(&Offline::quiet()).expect("hash"),
        "stable"
    );
    assert_eq!(hash.len(), 64);

    let host = FakeHost::new().with_option("site_title", "Hello").respond(
        "dpkg-query",
        cgcloud_plugin_api::CmdOutput::success("1.22.1-9"),
    );
    role.on_instance_ready(&host, true).expect("ready");
    role.setup(&host, false).expect("set-up");
    let apt = "sudo -n env LC_ALL=C DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=300";
    let dpkg = "-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold";
    assert_eq!(
        host.commands(),
        [
            "sudo put: /etc/apt/apt.conf.d/99timeout (644)".to_string(),
            format!("run: {apt} --error-on=any update"),
            format!("run: {apt} {dpkg} --no-install-recommends install htop mdadm nginx"),
            // The built-in parent's instance-store disk script, once mdadm is installed.
            "sudo put: /usr/local/sbin/cgcloud-ephemeral-disks (755)".to_string(),
            "sudo: /usr/local/sbin/cgcloud-ephemeral-disks".to_string(),
            "sudo put: /var/www/html/index.html (644)".to_string(),
            "sudo -u www-data: test -r /var/www/html/index.html".to_string(),
            "sudo: systemctl enable --now nginx".to_string(),
            "run: dpkg-query -W -f='${Version}' nginx".to_string(),
        ]
    );
    assert!(
        String::from_utf8_lossy(&host.file("/var/www/html/index.html").expect("page"))
            .contains("<h1>Hello</h1>")
    );
    // Plugin log lines reach the host's logger.
    assert_eq!(
        host.logs().last().map(|(_, m)| m.as_str()),
        Some("nginx 1.22.1-9 serves `Hello`")
    );
}

#[test]
fn cancelled_hook_stops_with_a_cancelled_error() {
    let (_d, lib) = copy_to_temp(&fixtures().example);
    let data = tempfile::tempdir().expect("dir");
    let reg = Registry::load(&cli(&[&lib], data.path())).expect("loads");
    let role = reg.role("example-web-box").expect("role");
    let host = FakeHost::new();
    host.cancel();
    let e = role.setup(&host, false).expect_err("cancelled");
    assert!(e.cancelled(), "{e}");
    assert_eq!(e.to_string(), "role `example-web-box` (plugin `example-roles` 0.1.0) was cancelled in hook `sync_package_repos`: cancelled by cgcloud");
    assert!(host.commands().is_empty());
}

#[test]
fn discovery_order_is_cli_env_config_data_dir() {
    let root = tempfile::tempdir().expect("dir");
    let mk = |dir: &str, file: &str| {
        let d = root.path().join(dir);
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join(file), b"x").expect("write");
        d
    };
    let cli_dir = mk("cli", "libb.so");
    mk("cli", "liba.so");
    mk("cli", "notes.txt");
    let env_dir = mk("env", "libenv.so");
    let cfg_dir = mk("cfg", "libcfg.so");
    let data = root.path().join("data");
    mk("data/plugins", "libdata.so");
    let config: toml::Value =
        toml::from_str(&format!("paths = [{:?}]", cfg_dir.display().to_string())).expect("toml");
    let sources = PluginSources::from_config(
        vec![cli_dir.clone()],
        Some(env_dir.as_os_str()),
        Some(&config),
        data.clone(),
    )
    .expect("sources");
    let names: Vec<String> = sources
        .candidates()
        .expect("candidates")
        .iter()
        .map(|c| {
            format!(
                "{:?}:{}",
                c.origin,
                c.path.file_name().expect("n").to_string_lossy()
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            "Cli:liba.so",
            "Cli:libb.so",
            "Env:libenv.so",
            "Config:libcfg.so",
            "DataDir:libdata.so"
        ]
    );
}

#[test]
fn same_plugin_from_two_sources_uses_the_higher_one_and_says_so() {
    let f = fixtures();
    let (_d1, first) = copy_to_temp(&f.example);
    let (d2, _second) = copy_to_temp(&f.example);
    let data = tempfile::tempdir().expect("dir");
    let mut sources = cli(&[&first], data.path());
    sources.env = vec![d2.path().to_path_buf()];
    let reg = Registry::load(&sources).expect("loads with a warning");
    assert_eq!(reg.warnings().len(), 1);
    assert!(
        reg.warnings()[0].starts_with("plugin `example-roles` is loaded twice: from `"),
        "{:?}",
        reg.warnings()
    );
    let role = reg.role("example-web-box").expect("role");
    assert_eq!(
        role.file(),
        Some(first.canonicalize().expect("c").as_path())
    );
    assert_eq!(verify(&sources).len(), 1, "verify reports it");
}

#[test]
fn add_copies_locks_and_then_loads_from_the_data_dir() {
    let (_d, lib) = copy_to_temp(&fixtures().example);
    let data = tempfile::tempdir().expect("dir");
    let sources = cli(&[], data.path());
    let report = add_plugin(&lib, &sources).expect("add");
    assert_eq!(
        (report.name.as_str(), report.version.as_str(), report.abi),
        ("example-roles", "0.1.0", 1)
    );
    assert_eq!(
        report.file,
        data.path()
            .canonicalize()
            .expect("c")
            .join("plugins/libexample_roles.so")
    );
    let lock = cgcloud_plugin_host::Lock::read(&sources.lock_path()).expect("lock");
    assert_eq!(lock.plugins.len(), 1);
    assert_eq!(
        lock.plugins[0].sha256,
        cgcloud_plugin_host::sha256_hex(&std::fs::read(&lib).expect("read"))
    );
    let reg = Registry::load(&sources).expect("locked plugin loads from the data dir");
    let plugin = reg
        .plugins()
        .into_iter()
        .find(|p| p.name == "example-roles")
        .expect("listed");
    assert_eq!(plugin.origin, cgcloud_plugin_host::Origin::DataDir);
    assert!(verify(&sources).is_empty());
    // Adding again replaces the entry instead of duplicating it.
    let again = add_plugin(&lib, &sources).expect("add again");
    assert_eq!(again.replaced.len(), 1);
    assert_eq!(
        cgcloud_plugin_host::Lock::read(&sources.lock_path())
            .expect("lock")
            .plugins
            .len(),
        1
    );
}

#[test]
fn add_refuses_a_bad_file_and_writes_nothing() {
    let data = tempfile::tempdir().expect("dir");
    let file = data.path().join("libtext.so");
    std::fs::write(&file, "text").expect("write");
    let sources = cli(&[], data.path());
    assert!(matches!(
        add_plugin(&file, &sources),
        Err(PluginError::NotALibrary(_))
    ));
    assert!(!sources.lock_path().exists());
    assert!(!sources.plugins_dir().exists());
}

#[test]
fn verify_reports_every_problem() {
    let f = fixtures();
    let (d, _) = copy_to_temp(&f.lib("cycle-roles"));
    std::fs::copy(
        f.lib("unknown-parent"),
        d.path().join("libunknown_parent.so"),
    )
    .expect("copy");
    std::fs::write(d.path().join("libtext.so"), "text").expect("write");
    let data = tempfile::tempdir().expect("dir");
    let problems = verify(&cli(&[d.path()], data.path()));
    let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(problems.len(), 3, "{messages:?}");
    assert!(messages.iter().any(|m| m.contains("is not a plugin")));
    assert!(messages
        .iter()
        .any(|m| m.contains("form an `extends` cycle")));
    assert!(messages.iter().any(|m| m.contains("extends `no-such-box`")));
}

#[test]
fn builtins_only_lists_the_seven_builtin_roles() {
    let reg = Registry::builtins_only();
    let names: Vec<String> = reg.roles().into_iter().map(|r| r.name).collect();
    assert_eq!(
        names,
        [
            "generic-debian-bookworm-box",
            "generic-debian-trixie-box",
            "generic-ubuntu-jammy-box",
            "generic-ubuntu-noble-box",
            "generic-amazonlinux-2023-box",
            "generic-rocky-9-box",
            "generic-fedora-43-box"
        ]
    );
    assert!(matches!(reg.role("nope"), Err(PluginError::NoSuchRole(_))));
    let mut options = BTreeMap::new();
    options.insert("x".to_string(), "y".to_string());
    let role = reg.role("generic-rocky-9-box").expect("role");
    assert_eq!(
        role.declared(&Offline::quiet())
            .expect("data")
            .admin_account,
        "rocky"
    );
}

#[test]
fn a_plugin_swapped_between_check_and_load_is_not_loaded() {
    let (_d, lib) = copy_to_temp(&fixtures().example);
    let candidate = Candidate {
        path: lib.clone(),
        origin: Origin::Cli,
    };
    let inspected = loader::inspect(&candidate, None, &Default::default(), true)
        .expect("the example passes the checks");
    assert_eq!(inspected.info.name, "example-roles");
    // Another library takes the checked one's place at the same path ...
    let (_d2, other) = copy_to_temp(&fixtures().lib("dup-roles"));
    std::fs::rename(&other, &lib).expect("swap");
    // ... and what is loaded is still the file that was checked.
    let loaded = loader::load(inspected).expect("the checked file loads");
    assert_eq!(loaded.manifest.name, "example-roles");
}

#[test]
fn plugins_of_other_owners_or_in_open_folders_are_refused() {
    // A file of another user (its owner could swap the code).
    let (_d, lib) = copy_to_temp(&fixtures().example);
    std::os::unix::fs::chown(&lib, Some(4321), None).expect("chown (the tests run as root)");
    let data = tempfile::tempdir().expect("dir");
    let e = load_err(&cli(&[&lib], data.path()));
    assert!(
        e.to_string()
            .contains("belongs to uid 4321, neither you nor root"),
        "{e}"
    );
    assert!(!is_mapped(&lib));
    // A folder others may write, without the sticky bit.
    let (d, lib) = copy_to_temp(&fixtures().example);
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let e = load_err(&cli(&[&lib], data.path()));
    assert!(
        e.to_string()
            .contains("group or others may write (mode 777)"),
        "{e}"
    );
    // With the sticky bit (like /tmp) it is fine.
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    Registry::load(&cli(&[&lib], data.path())).expect("a sticky folder is fine");
    // A folder of another user.
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::os::unix::fs::chown(d.path(), Some(4321), None).expect("chown");
    let e = load_err(&cli(&[&lib], data.path()));
    assert!(e.to_string().contains("belongs to uid 4321"), "{e}");
    assert_unaffected(data.path());
}

#[test]
fn code_written_against_1_0_builds_and_runs_against_this_api_and_a_later_1x() {
    // The fixture build compiled the same source (`tests/plugins/author-1-0/src/author.rs`)
    // against this plugin-api and against a generated 1.1 with a new hook, a new service, a
    // new struct field and a new enum variant: that it built at all is the first check.
    for krate in ["author-1-0", "author-1-0-on-1-1"] {
        let (_d, lib) = copy_to_temp(&fixtures().lib(krate));
        let data = tempfile::tempdir().expect("dir");
        let reg = Registry::load(&cli(&[&lib], data.path())).expect("the plugin loads");
        let role = reg.role("author-box").expect("role");
        let declared = role.declared(&Offline::quiet()).expect("declared data");
        let web = declared
            .security_group_rules
            .iter()
            .find(|r| r.from_port == 80)
            .expect("port 80 rule");
        assert_eq!(
            (web.protocol.as_str(), web.to_port, &web.source),
            (
                "tcp",
                80,
                &cgcloud_plugin_api::RuleSource::Cidr("0.0.0.0/0".into())
            ),
            "{krate}"
        );
        let greeting = declared
            .options
            .iter()
            .find(|o| o.name == "greeting")
            .expect("option");
        assert_eq!(greeting.default.as_deref(), Some("hello"));
        assert_eq!(
            declared.block_devices[0].size_gib,
            Some(10),
            "{krate}: block devices"
        );

        let bad = Offline {
            options: BTreeMap::from([("times".to_string(), "11".to_string())]),
            logger: &|_, _| {},
        };
        let e = role.validate_options(&bad).expect_err("11 is refused");
        assert!(
            e.to_string().contains("`times` must be 0 to 10, not `11`"),
            "{e}"
        );
        let good = Offline {
            options: BTreeMap::from([("times".to_string(), "3".to_string())]),
            logger: &|_, _| {},
        };
        role.validate_options(&good).expect("3 is fine");

        // The hello: the role asks this host what it offers.
        role.on_instance_ready(&FakeHost::new(), true)
            .unwrap_or_else(|e| panic!("{krate}: {e}"));
    }
}

#[test]
fn cluster_types_come_with_their_roles_and_unknown_roles_are_refused() {
    let (_d, lib) = copy_to_temp(&fixtures().lib("bad-cluster"));
    let data = tempfile::tempdir().expect("dir");
    let sources = cli(&[&lib], data.path());
    let e = load_err(&sources);
    assert_eq!(
        e.to_string(),
        format!(
            "cluster type `broken` (plugin `bad-cluster`, `{}`) has worker role `no-such-box`, which no built-in role or loaded plugin defines; load the plugin that defines it or fix the cluster type",
            lib.canonicalize().expect("c").display()
        )
    );
    assert!(verify(&sources)
        .iter()
        .any(|p| p.message.contains("cluster type `broken`")));
    // What loads is listed; the broken cluster type is not.
    let (reg, problems) = cgcloud_plugin_host::load_what_loads(&sources);
    assert_eq!(problems.len(), 1, "{problems:?}");
    let clusters = reg.clusters();
    assert_eq!(clusters.len(), 1);
    assert_eq!(
        (
            clusters[0].qualified.as_str(),
            clusters[0].leader.as_str(),
            clusters[0].worker.as_str()
        ),
        (
            "bad-cluster/good",
            "bad-cluster/node-box",
            "bad-cluster/node-box"
        )
    );
    assert_eq!(reg.cluster("good").expect("found").name, "good");
    assert!(reg.cluster("broken").is_err());
}
