//! The box template: `create` and `recreate` drive a role's hooks in the original's order —
//! prepare (image → security group → options → key pairs → IAM role and instance profile →
//! block devices and cloud-config → spot) → RunInstances with every tag applied at launch →
//! running → the boot (`ops::boot`: `on_instance_running`, SSH with the pinned host key,
//! cloud-init, `on_instance_ready`) → the set-up phases → optional image. A failure after launch
//! terminates the instance unless `-N`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{Image, Instance, Tag};
use cgcloud_common::elf::Arch;
use cgcloud_plugin_api::{OptionKind, RoleOption};
use cgcloud_plugin_host::{Offline, RoleData, RoleHandle};
use serde_json::{json, Value};

use super::boot::{self, Boot};
use super::launch::{self, LaunchSpec, Phases};
use super::prepare::{self, OWNER_TAG, ROLE_TAG};
use super::{images, instances, keypairs};
use crate::aws::{self, tag, AwsResultExt};
use crate::ctx::Context;
use crate::errors::Result;
use crate::names::ImageRef;
use crate::ssh::hostkey::HostKey;
use crate::ssh::remote::Remote;
use crate::ssh::{known_hosts, SshSettings};
use crate::{bail_user, user_error};

/// Tag keys of cgcloud's images beyond the original's (`generation`, `enable_agent`, options).
pub const IMAGE_ROLE_HASH_TAG: &str = "cgcloud:role-hash";
pub const IMAGE_PLUGIN_TAG: &str = "cgcloud:plugin";
pub const IMAGE_PLUGIN_VERSION_TAG: &str = "cgcloud:plugin-version";
pub const IMAGE_BASE_AMI_TAG: &str = "cgcloud:base-ami";

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
}

/// What `create` and `recreate` did (printed as JSON with `--json`).
#[derive(Debug, Clone)]
pub struct Created {
    pub instance_id: String,
    pub address: String,
    pub image_id: String,
    pub new_image: Option<String>,
    pub terminated: bool,
    pub phases: Phases,
}

