//! Preparing a launch, in the original's order: image → security group → IAM role and
//! instance profile → user data. Everything cgcloud creates carries the ownership tag
//! [`OWNER_TAG`] naming the namespace, so that clean-up only ever touches what cgcloud made.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{
    Image, IpPermission, IpRange, ResourceType, Tag, TagSpecification, UserIdGroupPair,
};
use aws_sdk_iam::types::Tag as IamTag;
use cgcloud_plugin_api::proto::{
    BaseImageQuery, CloudConfig, IamPolicy, RuleSource, SecurityGroupRule,
};

use crate::aws::{self, error_code, filter, tag, AwsResultExt};
use crate::ctx::Context;
use crate::errors::Result;
use crate::ssh::hostkey::HostKey;
use crate::{bail_user, user_error};

/// Tag key on every resource cgcloud creates: the namespace it was made in.
pub const OWNER_TAG: &str = "cgcloud:namespace";
/// Tag key naming the role a resource was made for.
pub const ROLE_TAG: &str = "cgcloud:role";
/// How long to retry while EC2 or IAM have not caught up with a resource just made.
pub const CONSISTENCY_TIMEOUT: Duration = Duration::from_secs(120);

/// The newest available image owned by the query's account whose name matches its pattern.
/// The owner is checked on every image that comes back, never the name alone.
pub async fn find_base_image(ctx: &Context, q: &BaseImageQuery) -> Result<Image> {
    let out = ctx
        .aws
        .ec2()
        .describe_images()
        .owners(&q.owner)
        .filters(filter("name", &[&q.name_pattern]))
        .filters(filter("state", &["available"]))
        .send()
        .await
        .aws(|| {
            format!(
                "failed to look up images named `{}` of account {}",
                q.name_pattern, q.owner
            )
        })?;
    let mut images: Vec<Image> = out
        .images()
        .iter()
        .filter(|i| i.owner_id() == Some(q.owner.as_str()))
        .cloned()
        .collect();
    images.sort_by(|a, b| (a.creation_date(), a.name()).cmp(&(b.creation_date(), b.name())));
    images.pop().ok_or_else(|| {
        user_error!(
            "no available image owned by account {} is named like `{}` in region {}",
            q.owner,
            q.name_pattern,
            ctx.region
        )
    })
}

fn owner_tags(ctx: &Context, role: &str) -> Vec<Tag> {
    vec![
        Tag::builder()
            .key(OWNER_TAG)
            .value(ctx.namespace.as_str())
            .build(),
        Tag::builder().key(ROLE_TAG).value(role).build(),
    ]
}

/// One ingress permission in a comparable form: protocol, ports, and a CIDR or group ID.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Perm {
    protocol: String,
    from: i32,
    to: i32,
    cidr: Option<String>,
    group: Option<String>,
}

impl Perm {
    fn to_ip_permission(&self) -> IpPermission {
        let mut p = IpPermission::builder()
            .ip_protocol(&self.protocol)
            .from_port(self.from)
            .to_port(self.to);
        if let Some(c) = &self.cidr {
            p = p.ip_ranges(IpRange::builder().cidr_ip(c).build());
        }
        if let Some(g) = &self.group {
            p = p.user_id_group_pairs(UserIdGroupPair::builder().group_id(g).build());
        }
        p.build()
    }
}

fn actual_perms(perms: &[IpPermission]) -> BTreeSet<Perm> {
    let mut out = BTreeSet::new();
    for p in perms {
        let protocol = p.ip_protocol().unwrap_or_default().to_string();
        let (from, to) = (p.from_port().unwrap_or(-1), p.to_port().unwrap_or(-1));
        for r in p.ip_ranges() {
            out.insert(Perm {
                protocol: protocol.clone(),
                from,
                to,
                cidr: r.cidr_ip().map(str::to_string),
                group: None,
            });
        }
        for g in p.user_id_group_pairs() {
            out.insert(Perm {
                protocol: protocol.clone(),
                from,
                to,
                cidr: None,
                group: g.group_id().map(str::to_string),
            });
        }
    }
    out
}

