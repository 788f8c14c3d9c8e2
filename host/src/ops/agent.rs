//! cgcloud's side of the on-box agent (`cgcloud-agent`): installing it on a box during
//! set-up, its IAM policy, telling agents about new keys, removing an instance's queue when it
//! is terminated, and comparing what each box applied with what it should have.

use std::path::PathBuf;

use anyhow::Context as _;
use cgcloud_agent::RunOptions;
use cgcloud_plugin_api::IamPolicy;
use sha2::Digest;

use crate::ctx::Context;
use crate::errors::Result;
use crate::ssh::remote::{failure, quote, Remote};
use crate::{bail_user, user_error};

/// Where the agent lives on a box.
pub const REMOTE_BINARY: &str = "/usr/local/bin/cgcloud-agent";
/// Its systemd unit.
pub const REMOTE_UNIT: &str = "/etc/systemd/system/cgcloud-agent.service";
/// Instance tag holding the box's unexpanded key pair globs (space-separated).
pub const KEYPAIRS_TAG: &str = "cgcloud:keypairs";

/// The agent binary to install: `CGCLOUD_AGENT_BIN`, else `cgcloud-agent` next to `cgcloud`.
pub fn binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("CGCLOUD_AGENT_BIN").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("failed to find cgcloud's own path")?;
    let next = exe.with_file_name("cgcloud-agent");
    if next.is_file() {
        return Ok(next);
    }
    bail_user!(
        "cannot find the `cgcloud-agent` program to install on the box (looked at `{}`): install it next \
         to cgcloud (`cargo install --path agent`), set CGCLOUD_AGENT_BIN, or pass --no-agent",
        next.display()
    )
}

/// Seconds between the agent's periodic refreshes (`CGCLOUD_AGENT_INTERVAL`, default 300).
pub fn interval() -> Result<u64> {
    match std::env::var("CGCLOUD_AGENT_INTERVAL") {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=86_400).contains(n))
            .ok_or_else(|| user_error!("CGCLOUD_AGENT_INTERVAL must be a number of seconds from 1 to 86400, not `{v}`")),
        _ => Ok(cgcloud_agent::DEFAULT_INTERVAL_SECONDS),
    }
}

/// The inline policy the box's IAM role needs for the agent: only what the agent calls.
pub fn policy(ctx: &Context) -> IamPolicy {
    let partition = cgcloud_common::arn::partition_for_region(&ctx.region);
    IamPolicy { name: "cgcloud_agent".into(), document: cgcloud_agent::iam_policy(&ctx.namespace, partition).to_string() }
}

/// Uploads the agent (checked by sha256 on the box), writes its unit and sshd's drop-in, and
/// starts it. `globs` are the box's key pair globs, unexpanded but with `__me__` substituted.
pub async fn install(ctx: &Context, remote: &Remote, instance_id: &str, globs: &[String], accounts: &[String]) -> Result<()> {
    let path = binary()?;
    let bytes = std::fs::read(&path).with_context(|| format!("failed to read `{}`", path.display()))?;
    let sum = hex::encode(sha2::Sha256::digest(&bytes));
    let tmp = format!("{REMOTE_BINARY}.upload");
    let out = remote.run_with_stdin(&format!("sudo -n sh -c {}", quote(&format!("umask 022 && cat > {tmp}"))), Some(&bytes)).await?;
    if out.status != 0 {
        bail_user!("{}", failure(instance_id, "upload cgcloud-agent", &out));
    }
    let check = format!(
        "echo {sum}' *{tmp}' | sha256sum -c --status && sudo -n chmod 755 {tmp} && sudo -n mv -f {tmp} {REMOTE_BINARY}"
    );
    let out = remote.run(&check).await?;
    if out.status != 0 {
        let _ = remote.run(&format!("sudo -n rm -f {tmp}")).await;
        bail_user!("the agent uploaded to `{instance_id}` does not have the sha256 of `{}` ({sum}); not installed", path.display());
    }
    let options = RunOptions {
        namespace: ctx.namespace.as_str().to_string(),
        zone: ctx.zone.clone(),
        keypairs: globs.to_vec(),
        accounts: accounts.to_vec(),
        interval: interval()?,
        // The agent asks the instance metadata for its instance: an image of this box keeps
        // the unit, and the boxes made from it are other instances.
        instance_id: None,
        no_notifications: false,
        no_ack: false,
    };
    let args: Vec<String> = options.to_args().iter().map(|a| quote(a)).collect();
    // The unit is rendered on the box, which knows its accounts' home directories.
    let unit = remote.run(&format!("sudo -n {REMOTE_BINARY} unit {}", args.join(" "))).await?;
    if unit.status != 0 {
        bail_user!("{}", failure(instance_id, "cgcloud-agent unit", &unit));
    }
    let script = format!(
        "set -e; umask 022; cat > {REMOTE_UNIT}; mkdir -p /etc/ssh/sshd_config.d; printf %s {dropin} > {dropin_path}; \
         systemctl daemon-reload; systemctl enable cgcloud-agent.service; systemctl restart cgcloud-agent.service; \
         systemctl reload ssh.service 2>/dev/null || systemctl reload sshd.service",
        dropin = quote(cgcloud_agent::SSHD_DROP_IN),
        dropin_path = cgcloud_agent::SSHD_DROP_IN_PATH,
    );
    let out = remote.run_with_stdin(&format!("sudo -n sh -c {}", quote(&script)), Some(unit.stdout.as_bytes())).await?;
    if out.status != 0 {
        bail_user!("{}", failure(instance_id, "install the cgcloud-agent service", &out));
    }
    ctx.shell.info(format!("{instance_id}: the agent keeps the SSH keys of {} in sync", accounts.join(", ")));
    Ok(())
}

/// Tells the namespace's agents that key pairs changed. Returns whether a topic existed.
pub async fn notify(ctx: &Context, keypair: &str) -> Result<bool> {
    let sns = aws_sdk_sns::Client::new(ctx.aws.sdk());
    cgcloud_agent::publish(&sns, &ctx.namespace, &cgcloud_agent::register_key_notification(ctx.namespace.as_str(), keypair))
        .await
        .map_err(|e| user_error!("failed to notify the agents of namespace `{}`: {e:#}", ctx.namespace))
}

/// Removes a terminated instance's queue and subscription.
pub async fn remove_wiring(ctx: &Context, instance_id: &str) -> Result<()> {
    let sns = aws_sdk_sns::Client::new(ctx.aws.sdk());
    let sqs = aws_sdk_sqs::Client::new(ctx.aws.sdk());
    cgcloud_agent::delete_instance_wiring(&sqs, &sns, &ctx.namespace, instance_id)
        .await
        .map_err(|e| user_error!("failed to remove the agent queue of `{instance_id}`: {e:#}"))?;
    Ok(())
}

/// The hash of the key set `globs` stands for now, as agents compute it.
pub async fn expected_hash(ctx: &Context, globs: &[String]) -> Result<String> {
    let parsed = super::keypairs::parse(ctx, globs).await?;
    let expansion = cgcloud_agent::expand(&ctx.aws.ec2(), &ctx.aws.iam(), &parsed)
        .await
        .map_err(|e| user_error!("failed to expand the key pairs `{}`: {e:#}", globs.join(" ")))?;
    Ok(expansion.hash())
}

