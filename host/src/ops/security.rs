//! `reset-security` and `cleanup`: finding and deleting what cgcloud made in a namespace, and
//! nothing else.
//!
//! A resource is cgcloud's when it carries the ownership tag [`OWNER_TAG`] naming this
//! namespace or one of its children. A name that merely decodes into the namespace is never
//! enough: in `/` every decodable name does, which made the original's `reset-security` delete
//! resources cgcloud never made. Names are only used to skip lookups that cannot match.
//!
//! Each command works in two steps: `find_*` lists what would be deleted (touching nothing), the
//! command asks for confirmation, then `delete_*` deletes it, going on past individual failures
//! and returning them.

use std::collections::BTreeSet;
use std::path::Path;

use aws_sdk_ec2::config::Region;
use cgcloud_common::names::Namespace;

use super::prepare::OWNER_TAG;
use crate::aws::{self, error_code, filter, tag, AwsResultExt};
use crate::ctx::Context;
use crate::errors::Result;
use crate::ssh::known_hosts;

/// Tag key on the snapshots of cgcloud's images: the image they were made for.
pub const SNAPSHOT_IMAGE_TAG: &str = "cgcloud:image";

/// How many instance IDs go into one `instance-id` filter.
const IDS_PER_CALL: usize = 150;

/// Whether an ownership tag's value names `ns` or a namespace inside it. The value must be a
/// valid namespace itself, so `/alicex/` is not inside `/alice/`.
pub fn owned_by(ns: &Namespace, owner: Option<&str>) -> bool {
    owner.is_some_and(|v| Namespace::parse(v).is_ok() && v.starts_with(ns.as_str()))
}

/// One resource to delete, as listed to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// `instance-profile`, `iam-role`, `security-group`, `snapshot` or `known-host-pin`.
    pub kind: &'static str,
    /// The ID or name the resource is deleted by.
    pub id: String,
    /// A human-readable detail: a group's name, the image a snapshot was made for.
    pub detail: String,
    /// The namespace in its ownership tag; empty for known-host pins.
    pub namespace: String,
}

impl Item {
    /// The columns of the listing.
    pub const COLUMNS: [&'static str; 4] = ["kind", "id", "detail", "namespace"];

    pub fn row(&self) -> Vec<String> {
        let or_dash = |s: &str| {
            if s.is_empty() {
                "-".to_string()
            } else {
                s.to_string()
            }
        };
        vec![
            self.kind.to_string(),
            self.id.clone(),
            or_dash(&self.detail),
            or_dash(&self.namespace),
        ]
    }

    fn label(&self) -> String {
        format!("{} `{}`", self.kind.replace('-', " "), self.id)
    }
}

/// What `reset-security` deletes, in the order it deletes it.
#[derive(Debug, Default)]
pub struct SecurityResources {
    /// Instance profiles, each with the roles it holds (removed before it is deleted).
    pub profiles: Vec<(Item, Vec<String>)>,
    pub roles: Vec<Item>,
    pub groups: Vec<Item>,
}

impl SecurityResources {
    pub fn items(&self) -> Vec<&Item> {
        self.profiles
            .iter()
            .map(|(i, _)| i)
            .chain(&self.roles)
            .chain(&self.groups)
            .collect()
    }
}

fn iam_tag<'a>(tags: &'a [aws_sdk_iam::types::Tag], key: &str) -> Option<&'a str> {
    tags.iter().find(|t| t.key() == key).map(|t| t.value())
}

