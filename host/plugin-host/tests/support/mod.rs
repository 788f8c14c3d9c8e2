//! Builds the fixture plugins once per test run into `target/plugin-fixtures` (reused between
//! runs): the example plugin, the bad plugins of `tests/plugins`, and generated variants of
//! cgcloud-plugin-api (1.1 with an extra hook, 2.0 with ABI major 2) plus a plugin host built
//! with 1.1.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub struct Fixtures {
    pub root: PathBuf,
    pub ws_debug: PathBuf,
    pub abort_dir: PathBuf,
    pub example: PathBuf,
}

impl Fixtures {
    /// A fixture plugin's library, e.g. `lib("panicking-hook")`.
    pub fn lib(&self, krate: &str) -> PathBuf {
        self.ws_debug.join(format!(
            "{}{}{}",
            std::env::consts::DLL_PREFIX,
            krate.replace('-', "_"),
            std::env::consts::DLL_SUFFIX
        ))
    }
    pub fn panic_abort(&self) -> PathBuf {
        self.abort_dir.join(format!(
            "{}panic_abort{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        ))
    }
    pub fn compat_host(&self) -> PathBuf {
        self.ws_debug.join("compat-host")
    }
}

static FIXTURES: OnceLock<Result<Fixtures, String>> = OnceLock::new();

pub fn fixtures() -> &'static Fixtures {
    match FIXTURES.get_or_init(build) {
        Ok(f) => f,
        Err(e) => panic!("building the fixture plugins failed:\n{e}"),
    }
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("failed to run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} exited with {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn build() -> Result<Fixtures, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .map_err(|e| e.to_string())?;
    let target = root.join("target/plugin-fixtures");
    let gen = target.join("gen");
    generate_variants(&root, &gen)?;
    let ws = root.join("tests/plugins/Cargo.toml");
    let ws_target = target.join("ws");
    run(Command::new(cargo())
        .args(["build", "--workspace", "--quiet", "--manifest-path"])
        .arg(&ws)
        .arg("--target-dir")
        .arg(&ws_target))?;
    run(Command::new(cargo())
        .args([
            "build",
            "-p",
            "panic-abort",
            "--profile",
            "abort",
            "--quiet",
            "--manifest-path",
        ])
        .arg(&ws)
        .arg("--target-dir")
        .arg(&ws_target))?;
    let main_target = target.join("main");
    run(Command::new(cargo())
        .args(["build", "-p", "example-roles", "--quiet", "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&main_target))?;
    let example = main_target.join("debug").join(format!(
        "{}example_roles{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    Ok(Fixtures {
        root,
        ws_debug: ws_target.join("debug"),
        abort_dir: ws_target.join("abort"),
        example,
    })
}

/// Writes `data` only if it differs, so cargo does not rebuild unchanged copies.
fn write_if_changed(path: &Path, data: &str) -> Result<(), String> {
    if std::fs::read_to_string(path).ok().as_deref() == Some(data) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    std::fs::write(path, data).map_err(|e| format!("failed to write `{}`: {e}", path.display()))
}

/// Copies the `.rs` files of `src` and its folders into `dst`, applying `edits` (file name,
/// from, to); an edit whose `from` is missing fails loudly (the source changed under the test).
fn copy_sources(src: &Path, dst: &Path, edits: &[(&str, &str, &str)]) -> Result<(), String> {
    for entry in std::fs::read_dir(src).map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().map_err(|e| e.to_string())?.is_dir() {
            copy_sources(&entry.path(), &dst.join(&name), edits)?;
            continue;
        }
        if !name.ends_with(".rs") {
            continue;
        }
        let mut text = std::fs::read_to_string(entry.path()).map_err(|e| e.to_string())?;
        for (file, from, to) in edits {
            if *file == name {
                if !text.contains(from) {
                    return Err(format!(
                        "edit for `{file}` did not apply: `{from}` not found"
                    ));
                }
                text = text.replace(from, to);
            }
        }
        write_if_changed(&dst.join(&name), &text)?;
    }
    Ok(())
}

/// A crate manifest with workspace inheritance inlined from the root manifest, path
/// dependencies in `remap` pointed at generated copies, and a new version if given.
fn manifest(
    root: &Path,
    krate: &str,
    version: Option<&str>,
    remap: &[(&str, &Path)],
) -> Result<String, String> {
    let parse = |p: PathBuf| -> Result<toml::Table, String> {
        let text = std::fs::read_to_string(&p).map_err(|e| e.to_string())?;
        text.parse::<toml::Table>().map_err(|e| e.to_string())
    };
    let ws = parse(root.join("Cargo.toml"))?;
    let mut m = parse(root.join(krate).join("Cargo.toml"))?;
    let ws_pkg = ws["workspace"]["package"]
        .as_table()
        .cloned()
        .unwrap_or_default();
    let ws_deps = ws["workspace"]["dependencies"]
        .as_table()
        .cloned()
        .unwrap_or_default();
    if let Some(pkg) = m.get_mut("package").and_then(|p| p.as_table_mut()) {
        for (k, v) in pkg.iter_mut() {
            if v.get("workspace").is_some() {
                *v = ws_pkg
                    .get(k)
                    .cloned()
                    .unwrap_or(toml::Value::String(String::new()));
            }
        }
        if let Some(v) = version {
            pkg.insert("version".into(), toml::Value::String(v.into()));
        }
    }
    m.remove("dev-dependencies");
    // The copy is its own workspace: the lints it would inherit are the checkout's business.
    m.remove("lints");
    if let Some(deps) = m.get_mut("dependencies").and_then(|d| d.as_table_mut()) {
        for (name, v) in deps.iter_mut() {
            if let Some((_, path)) = remap.iter().find(|(n, _)| n == name) {
                let mut t = toml::Table::new();
                t.insert(
                    "path".into(),
                    toml::Value::String(path.display().to_string()),
                );
                *v = toml::Value::Table(t);
            } else if v.get("workspace").is_some() {
                let mut dep = ws_deps
                    .get(name)
                    .cloned()
                    .ok_or(format!("no workspace dep `{name}`"))?;
                // A path dependency of the workspace, e.g. `host/common`, is relative to its root.
                if let Some(t) = dep.as_table_mut() {
                    if let Some(path) = t.get("path").and_then(|p| p.as_str()) {
                        let absolute = root.join(path).display().to_string();
                        t.insert("path".into(), toml::Value::String(absolute));
                    }
                }
                *v = dep;
            }
        }
    }
    m.insert("workspace".into(), toml::Value::Table(toml::Table::new()));
    toml::to_string(&m).map_err(|e| e.to_string())
}

fn generate_variants(root: &Path, gen: &Path) -> Result<(), String> {
    let api11 = gen.join("api-1.1");
    let api20 = gen.join("api-2.0");
    let builtin11 = gen.join("builtin-1.1");
    let host11 = gen.join("plugin-host-1.1");

    // plugin-api 1.1: one more hook, `pre_terminate`, whose base default logs a line.
    write_if_changed(
        &api11.join("Cargo.toml"),
        &manifest(root, "plugin-api", Some("1.1.0"), &[])?,
    )?;
    copy_sources(
        &root.join("plugin-api/src"),
        &api11.join("src"),
        &[
            (
                "role.rs",
                "    fn upgrade_packages() -> ();\n}",
                "    fn upgrade_packages() -> ();\n    /// Runs before the instance is terminated. Base: logs a line.\n    fn pre_terminate() -> ();\n}",
            ),
            ("export.rs", "abi=1;api=1.0.0;panic=unwind", "abi=1;api=1.1.0;panic=unwind"),
            ("export.rs", "abi=1;api=1.0.0;panic=abort", "abi=1;api=1.1.0;panic=abort"),
            (
                "base.rs",
                "pub fn upgrade_packages(",
                "pub fn pre_terminate(cx: &Cx<'_>) -> Result<()> {\n    cx.info(\"base pre_terminate: nothing to do\");\n    Ok(())\n}\n\npub fn upgrade_packages(",
            ),
            // A field of a struct authors build, a variant of an enum they match, a service.
            (
                "proto.rs",
                "    pub source: RuleSource,\n}",
                "    pub source: RuleSource,\n    /// Added in 1.1.\n    #[serde(default)]\n    pub description: Option<String>,\n}",
            ),
            (
                "proto.rs",
                "            to_port,\n            source,\n        }",
                "            to_port,\n            source,\n            description: None,\n        }",
            ),
            (
                "proto.rs",
                "    Arm64,\n    /// A value this build does not know; the host ignores it.\n    Unknown,",
                "    Arm64,\n    Riscv64,\n    /// A value this build does not know; the host ignores it.\n    Unknown,",
            ),
            (
                "proto.rs",
                "lenient_enum!(Arch { X86_64 = \"x86_64\", Arm64 = \"arm64\" });",
                "lenient_enum!(Arch { X86_64 = \"x86_64\", Arm64 = \"arm64\", Riscv64 = \"riscv64\" });",
            ),
            (
                "proto.rs",
                "    Hello { api: String },\n}",
                "    Hello { api: String },\n    /// Added in 1.1.\n    Tick,\n}",
            ),
            (
                "proto.rs",
                "            Self::Hello { .. } => \"hello\",",
                "            Self::Hello { .. } => \"hello\",\n            Self::Tick => \"tick\",",
            ),
            ("proto.rs", "    \"hello\",\n];", "    \"hello\",\n    \"tick\",\n];"),
            (
                "host.rs",
                "            ServiceRequest::Hello { .. } =>",
                "            ServiceRequest::Tick => reply(Ok(())),\n            ServiceRequest::Hello { .. } =>",
            ),
        ],
    )?;

    // plugin-api 2.0: ABI major 2.
    write_if_changed(
        &api20.join("Cargo.toml"),
        &manifest(root, "plugin-api", Some("2.0.0"), &[])?,
    )?;
    copy_sources(
        &root.join("plugin-api/src"),
        &api20.join("src"),
        &[
            (
                "abi.rs",
                "pub const ABI_MAJOR: u32 = 1;",
                "pub const ABI_MAJOR: u32 = 2;",
            ),
            (
                "abi.rs",
                "pub const ABI_VERSION: &str = \"1.0.0\";",
                "pub const ABI_VERSION: &str = \"2.0.0\";",
            ),
            (
                "export.rs",
                "abi=1;api=1.0.0;panic=unwind",
                "abi=2;api=2.0.0;panic=unwind",
            ),
            (
                "export.rs",
                "abi=1;api=1.0.0;panic=abort",
                "abi=2;api=2.0.0;panic=abort",
            ),
        ],
    )?;

    // Built-in roles and plugin host on plugin-api 1.1.
    write_if_changed(
        &builtin11.join("Cargo.toml"),
        &manifest(
            root,
            "plugins/builtin",
            None,
            &[("cgcloud-plugin-api", &api11)],
        )?,
    )?;
    copy_sources(
        &root.join("plugins/builtin/src"),
        &builtin11.join("src"),
        &[],
    )?;
    write_if_changed(
        &host11.join("Cargo.toml"),
        &manifest(
            root,
            "host/plugin-host",
            None,
            &[
                ("cgcloud-plugin-api", &api11),
                ("cgcloud-builtin-roles", &builtin11),
            ],
        )?,
    )?;
    copy_sources(&root.join("host/plugin-host/src"), &host11.join("src"), &[])?;
    Ok(())
}
