//! Reaching an existing box: its address, the account to log in as, the pinned host key, and
//! the `ssh` and `rsync` commands that use them.

use std::process::Command;

use aws_sdk_ec2::types::{Instance, InstanceStateName};

use crate::aws;
use crate::ctx::Context;
use crate::errors::Result;
use crate::ssh::{BoxConfig, SshSettings, Target};
use crate::{bail_user, user_error};

/// The address cgcloud connects to: the public IP address if the box has one, else the private.
pub fn address_of(i: &Instance) -> Option<String> {
    i.public_ip_address()
        .or(i.private_ip_address())
        .filter(|a| !a.is_empty())
        .map(str::to_string)
}

/// A running box's target, with its host key pinned (`hostkeys::ensure_pinned`).
pub async fn target(ctx: &Context, ssh: &SshSettings, i: &Instance, user: &str) -> Result<Target> {
    let id = i.instance_id().unwrap_or_default().to_string();
    match aws::state_of(i) {
        Some(InstanceStateName::Running) => {}
        Some(s) => bail_user!(
            "box `{id}` is `{}`, not running{}",
            s.as_str(),
            if s == InstanceStateName::Stopped {
                "; start it with `cgcloud start`"
            } else {
                ""
            }
        ),
        None => bail_user!("EC2 reports no state for `{id}`"),
    }
    super::hostkeys::ensure_pinned(ctx, ssh, i).await?;
    let address = address_of(i).ok_or_else(|| user_error!("box `{id}` has no IP address"))?;
    Ok(Target {
        instance_id: id,
        address,
        user: user.to_string(),
    })
}

/// `ssh -F <box config> [-A] ADDRESS ARGS…`, with the pinned host key.
pub fn ssh_command(
    ssh: &SshSettings,
    target: &Target,
    forward_agent: bool,
    args: &[String],
) -> Result<Command> {
    let config = BoxConfig::write(ssh, target)?;
    let mut c = Command::new("ssh");
    c.arg("-F").arg(&config.path);
    if forward_agent {
        c.arg("-A");
    }
    // NOTE: after `--`, ssh parses no more options: the user's arguments are the remote
    // command and cannot override the host-key settings (options after the host would).
    c.arg("-l")
        .arg(&target.user)
        .arg("--")
        .arg(&target.address)
        .args(args);
    Ok(c)
}

/// `rsync -e "ssh -F <box config> …" ARGS…` with `:path` arguments turned into
/// `USER@ADDRESS:path`.
pub fn rsync_command(
    ssh: &SshSettings,
    target: &Target,
    forward_agent: bool,
    ssh_opts: Option<&str>,
    args: &[String],
) -> Result<Command> {
    let is_rsh = |a: &&String| {
        a.as_str() == "--rsh"
            || a.starts_with("--rsh=")
            || (a.starts_with('-') && !a.starts_with("--") && a[1..].contains('e'))
    };
    if let Some(bad) = args.iter().take_while(|a| a.as_str() != "--").find(is_rsh) {
        bail_user!("`{bad}` would replace the ssh cgcloud runs with its pinned host key; give ssh options with --ssh-opts");
    }
    if let Some(o) = ssh_opts {
        check_ssh_opts(o)?;
    }
    let config = BoxConfig::write(ssh, target)?;
    let mut e = format!(
        "ssh -F {}",
        crate::ssh::remote::quote(&config.path.to_string_lossy())
    );
    if forward_agent {
        e.push_str(" -A");
    }
    if let Some(o) = ssh_opts {
        e.push(' ');
        e.push_str(o);
    }
    let mut c = Command::new("rsync");
    c.arg("-e").arg(e);
    for a in args {
        match a.strip_prefix(':') {
            Some(path) => c.arg(format!("{}@{}:{path}", target.user, target.address)),
            None => c.arg(a),
        };
    }
    Ok(c)
}

/// ssh options that would weaken or bypass host-key checking, refused in `--ssh-opts`.
const HOST_KEY_OPTIONS: &[&str] = &[
    "stricthostkeychecking",
    "userknownhostsfile",
    "globalknownhostsfile",
    "knownhostscommand",
    "hostkeyalias",
    "updatehostkeys",
    "proxycommand",
    "proxyjump",
    "include",
];

/// Refuses `--ssh-opts` that could change how the box's host key is checked (`-o` options of
/// [`HOST_KEY_OPTIONS`], another config file with `-F`, a jump host with `-J`).
fn check_ssh_opts(opts: &str) -> Result<()> {
    let words: Vec<&str> = opts.split_whitespace().collect();
    for (n, w) in words.iter().enumerate() {
        let option = if let Some(rest) = w.strip_prefix("-o") {
            if rest.is_empty() {
                words.get(n + 1).copied().unwrap_or_default()
            } else {
                rest
            }
        } else if w.starts_with("-F") || w.starts_with("-J") {
            bail_user!("`{w}` is not allowed in --ssh-opts: cgcloud's own ssh_config pins the box's host key");
        } else {
            continue;
        };
        let key = option
            .split(['=', ' '])
            .next()
            .unwrap_or_default()
            .trim_matches(['"', '\''])
            .to_ascii_lowercase();
        if HOST_KEY_OPTIONS.contains(&key.as_str()) {
            bail_user!("`-o {option}` is not allowed in --ssh-opts: cgcloud checks every box's host key against its pin");
        }
    }
    Ok(())
}

/// Runs a local command, passing its exit status through.
pub fn exec(mut c: Command, what: &str) -> Result<i32> {
    let status = c
        .status()
        .map_err(|e| user_error!("failed to run `{what}`: {e}"))?;
    Ok(status.code().unwrap_or(255))
}

/// The ssh_config, identity (`--ssh-key`, else `CGCLOUD_SSH_KEY`) and data directory for this
/// invocation.
pub fn ssh_settings(identity: Option<std::path::PathBuf>) -> Result<crate::ssh::SshSettings> {
    let config = crate::config::Config::load()?;
    let identity = identity.or_else(|| {
        std::env::var_os("CGCLOUD_SSH_KEY")
            .filter(|v| !v.is_empty())
            .map(Into::into)
    });
    if let Some(path) = &identity {
        // Checked before anything is launched: ssh would only say so after the box is up.
        if let Err(e) = crate::fsutil::read_small(path, 1 << 20) {
            bail_user!(
                "cannot read the SSH identity `{}` (--ssh-key or CGCLOUD_SSH_KEY): {e}; give the private key of a key \
                 pair you registered with `cgcloud register-key`",
                path.display()
            );
        }
    }
    Ok(crate::ssh::SshSettings {
        data_dir: crate::roles::data_dir()?,
        identity,
        user_config: config.ssh_config(),
    })
}
