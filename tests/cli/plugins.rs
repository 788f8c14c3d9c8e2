//! Role plugins through the command line: the commands of PLUGINS.md, the lock file, pins, and
//! bad plugin files refused with one line (never a crash).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use cgcloud_tests::*;

/// The example plugin, as `cargo build --workspace` makes it.
fn example_plugin() -> PathBuf {
    let lib = cgcloud_bin().with_file_name("libexample_roles.so");
    assert!(
        lib.exists(),
        "`{}` is missing: run `cargo build --workspace`",
        lib.display()
    );
    lib
}

/// cgcloud with its own data directory and config file in `home`.
fn cg(home: &Path, args: &[&str]) -> Output {
    let mut c = bare_cgcloud(home, args);
    c.env("CGCLOUD_DATA_DIR", home.join("data"));
    run(c)
}

fn copy_plugin(dir: &Path, name: &str) -> PathBuf {
    let to = dir.join(name);
    std::fs::copy(example_plugin(), &to).unwrap();
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
    to
}

fn sha256(path: &Path) -> String {
    let o = run({
        let mut c = std::process::Command::new("sha256sum");
        c.arg(path);
        c
    });
    stdout(&o).split_whitespace().next().unwrap().to_string()
}

#[test]
fn a_plugin_given_with_plugin_adds_its_roles() {
    let home = tempfile::tempdir().unwrap();
    let lib = example_plugin();
    // PLUGINS.md: cgcloud --plugin target/release/libmy_roles.so list-roles
    let o = cg(
        home.path(),
        &["--plugin", lib.to_str().unwrap(), "list-roles"],
    );
    assert_success(&o);
    assert!(
        stdout(&o)
            .lines()
            .any(|l| l == "example-web-box\tAn nginx web server on Debian 12"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o)
        .lines()
        .any(|l| l.starts_with("generic-debian-bookworm-box\t")));

    let o = cg(
        home.path(),
        &["list-roles", "--json", "--plugin", lib.to_str().unwrap()],
    );
    assert_success(&o);
    let roles: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let web = roles
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "example-web-box")
        .expect("the plugin's role");
    assert_eq!(
        web["extends"],
        serde_json::json!(["builtin/generic-debian-bookworm-box"])
    );
    assert_eq!(web["plugin"], "example-roles");
    assert_eq!(web["options"][0]["name"], "site_title");

    let o = cg(
        home.path(),
        &[
            "--plugin",
            lib.to_str().unwrap(),
            "list-options",
            "example-web-box",
        ],
    );
    assert_success(&o);
    assert_eq!(
        stdout(&o),
        "site_title (text, default `cgcloud`): The title of the welcome page\n"
    );

    // A directory contributes its lib*.so files.
    let dir = tempfile::tempdir().unwrap();
    copy_plugin(dir.path(), "libexample_roles.so");
    let o = cg(
        home.path(),
        &["--plugin", dir.path().to_str().unwrap(), "list-roles"],
    );
    assert_success(&o);
    assert!(stdout(&o).contains("example-web-box"));
    // And without --plugin, the role is unknown.
    let o = cg(home.path(), &["list-options", "example-web-box"]);
    assert_user_error(&o, "no such role: `example-web-box`");
}

