//! PLUGINS.md is exercised as written: its Rust code is the example plugin's real code, and its
//! author commands (`git clone`, `cargo new`, `cargo test`, `cargo build --release`, `cargo
//! doc`) are run in a folder outside this repository on a fresh crate made from its
//! `Cargo.toml` and code, unchanged; the result is then listed, added, pinned and verified
//! through the library calls behind `cgcloud --plugin … list-roles`, `cgcloud plugin add` and
//! `cgcloud plugin verify` (the CLI tests run those commands). The tests reach no network but
//! the package registry: the clone is this checkout, linked where the guide clones to.
#![allow(clippy::unwrap_used)] // A test crate: an unwrap that fails is a failing test.

use cgcloud_plugin_host::{add_plugin, verify, PluginSources, Registry};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// The fenced code blocks of a Markdown text: (language, content).
fn code_blocks(md: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in md.lines() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(lang)) => current = Some((lang.trim().to_string(), String::new())),
            (Some(_), Some("")) => blocks.extend(current.take()),
            (Some((_, body)), _) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    blocks
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn plugins_md_code_is_the_example_plugin() {
    let md = std::fs::read_to_string(root().join("PLUGINS.md")).expect("PLUGINS.md");
    let rust: Vec<String> = code_blocks(&md)
        .into_iter()
        .filter(|(lang, _)| lang == "rust")
        .map(|(_, body)| body)
        .collect();
    let example =
        std::fs::read_to_string(root().join("plugins/example/src/lib.rs")).expect("example");
    assert_eq!(rust, [example]);
}

#[test]
fn plugins_md_cluster_type_is_the_slurm_plugins() {
    let md = std::fs::read_to_string(root().join("PLUGINS.md")).expect("PLUGINS.md");
    let shown: Vec<String> = code_blocks(&md)
        .into_iter()
        .filter(|(lang, body)| lang == "rust,ignore" && body.contains("clusters: ["))
        .map(|(_, body)| body)
        .collect();
    let lib = std::fs::read_to_string(root().join("plugins/slurm/src/lib.rs")).expect("slurm");
    let start = lib
        .find("cgcloud_plugin_api::export_plugin! {")
        .expect("the slurm plugin exports itself");
    let end = start + lib[start..].find("\n}\n").expect("the macro ends") + 3;
    assert_eq!(shown, [lib[start..end].to_string()]);
}

#[test]
fn plugins_md_author_commands_work() {
    let root = root();
    let md = std::fs::read_to_string(root.join("PLUGINS.md")).expect("PLUGINS.md");
    let blocks = code_blocks(&md);
    let commands: Vec<String> = blocks
        .iter()
        .filter(|(lang, _)| lang == "sh")
        .flat_map(|(_, body)| body.lines().map(str::to_string).collect::<Vec<_>>())
        .collect();
    let cargo_commands: Vec<&str> = commands
        .iter()
        .map(String::as_str)
        .filter(|c| c.starts_with("cargo "))
        .collect();
    assert_eq!(
        cargo_commands,
        [
            "cargo new --lib my-roles",
            "cargo doc --no-deps --open -p cgcloud-plugin-api",
            "cargo test",
            "cargo build --release"
        ]
    );
    let cli_commands: Vec<&str> = commands
        .iter()
        .map(String::as_str)
        .filter(|c| c.starts_with("cgcloud "))
        .collect();
    assert_eq!(
        cli_commands,
        [
            "cgcloud --plugin target/release/libmy_roles.so list-roles",
            "cgcloud plugin add target/release/libmy_roles.so",
            "cgcloud plugin list",
            "cgcloud plugin verify",
        ]
    );
    let others: Vec<&str> = commands
        .iter()
        .map(String::as_str)
        .filter(|c| !c.starts_with("cargo ") && !c.starts_with("cgcloud "))
        .collect();
    assert_eq!(
        others,
        [
            "git clone https://github.com/cgcloud-rs/cgcloud",
            "cd my-roles"
        ]
    );

    let tomls: Vec<&String> = blocks
        .iter()
        .filter(|(l, _)| l == "toml")
        .map(|(_, b)| b)
        .collect();
    let (manifest, config) = (tomls[0], tomls[1]);
    let code = blocks
        .iter()
        .find(|(l, _)| l == "rust")
        .map(|(_, b)| b.clone())
        .expect("rust block");

    // `git clone …` (this checkout, linked), `cargo new --lib my-roles`, then the guide's
    // Cargo.toml and code as they are written.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let work = tempfile::tempdir().expect("dir");
    std::os::unix::fs::symlink(&root, work.path().join("cgcloud")).expect("the clone");
    run(Command::new(&cargo)
        .args(["new", "--lib", "my-roles", "--quiet"])
        .current_dir(work.path()));
    let krate = work.path().join("my-roles");
    std::fs::write(krate.join("Cargo.toml"), manifest).expect("manifest");
    std::fs::write(krate.join("src/lib.rs"), &code).expect("code");
    let target = root.join("target/plugin-fixtures/guide");
    // `cargo doc --no-deps --open -p cgcloud-plugin-api`, without opening a browser.
    run(Command::new(&cargo)
        .args(["doc", "--no-deps", "--quiet", "-p", "cgcloud-plugin-api"])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(&krate));
    let reference = target.join("doc/cgcloud_plugin_api");
    for page in [
        "index.html",
        "proto/struct.SecurityGroupRule.html",
        "proto/enum.RuleSource.html",
        "proto/struct.CmdOutput.html",
        "cx/struct.Cx.html",
    ] {
        assert!(
            reference.join(page).is_file(),
            "the API reference has {page}"
        );
    }
    let cx = std::fs::read_to_string(reference.join("cx/struct.Cx.html")).expect("Cx page");
    for method in ["sudo_as", "run_unchecked", "host"] {
        assert!(
            cx.contains(&format!("method.{method}")),
            "Cx documents {method}"
        );
    }
    run(Command::new(&cargo)
        .args(["test", "--quiet"])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(&krate));
    run(Command::new(&cargo)
        .args(["build", "--release", "--quiet"])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(&krate));
    let lib = target.join(format!(
        "release/{}my_roles{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));

    // `cgcloud --plugin target/release/libmy_roles.so list-roles`
    let data = tempfile::tempdir().expect("dir");
    let adhoc = PluginSources {
        cli: vec![lib.clone()],
        data_dir: data.path().to_path_buf(),
        ..PluginSources::default()
    };
    let reg = Registry::load(&adhoc).expect("the guide's plugin loads");
    let role = reg
        .roles()
        .into_iter()
        .find(|r| r.name == "example-web-box")
        .expect("listed");
    assert_eq!(role.plugin, "my-roles");

    // `cgcloud plugin add …`, with the guide's `[plugins]` config (pins), then `verify`.
    let config: toml::Table = config.parse().expect("config toml");
    let sources = PluginSources::from_config(
        Vec::new(),
        None,
        config.get("plugins"),
        data.path().to_path_buf(),
    )
    .expect("sources");
    let report = add_plugin(&lib, &sources).expect("add");
    assert_eq!((report.name.as_str(), report.copied), ("my-roles", true));
    let installed = Registry::load(&sources).expect("installed plugin loads");
    assert!(installed.role("my-roles/example-web-box").is_ok());
    assert_eq!(verify(&sources), []);
}