impl Created {
    pub fn to_json(&self, ctx: &Context, role: &str, instance_type: &str) -> Value {
        json!({
            "role": role,
            "namespace": ctx.namespace.as_str(),
            "instance_id": self.instance_id,
            "address": self.address,
            "image_id": self.image_id,
            "instance_type": instance_type,
            "created_image": self.new_image,
            "terminated": self.terminated,
            "phases": self.phases.to_json(),
        })
    }
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

/// The ssh_config, identity (`--ssh-key`, else `CGCLOUD_SSH_KEY`) and data directory for this
/// invocation.
pub fn ssh_settings(identity: Option<std::path::PathBuf>) -> Result<SshSettings> {
    let config = crate::config::Config::load()?;
    let identity = identity.or_else(|| {
        std::env::var_os("CGCLOUD_SSH_KEY")
            .filter(|v| !v.is_empty())
            .map(Into::into)
    });
    if let Some(path) = &identity {
        // Checked before anything is launched: ssh would only say so after the box is up.
        if let Err(e) = crate::fsutil::read_small(path, 1 << 20) {
            bail_user!(
                "cannot read the SSH identity `{}` (--ssh-key or CGCLOUD_SSH_KEY): {e}; give the private key of a key \
                 pair you registered with `cgcloud register-key`",
                path.display()
            );
        }
    }
    Ok(SshSettings {
        data_dir: crate::roles::data_dir()?,
        identity,
        user_config: config.ssh_config(),
    })
}

/// Everything `create` decides before touching anything (and `--plan` prints).
struct Plan {
    data: RoleData,
    options: BTreeMap<String, String>,
    image: Image,
    instance_type: String,
    keypairs: Vec<String>,
    generation: u32,
    root_volume_type: String,
    subnet: Option<String>,
    /// Whether the agent keeps the box's keys (set up by `create`, inherited from the image by
    /// `recreate`).
    enable_agent: bool,
    /// The key pair globs, `__me__` substituted, not expanded.
    globs: Vec<String>,
    /// The agent program to install (`create` of an agent box only).
    agent: Option<super::agent::AgentProgram>,
}

async fn plan(ctx: &Context, role: &RoleHandle, opts: &CreateOptions) -> Result<Plan> {
    // Options inherited from the image (recreate), then -O.
    let from_image = match &opts.from_image {
        Some(r) => {
            let prefix = role.declared(&Offline::quiet())?.image_name_prefix;
            Some(images::resolve(ctx, role.name(), &prefix, r).await?)
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

fn plan_json(ctx: &Context, p: &Plan, opts: &CreateOptions, tags: &[(String, String)]) -> Value {
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
        "security_group": {"name": ctx.aws_name(&p.data.name).ok(), "rules": p.data.security_group_rules},
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

/// `create` (and, with `opts.from_image`, `recreate`).
pub async fn create(
    ctx: &Context,
    role: RoleHandle,
    opts: &CreateOptions,
    ssh: &SshSettings,
) -> Result<Option<(Created, Value)>> {
    let role = Arc::new(role);
    let mut phases = Phases::default();
    let p = plan(ctx, &role, opts).await?;
    let name = ctx.aws_name(&p.data.name)?;
    let mut tags: Vec<(String, String)> = vec![
        ("Name".into(), name.clone()),
        ("generation".into(), p.generation.to_string()),
        ("cluster_ordinal".into(), "0".into()),
        (
            "enable_agent".into(),
            if p.enable_agent { "True" } else { "False" }.into(),
        ),
        (super::agent::KEYPAIRS_TAG.into(), p.globs.join(" ")),
        (OWNER_TAG.into(), ctx.namespace.as_str().into()),
        (ROLE_TAG.into(), p.data.name.clone()),
    ];
    for (k, v) in &p.options {
        tags.push((k.clone(), v.clone()));
    }
    if opts.plan {
        ctx.shell.json(&plan_json(ctx, &p, opts, &tags));
        return Ok(None);
    }
    let t = Instant::now();
    let sg = prepare::ensure_security_group(
        ctx,
        &p.data.name,
        &p.data.name,
        opts.vpc.as_deref(),
        &p.data.security_group_rules,
        "0.0.0.0/0",
    )
    .await?;
    let (features, policies) = iam_of(ctx, &p);
    let profile = prepare::ensure_instance_profile(ctx, &p.data.name, &features, &policies).await?;
    let host_key = HostKey::generate()?;
    // The host key's public half, for every teammate's cgcloud to pin (`ops::access`).
    tags.push((
        super::hostkeys::HOST_KEY_TAG.into(),
        host_key
            .public
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" "),
    ));
    let mut cloud_config = p.data.cloud_config.clone();
    if !p.enable_agent {
        // Without the agent, keys 2…n go in once, at first boot, as in the original.
        let extra_keys = extra_public_keys(ctx, &p.keypairs[1..]).await?;
        if !extra_keys.is_empty() {
            cloud_config.append(
                "ssh_authorized_keys",
                extra_keys.into_iter().map(Value::from),
            );
        }
    }
    let spec = LaunchSpec {
        image: p.image.clone(),
        instance_type: p.instance_type.clone(),
        key_name: p.keypairs[0].clone(),
        security_group_ids: vec![sg],
        subnet_id: p.subnet.clone(),
        instance_profile_arn: Some(profile),
        user_data: prepare::user_data(&cloud_config, &host_key),
        root_volume_size: opts.root_volume_size,
        root_volume_type: p.root_volume_type.clone(),
        encrypt_root: opts.encrypt_root,
        extra_devices: p.data.block_devices.clone(),
        spot_max_price: opts.spot_bid,
        tags,
    };
    let instance = launch::run_instance(ctx, &spec).await?;
    let id = instance.instance_id().unwrap_or_default().to_string();
    let t = phases.record("api", t);
    ctx.shell.info(format!(
        "launched instance `{id}` of role `{}` from `{}`",
        p.data.name,
        p.image.image_id().unwrap_or_default()
    ));
    ctx.shell.status(&id, "pending → running");
    let ticker = ctx.shell.is_live().then(|| {
        let shell = ctx.shell.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                shell.tick();
            }
        })
    });
    // Ctrl-C stops the work and, like any failure, terminates the instance unless -N.
    let result = tokio::select! {
        r = provision(ctx, &role, opts, ssh, &p, &id, &host_key, &mut phases, t) => r,
        _ = tokio::signal::ctrl_c() => {
            crate::ssh::remote::cancel();
            Err(user_error!("interrupted while setting up `{id}`"))
        }
    };
    if let Some(t) = ticker {
        t.abort();
    }
    ctx.shell.status_done(&id);
    match result {
        Ok((address, new_image, terminated)) => {
            ctx.shell.info(format!("phases: {}", phases.summary()));
            if !terminated {
                let ns = ctx.namespace.as_str();
                ctx.shell.info(format!(
                    "Run `cgcloud ssh -n {ns} -z {} {}` to start using this box.",
                    ctx.zone, p.data.name
                ));
            }
            let created = Created {
                instance_id: id,
                address,
                image_id: p.image.image_id().unwrap_or_default().into(),
                new_image,
                terminated,
                phases,
            };
            let j = created.to_json(ctx, &p.data.name, &p.instance_type);
            Ok(Some((created, j)))
        }
        Err(e) => {
            if opts.never_terminate {
                ctx.shell
                    .warn(format!("kept instance `{id}` after the failure (-N)"));
            } else {
                match ctx.aws.ec2().terminate_instances().instance_ids(&id).send().await {
                    Ok(_) => {
                        if let Err(fe) = instances::forget(ctx, &id).await {
                            ctx.shell.warn(crate::errors::one_line(&fe));
                        }
                        ctx.shell.warn(format!("terminated instance `{id}` after the failure (-N keeps it)"));
                    }
                    Err(te) => ctx.shell.warn(format!(
                        "instance `{id}` could not be terminated after the failure ({}); terminate it by hand",
                        aws::describe(&te)
                    )),
                }
            }
            Err(e)
        }
    }
}

/// The IAM role's feature chain and policies: the role's, plus the agent's when it runs.
fn iam_of(ctx: &Context, p: &Plan) -> (Vec<String>, Vec<cgcloud_plugin_api::IamPolicy>) {
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

/// The accounts whose keys the agent manages: the admin account and the role's default one.
pub fn agent_accounts(data: &RoleData) -> Vec<String> {
    let mut accounts = vec![data.admin_account.clone()];
    if data.default_account != data.admin_account {
        accounts.push(data.default_account.clone());
    }
    accounts
}

/// Hands the launch key over from the admin account's `authorized_keys` to the agent's file
/// (`agent::hand_over_launch_key`), with the launch key pair's public key as EC2 has it.
async fn hand_over_launch_key(ctx: &Context, remote: &Remote, id: &str, p: &Plan) -> Result<()> {
    let name = &p.keypairs[0];
    let key = aws::key_pair(&ctx.aws.ec2(), name)
        .await?
        .and_then(|k| k.public_key().map(|s| s.trim().to_string()))
        .ok_or_else(|| {
            user_error!("EC2 no longer has the public key of the launch key pair `{name}`")
        })?;
    super::agent::hand_over_launch_key(ctx, remote, id, &p.data.admin_account, &key).await
}

/// The public keys of key pairs 2…n, installed once at first boot.
async fn extra_public_keys(ctx: &Context, names: &[String]) -> Result<Vec<String>> {
    let mut keys = Vec::new();
    for n in names {
        match aws::key_pair(&ctx.aws.ec2(), n).await? {
            Some(k) => match k.public_key() {
                Some(pk) => keys.push(pk.trim().to_string()),
                None => ctx.shell.warn(format!(
                    "EC2 did not return the public key of key pair `{n}`; it is left out"
                )),
            },
            None => ctx
                .shell
                .warn(format!("key pair `{n}` has disappeared; it is left out")),
        }
    }
    Ok(keys)
}

#[allow(clippy::too_many_arguments)]
async fn provision(
    ctx: &Context,
    role: &Arc<RoleHandle>,
    opts: &CreateOptions,
    ssh: &SshSettings,
    p: &Plan,
    id: &str,
    host_key: &HostKey,
    phases: &mut Phases,
    t: Instant,
) -> Result<(String, Option<String>, bool)> {
    known_hosts::pin(&ssh.known_hosts(), id, &host_key.public)?;
    // The original names a box's cluster after the box itself.
    ctx.aws
        .ec2()
        .create_tags()
        .resources(id)
        .tags(Tag::builder().key("cluster_name").value(id).build())
        .send()
        .await
        .aws(|| format!("failed to tag `{id}`"))?;
    if p.enable_agent {
        super::agent::wire(ctx, id).await?;
    }
    let (_, address) = launch::wait_running(ctx, id, opts.private_ip).await?;
    let t = phases.record("pending-to-running", t);
    let boot = Boot {
        role,
        options: &p.options,
        ssh,
        id,
        admin: &p.data.admin_account,
        first_boot: true,
        // The host key from user data has served its one purpose: verifying this first connection.
        rotate_host_key: true,
    };
    boot.running(ctx).await?;
    if opts.quick {
        return Ok((address, None, false));
    }
    let (mut remote, t) = boot.ready(ctx, address.clone(), phases, t).await?;
    let mut t = t;
    let mut address = address;
    if opts.from_image.is_none() {
        ctx.shell
            .status(id, &format!("setting up role `{}`", p.data.name));
        let upgrade = opts.upgrade;
        boot::run_hooks(ctx, role, id, Some(&remote), &p.options, move |r, s| {
            r.setup(s, upgrade).map_err(Box::new)
        })
        .await?;
        if !p.data.init_commands.is_empty() {
            install_init_commands(&remote, &p.data.init_commands).await?;
        }
        if p.enable_agent {
            let accounts = agent_accounts(&p.data);
            if let Some(agent) = &p.agent {
                super::agent::install(ctx, &remote, id, agent, &p.globs, &accounts).await?;
            }
            hand_over_launch_key(ctx, &remote, id, p).await?;
        }
        t = phases.record("setup", t);
        if opts.upgrade {
            // As the original: upgraded packages (a new kernel) take effect after a reboot,
            // done as a stop and start so the box comes back on fresh hardware.
            ctx.shell.status(id, "rebooting after the upgrade");
            boot::close(remote).await;
            launch::stop(ctx, id).await?;
            let (_, a) = launch::start(ctx, id, opts.private_ip).await?;
            let again = Boot {
                first_boot: false,
                rotate_host_key: false,
                ..boot
            };
            let (r, t2) = again.booted(ctx, a.clone(), phases, t).await?;
            (remote, address) = (r, a);
            t = phases.record("reboot", t2);
        }
    }
    if opts.from_image.is_some() && p.enable_agent {
        // A box from an image: its agent (from the image) takes over this instance's launch key.
        hand_over_launch_key(ctx, &remote, id, p).await?;
    }
    if opts.create_image {
        if p.enable_agent {
            super::agent::clear_for_image(&remote, &agent_accounts(&p.data)).await?;
        }
        super::hostkeys::forget_user_data(&remote).await?;
    }
    boot::close(remote).await;
    let mut new_image = None;
    if opts.create_image {
        ctx.shell.status(id, "stopping to make an image");
        launch::stop(ctx, id).await?;
        let img = images::make(ctx, role, id, &p.data, &p.options).await?;
        new_image = Some(img);
        t = phases.record("image", t);
        if !opts.terminate {
            let (_, a) = launch::start(ctx, id, opts.private_ip).await?;
            // The image holds the host key the box had; the box that goes on gets a new one.
            let again = Boot {
                first_boot: false,
                ..boot
            };
            let (r, t2) = again.booted(ctx, a.clone(), phases, t).await?;
            boot::close(r).await;
            address = a;
            t = phases.record("restart", t2);
        }
    }
    let _ = t;
    if opts.terminate {
        instances::terminate(ctx, &instance_of(ctx, id).await?, true).await?;
        instances::forget(ctx, id).await?;
        return Ok((address, new_image, true));
    }
    Ok((address, new_image, false))
}

/// The role's boot-time commands, run at the end of every boot by a oneshot systemd unit
/// (the original appended them to rc.local); each must tolerate `set -e`.
async fn install_init_commands(remote: &Remote, commands: &[String]) -> Result<()> {
    let mut script = String::from(
        "#!/bin/sh\n# Boot-time commands of the box's role, written by cgcloud.\nset -e\n",
    );
    for c in commands {
        script.push_str(c);
        script.push('\n');
    }
    let unit = "[Unit]\nDescription=Boot-time commands of the box's cgcloud role\nWants=network-online.target\n\
                After=network-online.target cloud-final.service\n\n[Service]\nType=oneshot\nRemainAfterExit=yes\n\
                ExecStart=/usr/local/sbin/cgcloud-init-commands\n\n[Install]\nWantedBy=multi-user.target\n";
    let install = format!(
        "set -e; umask 022; printf %s {script} > /usr/local/sbin/cgcloud-init-commands; \
         chmod 755 /usr/local/sbin/cgcloud-init-commands; printf %s {unit} > /etc/systemd/system/cgcloud-init-commands.service; \
         systemctl daemon-reload; systemctl enable cgcloud-init-commands.service",
        script = crate::ssh::remote::quote(&script),
        unit = crate::ssh::remote::quote(unit),
    );
    remote
        .run_as_root(&install, None, "install the role's boot-time commands")
        .await?;
    Ok(())
}

async fn instance_of(ctx: &Context, id: &str) -> Result<Instance> {
    aws::instance_by_id(&ctx.aws.ec2(), id)
        .await?
        .ok_or_else(|| user_error!("instance `{id}` has disappeared"))
}
