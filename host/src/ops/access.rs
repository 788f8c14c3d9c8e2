//! Reaching an existing box: its address, the account to log in as, the pinned host key, and
//! the `ssh` and `rsync` commands that use them.

use std::process::Command;

use aws_sdk_ec2::types::{Instance, InstanceStateName};

use crate::aws;
use crate::ctx::Context;
use crate::errors::Result;
use crate::ssh::{known_hosts, BoxConfig, SshSettings, Target};
use crate::{bail_user, user_error};

/// The address cgcloud connects to: the public IP address if the box has one, else the private.
pub fn address_of(i: &Instance) -> Option<String> {
    i.public_ip_address().or(i.private_ip_address()).filter(|a| !a.is_empty()).map(str::to_string)
}

/// A running box's target, checking that cgcloud knows its host key.
pub fn target(ctx: &Context, ssh: &SshSettings, i: &Instance, user: &str) -> Result<Target> {
    let id = i.instance_id().unwrap_or_default().to_string();
    match aws::state_of(i) {
        Some(InstanceStateName::Running) => {}
        Some(s) => bail_user!(
            "box `{id}` is `{}`, not running{}",
            s.as_str(),
            if s == InstanceStateName::Stopped { "; start it with `cgcloud start`" } else { "" }
        ),
        None => bail_user!("EC2 reports no state for `{id}`"),
    }
    if known_hosts::lookup(&ssh.known_hosts(), &id)?.is_none() {
        bail_user!(
            "cgcloud has no host key pinned for `{id}`, so it will not connect to it: cgcloud only trusts the \
             host keys it generated for the boxes it created (known hosts in `{}`)",
            ssh.known_hosts().display()
        );
    }
    let address = address_of(i).ok_or_else(|| user_error!("box `{id}` has no IP address"))?;
    let _ = ctx;
    Ok(Target { instance_id: id, address, user: user.to_string() })
}

/// `ssh -F <box config> [-A] ADDRESS ARGS…`, with the pinned host key.
pub fn ssh_command(ssh: &SshSettings, target: &Target, forward_agent: bool, args: &[String]) -> Result<Command> {
    let config = BoxConfig::write(ssh, target)?;
    let mut c = Command::new("ssh");
    c.arg("-F").arg(&config.path);
    if forward_agent {
        c.arg("-A");
    }
    c.arg("-l").arg(&target.user).arg(&target.address).args(args);
    Ok(c)
}

/// `rsync -e "ssh -F <box config> …" ARGS…` with `:path` arguments turned into
/// `USER@ADDRESS:path`.
pub fn rsync_command(ssh: &SshSettings, target: &Target, forward_agent: bool, ssh_opts: Option<&str>, args: &[String]) -> Result<Command> {
    let config = BoxConfig::write(ssh, target)?;
    let mut e = format!("ssh -F {}", crate::ssh::remote::quote(&config.path.to_string_lossy()));
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

/// Runs a local command, passing its exit status through.
pub fn exec(mut c: Command, what: &str) -> Result<i32> {
    let status = c.status().map_err(|e| user_error!("failed to run `{what}`: {e}"))?;
    Ok(status.code().unwrap_or(255))
}
