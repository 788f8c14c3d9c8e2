//! `cgcloud plugin …`: managing role plugins.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;

use crate::bail_user;
use crate::ctx::Globals;
use crate::errors::Result;
use crate::roles::{self, Roles};

/// Manage role plugins: add, list and verify them
#[derive(Subcommand, Debug)]
pub enum PluginCommand {
    /// Check a plugin, copy it into the data directory and record it in the lock file
    Add {
        /// The plugin file (a .so or .dylib)
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// List plugins, their versions, files and roles (with their `extends` chains), and conflicts
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Check every plugin, the lock file and the pins; exits non-zero on any problem
    Verify,
}

pub fn run(cmd: PluginCommand, g: &Globals) -> Result<()> {
    match cmd {
        PluginCommand::Add { file, json } => add(&file, json, g),
        PluginCommand::List { json } => list(json, g),
        PluginCommand::Verify => verify(g),
    }
}

fn add(file: &std::path::Path, as_json: bool, g: &Globals) -> Result<()> {
    let sources = roles::sources(g)?;
    let report = cgcloud_plugin_host::add_plugin(file, &sources)?;
    if as_json {
        g.shell.json(&json!(report));
        return Ok(());
    }
    for old in &report.replaced {
        g.shell.info(format!(
            "replaced the lock entry of `{}` {} ({})",
            old.name,
            old.version,
            old.file.display()
        ));
    }
    g.shell.out(format!(
        "added plugin `{}` {} (ABI {}, sha256 {}) as `{}`; locked in `{}`",
        report.name,
        report.version,
        report.abi,
        report.sha256,
        report.file.display(),
        report.lock.display()
    ));
    Ok(())
}

/// What is loaded, and what could not be and why: a plugin that fails to load (a pin it does
/// not meet, a changed file) is listed as a problem, not an error, so this works while
/// something is wrong. `cgcloud plugin verify` is the check that fails.
fn list(as_json: bool, g: &Globals) -> Result<()> {
    let sources = roles::sources(g)?;
    let (registry, problems) = cgcloud_plugin_host::load_what_loads(&sources);
    let plugins = registry.plugins();
    let all_roles = registry.roles();
    let conflicts = registry.conflicts();
    if as_json {
        let conflicts: Vec<_> = conflicts
            .iter()
            .map(|(name, by)| json!({"role": name, "defined_by": by}))
            .collect();
        let problems: Vec<_> = problems
            .iter()
            .map(|p| json!({"file": p.file, "problem": p.message}))
            .collect();
        g.shell.json(&json!({"plugins": plugins, "roles": all_roles, "conflicts": conflicts, "problems": problems}));
        return Ok(());
    }
    for p in &plugins {
        let file = p
            .file
            .as_ref()
            .map(|f| f.display().to_string())
            .unwrap_or_else(|| "built in".into());
        g.shell.out(format!(
            "{} {} (api {}, abi {}) {}",
            p.name, p.version, p.api, p.abi, file
        ));
        for r in all_roles.iter().filter(|r| r.plugin == p.name) {
            let mut line = format!("  {}", r.name);
            for parent in &r.extends {
                line.push_str(&format!(" -> {parent}"));
            }
            g.shell.out(line);
        }
    }
    for (name, by) in &conflicts {
        g.shell.out(format!(
            "conflict: role `{name}` is defined by {}; use the qualified name",
            by.iter()
                .map(|q| format!("`{q}`"))
                .collect::<Vec<_>>()
                .join(" and ")
        ));
    }
    print_problems(g, &problems);
    Ok(())
}

fn verify(g: &Globals) -> Result<()> {
    let sources = roles::sources(g)?;
    let problems = cgcloud_plugin_host::verify(&sources);
    print_problems(g, &problems);
    if !problems.is_empty() {
        bail_user!(
            "`cgcloud plugin verify` found {} problem(s)",
            problems.len()
        );
    }
    let roles = Roles::load(g)?;
    g.shell.out(format!(
        "ok: {} plugin(s), {} role(s), lock file `{}`",
        roles.registry.plugins().len(),
        roles.registry.roles().len(),
        sources.lock_path().display()
    ));
    Ok(())
}

/// One `problem:` line each, naming the file where there is one.
fn print_problems(g: &Globals, problems: &[cgcloud_plugin_host::Problem]) {
    for p in problems {
        match &p.file {
            Some(f) => g
                .shell
                .out(format!("problem: `{}`: {}", f.display(), p.message)),
            None => g.shell.out(format!("problem: {}", p.message)),
        }
    }
}
