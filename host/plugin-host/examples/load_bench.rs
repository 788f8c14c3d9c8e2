//! Load-time benchmark driver (not a test): loads each plugin file given on the command line
//! on its own, then all of them together, and prints the median per-plugin load time and the
//! total. Run by `tests/bench/plugin_load.sh`.
// A benchmark program: what it prints is its result.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use cgcloud_plugin_host::{PluginSources, Registry};
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let files: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if files.is_empty() {
        eprintln!("ERROR: usage: load_bench PLUGIN_FILE...");
        std::process::exit(255);
    }
    let data_dir = std::env::temp_dir().join("cgcloud-load-bench-no-data-dir");
    let mut per_plugin = Vec::new();
    for file in &files {
        let sources = PluginSources {
            cli: vec![file.clone()],
            data_dir: data_dir.clone(),
            ..PluginSources::default()
        };
        let start = Instant::now();
        if let Err(e) = Registry::load(&sources) {
            eprintln!("ERROR: {e}");
            std::process::exit(255);
        }
        per_plugin.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    per_plugin.sort_by(f64::total_cmp);
    let median = per_plugin[per_plugin.len() / 2];
    // All again in one registry (already mapped now: measures checks, hashing and registry).
    let sources = PluginSources {
        cli: files.clone(),
        data_dir,
        ..PluginSources::default()
    };
    let start = Instant::now();
    let roles = match Registry::load(&sources) {
        Ok(reg) => reg.roles().len(),
        Err(e) => {
            eprintln!("ERROR: {e}");
            std::process::exit(255);
        }
    };
    let again = start.elapsed().as_secs_f64() * 1000.0;
    println!("plugins: {}", files.len());
    println!("median first load per plugin: {median:.3} ms (goal < 0.5 ms)");
    println!(
        "sum of first loads: {:.3} ms",
        per_plugin.iter().sum::<f64>()
    );
    println!(
        "reload of all {} plugins in one registry ({roles} roles): {again:.3} ms",
        files.len()
    );
}
