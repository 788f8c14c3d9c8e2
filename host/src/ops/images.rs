//! A role's own images: listing, resolving a reference, deleting.

use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Image, InstanceStateName, ResourceType, Tag, TagSpecification};
use cgcloud_plugin_host::{Offline, RoleData, RoleHandle};
use serde_json::{json, Value};

use super::prepare::{OWNER_TAG, ROLE_TAG};
use crate::aws::{self, error_code, tag, AwsResultExt};
use crate::ctx::Context;
use crate::errors::Result;
use crate::names::{at_ordinal, is_image_of, ImageRef};
use crate::{bail_user, user_error};

/// Tag keys of cgcloud's images beyond the original's (`generation`, `enable_agent`, options).
pub const IMAGE_ROLE_HASH_TAG: &str = "cgcloud:role-hash";
pub const IMAGE_PLUGIN_TAG: &str = "cgcloud:plugin";
pub const IMAGE_PLUGIN_VERSION_TAG: &str = "cgcloud:plugin-version";
pub const IMAGE_BASE_AMI_TAG: &str = "cgcloud:base-ami";

/// Tag key on the snapshots of cgcloud's images: the image they were made for.
pub const SNAPSHOT_IMAGE_TAG: &str = "cgcloud:image";

/// How long `delete-image` waits for a deregistered image to disappear.
pub const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(300);
/// How long `delete-image` keeps retrying a snapshot that is still in use.
pub const SNAPSHOT_IN_USE_TIMEOUT: Duration = Duration::from_secs(600);

/// The role's images in this namespace, oldest first (sorted by name, whose timestamp orders
/// them). Only images owned by this account are ever considered.
pub async fn list(ctx: &Context, image_prefix: &str) -> Result<Vec<Image>> {
    let pattern = format!("{}*", ctx.aws_name(&format!("{image_prefix}_"))?);
    let account = ctx.identity().await?.account.clone();
    let mut images: Vec<Image> = aws::own_images(&ctx.aws.ec2(), &account, &pattern)
        .await?
        .into_iter()
        .filter(|img| {
            img.name()
                .and_then(|n| ctx.namespace.from_aws_name(n).ok())
                .is_some_and(|rel| is_image_of(&rel, image_prefix))
        })
        .collect();
    images.sort_by(|a, b| a.name().cmp(&b.name()));
    Ok(images)
}

/// The image a reference denotes. An AMI ID must name one of the role's own images.
pub async fn resolve(ctx: &Context, role: &str, image_prefix: &str, r: &ImageRef) -> Result<Image> {
    let images = list(ctx, image_prefix).await?;
    match r {
        ImageRef::Ordinal(n) => {
            if images.is_empty() {
                bail_user!(
                    "role `{role}` has no images in namespace `{}`; `cgcloud image {role}` makes one",
                    ctx.namespace
                );
            }
            at_ordinal(&images, *n).cloned().ok_or_else(|| {
                user_error!(
                    "role `{role}` has no image at ordinal {n} in namespace `{}`: it has {} (ordinals 0 to {})",
                    ctx.namespace,
                    images.len(),
                    images.len() - 1
                )
            })
        }
        ImageRef::Ami(id) => {
            if let Some(img) = images.iter().find(|i| i.image_id() == Some(id.as_str())) {
                return Ok(img.clone());
            }
            let account = &ctx.identity().await?.account;
            match aws::own_image_by_id(&ctx.aws.ec2(), account, id).await? {
                Some(img) => bail_user!(
                    "image `{id}` (`{}`) is not an image of role `{role}` in namespace `{}`",
                    img.name().unwrap_or_default(),
                    ctx.namespace
                ),
                None => bail_user!(
                    "there is no image `{id}` owned by this account in region {}",
                    ctx.region
                ),
            }
        }
    }
}

/// One row of `cgcloud list-images`.
pub fn row(ctx: &Context, ordinal: usize, img: &Image) -> Value {
    json!({
        "name": img.name().and_then(|n| ctx.namespace.from_aws_name(n).ok()),
        "ordinal": ordinal,
        "id": img.image_id(),
        "state": img.state().map(|s| s.as_str()),
        "aws_name": img.name(),
        "creation_date": img.creation_date(),
        "setup": super::progress::setup_state(img.tags(), chrono::Utc::now()),
    })
}

