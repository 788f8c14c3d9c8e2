//! The box template: `create` and `recreate` drive a role's hooks in the original's order —
//! the plan (`ops::plan`) → security group → IAM role and instance profile → user data with a
//! generated host key → RunInstances with every tag applied at launch → running → the boot
//! (`ops::boot`: `on_instance_running`, SSH with the pinned host key, cloud-init,
//! `on_instance_ready`) → the set-up phases → optional image. A failure after launch
//! terminates the instance unless `-N`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{Instance, Tag};
use cgcloud_plugin_host::{RoleData, RoleHandle};
use serde_json::{json, Value};

use super::boot::{self, Boot};
use super::launch::{self, LaunchSpec, Phases};
use super::prepare::{self, OWNER_TAG, ROLE_TAG};
use super::{images, instances};
use crate::aws::{self, AwsResultExt};
use crate::ctx::Context;
use crate::errors::Result;
use crate::ssh::hostkey::HostKey;
use crate::ssh::remote::Remote;
use crate::ssh::{known_hosts, SshSettings};
use crate::{bail_user, user_error};

use super::plan::{iam_of, plan, plan_json, CreateOptions, Plan};

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

/// `create` (and, with `opts.from_image`, `recreate`).
pub async fn create(
    ctx: &Context,
    role: RoleHandle,
    opts: &CreateOptions,
    ssh: &SshSettings,
) -> Result<Option<(Created, Value)>> {
    let Some(mut outcomes) = create_nodes(ctx, Arc::new(role), opts, ssh).await? else {
        return Ok(None);
    };
    match outcomes.pop() {
        Some(o) => o.result.map(Some),
        None => Err(user_error!("EC2 launched no instance")),
    }
}

/// What became of one box of a launch.
pub struct NodeOutcome {
    pub instance_id: String,
    /// Its cluster ordinal, for cluster nodes.
    pub ordinal: Option<u32>,
    pub result: Result<(Created, Value)>,
}

