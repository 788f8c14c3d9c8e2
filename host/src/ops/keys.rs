//! `cgcloud keys status` and `cgcloud keys set`: what each box's agent applied, and changing a
//! running box's key pair globs (the original could not do that for recreated boxes).

use std::collections::BTreeMap;

use serde::Serialize;

use super::agent::{self, KEYPAIRS_TAG};
use super::instances::{self, Selection};
use crate::aws::{self, tag, AwsResultExt};
use crate::ctx::{Context, Globals};
use crate::errors::Result;
use crate::ops::prepare::{OWNER_TAG, ROLE_TAG};
use crate::roles::Roles;
use crate::ssh::remote::Remote;

/// One box in `keys status`.
#[derive(Debug, Clone, Serialize)]
pub struct BoxKeys {
    pub instance_id: String,
    pub role: String,
    pub state: String,
    pub keypairs: String,
    pub expected: String,
    pub applied: Option<String>,
    pub applied_at: Option<String>,
    /// `converged`, `pending` (the agent has not applied the current set yet) or `no-agent`.
    pub status: String,
    /// The problem the agent reports in its `cgcloud:agent-problem` tag, if any (written by the
    /// box: shown escaped).
    pub problem: Option<String>,
}

/// The namespace's boxes (running or stopped) and whether their agents applied the key set
/// their globs stand for now.
pub async fn status(ctx: &Context) -> Result<Vec<BoxKeys>> {
    let ec2 = ctx.aws.ec2();
    let mut pages = ec2
        .describe_instances()
        .filters(aws::filter(
            &format!("tag:{OWNER_TAG}"),
            &[ctx.namespace.as_str()],
        ))
        .filters(aws::filter(
            "instance-state-name",
            &["pending", "running", "stopping", "stopped"],
        ))
        .into_paginator()
        .send();
    let mut out = Vec::new();
    let mut hashes: BTreeMap<String, String> = BTreeMap::new();
    while let Some(page) = pages.next().await {
        let page =
            page.aws(|| format!("failed to list the boxes of namespace `{}`", ctx.namespace))?;
        for i in page.reservations().iter().flat_map(|r| r.instances()) {
            let tags = i.tags();
            let globs = tag(tags, KEYPAIRS_TAG).unwrap_or_default().to_string();
            let enabled = tag(tags, "enable_agent") == Some("True");
            let expected = if enabled && !globs.is_empty() {
                match hashes.get(&globs) {
                    Some(h) => h.clone(),
                    None => {
                        let list: Vec<String> =
                            globs.split_whitespace().map(str::to_string).collect();
                        let h = agent::expected_hash(ctx, &list).await?;
                        hashes.insert(globs.clone(), h.clone());
                        h
                    }
                }
            } else {
                String::new()
            };
            let ack = cgcloud_agent::ack_from_tags(
                tags.iter()
                    .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
            );
            let status = if !enabled {
                "no-agent"
            } else if ack.as_ref().is_some_and(|a| a.hash == expected) {
                "converged"
            } else {
                "pending"
            };
            out.push(BoxKeys {
                instance_id: i.instance_id().unwrap_or_default().into(),
                role: tag(tags, ROLE_TAG).unwrap_or_default().into(),
                state: aws::state_of(i)
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                keypairs: globs,
                expected,
                applied: ack.as_ref().map(|a| a.hash.clone()),
                applied_at: ack.map(|a| a.applied),
                status: status.into(),
                problem: cgcloud_agent::problem_from_tags(
                    tags.iter()
                        .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
                )
                .map(|p| p.chars().take(cgcloud_agent::PROBLEM_TAG_CHARS).collect()),
            });
        }
    }
    out.sort_by(|a, b| (&a.role, &a.instance_id).cmp(&(&b.role, &b.instance_id)));
    Ok(out)
}