/// The instance profiles, IAM roles and security groups carrying the ownership tag of this
/// namespace or a child. IAM listings are paged through; tags are read with `GetRole` and
/// `GetInstanceProfile` because IAM's list calls leave them out.
pub async fn find_security_resources(ctx: &Context) -> Result<SecurityResources> {
    let ns = &ctx.namespace;
    let iam = ctx.aws.iam();
    let mut found = SecurityResources::default();

    let mut pages = iam.list_instance_profiles().into_paginator().send();
    let mut profile_names = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.aws(|| "failed to list instance profiles".to_string())?;
        profile_names.extend(
            page.instance_profiles()
                .iter()
                .map(|p| p.instance_profile_name().to_string()),
        );
    }
    for name in profile_names
        .into_iter()
        .filter(|n| ns.try_contains_aws_name(n))
    {
        let profile = match iam
            .get_instance_profile()
            .instance_profile_name(&name)
            .send()
            .await
        {
            Ok(o) => o.instance_profile().cloned(),
            // Deleted since it was listed.
            Err(e) if error_code(&e) == Some("NoSuchEntity") => None,
            Err(e) => return Err(e).aws(|| format!("failed to look up instance profile `{name}`")),
        };
        let Some(profile) = profile else { continue };
        let owner = iam_tag(profile.tags(), OWNER_TAG);
        if owned_by(ns, owner) {
            let roles: Vec<String> = profile
                .roles()
                .iter()
                .map(|r| r.role_name().to_string())
                .collect();
            let item = Item {
                kind: "instance-profile",
                id: name.clone(),
                detail: if roles.is_empty() {
                    String::new()
                } else {
                    format!("holds {}", roles.join(", "))
                },
                namespace: owner.unwrap_or_default().to_string(),
            };
            found.profiles.push((item, roles));
        }
    }

    let mut pages = iam.list_roles().into_paginator().send();
    let mut role_names = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.aws(|| "failed to list IAM roles".to_string())?;
        role_names.extend(page.roles().iter().map(|r| r.role_name().to_string()));
    }
    for name in role_names
        .into_iter()
        .filter(|n| ns.try_contains_aws_name(n))
    {
        let role = match iam.get_role().role_name(&name).send().await {
            Ok(o) => o.role().cloned(),
            Err(e) if error_code(&e) == Some("NoSuchEntity") => None,
            Err(e) => return Err(e).aws(|| format!("failed to look up IAM role `{name}`")),
        };
        let Some(role) = role else { continue };
        let owner = iam_tag(role.tags(), OWNER_TAG);
        if owned_by(ns, owner) {
            found.roles.push(Item {
                kind: "iam-role",
                id: name,
                detail: String::new(),
                namespace: owner.unwrap_or_default().to_string(),
            });
        }
    }

    let mut pages = ctx
        .aws
        .ec2()
        .describe_security_groups()
        .filters(filter("tag-key", &[OWNER_TAG]))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.aws(|| "failed to list security groups".to_string())?;
        for g in page.security_groups() {
            let owner = tag(g.tags(), OWNER_TAG);
            let name = g.group_name().unwrap_or_default();
            if owned_by(ns, owner) && ns.try_contains_aws_name(name) {
                found.groups.push(Item {
                    kind: "security-group",
                    id: g.group_id().unwrap_or_default().to_string(),
                    detail: name.to_string(),
                    namespace: owner.unwrap_or_default().to_string(),
                });
            }
        }
    }
    found.profiles.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    found.roles.sort_by(|a, b| a.id.cmp(&b.id));
    found.groups.sort_by(|a, b| a.detail.cmp(&b.detail));
    Ok(found)
}

/// A deletion that failed: what, and why (one line).
#[derive(Debug, Clone)]
pub struct Failure {
    pub what: String,
    pub why: String,
}

/// Deletes what [`find_security_resources`] found: instance profiles (their roles removed
/// first), then roles (inline policies deleted and managed policies detached first), then
/// security groups. A failure is recorded and the rest goes on.
pub async fn delete_security_resources(ctx: &Context, found: &SecurityResources) -> Vec<Failure> {
    let mut failures = Vec::new();
    for (item, roles) in &found.profiles {
        if let Err(e) = delete_instance_profile(ctx, &item.id, roles).await {
            failures.push(Failure {
                what: item.label(),
                why: crate::errors::one_line(&e),
            });
        } else {
            ctx.shell.info(format!("deleted {}", item.label()));
        }
    }
    for item in &found.roles {
        if let Err(e) = delete_role(ctx, &item.id).await {
            failures.push(Failure {
                what: item.label(),
                why: crate::errors::one_line(&e),
            });
        } else {
            ctx.shell.info(format!("deleted {}", item.label()));
        }
    }
    // A group referenced by another group's rules can only go after that group: a second round
    // retries what failed in the first.
    let mut pending: Vec<&Item> = found.groups.iter().collect();
    for round in 0..2 {
        let mut failed: Vec<(&Item, DeleteError)> = Vec::new();
        for item in pending {
            match ctx
                .aws
                .ec2()
                .delete_security_group()
                .group_id(&item.id)
                .send()
                .await
            {
                Ok(_) => ctx
                    .shell
                    .info(format!("deleted {} ({})", item.label(), item.detail)),
                Err(e) if error_code(&e) == Some("InvalidGroup.NotFound") => {}
                Err(e) => failed.push((item, e.into())),
            }
        }
        if round == 0 && failed.iter().any(|(_, e)| e.dependency) {
            pending = failed.into_iter().map(|(item, _)| item).collect();
            continue;
        }
        failures.extend(failed.into_iter().map(|(item, e)| Failure {
            what: format!("{} ({})", item.label(), item.detail),
            why: e.text,
        }));
        break;
    }
    failures
}

/// A failed EC2 deletion, remembered for a retry.
struct DeleteError {
    dependency: bool,
    text: String,
}

