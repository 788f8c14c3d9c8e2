//! `cleanup`: what cgcloud left behind in a namespace that nothing uses any more — boxes and
//! images a killed run never finished, snapshots of deleted images, host-key pins of instances that are
//! gone, agent queues of terminated boxes —
//! found by ownership tag (`ops::security::owned_by`), listed first, then deleted.

use std::collections::BTreeSet;
use std::path::Path;

use aws_sdk_ec2::config::Region;

use super::images::SNAPSHOT_IMAGE_TAG;
use super::prepare::OWNER_TAG;
use super::security::{owned_by, Failure, Item, IDS_PER_CALL};
use crate::aws::{self, error_code, filter, tag, AwsResultExt};
use crate::ctx::Context;
use crate::errors::Result;
use crate::ssh::known_hosts;

/// What `cleanup` deletes.
#[derive(Debug, Default)]
pub struct Leftovers {
    /// Snapshots of this namespace's images that no image references any more.
    pub snapshots: Vec<Item>,
    /// Pins in cgcloud's known_hosts of instances that no region of this account runs.
    pub pins: Vec<Item>,
    /// The agent's queues of instances that are gone (see [`agent_queues_to_sweep`]).
    pub queues: Vec<Item>,
    /// Instances a run was setting up and abandoned (`ops::progress`): terminated, with their
    /// agent wiring and pin.
    pub unfinished: Vec<Item>,
    /// Images a run was making and abandoned (`ops::progress`): deregistered, their snapshots
    /// deleted.
    pub unfinished_images: Vec<(Item, aws_sdk_ec2::types::Image)>,
}

impl Leftovers {
    pub fn items(&self) -> Vec<&Item> {
        self.unfinished
            .iter()
            .chain(self.unfinished_images.iter().map(|(item, _)| item))
            .chain(&self.snapshots)
            .chain(&self.pins)
            .chain(&self.queues)
            .collect()
    }
}

/// Instance states that count as "still there".
const LIVE_STATES: [&str; 5] = ["pending", "running", "shutting-down", "stopping", "stopped"];

/// Finds what `cleanup` would delete; touches nothing.
pub async fn find_leftovers(ctx: &Context, known_hosts_file: &Path) -> Result<Leftovers> {
    let live = live_instances(&ctx.aws.ec2(), None).await?;
    Ok(Leftovers {
        unfinished: abandoned_instances(ctx).await?,
        unfinished_images: abandoned_images(ctx).await?,
        snapshots: orphaned_snapshots(ctx).await?,
        pins: dead_pins(ctx, known_hosts_file, &live).await?,
        queues: agent_queues_to_sweep(ctx, &live).await?,
    })
}

/// The namespace's instances (or its children's) still marked `setting-up` whose run's claim
/// ran out: a run that was killed or lost its network left them (`ops::progress`).
async fn abandoned_instances(ctx: &Context) -> Result<Vec<Item>> {
    use super::progress::{setup_state, ABANDONED, LEASE_TAG, SETTING_UP, STATE_TAG};
    let ec2 = ctx.aws.ec2();
    let mut pages = ec2
        .describe_instances()
        .filters(filter(&format!("tag:{STATE_TAG}"), &[SETTING_UP]))
        .filters(filter("instance-state-name", &LIVE_STATES))
        .into_paginator()
        .send();
    let now = chrono::Utc::now();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.aws(|| "failed to list unfinished instances".to_string())?;
        for i in page.reservations().iter().flat_map(|r| r.instances()) {
            let owner = tag(i.tags(), OWNER_TAG);
            if !owned_by(&ctx.namespace, owner) || setup_state(i.tags(), now) != Some(ABANDONED) {
                continue;
            }
            out.push(Item {
                kind: "unfinished-instance",
                id: i.instance_id().unwrap_or_default().to_string(),
                detail: format!(
                    "{}, claimed until {}",
                    tag(i.tags(), "Name").unwrap_or("(no name)"),
                    tag(i.tags(), LEASE_TAG).unwrap_or("(no claim)")
                ),
                namespace: owner.unwrap_or_default().to_string(),
            });
        }
    }
    Ok(out)
}