/// Gives a running box new key pair globs: its agent is reconfigured and restarted, and the
/// instance's tag updated.
pub async fn set(ctx: &Context, g: &Globals, mut sel: Selection, globs: &[String]) -> Result<()> {
    let roles = Roles::load(g)?;
    let data = roles.get(&sel.role)?;
    sel.role = data.name.clone();
    let i = instances::bind(ctx, &sel).await?;
    let id = i.instance_id().unwrap_or_default().to_string();
    instances::check_owned(ctx, &i)?;
    if tag(i.tags(), "enable_agent") != Some("True") {
        crate::bail_user!(
            "box `{id}` runs no agent (it was made with --no-agent), so its keys cannot be changed"
        );
    }
    let parsed = super::keypairs::parse(ctx, globs).await?;
    let resolved: Vec<String> = parsed
        .iter()
        .map(|g| match g {
            cgcloud_common::keypairs::KeypairGlob::Pattern(p) => p.clone(),
            cgcloud_common::keypairs::KeypairGlob::User(u) => format!("@{u}"),
            cgcloud_common::keypairs::KeypairGlob::Group(gr) => format!("@@{gr}"),
        })
        .collect();
    let ssh = super::access::ssh_settings(None)?;
    let arch_name = i
        .architecture()
        .map(|a| a.as_str().to_string())
        .unwrap_or_else(|| "x86_64".into());
    let Some(arch) = cgcloud_common::elf::Arch::parse(&arch_name) else {
        crate::bail_user!(
            "box `{id}` is {arch_name}; cgcloud-agent runs on x86_64 and arm64 boxes only"
        );
    };
    let program = agent::select(&ssh.data_dir, arch)?;
    // Boxes made before cgcloud created agents' queues get theirs now.
    agent::wire(ctx, &id).await?;
    let target = super::access::target(ctx, &ssh, &i, &data.admin_account).await?;
    let remote = Remote::connect(&ssh, &target, crate::config::timeouts().ssh, &ctx.shell).await?;
    let mut accounts = vec![data.admin_account.clone()];
    if data.default_account != data.admin_account {
        accounts.push(data.default_account.clone());
    }
    agent::install(ctx, &remote, &id, &program, &resolved, &accounts).await?;
    remote.close().await;
    ctx.aws
        .ec2()
        .create_tags()
        .resources(&id)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key(KEYPAIRS_TAG)
                .value(resolved.join(" "))
                .build(),
        )
        .send()
        .await
        .aws(|| format!("failed to tag `{id}`"))?;
    ctx.shell.info(format!(
        "box `{id}` now takes its keys from `{}`",
        resolved.join(" ")
    ));
    Ok(())
}

/// The key pair `name` (`__me__` substituted) and its fingerprint, if it exists.
pub async fn revocable(ctx: &Context, name: &str) -> Result<(String, String)> {
    let name = ctx.resolve_keypair_name(name).await?;
    match aws::key_pair(&ctx.aws.ec2(), &name).await? {
        Some(k) => Ok((name, k.key_fingerprint().unwrap_or_default().to_string())),
        None => crate::bail_user!("there is no key pair `{name}` in region {}", ctx.region),
    }
}

/// Deletes key pair `name` from EC2 and notifies the namespace's agents, which remove its key
/// from every box at once (or at their next periodic refresh, should the notification fail).
pub async fn revoke(ctx: &Context, name: &str) -> Result<()> {
    ctx.aws
        .ec2()
        .delete_key_pair()
        .key_name(name)
        .send()
        .await
        .aws(|| format!("failed to delete key pair `{name}`"))?;
    ctx.shell.info(format!("deleted key pair `{name}`"));
    match agent::notify(ctx, name).await {
        Ok(true) => ctx.shell.info(format!(
            "notified the agents of namespace `{}`",
            ctx.namespace
        )),
        Ok(false) => {}
        Err(e) => ctx.shell.warn(format!(
            "{}; boxes drop the key at their next periodic refresh",
            crate::errors::one_line(&e)
        )),
    }
    Ok(())
}
