//! `reset-security`: finding and deleting the security groups, IAM roles and instance profiles
//! cgcloud made in a namespace, and nothing else. What is shared with `cleanup` (`ops::cleanup`):
//! the ownership rule and the listed [`Item`]s.
//!
//! A resource is cgcloud's when it carries the ownership tag [`OWNER_TAG`] naming this
//! namespace or one of its children. A name that merely decodes into the namespace is never
//! enough: in `/` every decodable name does, which made the original's `reset-security` delete
//! resources cgcloud never made. Names are only used to skip lookups that cannot match.
//!
//! Each command works in two steps: `find_*` lists what would be deleted (touching nothing), the
//! command asks for confirmation, then `delete_*` deletes it, going on past individual failures
//! and returning them.

use cgcloud_common::names::Namespace;

use super::prepare::OWNER_TAG;
use crate::aws::{self, error_code, filter, tag, AwsResultExt};
use crate::ctx::Context;
use crate::errors::Result;

/// How many instance IDs go into one `instance-id` filter.
pub(super) const IDS_PER_CALL: usize = 150;

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

    pub(super) fn label(&self) -> String {
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
            // Done already if the role is out of the profile now (a retry of a call whose
            // answer was lost; moto answers such a repeat with a bare 500).
            Err(e) => {
                let now = iam
                    .get_instance_profile()
                    .instance_profile_name(name)
                    .send()
                    .await;
                let still_in = match &now {
                    Ok(o) => o
                        .instance_profile()
                        .is_some_and(|p| p.roles().iter().any(|r| r.role_name() == role)),
                    Err(ge) => error_code(ge) != Some("NoSuchEntity"),
                };
                if still_in {
                    return Err(e).aws(|| format!("failed to remove IAM role `{role}` from it"));
                }
            }
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
        match iam
            .delete_role_policy()
            .role_name(name)
            .policy_name(p)
            .send()
            .await
        {
            Ok(_) => {}
            // Gone already: a retry of a call whose answer was lost.
            Err(e) if error_code(&e) == Some("NoSuchEntity") => {}
            Err(e) => return Err(e).aws(|| format!("failed to delete its inline policy `{p}`")),
        }
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
        match iam
            .detach_role_policy()
            .role_name(name)
            .policy_arn(arn)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if error_code(&e) == Some("NoSuchEntity") => {}
            Err(e) => return Err(e).aws(|| format!("failed to detach policy `{arn}`")),
        }
    }
    match iam.delete_role().role_name(name).send().await {
        Ok(_) => Ok(()),
        Err(e) if error_code(&e) == Some("NoSuchEntity") => Ok(()),
        Err(e) => Err(e).aws(|| "failed to delete it".to_string()),
    }
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
}