/// `create` of `opts.count` boxes in one RunInstances, set up in parallel (at most
/// `opts.cluster.threads` at once). Every box's outcome is returned; a box that failed was
/// terminated unless `-N`. `None` for `--plan`.
pub async fn create_nodes(
    ctx: &Context,
    role: Arc<RoleHandle>,
    opts: &CreateOptions,
    ssh: &SshSettings,
) -> Result<Option<Vec<NodeOutcome>>> {
    let mut phases = Phases::default();
    let p = plan(ctx, &role, opts).await?;
    let name = ctx.aws_name(&p.data.name)?;
    let count = opts.count.max(1);
    let placement = opts.cluster.clone().unwrap_or_default();
    if opts.cluster.is_some() && placement.ordinals.len() != count {
        bail_user!(
            "{count} boxes need {count} cluster ordinals, not {}",
            placement.ordinals.len()
        );
    }
    let mut tags: Vec<(String, String)> = vec![
        ("Name".into(), name.clone()),
        ("generation".into(), p.generation.to_string()),
        (
            "enable_agent".into(),
            if p.enable_agent { "True" } else { "False" }.into(),
        ),
        (super::agent::KEYPAIRS_TAG.into(), p.globs.join(" ")),
        (OWNER_TAG.into(), ctx.namespace.as_str().into()),
        (ROLE_TAG.into(), p.data.name.clone()),
    ];
    // Workers know their leader and cluster at launch; a leader (or a single box) learns its
    // own ID only then, so those tags follow right after.
    if let Some(leader) = &placement.leader {
        tags.push((super::cluster::LEADER_TAG.into(), leader.clone()));
        let cluster = placement.name.clone().unwrap_or_else(|| leader.clone());
        tags.push(("cluster_name".into(), cluster));
    } else {
        tags.push((super::cluster::ORDINAL_TAG.into(), "0".into()));
        if opts.cluster.is_some() {
            // Its boot-time discovery waits for the `leader_instance_id` tag that follows.
            tags.push((
                cgcloud_agent::discover::LEADER_PENDING_TAG.into(),
                "pending".into(),
            ));
        }
    }
    if let Some(c) = &opts.cluster {
        // As the original: `0` for nodes without a persistent volume.
        let gb = c.volume_gb.unwrap_or(0);
        tags.push((super::volumes::SIZE_TAG.into(), gb.to_string()));
    }
    for (k, v) in &p.options {
        tags.push((k.clone(), v.clone()));
    }
    if opts.plan {
        ctx.shell.json(&plan_json(ctx, &p, opts, &tags));
        return Ok(None);
    }
    let t = Instant::now();
    // Named like the role's images, as the original did: the leader and worker roles of a
    // cluster type, which boot their node role's image, share its group.
    let sg = prepare::ensure_security_group(
        ctx,
        &p.data.name,
        &p.data.image_name_prefix,
        opts.vpc.as_deref(),
        &p.data.security_group_rules,
        "0.0.0.0/0",
    )
    .await?;
    let (features, policies) = iam_of(ctx, &p);
    let profile = prepare::ensure_instance_profile(ctx, &p.data.name, &features, &policies).await?;
    // NOTE: the boxes of one launch share this first host key; each replaces it with its own
    // right after cgcloud's first verified connection (`hostkeys::rotate`).
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
    // Marked unfinished from launch on, with this run's claim (`ops::progress`).
    tags.extend(super::progress::launch_tags());
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
    let profile_arn = spec.instance_profile_arn.clone();
    let launched = launch::run_instances(ctx, &spec, count).await?;
    // NOTE: moto 5.2 gives the instance profile to the first instance of a RunInstances only;
    // EC2 gives it to all. An instance without it is given it here (never the case on AWS).
    if let Some(arn) = &profile_arn {
        for i in launched
            .iter()
            .filter(|i| i.iam_instance_profile().is_none())
        {
            let id = i.instance_id().unwrap_or_default();
            let given = ctx
                .aws
                .ec2()
                .associate_iam_instance_profile()
                .instance_id(id)
                .iam_instance_profile(
                    aws_sdk_ec2::types::IamInstanceProfileSpecification::builder()
                        .arn(arn)
                        .build(),
                )
                .send()
                .await;
            match given {
                Ok(_) => {}
                // A retry of a call whose answer was lost: the first attempt gave it.
                Err(e) if aws::error_code(&e) == Some("IncorrectState") => {}
                Err(e) => {
                    return Err(e).aws(|| format!("failed to give `{id}` its instance profile"))
                }
            }
        }
    }
    let ids: Vec<String> = launched
        .iter()
        .map(|i| i.instance_id().unwrap_or_default().to_string())
        .collect();
    let lease = super::progress::keep(ctx, ids.clone());
    let t = phases.record("api", t);
    ctx.shell.info(format!(
        "launched {} `{}` of role `{}` from `{}`",
        if count == 1 { "instance" } else { "instances" },
        ids.join("`, `"),
        p.data.name,
        p.image.image_id().unwrap_or_default()
    ));
    for id in &ids {
        ctx.shell.status(id, "pending → running");
    }
    let ticker = ctx.shell.is_live().then(|| {
        let shell = ctx.shell.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                shell.tick();
            }
        })
    });
    // The tags each box gets after launch: a cluster ordinal for workers; for a leader (or a
    // single box, which the original treats as a cluster of one) its own ID as leader and,
    // unless a name was given, as cluster name.
    let node_tags = |k: usize, id: &str| -> Vec<(String, String)> {
        match &placement.leader {
            Some(_) => vec![(
                super::cluster::ORDINAL_TAG.into(),
                placement.ordinals[k].to_string(),
            )],
            None => {
                let mut tags = vec![(
                    "cluster_name".to_string(),
                    placement.name.clone().unwrap_or_else(|| id.to_string()),
                )];
                if opts.cluster.is_some() {
                    tags.push((super::cluster::LEADER_TAG.into(), id.to_string()));
                }
                tags
            }
        }
    };
    // Each node's persistent volume, named after the node's Name tag and cluster ordinal.
    let node_volume = |k: usize, id: &str| {
        placement.volume_gb.map(|gb| {
            let cluster = placement
                .name
                .clone()
                .or_else(|| placement.leader.clone())
                .unwrap_or_else(|| id.to_string());
            super::volumes::VolumeSpec::new(&name, placement.ordinals[k], &cluster, gb, &ctx.zone)
        })
    };
    let threads = placement.threads.max(1);
    let work = {
        use futures_util::stream::{self, StreamExt};
        let (role, p, host_key, phases) = (&role, &p, &host_key, &phases);
        stream::iter(ids.iter().cloned().enumerate())
            .map(move |(k, id)| {
                let tags = node_tags(k, &id);
                let volume = node_volume(k, &id);
                async move {
                    let mut phases = phases.clone();
                    let r = provision(
                        ctx,
                        role,
                        opts,
                        ssh,
                        p,
                        &id,
                        host_key,
                        &tags,
                        volume.as_ref(),
                        &mut phases,
                        t,
                    )
                    .await;
                    (k, id, r, phases)
                }
            })
            .buffer_unordered(threads)
            .collect::<Vec<_>>()
    };
    // Ctrl-C stops the work and, like any failure, terminates the instances unless -N.
    let mut results = tokio::select! {
        r = work => r,
        _ = tokio::signal::ctrl_c() => {
            crate::ssh::remote::cancel();
            ids.iter()
                .cloned()
                .enumerate()
                .map(|(k, id)| {
                    let e = user_error!("interrupted while setting up `{id}`");
                    (k, id, Err(e), Phases::default())
                })
                .collect()
        }
    };
    if let Some(t) = ticker {
        t.abort();
    }
    drop(lease);
    results.sort_by_key(|(k, ..)| *k);
    let mut outcomes = Vec::new();
    for (k, id, result, phases) in results {
        ctx.shell.status_done(&id);
        let ordinal = opts.cluster.as_ref().map(|c| c.ordinals[k]);
        let result = match result {
            Ok((address, new_image, terminated)) => {
                if !terminated && !opts.stay_unfinished {
                    super::progress::mark(ctx, &id, super::progress::READY).await;
                }
                let label = if count == 1 {
                    String::new()
                } else {
                    format!("{id}: ")
                };
                ctx.shell
                    .info(format!("{label}phases: {}", phases.summary()));
                if !terminated && opts.cluster.is_none() {
                    let ns = ctx.namespace.as_str();
                    ctx.shell.info(format!(
                        "Run `cgcloud ssh -n {ns} -z {} {}` to start using this box.",
                        ctx.zone, p.data.name
                    ));
                }
                let created = Created {
                    instance_id: id.clone(),
                    address,
                    image_id: p.image.image_id().unwrap_or_default().into(),
                    new_image,
                    terminated,
                    phases,
                };
                let j = created.to_json(ctx, &p.data.name, &p.instance_type);
                Ok((created, j))
            }
            Err(e) => {
                after_failure(ctx, opts, &id).await;
                if opts.never_terminate {
                    super::progress::mark(ctx, &id, super::progress::FAILED).await;
                }
                Err(e)
            }
        };
        outcomes.push(NodeOutcome {
            instance_id: id,
            ordinal,
            result,
        });
    }
    Ok(Some(outcomes))
}

