//! Preparing a launch, in the original's order: image → security group → IAM role and
//! instance profile → user data. Everything cgcloud creates carries the ownership tag
//! [`OWNER_TAG`] naming the namespace, so that clean-up only ever touches what cgcloud made.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{Image, IpPermission, IpRange, ResourceType, Tag, TagSpecification, UserIdGroupPair};
use aws_sdk_iam::types::Tag as IamTag;
use cgcloud_plugin_api::proto::{BaseImageQuery, CloudConfig, IamPolicy, RuleSource, SecurityGroupRule};

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
        .aws(|| format!("failed to look up images named `{}` of account {}", q.name_pattern, q.owner))?;
    let mut images: Vec<Image> = out.images().iter().filter(|i| i.owner_id() == Some(q.owner.as_str())).cloned().collect();
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
        Tag::builder().key(OWNER_TAG).value(ctx.namespace.as_str()).build(),
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
        let mut p = IpPermission::builder().ip_protocol(&self.protocol).from_port(self.from).to_port(self.to);
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
            out.insert(Perm { protocol: protocol.clone(), from, to, cidr: r.cidr_ip().map(str::to_string), group: None });
        }
        for g in p.user_id_group_pairs() {
            out.insert(Perm { protocol: protocol.clone(), from, to, cidr: None, group: g.group_id().map(str::to_string) });
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
            .description(format!("Security group for box of role {role} in namespace {}", ctx.namespace))
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
            Err(e) => return Err(e).aws(|| format!("failed to create security group `{aws_name}`")),
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
        bail_user!("expected one security group named `{aws_name}`, found {}", groups.len());
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
        let protocol = if r.protocol == "all" { "-1".to_string() } else { r.protocol.clone() };
        desired.insert(Perm { protocol, from: r.from_port, to: r.to_port, cidr, group: grp });
    }
    let actual = actual_perms(group.ip_permissions());
    let missing: Vec<IpPermission> = desired.difference(&actual).map(Perm::to_ip_permission).collect();
    if !missing.is_empty() {
        match ec2.authorize_security_group_ingress().group_id(&id).set_ip_permissions(Some(missing)).send().await {
            Ok(_) => {}
            Err(e) if error_code(&e) == Some("InvalidPermission.Duplicate") => {}
            Err(e) => return Err(e).aws(|| format!("failed to add rules to security group `{aws_name}`")),
        }
    }
    let stale: Vec<IpPermission> = actual.difference(&desired).map(Perm::to_ip_permission).collect();
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
    match (serde_json::from_str::<serde_json::Value>(a), serde_json::from_str::<serde_json::Value>(b)) {
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
pub async fn ensure_instance_profile(ctx: &Context, role: &str, features: &[String], policies: &[IamPolicy]) -> Result<String> {
    let iam = ctx.aws.iam();
    let role_name = iam_role_name(ctx, features)?;
    let partition = cgcloud_common::arn::partition_for_region(&ctx.region);
    let service = if partition == "aws-cn" { "ec2.amazonaws.com.cn" } else { "ec2.amazonaws.com" };
    let trust = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]
    })
    .to_string();
    let tags = vec![
        IamTag::builder().key(OWNER_TAG).value(ctx.namespace.as_str()).build().expect("tags have a key and value"),
    ];
    match iam.create_role().role_name(&role_name).assume_role_policy_document(&trust).set_tags(Some(tags.clone())).send().await {
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
        let current = match iam.get_role_policy().role_name(&role_name).policy_name(&p.name).send().await {
            Ok(o) => Some(url_decode(o.policy_document())),
            Err(e) if error_code(&e) == Some("NoSuchEntity") => None,
            Err(e) => return Err(e).aws(|| format!("failed to read policy `{}` of IAM role `{role_name}`", p.name)),
        };
        if !current.as_deref().is_some_and(|c| same_policy(c, &p.document)) {
            iam.put_role_policy()
                .role_name(&role_name)
                .policy_name(&p.name)
                .policy_document(&p.document)
                .send()
                .await
                .aws(|| format!("failed to put policy `{}` on IAM role `{role_name}`", p.name))?;
        }
    }
    let profile_name = ctx.aws_name(role)?;
    let profile = match iam.get_instance_profile().instance_profile_name(&profile_name).send().await {
        Ok(o) => o.instance_profile().cloned(),
        Err(e) if error_code(&e) == Some("NoSuchEntity") => None,
        Err(e) => return Err(e).aws(|| format!("failed to look up instance profile `{profile_name}`")),
    };
    let profile = match profile {
        Some(p) => p,
        None => iam
            .create_instance_profile()
            .instance_profile_name(&profile_name)
            .set_tags(Some(tags))
            .send()
            .await
            .aws(|| format!("failed to create instance profile `{profile_name}`"))?
            .instance_profile()
            .cloned()
            .ok_or_else(|| user_error!("IAM returned no instance profile for `{profile_name}`"))?,
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
                .aws(|| format!("failed to remove IAM role `{}` from instance profile `{profile_name}`", r.role_name()))?;
        }
    }
    if !has_ours {
        iam.add_role_to_instance_profile()
            .instance_profile_name(&profile_name)
            .role_name(&role_name)
            .send()
            .await
            .aws(|| format!("failed to add IAM role `{role_name}` to instance profile `{profile_name}`"))?;
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
    map.insert("ssh_genkeytypes".into(), serde_json::json!([]));
    // NOTE: JSON is YAML; cloud-init reads `#cloud-config` documents with a YAML parser.
    format!("#cloud-config\n{}\n", serde_json::to_string_pretty(&map).expect("JSON values serialize"))
}
