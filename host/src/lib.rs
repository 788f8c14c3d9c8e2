//! cgcloud: create and manage EC2 boxes and their images, provision them over SSH, keep SSH
//! keys in sync on every box, separate everything into namespaces, and load box roles from
//! plugins.
//!
//! Architecture map (module → job → entry point):
//! - [`cli`] → the command line: one module per group of commands; each parses its arguments,
//!   calls `ops` and prints through `shell` → [`cli::run`]
//! - `ctx` → what a command works with: namespace, zone, region, AWS clients, `__me__`
//! - `ops` → the work, one module per job: `plan` and `create` (`create`, `recreate`), `boot`
//!   (a box's boot and its boot hooks), `power` (`start`, `stop`, `reboot`, `image`), `images`,
//!   `instances` (listing, binding, `terminate`), `security` (`reset-security`), `cleanup`,
//!   `keys` and `keypairs`, `register_key`, `agent` (the on-box agent's program and wiring),
//!   `hostkeys`, `access` (`ssh`, `rsync`), `launch` (RunInstances and its waits), `prepare`
//!   (security groups, IAM, user data)
//! - `aws` → the SDK's configuration and clients, the error describer, the waits and the EC2
//!   calls several `ops` modules share. An `ops` module makes the calls only it needs itself,
//!   through those clients: a wrapper per call would hide nothing. Outside `aws` and `ops` the
//!   SDK appears only as data types (the `Instance` a command binds); nothing else calls AWS.
//! - `roles` → the role registry as commands see it
//! - `config` → the configuration file and cgcloud's environment values, read and checked once
//! - `shell` → every line shown to the user; `errors` → result type and exit codes
//! - `names` → image references and image names (namespace grammar lives in `cgcloud_common`)
//! - `ssh` → connections with pinned host keys, remote commands, known_hosts

mod aws;
pub mod cli;
mod config;
mod ctx;
mod errors;
mod fsutil;
mod names;
mod ops;
mod roles;
mod shell;
mod ssh;

pub use errors::{EXIT_USAGE, EXIT_USER_ERROR};

use clap::Parser;

/// Runs cgcloud with the process's arguments; returns the exit status.
pub fn main() -> i32 {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            // On a terminal clap passes what was typed through as it came; its plain text
            // (escape sequences removed) is what a terminal must get when that holds any.
            let hostile =
                std::env::args_os().any(|a| a.to_string_lossy().chars().any(|c| c.is_control()));
            let printed = if e.use_stderr() && hostile {
                std::io::Write::write_all(&mut std::io::stderr(), e.to_string().as_bytes())
            } else {
                e.print()
            };
            return match printed {
                Err(io) if code == 0 && io.kind() != std::io::ErrorKind::BrokenPipe => {
                    shell::Shell::new(false, false)
                        .error(format!("failed to write to standard output: {io}"));
                    EXIT_USER_ERROR
                }
                _ => code,
            };
        }
    };
    let shell = shell::Shell::new(cli.quiet, cli.debug);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            shell.error(format!("failed to start the async runtime: {e}"));
            return EXIT_USER_ERROR;
        }
    };
    let mut plugin_paths = cli.plugins.clone();
    plugin_paths.extend(cli.scripts.iter().cloned());
    let globals = ctx::Globals {
        shell: shell.clone(),
        plugin_paths,
    };
    let code = match runtime.block_on(cli::run(cli, globals)) {
        Ok(code) => code,
        Err(e) => {
            shell.error(errors::one_line(&e));
            EXIT_USER_ERROR
        }
    };
    // A role hook still running on a blocking thread (after Ctrl-C) must not hold the exit up.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    // Output that did not reach stdout fails the run, whatever the command did.
    match shell.write_failure() {
        Some(why) => {
            shell.error(why);
            EXIT_USER_ERROR
        }
        None => code,
    }
}
