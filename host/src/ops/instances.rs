//! Finding a role's instances ("binding"), listing, showing and terminating them.

use aws_sdk_ec2::types::{Instance, InstanceStateName};
use serde_json::{json, Map, Value};

use crate::aws::{self, tag, AwsResultExt};
use crate::ctx::Context;
use crate::errors::Result;
use crate::{bail_user, user_error};

/// Which instance of a role a command is about.
#[derive(Debug, Clone)]
pub struct Selection {
    pub role: String,
    pub cluster_name: Option<String>,
    pub ordinal: i64,
    pub instance_id: Option<String>,
}

/// The role's instances in this namespace, in ordinal order.
pub async fn list(ctx: &Context, role: &str, cluster_name: Option<&str>) -> Result<Vec<Instance>> {
    let name = ctx.aws_name(role)?;
    let tags: Vec<(&str, &str)> = cluster_name
        .map(|c| ("cluster_name", c))
        .into_iter()
        .collect();
    aws::instances_named(&ctx.aws.ec2(), &name, &tags).await
}

/// The instance a selection denotes. An instance picked by ID must carry this role's `Name` in
/// this namespace (and the cluster name, if one was given): cgcloud never acts on an instance
/// it cannot prove belongs to the role.
pub async fn bind(ctx: &Context, sel: &Selection) -> Result<Instance> {
    let expected = ctx.aws_name(&sel.role)?;
    if let Some(id) = &sel.instance_id {
        let Some(i) = aws::instance_by_id(&ctx.aws.ec2(), id).await? else {
            bail_user!("there is no instance `{id}` in region {}", ctx.region);
        };
        let name = tag(i.tags(), "Name");
        if name != Some(expected.as_str()) {
            bail_user!(
                "instance `{id}` is not a box of role `{}` in namespace `{}` (its Name tag is `{}`)",
                sel.role,
                ctx.namespace,
                name.unwrap_or("")
            );
        }
        if let (Some(want), Some(have)) = (&sel.cluster_name, tag(i.tags(), "cluster_name")) {
            if want != have {
                bail_user!("instance `{id}` belongs to cluster `{have}`, not `{want}`");
            }
        }
        if aws::state_of(&i) == Some(InstanceStateName::Terminated) {
            bail_user!("instance `{id}` is terminated");
        }
        return Ok(i);
    }
    let all = list(ctx, &sel.role, sel.cluster_name.as_deref()).await?;
    if all.is_empty() {
        let cluster = sel
            .cluster_name
            .as_ref()
            .map(|c| format!(" in cluster `{c}`"))
            .unwrap_or_default();
        bail_user!(
            "no box of role `{}`{cluster} in namespace `{}`; `cgcloud create {}` makes one",
            sel.role,
            ctx.namespace,
            sel.role
        );
    }
    crate::names::at_ordinal(&all, sel.ordinal).cloned().ok_or_else(|| {
        user_error!(
            "no box of role `{}` at ordinal {} in namespace `{}`: there are {} (ordinals 0 to {}, or -1 to -{})",
            sel.role,
            sel.ordinal,
            ctx.namespace,
            all.len(),
            all.len() - 1,
            all.len()
        )
    })
}

/// Refuses to change a box that does not carry cgcloud's ownership tag (`cgcloud:namespace`)
/// for this namespace: its name alone proves nothing (anyone can name an instance like a box).
pub fn check_owned(ctx: &Context, i: &Instance) -> Result<()> {
    let id = i.instance_id().unwrap_or_default();
    check_owner_tag(
        ctx,
        &format!("box `{id}`"),
        tag(i.tags(), super::prepare::OWNER_TAG),
        &format!("--resources {id}"),
    )
}

/// The check of [`check_owned`] for any resource: `what` names it, `resource` is how
/// `aws ec2 create-tags` names it.
pub fn check_owner_tag(
    ctx: &Context,
    what: &str,
    owner: Option<&str>,
    resource: &str,
) -> Result<()> {
    let ns = ctx.namespace.as_str();
    match owner {
        Some(o) if o == ns => Ok(()),
        Some(o) => bail_user!(
            "{what} belongs to namespace `{o}` (its `{}` tag), not `{ns}`; cgcloud leaves it alone",
            super::prepare::OWNER_TAG
        ),
        None => bail_user!(
            "{what} has no `{tag}` tag, so cgcloud cannot tell that it made it and will not change it (made by the \
             original cgcloud or another tool?); to adopt it into `{ns}`, tag it: `aws ec2 create-tags {resource} --tags \
             Key={tag},Value={ns}`",
            tag = super::prepare::OWNER_TAG
        ),
    }
}

/// The columns of `cgcloud list`, as the original prints them.
pub const LIST_COLUMNS: [&str; 11] = [
    "cluster_name",
    "role_name",
    "ordinal",
    "cluster_ordinal",
    "private_ip_address",
    "ip_address",
    "instance_id",
    "instance_type",
    "launch_time",
    "state",
    "zone",
];