/// Refuses an image a run has not finished making: one still being made (its run's claim is
/// current) or abandoned half-way (`ops::progress`).
pub fn check_finished(img: &Image) -> Result<()> {
    use super::progress::{setup_state, ABANDONED, SETTING_UP};
    let id = img.image_id().unwrap_or_default();
    match setup_state(img.tags(), chrono::Utc::now()) {
        Some(SETTING_UP) => bail_user!(
            "image `{id}` is still being made by a run of `cgcloud image`; wait for it, or choose another image"
        ),
        Some(ABANDONED) => bail_user!(
            "image `{id}` was never finished (the run making it was interrupted); `cgcloud cleanup` removes it, \
             choose another image"
        ),
        _ => Ok(()),
    }
}

/// Snapshots behind the image's EBS mappings.
pub fn snapshots(img: &Image) -> Vec<String> {
    img.block_device_mappings()
        .iter()
        .filter_map(|b| b.ebs().and_then(|e| e.snapshot_id()).map(str::to_string))
        .collect()
}

/// Deregisters the image, waits until it is gone, then deletes its snapshots (unless kept).
/// With `quick`, nothing is waited for and the snapshots are kept.
pub async fn delete(ctx: &Context, img: &Image, keep_snapshots: bool, quick: bool) -> Result<()> {
    let ec2 = ctx.aws.ec2();
    let id = img.image_id().unwrap_or_default().to_string();
    let snaps = snapshots(img);
    match ec2.deregister_image().image_id(&id).send().await {
        Ok(_) => {}
        // Gone already: a retry of a call whose answer was lost after it took effect.
        Err(e)
            if matches!(
                error_code(&e),
                Some("InvalidAMIID.Unavailable" | "InvalidAMIID.NotFound")
            ) => {}
        Err(e) => return Err(e).aws(|| format!("failed to deregister image `{id}`")),
    }
    ctx.shell.info(format!(
        "deregistered image `{id}` ({})",
        img.name().unwrap_or_default()
    ));
    if quick {
        if !snaps.is_empty() {
            ctx.shell
                .info(format!("kept snapshots {}", snaps.join(", ")));
        }
        return Ok(());
    }
    let account = ctx.identity().await?.account.clone();
    let deadline = Instant::now() + DEREGISTER_TIMEOUT;
    while aws::own_image_by_id(&ec2, &account, &id)
        .await?
        .is_some_and(|i| i.state().map(|s| s.as_str()) != Some("deregistered"))
    {
        if Instant::now() >= deadline {
            bail_user!(
                "image `{id}` was still listed {}s after it was deregistered",
                DEREGISTER_TIMEOUT.as_secs()
            );
        }
        tokio::time::sleep(aws::POLL_INTERVAL).await;
    }
    if keep_snapshots {
        if !snaps.is_empty() {
            ctx.shell
                .info(format!("kept snapshots {}", snaps.join(", ")));
        }
        return Ok(());
    }
    for snap in snaps {
        let deadline = Instant::now() + SNAPSHOT_IN_USE_TIMEOUT;
        loop {
            match ec2.delete_snapshot().snapshot_id(&snap).send().await {
                Ok(_) => {
                    ctx.shell.info(format!("deleted snapshot `{snap}`"));
                    break;
                }
                Err(e) if error_code(&e) == Some("InvalidSnapshot.NotFound") => break,
                Err(e) if error_code(&e) == Some("InvalidSnapshot.InUse") && Instant::now() < deadline => {
                    tokio::time::sleep(aws::POLL_INTERVAL).await;
                }
                Err(e) => {
                    return Err(e).aws(|| format!("image `{id}` is deregistered but its snapshot `{snap}` could not be deleted"))
                }
            }
        }
    }
    Ok(())
}

