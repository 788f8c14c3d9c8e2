//! Starting, stopping and rebooting a box, and imaging a stopped one. Starting boots the box
//! the way `create` does (`ops::boot`, with `first_boot` false), so the role's boot hooks run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{Instance, InstanceStateName, Tag};
use cgcloud_plugin_host::{RoleData, RoleHandle};

use super::boot::{self, Boot};
use super::{access, hostkeys, instances, launch};
use crate::aws::{self, AwsResultExt};
use crate::ctx::Context;
use crate::errors::Result;
use crate::ssh::remote::Remote;
use crate::{bail_user, user_error};

/// The role options of a box: the role's defaults, overridden by the options it was made with
/// (its tags).
pub fn box_options(i: &Instance, data: &RoleData) -> BTreeMap<String, String> {
    data.options
        .iter()
        .filter_map(|o| {
            aws::tag(i.tags(), &o.name)
                .map(str::to_string)
                .or_else(|| o.default.clone())
                .map(|v| (o.name.clone(), v))
        })
        .collect()
}

fn require_state(i: &Instance, wanted: InstanceStateName) -> Result<()> {
    let state = aws::state_of(i);
    if state.as_ref() != Some(&wanted) {
        bail_user!(
            "box `{}` is `{}`, not {}",
            i.instance_id().unwrap_or_default(),
            state.map(|s| s.as_str().to_string()).unwrap_or_default(),
            wanted.as_str()
        );
    }
    Ok(())
}

/// Starts a stopped box and boots it: `on_instance_running`, SSH and cloud-init,
/// `on_instance_ready`.
pub async fn start(
    ctx: &Context,
    role: &Arc<RoleHandle>,
    data: &RoleData,
    i: &Instance,
) -> Result<()> {
    let id = i.instance_id().unwrap_or_default();
    instances::check_owned(ctx, i)?;
    require_state(i, InstanceStateName::Stopped)?;
    let ssh = access::ssh_settings(None)?;
    hostkeys::ensure_pinned(ctx, &ssh, i).await?;
    let private =
        i.public_ip_address().is_none() && i.private_ip_address().is_some() && i.vpc_id().is_some();
    let (_, address) = launch::start(ctx, id, private).await?;
    ctx.shell
        .info(format!("started `{id}`; waiting until it answers over SSH"));
    let options = box_options(i, data);
    let boot = Boot {
        role,
        options: &options,
        ssh: &ssh,
        id,
        admin: &data.admin_account,
        first_boot: false,
        rotate_host_key: false,
        secret: None,
        volume: None,
    };
    let mut phases = launch::Phases::default();
    let (remote, _) = boot
        .booted(ctx, address, &mut phases, Instant::now())
        .await?;
    boot::close(remote).await;
    ctx.shell.info(format!("box `{id}` is ready"));
    Ok(())
}

/// Stops a running box after readying its disk for an image (see [`prepare_for_image`]).
pub async fn stop(ctx: &Context, data: &RoleData, i: &Instance) -> Result<()> {
    let id = i.instance_id().unwrap_or_default();
    instances::check_owned(ctx, i)?;
    require_state(i, InstanceStateName::Running)?;
    // Ready the disk for an image: no personal keys, no user data. A box that does not answer
    // is stopped all the same; `cgcloud image` then asks for --force.
    if let Err(e) = prepare_for_image(ctx, data, i).await {
        ctx.shell.warn(format!(
            "{}; stopping `{id}` anyway, but its disk may still hold its agent's keys and cloud-init's copy of its \
             user data (`cgcloud image` asks for --force)",
            crate::errors::one_line(&e)
        ));
    }
    launch::stop(ctx, id).await?;
    ctx.shell.info(format!("stopped `{id}`"));
    Ok(())
}

/// Stops and starts a box (refused before the stop if cgcloud could not verify its host key
/// afterwards).
pub async fn reboot(
    ctx: &Context,
    role: &Arc<RoleHandle>,
    data: &RoleData,
    i: &Instance,
) -> Result<()> {
    instances::check_owned(ctx, i)?;
    hostkeys::ensure_pinned(ctx, &access::ssh_settings(None)?, i).await?;
    stop(ctx, data, i).await?;
    let i = aws::instance_by_id(&ctx.aws.ec2(), i.instance_id().unwrap_or_default())
        .await?
        .ok_or_else(|| user_error!("the box disappeared while it was stopped"))?;
    start(ctx, role, data, &i).await
}

/// Makes an image of a box stopped with `cgcloud stop` (or any stopped box with `force`).
pub async fn image(
    ctx: &Context,
    role: &RoleHandle,
    data: &RoleData,
    i: &Instance,
    force: bool,
) -> Result<String> {
    instances::check_owned(ctx, i)?;
    if !force && !ready_for_image(i) {
        bail_user!(
            "box `{}` was not stopped by `cgcloud stop` since it last started, so its disk may still hold its agent's keys \
             and cloud-init's copy of its user data, which the image would carry; start it and stop it with `cgcloud stop`, \
             or pass --force",
            i.instance_id().unwrap_or_default()
        );
    }
    let options = box_options(i, data);
    super::images::make(
        ctx,
        role,
        i.instance_id().unwrap_or_default(),
        data,
        &options,
    )
    .await
}

/// Readies a running box's disk for an image: stops its agent and empties the key files it
/// manages, removes cloud-init's copies of the user data, and records that in the
/// `cgcloud:image-ready` tag. The agent starts again with the box.
async fn prepare_for_image(ctx: &Context, data: &RoleData, i: &Instance) -> Result<()> {
    let id = i.instance_id().unwrap_or_default();
    let ssh = access::ssh_settings(None)?;
    let target = access::target(ctx, &ssh, i, &data.admin_account).await?;
    let remote = Remote::connect(&ssh, &target, Duration::from_secs(60), &ctx.shell).await?;
    let result = async {
        if aws::tag(i.tags(), "enable_agent") == Some("True") {
            super::agent::clear_for_image(&remote, &super::create::agent_accounts(data)).await?;
        }
        hostkeys::forget_user_data(&remote).await
    }
    .await;
    remote.close().await;
    result?;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    ctx.aws
        .ec2()
        .create_tags()
        .resources(id)
        .tags(
            Tag::builder()
                .key(hostkeys::IMAGE_READY_TAG)
                .value(now)
                .build(),
        )
        .send()
        .await
        .aws(|| format!("failed to tag `{id}`"))?;
    Ok(())
}

/// Whether `cgcloud stop` readied the box's disk since the box last started (EC2's launch time
/// is the time of the last start).
fn ready_for_image(i: &Instance) -> bool {
    let Some(ready) = aws::tag(i.tags(), hostkeys::IMAGE_READY_TAG)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    else {
        return false;
    };
    let started = i.launch_time().map(|t| t.secs()).unwrap_or(i64::MAX);
    ready.timestamp() >= started
}