/// The namespace's images (or its children's) still marked `setting-up` whose run's claim ran
/// out: an `image` (or `create -I`) that was killed half-way made them. Only this account's.
async fn abandoned_images(ctx: &Context) -> Result<Vec<(Item, aws_sdk_ec2::types::Image)>> {
    use super::progress::{setup_state, ABANDONED, LEASE_TAG, SETTING_UP, STATE_TAG};
    let mut pages = ctx
        .aws
        .ec2()
        .describe_images()
        .owners("self")
        .filters(filter(&format!("tag:{STATE_TAG}"), &[SETTING_UP]))
        .into_paginator()
        .send();
    let now = chrono::Utc::now();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.aws(|| "failed to list unfinished images".to_string())?;
        for img in page.images() {
            let owner = tag(img.tags(), OWNER_TAG);
            if !owned_by(&ctx.namespace, owner) || setup_state(img.tags(), now) != Some(ABANDONED) {
                continue;
            }
            let snaps = super::images::snapshots(img);
            let item = Item {
                kind: "unfinished-image",
                id: img.image_id().unwrap_or_default().to_string(),
                detail: format!(
                    "{}, claimed until {}{}",
                    img.name().unwrap_or("(no name)"),
                    tag(img.tags(), LEASE_TAG).unwrap_or("(no claim)"),
                    if snaps.is_empty() {
                        String::new()
                    } else {
                        format!(", with snapshots {}", snaps.join(", "))
                    }
                ),
                namespace: owner.unwrap_or_default().to_string(),
            };
            out.push((item, img.clone()));
        }
    }
    out.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    Ok(out)
}

/// The snapshots owned by this account whose ownership tag names this namespace (or a child),
/// that carry [`SNAPSHOT_IMAGE_TAG`] (so `image` made them), and that no image of this account
/// references, nor is the image they were made for still registered.
async fn orphaned_snapshots(ctx: &Context) -> Result<Vec<Item>> {
    let ec2 = ctx.aws.ec2();
    let mut images = BTreeSet::new();
    let mut referenced = BTreeSet::new();
    let mut pages = ec2.describe_images().owners("self").into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.aws(|| "failed to list this account's images".to_string())?;
        for img in page.images() {
            images.extend(img.image_id().map(str::to_string));
            referenced.extend(super::images::snapshots(img));
        }
    }
    let mut out = Vec::new();
    let mut pages = ec2
        .describe_snapshots()
        .owner_ids("self")
        .filters(filter("tag-key", &[OWNER_TAG]))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.aws(|| "failed to list this account's snapshots".to_string())?;
        for s in page.snapshots() {
            let (Some(id), Some(image)) = (s.snapshot_id(), tag(s.tags(), SNAPSHOT_IMAGE_TAG))
            else {
                continue;
            };
            let owner = tag(s.tags(), OWNER_TAG);
            if owned_by(&ctx.namespace, owner)
                && !referenced.contains(id)
                && !images.contains(image)
            {
                out.push(Item {
                    kind: "snapshot",
                    id: id.to_string(),
                    detail: format!("of deleted image {image}"),
                    namespace: owner.unwrap_or_default().to_string(),
                });
            }
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// The IDs of instances in a live state; all of the region's, or only those among `ids`.
async fn live_instances(
    ec2: &aws_sdk_ec2::Client,
    ids: Option<&[String]>,
) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    let chunks: Vec<Option<&[String]>> = match ids {
        None => vec![None],
        Some(ids) => ids.chunks(IDS_PER_CALL).map(Some).collect(),
    };
    for chunk in chunks {
        let mut filters = vec![filter("instance-state-name", &LIVE_STATES)];
        if let Some(c) = chunk {
            filters.push(
                aws_sdk_ec2::types::Filter::builder()
                    .name("instance-id")
                    .set_values(Some(c.to_vec()))
                    .build(),
            );
        }
        let mut pages = ec2
            .describe_instances()
            .set_filters(Some(filters))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.aws(|| "failed to list instances".to_string())?;
            for r in page.reservations() {
                out.extend(
                    r.instances()
                        .iter()
                        .filter_map(|i| i.instance_id().map(str::to_string)),
                );
            }
        }
    }
    Ok(out)
}

/// Pins of instances that are not live in this region nor in any other region of the account.
/// Instance IDs are never reused, so such a pin can never be used again. If a region cannot be
/// asked, the pins it might hold are kept.
///
/// NOTE: pins are keyed by instance ID only, so a pin of an instance in another AWS account
/// (another profile sharing the data directory) looks dead here; the listing shows every pin
/// before anything is removed.
async fn dead_pins(ctx: &Context, file: &Path, live_here: &BTreeSet<String>) -> Result<Vec<Item>> {
    let mut unknown: Vec<String> = pinned_instance_ids(file)?
        .into_iter()
        .filter(|id| !live_here.contains(id))
        .collect();
    if unknown.is_empty() {
        return Ok(Vec::new());
    }
    let ec2 = ctx.aws.ec2();
    let regions = ec2
        .describe_regions()
        .send()
        .await
        .aws(|| "failed to list the account's regions".to_string())?;
    for region in regions.regions().iter().filter_map(|r| r.region_name()) {
        if region == ctx.region || unknown.is_empty() {
            continue;
        }
        let there = aws_sdk_ec2::Client::from_conf(
            ec2.config()
                .to_builder()
                .region(Region::new(region.to_string()))
                .build(),
        );
        match live_instances(&there, Some(&unknown)).await {
            Ok(live) => unknown.retain(|id| !live.contains(id)),
            Err(e) => {
                ctx.shell.warn(format!(
                    "could not ask region {region} about pinned instances ({}); their pins are kept",
                    crate::errors::one_line(&e)
                ));
                return Ok(Vec::new());
            }
        }
    }
    Ok(unknown
        .into_iter()
        .map(|id| Item {
            kind: "known-host-pin",
            id,
            detail: "instance is gone".into(),
            namespace: String::new(),
        })
        .collect())
}

