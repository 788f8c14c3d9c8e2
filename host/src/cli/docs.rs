//! `completions` and `man`: shell completion scripts and manual pages, generated from the
//! command line's own definition, so they never drift from it.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::builder::PossibleValuesParser;
use clap::{Args, CommandFactory, ValueEnum};

use crate::ctx::Globals;
use crate::errors::Result;
use crate::roles::Roles;

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// Print a completion script for a shell, with the role names of the plugins found now
#[derive(Args, Debug)]
#[command(after_help = "Install it, e.g.:
  bash: cgcloud completions bash > ~/.local/share/bash-completion/completions/cgcloud
  zsh:  cgcloud completions zsh > ~/.zfunc/_cgcloud   (with `fpath+=~/.zfunc` before compinit)
  fish: cgcloud completions fish > ~/.config/fish/completions/cgcloud.fish
Generate it again after adding plugins, so that their role names complete too.")]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Print a manual page, or write every page to a folder
#[derive(Args, Debug)]
#[command(after_help = "Install them, e.g.: cgcloud man --out-dir ~/.local/share/man/man1")]
pub struct ManArgs {
    /// The command whose page to print (default: cgcloud's own page)
    #[arg(value_name = "COMMAND", conflicts_with = "out_dir")]
    pub command: Option<String>,

    /// Write `cgcloud.1` and a `cgcloud-COMMAND.1` page per command to this folder
    #[arg(long = "out-dir", value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

/// The subcommands that take a `ROLE` argument.
fn role_commands(cmd: &clap::Command) -> Vec<String> {
    cmd.get_subcommands()
        .filter(|s| s.get_arguments().any(|a| a.get_id() == "role"))
        .map(|s| s.get_name().to_string())
        .collect()
}

/// The command line with `roles` as the possible values of every `ROLE` argument (for
/// completion only: commands check role names themselves, with better messages).
fn with_role_names(mut cmd: clap::Command, roles: &[String]) -> clap::Command {
    // NOTE: clap's `mut_arg` moves the argument to the end; its position is pinned first so
    // that `ssh ROLE ARGS…` keeps ROLE before ARGS.
    cmd.build();
    let names: Vec<(String, usize)> = role_commands(&cmd)
        .into_iter()
        .filter_map(|name| {
            let index = cmd
                .find_subcommand(&name)?
                .get_arguments()
                .find(|a| a.get_id() == "role")?
                .get_index()?;
            Some((name, index))
        })
        .collect();
    for (name, index) in names {
        let roles = roles.to_vec();
        cmd = cmd.mut_subcommand(name, move |s| {
            s.mut_arg("role", move |a| {
                a.index(index)
                    .value_parser(PossibleValuesParser::new(roles))
            })
        });
    }
    cmd
}

pub fn completions(args: CompletionsArgs, g: &Globals) -> Result<()> {
    let roles = match Roles::load(g).map(|r| r.list()) {
        Ok(list) => list
            .into_iter()
            .map(|r| {
                if r.summary.conflict {
                    r.summary.qualified
                } else {
                    r.summary.name
                }
            })
            .collect(),
        Err(e) => {
            g.shell.warn(format!(
                "role names are left out of the completions: {}",
                crate::errors::one_line(&e)
            ));
            Vec::new()
        }
    };
    let mut cmd = with_role_names(super::Cli::command(), &roles);
    let mut out = Vec::new();
    match args.shell {
        Shell::Bash => {
            clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "cgcloud", &mut out)
        }
        Shell::Zsh => {
            clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, "cgcloud", &mut out)
        }
        Shell::Fish => {
            clap_complete::generate(clap_complete::Shell::Fish, &mut cmd, "cgcloud", &mut out)
        }
    }
    let mut script = String::from_utf8_lossy(&out).trim_end().to_string();
    if matches!(args.shell, Shell::Fish) && !roles.is_empty() {
        // NOTE: clap_complete's fish script completes options only; role names are added here,
        // after the command that takes them.
        let quoted: Vec<String> = roles.iter().map(|r| crate::ssh::remote::quote(r)).collect();
        for sub in role_commands(&cmd) {
            script.push_str(&format!(
                "\ncomplete -c cgcloud -n \"__fish_cgcloud_using_subcommand {sub}\" -f -a \"{}\"",
                quoted.join(" ")
            ));
        }
    }
    g.shell.out(script);
    Ok(())
}

fn render(cmd: clap::Command) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut out)
        .context("failed to render a manual page")?;
    Ok(out)
}

pub fn man(args: ManArgs, g: &Globals) -> Result<()> {
    let mut top = super::Cli::command();
    top.build();
    // Pages of subcommands are named and titled `cgcloud-COMMAND`.
    let page = |sub: &clap::Command| {
        let name = format!("cgcloud-{}", sub.get_name());
        sub.clone()
            .name(name.clone())
            .bin_name(format!("cgcloud {}", sub.get_name()))
            .display_name(name)
    };
    if let Some(dir) = args.out_dir {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("failed to create `{}`", dir.display()))?;
        let mut pages = vec![("cgcloud.1".to_string(), render(top.clone())?)];
        for sub in top.get_subcommands() {
            pages.push((format!("cgcloud-{}.1", sub.get_name()), render(page(sub))?));
        }
        for (file, text) in &pages {
            let path = dir.join(file);
            std::fs::write(&path, text)
                .with_context(|| format!("failed to write `{}`", path.display()))?;
        }
        g.shell.info(format!(
            "wrote {} manual pages to `{}`",
            pages.len(),
            dir.display()
        ));
        return Ok(());
    }
    let text = match args.command {
        None => render(top)?,
        Some(name) => {
            let Some(sub) = top.find_subcommand(&name) else {
                crate::bail_user!("there is no command `{name}`; `cgcloud --help` lists them");
            };
            render(page(sub))?
        }
    };
    g.shell.out(String::from_utf8_lossy(&text).trim_end());
    Ok(())
}