/// Makes an image of a stopped box: named `<prefix>_<local time>` in the namespace, tagged
/// with the next generation, inherited options, and the role's hash, plugin and base image.
pub async fn make(
    ctx: &Context,
    role: &RoleHandle,
    id: &str,
    data: &RoleData,
    options: &BTreeMap<String, String>,
) -> Result<String> {
    let ec2 = ctx.aws.ec2();
    let i = aws::wait_for_state(
        &ec2,
        id,
        &[InstanceStateName::Stopping, InstanceStateName::Stopped],
        InstanceStateName::Stopped,
        crate::config::timeouts().stop,
    )
    .await
    .map_err(|e| user_error!("{e}; stop the box first with `cgcloud stop {}`", data.name))?;
    let generation: u32 = tag(i.tags(), "generation")
        .and_then(|g| g.parse().ok())
        .unwrap_or(0)
        + 1;
    let stamp = chrono::Local::now().format("%Y-%m-%d_%H-%M-%S");
    let name = ctx.aws_name(&format!("{}_{stamp}", data.image_name_prefix))?;
    let base_ami = tag(i.tags(), IMAGE_BASE_AMI_TAG)
        .map(str::to_string)
        .or_else(|| i.image_id().map(str::to_string))
        .unwrap_or_default();
    let hash = role.definition_hash(&Offline {
        options: options.clone(),
        logger: &|_, _| {},
    })?;
    let mut tags = vec![
        ("generation".to_string(), generation.to_string()),
        (
            "enable_agent".to_string(),
            tag(i.tags(), "enable_agent").unwrap_or("False").to_string(),
        ),
        (ROLE_TAG.to_string(), data.name.clone()),
        (OWNER_TAG.to_string(), ctx.namespace.as_str().to_string()),
        (IMAGE_ROLE_HASH_TAG.to_string(), hash),
        (IMAGE_PLUGIN_TAG.to_string(), data.plugin.clone()),
        (
            IMAGE_PLUGIN_VERSION_TAG.to_string(),
            data.plugin_version.clone(),
        ),
        (IMAGE_BASE_AMI_TAG.to_string(), base_ami),
    ];
    for o in data.options.iter().filter(|o| o.inherited) {
        if let Some(v) = options.get(&o.name) {
            tags.push((o.name.clone(), v.clone()));
        }
    }
    // Marked unfinished from its creation on, with this run's claim (`ops::progress`): a run
    // killed half-way leaves an image `cleanup` finds.
    tags.extend(super::progress::launch_tags());
    let token = super::launch::launch_token()?;
    tags.push((super::launch::LAUNCH_TAG.to_string(), token.clone()));
    let tag_list: Vec<Tag> = tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
    let made = ec2
        .create_image()
        .instance_id(id)
        .name(&name)
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Image)
                .set_tags(Some(tag_list))
                .build(),
        )
        .send()
        .await;
    let image_id = match made {
        Ok(out) => {
            let image_id = out.image_id().unwrap_or_default().to_string();
            remove_duplicates(ctx, &name, &token, &image_id).await;
            image_id
        }
        // A retry whose first attempt made the image and lost the answer: that image is ours if
        // it carries this call's token.
        Err(e) if error_code(&e) == Some("InvalidAMIName.Duplicate") => {
            match made_by_call(ctx, &name, &token).await?.first() {
                Some(i) => i.image_id().unwrap_or_default().to_string(),
                None => {
                    return Err(e)
                        .aws(|| format!("failed to make an image of `{id}` named `{name}`"))
                }
            }
        }
        Err(e) => return Err(e).aws(|| format!("failed to make an image of `{id}`")),
    };
    let lease = super::progress::keep(ctx, vec![image_id.clone()]);
    let made = finish_image(ctx, id, data, &image_id).await;
    drop(lease);
    match made {
        Ok(()) => {
            super::progress::mark(ctx, &image_id, super::progress::READY).await;
            ctx.shell
                .info(format!("made image `{image_id}` ({name}) of `{id}`"));
            Ok(image_id)
        }
        Err(e) => {
            ctx.shell.warn(format!(
                "image `{image_id}` is left unfinished; `cgcloud cleanup` removes it once this run's claim runs out \
                 (CGCLOUD_TIMEOUT_LEASE), or `cgcloud delete-image` now"
            ));
            Err(e)
        }
    }
}

/// Deregisters images named `name` with this call's `token` other than `image_id`: a retried
/// CreateImage whose first answer was lost after it took effect made them, where the endpoint
/// did not refuse the second image of the same name. A failure is a warning naming them: they
/// are marked `setting-up` with this run's first claim, so `cleanup` removes them once it runs
/// out.
async fn remove_duplicates(ctx: &Context, name: &str, token: &str, image_id: &str) {
    let same = match made_by_call(ctx, name, token).await {
        Ok(same) => same,
        Err(e) => {
            ctx.shell.debug(format!(
                "could not look for images made twice: {}",
                crate::errors::one_line(&e)
            ));
            return;
        }
    };
    for dup in same.iter().filter(|i| i.image_id() != Some(image_id)) {
        let dup_id = dup.image_id().unwrap_or_default();
        match delete(ctx, dup, false, false).await {
            Ok(()) => ctx.shell.warn(format!(
                "deregistered image `{dup_id}`: made by a retry of CreateImage whose first answer was lost"
            )),
            Err(e) => ctx.shell.warn(format!(
                "image `{dup_id}` was made by a retry of CreateImage whose first answer was lost and could not be \
                 deregistered ({}); `cgcloud cleanup` removes it once this run's claim runs out",
                crate::errors::one_line(&e)
            )),
        }
    }
}