/// Creates the role's security group if needed and makes its ingress rules exactly the role's:
/// missing rules are added and stale ones revoked. A group of that name that cgcloud did not
/// make (no ownership tag) gets missing rules only; nothing is revoked from it.
pub async fn ensure_security_group(
    ctx: &Context,
    role: &str,
    group_name: &str,
    vpc_id: Option<&str>,
    rules: &[SecurityGroupRule],
    ssh_cidr: &str,
) -> Result<String> {
    let ec2 = ctx.aws.ec2();
    let aws_name = ctx.aws_name(group_name)?;
    let find = || async {
        let mut filters = vec![filter("group-name", &[&aws_name])];
        if let Some(v) = vpc_id {
            filters.push(filter("vpc-id", &[v]));
        }
        ec2.describe_security_groups()
            .set_filters(Some(filters))
            .send()
            .await
            .aws(|| format!("failed to look up security group `{aws_name}`"))
            .map(|o| o.security_groups().to_vec())
    };
    let mut groups = find().await?;
    if groups.is_empty() {
        let mut req = ec2
            .create_security_group()
            .group_name(&aws_name)
            .description(format!(
                "Security group for box of role {role} in namespace {}",
                ctx.namespace
            ))
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::SecurityGroup)
                    .set_tags(Some(owner_tags(ctx, role)))
                    .tags(Tag::builder().key("Name").value(&aws_name).build())
                    .build(),
            );
        if let Some(v) = vpc_id {
            req = req.vpc_id(v);
        }
        match req.send().await {
            Ok(_) => {}
            Err(e) if error_code(&e) == Some("InvalidGroup.Duplicate") => {}
            Err(e) => {
                return Err(e).aws(|| format!("failed to create security group `{aws_name}`"))
            }
        }
        let deadline = Instant::now() + CONSISTENCY_TIMEOUT;
        loop {
            groups = find().await?;
            if !groups.is_empty() || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(aws::POLL_INTERVAL).await;
        }
    }
    let [group] = groups.as_slice() else {
        bail_user!(
            "expected one security group named `{aws_name}`, found {}",
            groups.len()
        );
    };
    let id = group.group_id().unwrap_or_default().to_string();
    let owned = tag(group.tags(), OWNER_TAG) == Some(ctx.namespace.as_str());
    let mut desired = BTreeSet::new();
    for r in rules {
        let (cidr, grp) = match &r.source {
            RuleSource::Cidr(c) => (Some(c.clone()), None),
            RuleSource::SshClients => (Some(ssh_cidr.to_string()), None),
            RuleSource::SameGroup => (None, Some(id.clone())),
            other => bail_user!("role `{role}` asks for a security-group rule from `{other:?}`, which this cgcloud does not know"),
        };
        let protocol = if r.protocol == "all" {
            "-1".to_string()
        } else {
            r.protocol.clone()
        };
        desired.insert(Perm {
            protocol,
            from: r.from_port,
            to: r.to_port,
            cidr,
            group: grp,
        });
    }
    let actual = actual_perms(group.ip_permissions());
    let missing: Vec<IpPermission> = desired
        .difference(&actual)
        .map(Perm::to_ip_permission)
        .collect();
    if !missing.is_empty() {
        match ec2
            .authorize_security_group_ingress()
            .group_id(&id)
            .set_ip_permissions(Some(missing))
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if error_code(&e) == Some("InvalidPermission.Duplicate") => {}
            Err(e) => {
                return Err(e).aws(|| format!("failed to add rules to security group `{aws_name}`"))
            }
        }
    }
    let stale: Vec<IpPermission> = actual
        .difference(&desired)
        .map(Perm::to_ip_permission)
        .collect();
    if !stale.is_empty() {
        if owned {
            ec2.revoke_security_group_ingress()
                .group_id(&id)
                .set_ip_permissions(Some(stale))
                .send()
                .await
                .aws(|| format!("failed to revoke stale rules of security group `{aws_name}`"))?;
        } else {
            ctx.shell.warn(format!(
                "security group `{aws_name}` has rules the role does not ask for; cgcloud did not make the group \
                 (it has no `{OWNER_TAG}` tag), so it leaves them"
            ));
        }
    }
    Ok(id)
}

/// The IAM role's name for a feature chain, as the original hashed it (`cgcloud--agent-box` →
/// `cgcloud-drlqaw4bbigxu`), in the namespace.
pub fn iam_role_name(ctx: &Context, features: &[String]) -> Result<String> {
    let mut chain = String::from("cgcloud");
    for f in features {
        chain.push_str("--");
        chain.push_str(f);
    }
    ctx.aws_name(&cgcloud_common::iam::role_name_for_chain(&chain))
}