#[test]
fn plugin_add_locks_the_file_and_a_changed_file_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let build = tempfile::tempdir().unwrap();
    let lib = copy_plugin(build.path(), "libexample_roles.so");
    // PLUGINS.md: cgcloud plugin add target/release/libmy_roles.so
    let o = cg(home.path(), &["plugin", "add", lib.to_str().unwrap()]);
    assert_success(&o);
    let installed = home.path().join("data/plugins/libexample_roles.so");
    assert!(installed.exists(), "copied into the data directory");
    let lock = std::fs::read_to_string(home.path().join("data/plugins.lock")).unwrap();
    assert!(lock.contains("example-roles"), "{lock}");
    assert!(
        lock.contains(&sha256(&installed)),
        "the lock holds the sha256: {lock}"
    );

    // Found in the data directory without --plugin, trusted through the lock.
    let o = cg(home.path(), &["list-roles"]);
    assert_success(&o);
    assert!(stdout(&o).contains("example-web-box"));
    // PLUGINS.md: cgcloud plugin list, cgcloud plugin verify
    let o = cg(home.path(), &["plugin", "list"]);
    assert_success(&o);
    let text = stdout(&o);
    assert!(
        text.contains(&format!(
            "example-roles 0.1.0 (api 1.0.0, abi 1) {}",
            installed.display()
        )),
        "{text}"
    );
    assert!(
        text.contains("  example-web-box -> builtin/generic-debian-bookworm-box"),
        "{text}"
    );
    let o = cg(home.path(), &["plugin", "verify"]);
    assert_success(&o);
    assert!(stdout(&o).starts_with("ok: 2 plugin(s)"), "{}", stdout(&o));

    // Replace the installed file behind cgcloud's back: refused before it is loaded.
    let mut bytes = std::fs::read(&installed).unwrap();
    bytes.extend_from_slice(b"tampered");
    std::fs::write(&installed, bytes).unwrap();
    let o = cg(home.path(), &["list-roles"]);
    assert_user_error(&o, "does not match the lock file");
    assert!(
        stderr(&o).contains("cgcloud plugin add"),
        "the way out is named: {}",
        stderr(&o)
    );
    let o = cg(home.path(), &["plugin", "verify"]);
    assert_user_error(&o, "`cgcloud plugin verify` found 1 problem(s)");
    assert!(
        stdout(&o).contains("does not match the lock file"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn a_plugin_in_the_data_directory_needs_a_lock_entry() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("data/plugins");
    std::fs::create_dir_all(&dir).unwrap();
    copy_plugin(&dir, "libexample_roles.so");
    let o = cg(home.path(), &["list-roles"]);
    assert_user_error(&o, "is not in the lock file");
}

#[test]
fn version_pins_are_enforced() {
    let home = tempfile::tempdir().unwrap();
    let lib = example_plugin();
    std::fs::write(
        home.path().join("cgcloud.toml"),
        "[plugins.require]\nexample-roles = \"^0.3\"\n",
    )
    .unwrap();
    let o = cg(
        home.path(),
        &["--plugin", lib.to_str().unwrap(), "list-roles"],
    );
    assert_user_error(&o, "does not satisfy the pinned requirement `^0.3`");
    // `plugin list` shows what is wrong instead of failing: the built-in roles, and the problem.
    let o = cg(
        home.path(),
        &["--plugin", lib.to_str().unwrap(), "plugin", "list"],
    );
    assert_success(&o);
    let text = stdout(&o);
    assert!(text.contains("generic-debian-bookworm-box"), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("problem: ")
            && l.contains("does not satisfy the pinned requirement `^0.3`")),
        "{text}"
    );
    let o = cg(
        home.path(),
        &[
            "--plugin",
            lib.to_str().unwrap(),
            "plugin",
            "list",
            "--json",
        ],
    );
    assert_success(&o);
    let listed: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(listed["problems"][0]["problem"]
        .as_str()
        .is_some_and(|p| p.contains("`^0.3`")));
    std::fs::write(
        home.path().join("cgcloud.toml"),
        "[plugins.require]\nexample-roles = \"^0.1\"\n",
    )
    .unwrap();
    let o = cg(
        home.path(),
        &["--plugin", lib.to_str().unwrap(), "list-roles"],
    );
    assert_success(&o);
}

#[test]
fn bad_plugin_files_are_refused_with_one_line() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("libnotes.so");
    std::fs::write(&text, "just some notes\n").unwrap();
    let exe = dir.path().join("true");
    std::fs::copy("/bin/true", &exe).unwrap();
    let truncated = dir.path().join("libtruncated.so");
    let bytes = std::fs::read(example_plugin()).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let writable = copy_plugin(dir.path(), "libwritable.so");
    std::fs::set_permissions(&writable, std::fs::Permissions::from_mode(0o666)).unwrap();
    let no_entry = dir.path().join("libnoentry.so");
    let libm = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
        "/lib/aarch64-linux-gnu/libm.so.6",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
    .expect("a system shared library without cgcloud's entry point");
    std::fs::copy(libm, &no_entry).unwrap();
    std::fs::set_permissions(&no_entry, std::fs::Permissions::from_mode(0o644)).unwrap();

    for (file, needle) in [
        (
            &text,
            "is not a plugin: it is neither an ELF nor a Mach-O shared library",
        ),
        (&exe, "is an executable, not a plugin library"),
        (&truncated, "is truncated or corrupt"),
        (&writable, "is writable by group or others (mode 666)"),
        (
            &no_entry,
            "is not a cgcloud plugin: it has no cgcloud plugin entry point",
        ),
        (&dir.path().join("libmissing.so"), "libmissing.so"),
    ] {
        let o = cg(
            home.path(),
            &["--plugin", file.to_str().unwrap(), "list-roles"],
        );
        assert_user_error(&o, needle);
        assert!(
            stdout(&o).is_empty(),
            "nothing listed for {}",
            file.display()
        );
    }
}