/// This account's images named `name` that carry the call token `token` (`launch::LAUNCH_TAG`).
async fn made_by_call(ctx: &Context, name: &str, token: &str) -> Result<Vec<Image>> {
    let account = ctx.identity().await?.account.clone();
    Ok(aws::own_images(&ctx.aws.ec2(), &account, name)
        .await?
        .into_iter()
        .filter(|i| tag(i.tags(), super::launch::LAUNCH_TAG) == Some(token))
        .collect())
}

/// Waits until the new image `image_id` of box `id` is available and listed, and tags its
/// snapshots.
async fn finish_image(ctx: &Context, id: &str, data: &RoleData, image_id: &str) -> Result<()> {
    let ec2 = ctx.aws.ec2();
    let image_id = image_id.to_string();
    let account = ctx.identity().await?.account.clone();
    let deadline = Instant::now() + crate::config::timeouts().image;
    loop {
        let img = aws::own_image_by_id(&ec2, &account, &image_id).await?;
        match img
            .as_ref()
            .and_then(|i| i.state())
            .map(|s| s.as_str().to_string())
            .as_deref()
        {
            Some("available") => break,
            Some("failed") | Some("error") => bail_user!("image `{image_id}` of `{id}` failed"),
            _ if Instant::now() >= deadline => bail_user!(
                "image `{image_id}` was not available after {}s",
                crate::config::timeouts().image.as_secs()
            ),
            _ => tokio::time::sleep(aws::POLL_INTERVAL).await,
        }
    }
    // Ownership tags on the image's snapshots, so that `cleanup` can find them once the image is gone.
    tag_image_snapshots(ctx, &account, &image_id).await;
    // NOTE: DescribeImages by name lags behind by ID on EC2; wait until listings show it too.
    let deadline = Instant::now() + Duration::from_secs(300);
    while !list(ctx, &data.image_name_prefix)
        .await?
        .iter()
        .any(|i| i.image_id() == Some(image_id.as_str()))
    {
        if Instant::now() >= deadline {
            bail_user!("image `{image_id}` is available but not listed after 300s");
        }
        tokio::time::sleep(aws::POLL_INTERVAL).await;
    }
    Ok(())
}

/// Tags the snapshots of a new image of this account with the ownership tag and
/// [`SNAPSHOT_IMAGE_TAG`]. A failure is a warning: the image is fine, only `cleanup` will not
/// find its snapshots.
///
/// NOTE: moto fails on `TagSpecifications` of resource type `snapshot` in `CreateImage`, so the
/// snapshots are tagged afterwards with `CreateTags`, once the image is available and lists them.
pub async fn tag_image_snapshots(ctx: &Context, account: &str, image_id: &str) {
    let ec2 = ctx.aws.ec2();
    let result = async {
        let Some(img) = aws::own_image_by_id(&ec2, account, image_id).await? else {
            anyhow::bail!("the image has disappeared");
        };
        let snaps = snapshots(&img);
        if snaps.is_empty() {
            return Ok(snaps);
        }
        ec2.create_tags()
            .set_resources(Some(snaps.clone()))
            .tags(
                aws_sdk_ec2::types::Tag::builder()
                    .key(OWNER_TAG)
                    .value(ctx.namespace.as_str())
                    .build(),
            )
            .tags(
                aws_sdk_ec2::types::Tag::builder()
                    .key(SNAPSHOT_IMAGE_TAG)
                    .value(image_id)
                    .build(),
            )
            .send()
            .await
            .aws(|| format!("failed to tag snapshots {}", snaps.join(", ")))?;
        Ok(snaps)
    }
    .await;
    match result {
        Ok(snaps) => ctx.shell.debug(format!("tagged snapshots {} of `{image_id}`", snaps.join(", "))),
        Err(e) => ctx.shell.warn(format!(
            "could not tag the snapshots of image `{image_id}` ({}); `cgcloud cleanup` will not find them once the \
             image is deleted",
            crate::errors::one_line(&e)
        )),
    }
}