impl<E, R> From<aws_sdk_ec2::error::SdkError<E, R>> for DeleteError
where
    E: aws_sdk_ec2::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    fn from(e: aws_sdk_ec2::error::SdkError<E, R>) -> Self {
        DeleteError {
            dependency: error_code(&e) == Some("DependencyViolation"),
            text: aws::describe(&e),
        }
    }
}

async fn delete_instance_profile(ctx: &Context, name: &str, roles: &[String]) -> Result<()> {
    let iam = ctx.aws.iam();
    for role in roles {
        match iam
            .remove_role_from_instance_profile()
            .instance_profile_name(name)
            .role_name(role)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if error_code(&e) == Some("NoSuchEntity") => {}
            Err(e) => return Err(e).aws(|| format!("failed to remove IAM role `{role}` from it")),
        }
    }
    match iam
        .delete_instance_profile()
        .instance_profile_name(name)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if error_code(&e) == Some("NoSuchEntity") => Ok(()),
        Err(e) => Err(e).aws(|| "failed to delete it".to_string()),
    }
}

async fn delete_role(ctx: &Context, name: &str) -> Result<()> {
    let iam = ctx.aws.iam();
    let mut inline = Vec::new();
    let mut pages = iam
        .list_role_policies()
        .role_name(name)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.aws(|| "failed to list its inline policies".to_string())?;
        inline.extend(page.policy_names().iter().cloned());
    }
    for p in &inline {
        iam.delete_role_policy()
            .role_name(name)
            .policy_name(p)
            .send()
            .await
            .aws(|| format!("failed to delete its inline policy `{p}`"))?;
    }
    let mut attached = Vec::new();
    let mut pages = iam
        .list_attached_role_policies()
        .role_name(name)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.aws(|| "failed to list its attached policies".to_string())?;
        attached.extend(
            page.attached_policies()
                .iter()
                .filter_map(|p| p.policy_arn().map(str::to_string)),
        );
    }
    for arn in &attached {
        iam.detach_role_policy()
            .role_name(name)
            .policy_arn(arn)
            .send()
            .await
            .aws(|| format!("failed to detach policy `{arn}`"))?;
    }
    match iam.delete_role().role_name(name).send().await {
        Ok(_) => Ok(()),
        Err(e) if error_code(&e) == Some("NoSuchEntity") => Ok(()),
        Err(e) => Err(e).aws(|| "failed to delete it".to_string()),
    }
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
        let snaps = super::images::snapshots(&img);
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

/// What `cleanup` deletes.
#[derive(Debug, Default)]
pub struct Leftovers {
    /// Snapshots of this namespace's images that no image references any more.
    pub snapshots: Vec<Item>,
    /// Pins in cgcloud's known_hosts of instances that no region of this account runs.
    pub pins: Vec<Item>,
    /// The agent's queues of instances that are gone (see [`agent_queues_to_sweep`]).
    pub queues: Vec<Item>,
}

impl Leftovers {
    pub fn items(&self) -> Vec<&Item> {
        self.snapshots
            .iter()
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
        snapshots: orphaned_snapshots(ctx).await?,
        pins: dead_pins(ctx, known_hosts_file, &live).await?,
        queues: agent_queues_to_sweep(ctx, &live).await?,
    })
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
    let prefix = cgcloud_agent::queue_prefix(&ctx.namespace);
    let mut pages = sqs
        .list_queues()
        .queue_name_prefix(&prefix)
        .max_results(1000)
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.aws(|| {
            format!(
                "failed to list the agent queues of namespace `{}`",
                ctx.namespace
            )
        })?;
        for url in page.queue_urls() {
            let name = url.rsplit('/').next().unwrap_or_default();
            if let Some(id) = cgcloud_agent::instance_of_queue(&ctx.namespace, name) {
                if !live_instance_ids.contains(id) {
                    out.push(Item {
                        kind: "agent-queue",
                        id: name.to_string(),
                        detail: id.to_string(),
                        namespace: ctx.namespace.as_str().to_string(),
                    });
                }
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
    fn ownership_is_this_namespace_or_a_child_by_tag_value() {
        let alice = Namespace::parse("/alice/").unwrap();
        assert!(owned_by(&alice, Some("/alice/")));
        assert!(owned_by(&alice, Some("/alice/test/x1/")));
        assert!(!owned_by(&alice, Some("/alicex/")));
        assert!(!owned_by(&alice, Some("/bob/")));
        assert!(!owned_by(&alice, Some("/alice")));
        assert!(!owned_by(&alice, Some("/alice/Bad/")));
        assert!(!owned_by(&alice, None));
        let root = Namespace::root();
        assert!(owned_by(&root, Some("/")));
        assert!(owned_by(&root, Some("/bob/")));
        assert!(!owned_by(&root, Some("")));
        assert!(!owned_by(&root, Some("yes")));
    }

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