/// One row of `cgcloud list` as a JSON object keyed by [`LIST_COLUMNS`] (values are strings,
/// `null` where EC2 has none; `ordinal` and `cluster_ordinal` are numbers).
pub fn list_row(ctx: &Context, ordinal: usize, i: &Instance) -> Value {
    let tags = i.tags();
    let role_name = tag(tags, "Name").and_then(|n| ctx.namespace.from_aws_name(n).ok());
    let cluster_ordinal: Option<i64> = tag(tags, "cluster_ordinal").and_then(|v| v.parse().ok());
    json!({
        "cluster_name": tag(tags, "cluster_name"),
        "role_name": role_name,
        "ordinal": ordinal,
        "cluster_ordinal": cluster_ordinal,
        "private_ip_address": i.private_ip_address(),
        "ip_address": i.public_ip_address(),
        "instance_id": i.instance_id(),
        "instance_type": i.instance_type().map(|t| t.as_str()),
        "launch_time": i.launch_time().map(|t| t.to_string()),
        "state": aws::state_of(i).map(|s| s.as_str().to_string()),
        "zone": i.placement().and_then(|p| p.availability_zone()),
        "setup": super::progress::setup_state(tags, chrono::Utc::now()),
    })
}

/// What `cgcloud show` prints: the instance's attributes as a JSON object.
pub fn describe(i: &Instance) -> Value {
    let mut tags = Map::new();
    for t in i.tags() {
        tags.insert(
            t.key().unwrap_or_default().to_string(),
            Value::from(t.value().unwrap_or_default()),
        );
    }
    let groups: Vec<Value> = i
        .security_groups()
        .iter()
        .map(|g| json!({"group_id": g.group_id(), "group_name": g.group_name()}))
        .collect();
    let devices: Vec<Value> = i
        .block_device_mappings()
        .iter()
        .map(|b| {
            json!({
                "device_name": b.device_name(),
                "volume_id": b.ebs().and_then(|e| e.volume_id()),
                "delete_on_termination": b.ebs().and_then(|e| e.delete_on_termination()),
            })
        })
        .collect();
    json!({
        "instance_id": i.instance_id(),
        "image_id": i.image_id(),
        "instance_type": i.instance_type().map(|t| t.as_str()),
        "state": aws::state_of(i).map(|s| s.as_str().to_string()),
        "state_reason": i.state_transition_reason(),
        "launch_time": i.launch_time().map(|t| t.to_string()),
        "zone": i.placement().and_then(|p| p.availability_zone()),
        "private_ip_address": i.private_ip_address(),
        "private_dns_name": i.private_dns_name(),
        "public_ip_address": i.public_ip_address(),
        "public_dns_name": i.public_dns_name(),
        "key_name": i.key_name(),
        "vpc_id": i.vpc_id(),
        "subnet_id": i.subnet_id(),
        "architecture": i.architecture().map(|a| a.as_str()),
        "virtualization_type": i.virtualization_type().map(|v| v.as_str()),
        "instance_lifecycle": i.instance_lifecycle().map(|l| l.as_str()),
        "iam_instance_profile": i.iam_instance_profile().and_then(|p| p.arn()),
        "root_device_name": i.root_device_name(),
        "block_devices": devices,
        "security_groups": groups,
        "tags": tags,
    })
}

/// Terminates the instance; waits until it is gone unless `quick`.
pub async fn terminate(ctx: &Context, i: &Instance, quick: bool) -> Result<()> {
    let id = i.instance_id().unwrap_or_default();
    let ec2 = ctx.aws.ec2();
    ec2.terminate_instances()
        .instance_ids(id)
        .send()
        .await
        .aws(|| format!("failed to terminate `{id}`"))?;
    ctx.shell.info(format!("terminating instance `{id}`"));
    if !quick {
        aws::wait_for_state(
            &ec2,
            id,
            &[
                InstanceStateName::Pending,
                InstanceStateName::Running,
                InstanceStateName::Stopping,
                InstanceStateName::Stopped,
                InstanceStateName::ShuttingDown,
            ],
            InstanceStateName::Terminated,
            crate::config::timeouts().terminate,
        )
        .await?;
        ctx.shell.info(format!("instance `{id}` is terminated"));
    }
    Ok(())
}

/// What cgcloud keeps about a box beyond the instance, removed once it is terminated: its
/// host-key pin, its ssh config and its agent's queue. A failure to remove the queue is a
/// warning (`cgcloud cleanup` finds it later).
pub async fn forget(ctx: &Context, id: &str) -> Result<()> {
    let ssh = super::access::ssh_settings(None)?;
    crate::ssh::known_hosts::forget(&ssh.known_hosts(), id)?;
    let _ = std::fs::remove_file(ssh.data_dir.join("ssh").join(format!("{id}.config")));
    if let Err(e) = super::agent::remove_wiring(ctx, id).await {
        ctx.shell.warn(format!(
            "{}; `cgcloud cleanup` removes it later",
            crate::errors::one_line(&e)
        ));
    }
    Ok(())
}