fn same_policy(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<serde_json::Value>(a),
        serde_json::from_str::<serde_json::Value>(b),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Percent-decoding of IAM's URL-encoded policy documents.
fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Creates or updates the IAM role for `features` with exactly `policies` inline, and the
/// role's instance profile (named after the role) holding it; returns the profile's ARN.
pub async fn ensure_instance_profile(
    ctx: &Context,
    role: &str,
    features: &[String],
    policies: &[IamPolicy],
) -> Result<String> {
    let iam = ctx.aws.iam();
    let role_name = iam_role_name(ctx, features)?;
    let partition = cgcloud_common::arn::partition_for_region(&ctx.region);
    let service = if partition == "aws-cn" {
        "ec2.amazonaws.com.cn"
    } else {
        "ec2.amazonaws.com"
    };
    let trust = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]
    })
    .to_string();
    let tags = vec![IamTag::builder()
        .key(OWNER_TAG)
        .value(ctx.namespace.as_str())
        .build()
        .expect("tags have a key and value")];
    match iam
        .create_role()
        .role_name(&role_name)
        .assume_role_policy_document(&trust)
        .set_tags(Some(tags.clone()))
        .send()
        .await
    {
        Ok(_) => {}
        Err(e) if error_code(&e) == Some("EntityAlreadyExists") => {}
        Err(e) => return Err(e).aws(|| format!("failed to create IAM role `{role_name}`")),
    }
    let existing = iam
        .list_role_policies()
        .role_name(&role_name)
        .send()
        .await
        .aws(|| format!("failed to list the policies of IAM role `{role_name}`"))?;
    for name in existing.policy_names() {
        if !policies.iter().any(|p| &p.name == name) {
            iam.delete_role_policy()
                .role_name(&role_name)
                .policy_name(name)
                .send()
                .await
                .aws(|| format!("failed to delete policy `{name}` of IAM role `{role_name}`"))?;
        }
    }
    for p in policies {
        let current = match iam
            .get_role_policy()
            .role_name(&role_name)
            .policy_name(&p.name)
            .send()
            .await
        {
            Ok(o) => Some(url_decode(o.policy_document())),
            Err(e) if error_code(&e) == Some("NoSuchEntity") => None,
            Err(e) => {
                return Err(e).aws(|| {
                    format!(
                        "failed to read policy `{}` of IAM role `{role_name}`",
                        p.name
                    )
                })
            }
        };
        if !current
            .as_deref()
            .is_some_and(|c| same_policy(c, &p.document))
        {
            iam.put_role_policy()
                .role_name(&role_name)
                .policy_name(&p.name)
                .policy_document(&p.document)
                .send()
                .await
                .aws(|| {
                    format!(
                        "failed to put policy `{}` on IAM role `{role_name}`",
                        p.name
                    )
                })?;
        }
    }
    let profile_name = ctx.aws_name(role)?;
    let lookup = || async {
        match iam
            .get_instance_profile()
            .instance_profile_name(&profile_name)
            .send()
            .await
        {
            Ok(o) => Ok(o.instance_profile().cloned()),
            Err(e) if error_code(&e) == Some("NoSuchEntity") => Ok(None),
            Err(e) => Err(e).aws(|| format!("failed to look up instance profile `{profile_name}`")),
        }
    };
    let profile = match lookup().await? {
        Some(p) => p,
        None => match iam
            .create_instance_profile()
            .instance_profile_name(&profile_name)
            .set_tags(Some(tags))
            .send()
            .await
        {
            Ok(o) => o.instance_profile().cloned().ok_or_else(|| {
                user_error!("IAM returned no instance profile for `{profile_name}`")
            })?,
            // Another run (a teammate's, or one of ours in parallel) made it in the meantime.
            Err(e) if error_code(&e) == Some("EntityAlreadyExists") => {
                lookup().await?.ok_or_else(|| {
                    user_error!(
                        "instance profile `{profile_name}` was reported to exist but cannot be found; try again"
                    )
                })?
            }
            Err(e) => {
                return Err(e).aws(|| format!("failed to create instance profile `{profile_name}`"))
            }
        },
    };
    let mut has_ours = false;
    for r in profile.roles() {
        if r.role_name() == role_name {
            has_ours = true;
        } else {
            iam.remove_role_from_instance_profile()
                .instance_profile_name(&profile_name)
                .role_name(r.role_name())
                .send()
                .await
                .aws(|| {
                    format!(
                        "failed to remove IAM role `{}` from instance profile `{profile_name}`",
                        r.role_name()
                    )
                })?;
        }
    }
    if !has_ours {
        let added = iam
            .add_role_to_instance_profile()
            .instance_profile_name(&profile_name)
            .role_name(&role_name)
            .send()
            .await;
        match added {
            Ok(_) => {}
            // A profile holds one role: a run in parallel added it first. Fine if it is ours.
            Err(e) if error_code(&e) == Some("LimitExceeded") => {
                let now = lookup().await?;
                let roles: Vec<&str> = now
                    .as_ref()
                    .map(|p| p.roles().iter().map(|r| r.role_name()).collect())
                    .unwrap_or_default();
                if roles != [role_name.as_str()] {
                    return Err(e).aws(|| {
                        format!(
                            "failed to add IAM role `{role_name}` to instance profile `{profile_name}` (it holds {})",
                            roles.join(", ")
                        )
                    });
                }
            }
            Err(e) => {
                return Err(e).aws(|| {
                    format!(
                        "failed to add IAM role `{role_name}` to instance profile `{profile_name}`"
                    )
                })
            }
        }
    }
    Ok(profile.arn().to_string())
}