#[test]
fn the_same_plugin_twice_is_reported_and_loaded_once() {
    let home = tempfile::tempdir().unwrap();
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let first = copy_plugin(a.path(), "libexample_roles.so");
    let second = copy_plugin(b.path(), "libexample_roles.so");
    let o = cg(
        home.path(),
        &[
            "--plugin",
            first.to_str().unwrap(),
            "--plugin",
            second.to_str().unwrap(),
            "list-roles",
        ],
    );
    assert_success(&o);
    assert_eq!(stdout(&o).matches("example-web-box").count(), 1);
    assert!(stderr(&o).contains("WARNING:"), "{}", stderr(&o));
}

#[test]
fn a_role_whose_declared_data_fails_is_listed_as_broken_and_the_others_still_work() {
    let home = tempfile::tempdir().unwrap();
    let lib = crate::boxes::fixture_plugin("hook-recorder");
    let lib = lib.to_str().unwrap();
    let o = cg(home.path(), &["--plugin", lib, "list-roles"]);
    assert_success(&o);
    let text = stdout(&o);
    let line = |role: &str| {
        text.lines()
            .find(|l| l.starts_with(role))
            .unwrap_or_else(|| panic!("{role} is listed: {text}"))
            .to_string()
    };
    assert!(line("broken-box").contains("BROKEN"), "{text}");
    assert!(
        line("broken-box").contains("this role is broken on purpose"),
        "{text}"
    );
    assert!(
        line("hook-recorder-box").contains("Records its box hooks"),
        "{text}"
    );
    assert!(
        !line("generic-debian-bookworm-box").contains("BROKEN"),
        "{text}"
    );

    let o = cg(home.path(), &["--plugin", lib, "list-roles", "--json"]);
    assert_success(&o);
    let list: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let by_name = |name: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {list}"))
            .clone()
    };
    assert!(by_name("broken-box")["problem"]
        .as_str()
        .is_some_and(|p| p.contains("`options`") && p.contains("broken on purpose")));
    assert!(by_name("hook-recorder-box").get("problem").is_none());

    // Using the broken role is one clear error; other roles of the plugin still work.
    let o = cg(
        home.path(),
        &["--plugin", lib, "list-options", "broken-box"],
    );
    assert_user_error(&o, "broken on purpose");
    let o = cg(
        home.path(),
        &["--plugin", lib, "list-options", "hook-recorder-box"],
    );
    assert_success(&o);
}

#[test]
fn cluster_types_are_listed_with_their_roles_and_options() {
    let home = tempfile::tempdir().unwrap();
    let lib = crate::boxes::fixture_plugin("hook-recorder");
    let lib = lib.to_str().unwrap();
    let o = cg(home.path(), &["--plugin", lib, "list-roles"]);
    assert_success(&o);
    let text = stdout(&o);
    let line = text
        .lines()
        .find(|l| l.starts_with("recorder-cluster"))
        .unwrap_or_else(|| panic!("the cluster type is listed: {text}"));
    assert!(
        line.contains("cluster type: a `hook-recorder/hook-recorder-box` leader"),
        "{line}"
    );
    let o = cg(home.path(), &["--plugin", lib, "list-roles", "--json"]);
    let all: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let cluster = all
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "cluster-type")
        .expect("a cluster-type entry");
    assert_eq!(cluster["name"], "recorder-cluster");
    assert_eq!(cluster["worker"], "hook-recorder/hook-recorder-box");
    assert!(all
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "role" && e["name"] == "hook-recorder-box"));

    let o = cg(
        home.path(),
        &["--plugin", lib, "list-options", "recorder-cluster"],
    );
    assert_success(&o);
    let text = stdout(&o);
    assert!(text.contains("leader (role hook-recorder-box):"), "{text}");
    assert!(text.contains("workers (role hook-recorder-box):"), "{text}");
}