/// After a box failed: terminate it and forget it, unless `-N`.
async fn after_failure(ctx: &Context, opts: &CreateOptions, id: &str) {
    if opts.never_terminate {
        ctx.shell
            .warn(format!("kept instance `{id}` after the failure (-N)"));
        return;
    }
    match ctx
        .aws
        .ec2()
        .terminate_instances()
        .instance_ids(id)
        .send()
        .await
    {
        Ok(_) => {
            if let Err(fe) = instances::forget(ctx, id).await {
                ctx.shell.warn(crate::errors::one_line(&fe));
            }
            ctx.shell.warn(format!(
                "terminated instance `{id}` after the failure (-N keeps it)"
            ));
        }
        Err(te) => ctx.shell.warn(format!(
            "instance `{id}` could not be terminated after the failure ({}); terminate it by hand",
            aws::describe(&te)
        )),
    }
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
    node_tags: &[(String, String)],
    volume: Option<&super::volumes::VolumeSpec>,
    phases: &mut Phases,
    t: Instant,
) -> Result<(String, Option<String>, bool)> {
    known_hosts::pin(&ssh.known_hosts(), id, &host_key.public)?;
    if !node_tags.is_empty() {
        let tags: Vec<Tag> = node_tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        ctx.aws
            .ec2()
            .create_tags()
            .resources(id)
            .set_tags(Some(tags))
            .send()
            .await
            .aws(|| format!("failed to tag `{id}`"))?;
    }
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
        secret: opts.cluster.as_ref().and_then(|c| c.secret.as_ref()),
        volume,
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
                secret: None,
                // Mounted at boot from /etc/fstab from now on.
                volume: None,
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