/// The instance's user data: the role's cloud-config plus the host key cgcloud generated
/// (old keys deleted, none generated on the box), so the key cgcloud pins is the box's key.
pub fn user_data(role_config: &CloudConfig, host_key: &HostKey) -> String {
    let mut map = role_config.0.clone();
    map.insert(
        "ssh_keys".into(),
        serde_json::json!({"ed25519_private": host_key.private, "ed25519_public": host_key.public}),
    );
    map.insert("ssh_deletekeys".into(), serde_json::Value::Bool(true));
    // NOTE: no `ssh_genkeytypes`: cloud-init generates keys only when `ssh_keys` is absent, and
    // its schema refuses an empty list (a warning on every boot that blames the user data).
    // NOTE: JSON is YAML; cloud-init reads `#cloud-config` documents with a YAML parser.
    format!(
        "#cloud-config\n{}\n",
        serde_json::to_string_pretty(&map).expect("JSON values serialize")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use cgcloud_common::names::Namespace;
    use cgcloud_moto::{form, xml_field, xml_fields, Account, Moto};
    use cgcloud_plugin_api::proto::Arch;

    async fn context(moto: &Moto, account: &Account, namespace: &str) -> Context {
        Context::for_moto(moto, account, namespace).await
    }

    fn ec2(moto: &Moto, account: &Account, pairs: &[(&str, &str)]) -> String {
        let mut all = pairs.to_vec();
        all.push(("Version", "2016-11-15"));
        moto.call(&account.id, "ec2", &form(&all)).unwrap()
    }

    fn iam(moto: &Moto, account: &Account, pairs: &[(&str, &str)]) -> String {
        let mut all = pairs.to_vec();
        all.push(("Version", "2010-05-08"));
        moto.iam(&account.id, &form(&all)).unwrap()
    }

    fn rule(protocol: &str, from: i32, to: i32, source: RuleSource) -> SecurityGroupRule {
        SecurityGroupRule::new(protocol, from, to, source)
    }

    fn perm(protocol: &str, from: i32, to: i32, cidr: Option<&str>, group: Option<&str>) -> Perm {
        Perm {
            protocol: protocol.into(),
            from,
            to,
            cidr: cidr.map(Into::into),
            group: group.map(Into::into),
        }
    }

    /// The group's ingress rules as EC2 reports them now.
    async fn ingress(ctx: &Context, id: &str) -> BTreeSet<Perm> {
        let out = ctx
            .aws
            .ec2()
            .describe_security_groups()
            .group_ids(id)
            .send()
            .await
            .unwrap();
        actual_perms(out.security_groups()[0].ip_permissions())
    }

    fn authorize_by_hand(moto: &Moto, account: &Account, id: &str, port: &str, cidr: &str) {
        ec2(
            moto,
            account,
            &[
                ("Action", "AuthorizeSecurityGroupIngress"),
                ("GroupId", id),
                ("IpPermissions.1.IpProtocol", "tcp"),
                ("IpPermissions.1.FromPort", port),
                ("IpPermissions.1.ToPort", port),
                ("IpPermissions.1.IpRanges.1.CidrIp", cidr),
            ],
        );
    }

    fn default_rules() -> Vec<SecurityGroupRule> {
        vec![
            rule("tcp", 22, 22, RuleSource::SshClients),
            rule("icmp", 3, 4, RuleSource::Cidr("0.0.0.0/0".into())),
            rule("tcp", 0, 65535, RuleSource::SameGroup),
        ]
    }

    #[tokio::test]
    async fn stale_rules_are_revoked_from_groups_cgcloud_made() {
        let moto = Moto::start().unwrap();
        let account = moto.new_account("alice").unwrap();
        let ctx = context(&moto, &account, "/alice/").await;
        let rules = default_rules();
        let id = ensure_security_group(&ctx, "web", "web", None, &rules, "203.0.113.0/24")
            .await
            .unwrap();
        let out = ctx
            .aws
            .ec2()
            .describe_security_groups()
            .group_ids(&id)
            .send()
            .await
            .unwrap();
        let group = &out.security_groups()[0];
        assert_eq!(group.group_name(), Some("alice_web"));
        assert_eq!(tag(group.tags(), OWNER_TAG), Some("/alice/"));
        let desired: BTreeSet<Perm> = [
            perm("tcp", 22, 22, Some("203.0.113.0/24"), None),
            perm("icmp", 3, 4, Some("0.0.0.0/0"), None),
            perm("tcp", 0, 65535, None, Some(&id)),
        ]
        .into();
        assert_eq!(ingress(&ctx, &id).await, desired);

        // A rule added by hand is revoked; a rule removed by hand comes back.
        authorize_by_hand(&moto, &account, &id, "8080", "0.0.0.0/0");
        ec2(
            &moto,
            &account,
            &[
                ("Action", "RevokeSecurityGroupIngress"),
                ("GroupId", &id),
                ("IpPermissions.1.IpProtocol", "icmp"),
                ("IpPermissions.1.FromPort", "3"),
                ("IpPermissions.1.ToPort", "4"),
                ("IpPermissions.1.IpRanges.1.CidrIp", "0.0.0.0/0"),
            ],
        );
        assert_ne!(ingress(&ctx, &id).await, desired);
        let again = ensure_security_group(&ctx, "web", "web", None, &rules, "203.0.113.0/24")
            .await
            .unwrap();
        assert_eq!(again, id, "the group is reused");
        assert_eq!(ingress(&ctx, &id).await, desired);

        // SSH from elsewhere now: the old source is revoked.
        ensure_security_group(&ctx, "web", "web", None, &rules, "198.51.100.0/24")
            .await
            .unwrap();
        let now = ingress(&ctx, &id).await;
        assert!(
            now.contains(&perm("tcp", 22, 22, Some("198.51.100.0/24"), None)),
            "{now:?}"
        );
        assert!(
            !now.contains(&perm("tcp", 22, 22, Some("203.0.113.0/24"), None)),
            "{now:?}"
        );
        assert_eq!(now.len(), 3, "{now:?}");
    }

    #[tokio::test]
    async fn groups_without_the_ownership_tag_get_missing_rules_but_keep_their_own() {
        let moto = Moto::start().unwrap();
        let account = moto.new_account("alice").unwrap();
        let ctx = context(&moto, &account, "/alice/").await;
        let body = ec2(
            &moto,
            &account,
            &[
                ("Action", "CreateSecurityGroup"),
                ("GroupName", "alice_web"),
                ("GroupDescription", "made by hand"),
            ],
        );
        let id = xml_field(&body, "groupId").unwrap();
        authorize_by_hand(&moto, &account, &id, "8080", "10.0.0.0/8");
        let got = ensure_security_group(&ctx, "web", "web", None, &default_rules(), "0.0.0.0/0")
            .await
            .unwrap();
        assert_eq!(got, id);
        let now = ingress(&ctx, &id).await;
        assert!(
            now.contains(&perm("tcp", 8080, 8080, Some("10.0.0.0/8"), None)),
            "the hand-made rule stays: {now:?}"
        );
        assert!(
            now.contains(&perm("tcp", 22, 22, Some("0.0.0.0/0"), None)),
            "{now:?}"
        );
        assert!(
            now.contains(&perm("tcp", 0, 65535, None, Some(&id))),
            "{now:?}"
        );
        assert_eq!(now.len(), 4, "{now:?}");
    }

    #[test]
    fn iam_role_names_match_the_original_hashing() {
        let ctx = |ns: &str| {
            let sdk = aws_config::SdkConfig::builder()
                .behavior_version(aws_config::BehaviorVersion::v2026_01_12())
                .build();
            Context::with_aws(
                crate::aws::Aws::from_sdk_config(sdk),
                Namespace::parse(ns).unwrap(),
                "us-east-1a",
            )
        };
        let f = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            iam_role_name(&ctx("/"), &f(&[])).unwrap(),
            "cgcloud-qjcdp7lv4sqlu"
        );
        assert_eq!(
            iam_role_name(&ctx("/"), &f(&["agent-box"])).unwrap(),
            "cgcloud-drlqaw4bbigxu"
        );
        assert_eq!(
            iam_role_name(&ctx("/"), &f(&["agent-box", "spark-box"])).unwrap(),
            "cgcloud-athtjtga3bvtw"
        );
        assert_eq!(
            iam_role_name(
                &ctx("/"),
                &f(&["agent-box", "mesos-box-support", "toil-box-support"])
            )
            .unwrap(),
            "cgcloud-kayspvrxdobds"
        );
        assert_eq!(
            iam_role_name(&ctx("/hannes/"), &f(&["agent-box"])).unwrap(),
            "hannes_cgcloud-drlqaw4bbigxu"
        );
    }

    fn policy(action: &str) -> String {
        serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}]})
            .to_string()
    }

    /// The role's inline policies as IAM holds them: name → parsed document.
    async fn policies_of(ctx: &Context, role: &str) -> Vec<(String, serde_json::Value)> {
        let iam = ctx.aws.iam();
        let names = iam
            .list_role_policies()
            .role_name(role)
            .send()
            .await
            .unwrap()
            .policy_names()
            .to_vec();
        let mut out = Vec::new();
        for n in names {
            let doc = iam
                .get_role_policy()
                .role_name(role)
                .policy_name(&n)
                .send()
                .await
                .unwrap();
            out.push((
                n,
                serde_json::from_str(&url_decode(doc.policy_document())).unwrap(),
            ));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    async fn profile_roles(ctx: &Context, profile: &str) -> Vec<String> {
        let out = ctx
            .aws
            .iam()
            .get_instance_profile()
            .instance_profile_name(profile)
            .send()
            .await
            .unwrap();
        out.instance_profile()
            .unwrap()
            .roles()
            .iter()
            .map(|r| r.role_name().to_string())
            .collect()
    }

    #[tokio::test]
    async fn inline_policies_are_reconciled_and_the_profile_holds_exactly_the_role() {
        let moto = Moto::start().unwrap();
        let account = moto.new_account("hannes").unwrap();
        let ctx = context(&moto, &account, "/hannes/").await;
        let features = vec!["agent-box".to_string()];
        let first = vec![
            IamPolicy::new("ec2_read_only", &policy("ec2:Describe*")),
            IamPolicy::new("s3_read_only", &policy("s3:Get*")),
        ];
        let arn = ensure_instance_profile(&ctx, "web", &features, &first)
            .await
            .unwrap();
        assert!(arn.ends_with(":instance-profile/hannes_web"), "{arn}");
        let role = "hannes_cgcloud-drlqaw4bbigxu";
        let got = ctx
            .aws
            .iam()
            .get_role()
            .role_name(role)
            .send()
            .await
            .unwrap();
        let tags = got.role().unwrap().tags();
        assert!(
            tags.iter()
                .any(|t| t.key() == OWNER_TAG && t.value() == "/hannes/"),
            "{tags:?}"
        );
        let parsed = |d: &str| serde_json::from_str::<serde_json::Value>(d).unwrap();
        assert_eq!(
            policies_of(&ctx, role).await,
            vec![
                ("ec2_read_only".into(), parsed(&first[0].document)),
                ("s3_read_only".into(), parsed(&first[1].document))
            ]
        );
        assert_eq!(
            profile_roles(&ctx, "hannes_web").await,
            vec![role.to_string()]
        );

        // By hand: a policy cgcloud does not want, a drifted document, and another role in the
        // profile instead of ours.
        iam(
            &moto,
            &account,
            &[
                ("Action", "PutRolePolicy"),
                ("RoleName", role),
                ("PolicyName", "stale"),
                ("PolicyDocument", &policy("iam:*")),
            ],
        );
        iam(
            &moto,
            &account,
            &[
                ("Action", "PutRolePolicy"),
                ("RoleName", role),
                ("PolicyName", "ec2_read_only"),
                ("PolicyDocument", &policy("ec2:*")),
            ],
        );
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        iam(
            &moto,
            &account,
            &[
                ("Action", "CreateRole"),
                ("RoleName", "intruder"),
                ("AssumeRolePolicyDocument", trust),
            ],
        );
        iam(
            &moto,
            &account,
            &[
                ("Action", "RemoveRoleFromInstanceProfile"),
                ("InstanceProfileName", "hannes_web"),
                ("RoleName", role),
            ],
        );
        iam(
            &moto,
            &account,
            &[
                ("Action", "AddRoleToInstanceProfile"),
                ("InstanceProfileName", "hannes_web"),
                ("RoleName", "intruder"),
            ],
        );

        // And the role now wants a changed policy.
        let second = vec![
            IamPolicy::new("ec2_read_only", &policy("ec2:Describe*")),
            IamPolicy::new("s3_read_only", &policy("s3:List*")),
        ];
        let again = ensure_instance_profile(&ctx, "web", &features, &second)
            .await
            .unwrap();
        assert_eq!(again, arn);
        assert_eq!(
            policies_of(&ctx, role).await,
            vec![
                ("ec2_read_only".into(), parsed(&second[0].document)),
                ("s3_read_only".into(), parsed(&second[1].document))
            ]
        );
        assert_eq!(
            profile_roles(&ctx, "hannes_web").await,
            vec![role.to_string()]
        );
        let body = iam(&moto, &account, &[("Action", "ListRoles")]);
        assert!(
            xml_fields(&body, "RoleName").contains(&"intruder".to_string()),
            "the other role itself is left alone"
        );
    }

    /// One entry of moto's AMI catalogue (`MOTO_AMIS_PATH`): a public image of `owner`.
    fn catalogue_entry(id: &str, name: &str, owner: &str) -> serde_json::Value {
        serde_json::json!({
            "ami_id": id, "name": name, "owner_id": owner, "public": true, "state": "available",
            "architecture": "x86_64", "virtualization_type": "hvm", "root_device_type": "ebs",
            "root_device_name": "/dev/xvda", "image_type": "machine", "hypervisor": "xen", "sriov": "simple",
            "description": name, "platform": null, "image_location": format!("{owner}/{name}")
        })
    }

    #[tokio::test]
    async fn find_base_image_never_returns_an_image_of_another_owner() {
        // Public images of other accounts come from moto's catalogue: a vendor's two images and
        // a spoof named like them, from someone else, newer by name.
        // NOTE: moto 5.2.1 fails (HTTP 500) on catalogue entries with a `creation_date` once a
        // second account or region loads the catalogue, so all three share moto's load time and
        // the name decides which is newest, as it does in `find_base_image` for equal dates.
        let vendor = "136693071363";
        let newest_of_vendor = "ami-0000000000000b002";
        let spoof = "ami-0badc0ffee0000001";
        let catalogue = serde_json::json!([
            catalogue_entry(
                "ami-0000000000000b001",
                "debian-12-amd64-20250101-0000",
                vendor
            ),
            catalogue_entry(newest_of_vendor, "debian-12-amd64-20250601-0000", vendor),
            catalogue_entry(spoof, "debian-12-amd64-20991231-0000", "666666666666"),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("amis.json");
        std::fs::write(&path, catalogue.to_string()).unwrap();
        let moto = Moto::start_with(&[("MOTO_AMIS_PATH", path.to_str().unwrap())]).unwrap();
        let user = moto.new_account("alice").unwrap();
        let ctx = context(&moto, &user, "/alice/").await;
        // The spoof is visible to the user by name ...
        let seen = ctx
            .aws
            .ec2()
            .describe_images()
            .filters(filter("name", &["debian-12-amd64-*"]))
            .send()
            .await
            .unwrap();
        assert!(
            seen.images().iter().any(|i| i.image_id() == Some(spoof)),
            "the spoof must be visible"
        );
        // ... but never chosen.
        let q = BaseImageQuery::new(vendor, "debian-12-amd64-*", Arch::X86_64);
        let got = find_base_image(&ctx, &q).await.unwrap();
        assert_eq!(got.image_id(), Some(newest_of_vendor));
        assert_eq!(got.owner_id(), Some(vendor));
        // An owner with no such image is an error, not a fallback to anyone else's.
        let q = BaseImageQuery::new(&user.id, "debian-12-amd64-*", Arch::X86_64);
        let e = find_base_image(&ctx, &q).await.unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("no available image owned by account {}", user.id)),
            "{e}"
        );
    }
}