/// The instance IDs pinned in cgcloud's known_hosts (`<instance-id> <type> <base64>` lines).
fn pinned_instance_ids(file: &Path) -> Result<Vec<String>> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(
                anyhow::Error::new(e).context(format!("failed to read `{}`", file.display()))
            )
        }
    };
    let mut ids: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|id| id.starts_with("i-"))
        .map(str::to_string)
        .collect();
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// The agent's notification queues of this namespace (in this region) whose instance is not
/// among `live_instance_ids`: the queues of boxes terminated outside cgcloud.
pub async fn agent_queues_to_sweep(
    ctx: &Context,
    live_instance_ids: &BTreeSet<String>,
) -> Result<Vec<Item>> {
    let sqs = aws_sdk_sqs::Client::new(ctx.aws.sdk());
    let queues = cgcloud_agent::namespace_queues(&sqs, &ctx.namespace)
        .await
        .map_err(|e| {
            crate::user_error!(
                "failed to list the agent queues of namespace `{}`: {e:#}",
                ctx.namespace
            )
        })?;
    let mut out = Vec::new();
    for (name, _) in queues {
        if let Some(id) = cgcloud_agent::instance_of_queue(&ctx.namespace, &name) {
            if !live_instance_ids.contains(id) {
                out.push(Item {
                    kind: "agent-queue",
                    detail: id.to_string(),
                    id: name,
                    namespace: ctx.namespace.as_str().to_string(),
                });
            }
        }
    }
    Ok(out)
}

/// Deletes what [`find_leftovers`] found; a failure is recorded and the rest goes on.
pub async fn delete_leftovers(
    ctx: &Context,
    found: &Leftovers,
    known_hosts_file: &Path,
) -> Vec<Failure> {
    let mut failures = Vec::new();
    let ec2 = ctx.aws.ec2();
    for u in &found.unfinished {
        match ec2.terminate_instances().instance_ids(&u.id).send().await {
            Ok(_) => {
                ctx.shell.info(format!("terminated {}", u.label()));
                let gone = super::instances::forget(ctx, &u.id).await;
                if let Err(e) = gone {
                    failures.push(Failure {
                        what: u.label(),
                        why: crate::errors::one_line(&e),
                    });
                }
            }
            Err(e) if error_code(&e) == Some("InvalidInstanceID.NotFound") => {}
            Err(e) => failures.push(Failure {
                what: u.label(),
                why: aws::describe(&e),
            }),
        }
    }
    for (item, img) in &found.unfinished_images {
        if let Err(e) = super::images::delete(ctx, img, false, false).await {
            failures.push(Failure {
                what: item.label(),
                why: crate::errors::one_line(&e),
            });
        }
    }
    for s in &found.snapshots {
        match ec2.delete_snapshot().snapshot_id(&s.id).send().await {
            Ok(_) => ctx.shell.info(format!("deleted {}", s.label())),
            Err(e) if error_code(&e) == Some("InvalidSnapshot.NotFound") => {}
            Err(e) => failures.push(Failure {
                what: s.label(),
                why: aws::describe(&e),
            }),
        }
    }
    for p in &found.pins {
        match known_hosts::forget(known_hosts_file, &p.id) {
            Ok(()) => ctx.shell.info(format!("forgot the host key of `{}`", p.id)),
            Err(e) => failures.push(Failure {
                what: p.label(),
                why: crate::errors::one_line(&e),
            }),
        }
    }
    for q in &found.queues {
        match super::agent::remove_wiring(ctx, &q.detail).await {
            Ok(()) => ctx.shell.info(format!("deleted {}", q.label())),
            Err(e) => failures.push(Failure {
                what: q.label(),
                why: crate::errors::one_line(&e),
            }),
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_ids_are_read_from_known_hosts_lines() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("known_hosts");
        assert!(pinned_instance_ids(&f).unwrap().is_empty());
        known_hosts::pin(&f, "i-0b", "ssh-ed25519 AAAA2").unwrap();
        known_hosts::pin(&f, "i-0a", "ssh-ed25519 AAAA1").unwrap();
        std::fs::write(
            &f,
            format!("{}# comment\n\n", std::fs::read_to_string(&f).unwrap()),
        )
        .unwrap();
        assert_eq!(
            pinned_instance_ids(&f).unwrap(),
            vec!["i-0a".to_string(), "i-0b".to_string()]
        );
    }
}
