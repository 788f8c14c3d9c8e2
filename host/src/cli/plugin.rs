//! `cgcloud plugin …`: managing role plugins.

use std::path::PathBuf;

use clap::Subcommand;

use crate::ctx::Globals;
use crate::errors::{not_implemented, Result};

/// Manage role plugins: add, list and verify them
#[derive(Subcommand, Debug)]
pub enum PluginCommand {
    /// Copy a plugin into the data directory and record it in the lock file
    Add {
        /// The plugin file (a .so or .dylib)
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// List plugins, their versions, files and roles
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Check every plugin, the lock file and the pins; exits non-zero on any problem
    Verify,
}

pub fn run(cmd: PluginCommand, _g: &Globals) -> Result<()> {
    let name = match cmd {
        PluginCommand::Add { .. } => "plugin add",
        PluginCommand::List { .. } => "plugin list",
        PluginCommand::Verify => "plugin verify",
    };
    Err(not_implemented(name))
}
