//! What `create` and `recreate` decide before they touch anything, and what `--plan` prints:
//! the image, the role's options (checked by cgcloud and by the role), the instance type
//! (checked against the image's architecture), the key pairs, the agent to install, the IAM
//! role. Every check that can fail before launch runs here, so `--plan` runs them all.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::Image;
use cgcloud_common::elf::Arch;
use cgcloud_plugin_api::{OptionKind, RoleOption};
use cgcloud_plugin_host::{Offline, RoleData, RoleHandle};
use serde_json::{json, Value};

use super::images::IMAGE_BASE_AMI_TAG;
use super::prepare::{self};
use super::{images, keypairs};
use crate::aws::{self, tag, AwsResultExt};
use crate::ctx::Context;
use crate::errors::Result;
use crate::names::ImageRef;
use crate::{bail_user, user_error};

/// What `create` and `recreate` were asked to do.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub keypair_globs: Vec<String>,
    pub instance_type: Option<String>,
    /// `--virtualization-type`: `hvm` or `paravirtual`.
    pub virtualization: Option<String>,
    pub spot_bid: Option<f64>,
    pub vpc: Option<String>,
    pub subnet: Option<String>,
    pub role_options: Vec<String>,
    pub root_volume_size: Option<u32>,
    pub root_volume_type: Option<String>,
    pub encrypt_root: bool,
    pub private_ip: bool,
    /// `-T`: terminate when done; `-N`: never terminate, even after a failure.
    pub terminate: bool,
    pub never_terminate: bool,
    pub create_image: bool,
    pub upgrade: bool,
    pub plan: bool,
    /// `create -i AMI`: boot this image instead of the role's base image.
    pub boot_image: Option<String>,
    /// `recreate -i`: one of the role's images.
    pub from_image: Option<ImageRef>,
    /// `recreate -Q`: do not wait for the box to be ready.
    pub quick: bool,
    /// `--no-agent`: keys 2…n go in once at first boot instead of being kept in sync.
    pub no_agent: bool,
    /// How many boxes to launch in one RunInstances (cluster workers); 0 means 1.
    pub count: usize,
    /// The boxes are nodes of a cluster (`create-cluster`, `grow-cluster`).
    pub cluster: Option<ClusterPlacement>,
    /// A box that is done stays marked `setting-up` (`ops::progress`): the caller goes on
    /// making more (a cluster's leader, until its workers are made) and marks it itself.
    pub stay_unfinished: bool,
}

/// Where new boxes go in a cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterPlacement {
    /// The cluster's name; `None`: the leader's instance ID.
    pub name: Option<String>,
    /// The leader's instance ID; `None`: the box being made is the leader.
    pub leader: Option<String>,
    /// The cluster ordinals of the boxes, one each, in launch order.
    pub ordinals: Vec<u32>,
    /// How many boxes are set up at once.
    pub threads: usize,
    /// The secret the cluster's nodes share, written to each new node before its
    /// `on_instance_ready`.
    pub secret: Option<super::cluster::ClusterSecret>,
    /// The size in GB of each node's persistent volume (`--ebs-volume-size`), if any.
    pub volume_gb: Option<u32>,
}

/// Parses and checks `-O NAME=VALUE` against the role's declared options; adds defaults.
pub fn role_options(
    role: &str,
    declared: &[RoleOption],
    given: &[String],
    inherited: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for o in declared {
        if let Some(v) = inherited.get(&o.name).filter(|_| o.inherited) {
            out.insert(o.name.clone(), v.clone());
        } else if let Some(d) = &o.default {
            out.insert(o.name.clone(), d.clone());
        }
    }
    for item in given {
        let Some((name, value)) = item.split_once('=') else {
            bail_user!("`{item}` is not a role option: write NAME=VALUE");
        };
        let valid_name = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            bail_user!(
                "`{name}` is not a valid option name: a letter, then letters, digits or `_`"
            );
        }
        let Some(o) = declared.iter().find(|o| o.name == name) else {
            bail_user!("role `{role}` has no option `{name}`; `cgcloud list-options {role}` lists its options");
        };
        let ok = match o.kind {
            OptionKind::Bool => matches!(value, "true" | "false" | "True" | "False"),
            OptionKind::Int => value.parse::<i64>().is_ok(),
            _ => true,
        };
        if !ok {
            bail_user!(
                "option `{name}` of role `{role}` takes {:?} values, not `{value}`",
                o.kind
            );
        }
        out.insert(name.to_string(), value.to_string());
    }
    Ok(out)
}

/// Everything `create` decides before touching anything (and `--plan` prints).
pub struct Plan {
    pub data: RoleData,
    pub options: BTreeMap<String, String>,
    pub image: Image,
    pub instance_type: String,
    pub keypairs: Vec<String>,
    pub generation: u32,
    pub root_volume_type: String,
    pub subnet: Option<String>,
    /// Whether the agent keeps the box's keys (set up by `create`, inherited from the image by
    /// `recreate`).
    pub enable_agent: bool,
    /// The key pair globs, `__me__` substituted, not expanded.
    pub globs: Vec<String>,
    /// The agent program to install (`create` of an agent box only).
    pub agent: Option<super::agent::AgentProgram>,
}

pub async fn plan(ctx: &Context, role: &RoleHandle, opts: &CreateOptions) -> Result<Plan> {
    // Options inherited from the image (recreate), then -O.
    let from_image = match &opts.from_image {
        Some(r) => {
            let prefix = role.declared(&Offline::quiet())?.image_name_prefix;
            let img = images::resolve(ctx, role.name(), &prefix, r).await?;
            images::check_finished(&img)?;
            Some(img)
        }
        None => None,
    };
    let image_tags: BTreeMap<String, String> = from_image
        .as_ref()
        .map(|i| {
            i.tags()
                .iter()
                .map(|t| {
                    (
                        t.key().unwrap_or_default().into(),
                        t.value().unwrap_or_default().into(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let declared_opts = role.declared(&Offline::quiet())?.options;
    let options = role_options(role.name(), &declared_opts, &opts.role_options, &image_tags)?;
    let shell = ctx.shell.clone();
    let label = role.name().to_string();
    let logger = move |level: cgcloud_plugin_api::Level, message: &str| match level {
        cgcloud_plugin_api::Level::Error | cgcloud_plugin_api::Level::Warn => {
            shell.warn(format!("{label}: {message}"))
        }
        _ => shell.debug(format!("{label}: {message}")),
    };
    let offline = Offline {
        options: options.clone(),
        logger: &logger,
    };
    // The role's own checks of its option values, before anything is launched.
    role.validate_options(&offline)?;
    let data = role.declared(&offline)?;
    let instance_type = opts
        .instance_type
        .clone()
        .unwrap_or_else(|| data.recommended_instance_type.clone());
    if instance_type.trim().is_empty() {
        bail_user!("no instance type: pass --instance-type or set CGCLOUD_INSTANCE_TYPE");
    }
    if let Some(v) = &opts.virtualization {
        let supported: Vec<String> = data
            .virtualization_types
            .iter()
            .filter_map(|t| {
                serde_json::to_value(t)
                    .ok()
                    .and_then(|j| j.as_str().map(str::to_string))
            })
            .collect();
        if !supported.contains(v) {
            bail_user!(
                "role `{}` supports the virtualization types {}, not `{v}`",
                data.name,
                supported.join(", ")
            );
        }
    }
    let image = match (&from_image, &opts.boot_image) {
        (Some(i), _) => i.clone(),
        (None, Some(id)) => {
            let out = ctx.aws.ec2().describe_images().image_ids(id).send().await;
            let image = match out {
                Ok(o) => o.images().first().cloned().ok_or_else(|| {
                    user_error!("there is no image `{id}` in region {}", ctx.region)
                })?,
                Err(e) => return Err(e).aws(|| format!("failed to look up image `{id}`")),
            };
            // Only an image of this account, or one of the verified account that publishes the
            // role's base images (its distribution's vendor), is booted.
            let account = ctx.identity().await?.account.clone();
            let owner = image.owner_id().unwrap_or_default();
            let vendor = &data.base_image.owner;
            if owner != account && owner != vendor {
                bail_user!(
                    "image `{id}` belongs to account {owner}: neither yours ({account}) nor the account that publishes the \
                     base images of role `{}` ({vendor}); cgcloud boots only images it can vouch for",
                    data.name
                );
            }
            image
        }
        (None, None) => prepare::find_base_image(ctx, &data.base_image).await?,
    };
    if let (Some(v), Some(actual)) = (&opts.virtualization, image.virtualization_type()) {
        if actual.as_str() != v {
            bail_user!(
                "image `{}` is {} but --virtualization-type asks for {v}",
                image.image_id().unwrap_or_default(),
                actual.as_str()
            );
        }
    }
    let image_id = image.image_id().unwrap_or_default().to_string();
    let image_arch = image
        .architecture()
        .map(|a| a.as_str().to_string())
        .unwrap_or_else(|| "x86_64".into());
    check_instance_type(ctx, &instance_type, &image_id, &image_arch).await?;
    let generation = tag(image.tags(), "generation")
        .and_then(|g| g.parse().ok())
        .unwrap_or(0);
    let raw_globs = keypairs::globs_from(&opts.keypair_globs);
    let keypairs = keypairs::expand_for_launch(ctx, &raw_globs).await?;
    let mut globs = Vec::new();
    for g in &raw_globs {
        globs.push(ctx.resolve_keypair_name(g).await?);
    }
    let enable_agent = match &from_image {
        Some(img) => tag(img.tags(), "enable_agent") == Some("True"),
        None => !opts.no_agent,
    };
    // Pre-flight: the agent `create` installs at the end of set-up is found and checked now,
    // before anything is launched.
    let agent = if enable_agent && from_image.is_none() {
        let Some(arch) = Arch::parse(&image_arch) else {
            bail_user!("image `{image_id}` is {image_arch}; cgcloud-agent runs on x86_64 and arm64 boxes only: pass --no-agent");
        };
        let program = super::agent::select(&crate::roles::data_dir()?, arch)?;
        super::agent::check_runs_on(&program, distro_of_image(ctx, &image).await, &image_id)?;
        Some(program)
    } else {
        None
    };
    let subnet = match (&opts.subnet, &opts.vpc) {
        (Some(s), _) => Some(s.clone()),
        (None, Some(vpc)) => {
            let out = ctx
                .aws
                .ec2()
                .describe_subnets()
                .filters(aws::filter("vpc-id", &[vpc]))
                .filters(aws::filter("availability-zone", &[&ctx.zone]))
                .send()
                .await
                .aws(|| format!("failed to list the subnets of `{vpc}`"))?;
            Some(
                out.subnets()
                    .first()
                    .and_then(|s| s.subnet_id())
                    .map(str::to_string)
                    .ok_or_else(|| {
                        user_error!(
                            "VPC `{vpc}` has no subnet in zone {}; pass --subnet",
                            ctx.zone
                        )
                    })?,
            )
        }
        (None, None) => None,
    };
    Ok(Plan {
        data,
        options,
        image,
        instance_type,
        keypairs,
        generation,
        root_volume_type: opts
            .root_volume_type
            .clone()
            .unwrap_or_else(|| "gp3".into()),
        subnet,
        enable_agent,
        globs,
        agent,
    })
}

/// Refuses an instance type EC2 does not know, or one whose CPUs cannot run the image.
async fn check_instance_type(
    ctx: &Context,
    instance_type: &str,
    image_id: &str,
    image_arch: &str,
) -> Result<()> {
    match aws::instance_type_architectures(&ctx.aws.ec2(), instance_type).await? {
        None => bail_user!(
            "EC2 knows no instance type `{instance_type}` in region {}; pick one that `aws ec2 describe-instance-types` lists",
            ctx.region
        ),
        Some(archs) if !archs.is_empty() && !archs.iter().any(|a| a == image_arch) => bail_user!(
            "instance type `{instance_type}` runs {} programs but image `{image_id}` is {image_arch}; pick an instance \
             type for {image_arch} (e.g. {}) or an image for {}",
            archs.join("/"),
            if image_arch == "arm64" { "t4g.small" } else { "t3.small" },
            archs.join("/")
        ),
        Some(_) => Ok(()),
    }
}

/// The distribution and glibc of the image (or, for one of cgcloud's own images, of the base
/// image it was made from), if cgcloud can tell.
async fn distro_of_image(
    ctx: &Context,
    image: &Image,
) -> Option<(&'static str, cgcloud_common::elf::GlibcVersion)> {
    if let Some(d) = image.name().and_then(super::agent::distro_of) {
        return Some(d);
    }
    let base = tag(image.tags(), IMAGE_BASE_AMI_TAG)?;
    let out = ctx
        .aws
        .ec2()
        .describe_images()
        .image_ids(base)
        .send()
        .await
        .ok()?;
    out.images()
        .first()
        .and_then(|i| i.name())
        .and_then(super::agent::distro_of)
}

pub fn plan_json(
    ctx: &Context,
    p: &Plan,
    opts: &CreateOptions,
    tags: &[(String, String)],
) -> Value {
    let age_days = p
        .image
        .creation_date()
        .and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok())
        .map(|d| (chrono::Utc::now() - d.with_timezone(&chrono::Utc)).num_days());
    json!({
        "role": p.data.name,
        "plugin": format!("{} {}", p.data.plugin, p.data.plugin_version),
        "namespace": ctx.namespace.as_str(),
        "zone": ctx.zone,
        "image": {"id": p.image.image_id(), "name": p.image.name(), "owner": p.image.owner_id(),
                  "created": p.image.creation_date(), "age_days": age_days},
        "instance_type": p.instance_type,
        "options": p.options,
        "key_pairs": p.keypairs,
        "security_group": {"name": ctx.aws_name(&p.data.image_name_prefix).ok(), "rules": p.data.security_group_rules},
        "iam_role": prepare::iam_role_name(ctx, &iam_of(ctx, p).0).ok(),
        "iam_policies": iam_of(ctx, p).1.iter().map(|x| x.name.clone()).collect::<Vec<_>>(),
        "agent": p.enable_agent,
        "agent_program": p.agent.as_ref().map(|a| a.to_json()),
        "instance_profile": ctx.aws_name(&p.data.name).ok(),
        "tags": tags.iter().map(|(k, v)| (k.clone(), Value::from(v.clone()))).collect::<serde_json::Map<_, _>>(),
        "user_data": {"cloud_config_keys": p.data.cloud_config.0.keys().collect::<Vec<_>>(), "host_key": "generated by cgcloud, pinned"},
        "root_volume": {"size_gib": opts.root_volume_size, "type": p.root_volume_type, "encrypted": opts.encrypt_root},
        "spot_max_price": opts.spot_bid,
        "subnet": p.subnet,
        "packages": p.data.packages,
        "setup": opts.from_image.is_none(),
    })
}

/// The IAM role's feature chain and policies: the role's, plus the agent's when it runs.
pub fn iam_of(ctx: &Context, p: &Plan) -> (Vec<String>, Vec<cgcloud_plugin_api::IamPolicy>) {
    iam_for(ctx, &p.data, p.enable_agent)
}

/// The IAM role's feature chain and policies of a box of role `data`, with or without the
/// agent: what `create` and `update-instance-profile` both apply.
pub fn iam_for(
    ctx: &Context,
    data: &RoleData,
    enable_agent: bool,
) -> (Vec<String>, Vec<cgcloud_plugin_api::IamPolicy>) {
    let mut features = data.iam_role_features.clone();
    let mut policies = data.iam_policies.clone();
    if enable_agent {
        // NOTE: the original's chain for agent boxes starts with `agent-box`; keep its hash.
        if !features.iter().any(|f| f == "agent-box") {
            features.insert(0, "agent-box".into());
        }
        policies.push(super::agent::policy(ctx));
    }
    (features, policies)
}
