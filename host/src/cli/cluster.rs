//! Cluster commands: a leader and workers booted from a node role's image.

use std::path::PathBuf;
use std::sync::Arc;

use aws_sdk_ec2::types::{Instance, InstanceStateName};
use clap::Args;

use super::args::{parse_image_ref, ClusterArgs, ContextArgs, CreationArgs, LoginArgs};
use crate::config::timeouts;
use crate::ctx::{Context, Globals};
use crate::errors::Result;
use crate::names::ImageRef;
use crate::ops::cluster::{self, ClusterSecret, NodeRole, Nodes};
use crate::ops::plan::{ClusterPlacement, CreateOptions};
use crate::ops::{access, create, instances, power, volumes};
use crate::roles::Roles;
use crate::ssh::remote::Remote;
use cgcloud_plugin_host::ClusterSummary;

/// Create a cluster: a leader, then its workers, from the node role's newest image
#[derive(Args, Debug)]
pub struct CreateClusterArgs {
    #[command(flatten)]
    pub context: ContextArgs,
    /// The cluster type, e.g. spark, mesos or toil
    #[arg(value_name = "TYPE")]
    pub cluster_type: String,
    #[command(flatten)]
    pub creation: CreationArgs,
    /// Never terminate the nodes, even if something failed
    #[arg(short = 'N', long = "never-terminate")]
    pub never_terminate: bool,
    /// The leader's instance type (default: the workers' type)
    #[arg(short = 'T', long = "leader-instance-type", value_name = "TYPE")]
    pub leader_instance_type: Option<String>,
    /// The image to boot: an ordinal among the node role's images (-1 is the newest) or an AMI ID
    #[arg(short = 'i', long = "boot-image", default_value = "-1", allow_negative_numbers = true,
          value_parser = parse_image_ref, value_name = "IMAGE")]
    pub boot_image: ImageRef,
    /// Do not wait for the nodes to be ready
    #[arg(short = 'Q', long)]
    pub quick: bool,
    /// How many nodes to wait for at once
    #[arg(long = "num-threads", default_value_t = 100, value_name = "NUM")]
    pub num_threads: usize,
    /// The cluster's name (default: the leader's instance ID)
    #[arg(short = 'c', long = "cluster-name", value_name = "NAME")]
    pub cluster_name: Option<String>,
    /// How many workers
    #[arg(
        short = 's',
        long = "num-workers",
        default_value_t = 1,
        value_name = "N"
    )]
    pub num_workers: usize,
    /// Give each node a persistent EBS volume of this many GB, mounted at /mnt/persistent and
    /// kept when the cluster is terminated
    #[arg(short = 'e', long = "ebs-volume-size", value_name = "GB")]
    pub ebs_volume_size: Option<u32>,
    /// Launch the leader on demand even when workers use the spot market
    #[arg(short = 'D', long = "leader-on-demand")]
    pub leader_on_demand: bool,
    /// Copy this directory to the leader's ~/shared, from where workers copy it at boot
    #[arg(short = 'S', long = "share", value_name = "PATH")]
    pub share: Option<PathBuf>,
    /// Extra options for the ssh used to copy --share
    #[arg(long = "ssh-opts", value_name = "OPTS", allow_hyphen_values = true)]
    pub ssh_opts: Option<String>,
}

/// Add workers to a running cluster
#[derive(Args, Debug)]
pub struct GrowClusterArgs {
    #[command(flatten)]
    pub context: ContextArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub creation: CreationArgs,
    /// The image to boot: an ordinal among the node role's images (-1 is the newest) or an AMI ID
    #[arg(short = 'i', long = "boot-image", default_value = "-1", allow_negative_numbers = true,
          value_parser = parse_image_ref, value_name = "IMAGE")]
    pub boot_image: ImageRef,
    /// Do not wait for the new workers to be ready
    #[arg(short = 'Q', long)]
    pub quick: bool,
    /// How many workers to add
    #[arg(
        short = 's',
        long = "num-workers",
        default_value_t = 1,
        value_name = "N"
    )]
    pub num_workers: usize,
}

/// Start (or stop) every node of a cluster
#[derive(Args, Debug)]
pub struct ClusterLifecycleArgs {
    #[command(flatten)]
    pub context: ContextArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Leave the leader alone
    #[arg(short = 'L', long = "skip-leader")]
    pub skip_leader: bool,
}

/// Terminate every node of a cluster, workers first
#[derive(Args, Debug)]
pub struct TerminateClusterArgs {
    #[command(flatten)]
    pub context: ContextArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Leave the leader alone
    #[arg(short = 'L', long = "skip-leader")]
    pub skip_leader: bool,
    /// Do not wait for the nodes to be terminated
    #[arg(short = 'Q', long)]
    pub quick: bool,
    /// Also delete the terminated nodes' persistent volumes (--ebs-volume-size), and their data
    #[arg(long = "delete-volumes", conflicts_with = "quick")]
    pub delete_volumes: bool,
}

/// Run a command on every node of a cluster over ssh
#[derive(Args, Debug)]
pub struct SshClusterArgs {
    #[command(flatten)]
    pub context: ContextArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Leave the leader alone
    #[arg(short = 'L', long = "skip-leader")]
    pub skip_leader: bool,
    #[command(flatten)]
    pub login: LoginArgs,
    /// Run on all nodes at once
    #[arg(short = 'P', long)]
    pub parallel: bool,
    /// Arguments for ssh, e.g. the command to run
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    pub args: Vec<String>,
}

/// Copy files to or from every node of a cluster with rsync
#[derive(Args, Debug)]
pub struct RsyncClusterArgs {
    #[command(flatten)]
    pub context: ContextArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Leave the leader alone
    #[arg(short = 'L', long = "skip-leader")]
    pub skip_leader: bool,
    #[command(flatten)]
    pub login: LoginArgs,
    /// Extra options for the ssh that rsync runs
    #[arg(
        short = 'e',
        long = "ssh-opts",
        value_name = "OPTS",
        allow_hyphen_values = true
    )]
    pub ssh_opts: Option<String>,
    /// Arguments for rsync, with the nodes' paths written as `:path`
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    pub args: Vec<String>,
}

/// A cluster type's roles and the cluster bound from the command line.
struct Bound {
    ctx: Context,
    cluster: ClusterSummary,
    leader: NodeRole,
    worker: NodeRole,
    nodes: Nodes,
}

async fn bind(g: &Globals, context: &ContextArgs, args: &ClusterArgs) -> Result<Bound> {
    let roles = Roles::load(g)?;
    let cluster = roles.registry.cluster(&args.cluster_type)?;
    let node = |name: &str| -> Result<NodeRole> {
        let handle = roles.handle(name)?;
        let data = handle.declared(&cgcloud_plugin_host::Offline::quiet())?;
        Ok(NodeRole {
            handle: Arc::new(handle),
            data,
        })
    };
    let (leader, worker) = (node(&cluster.leader)?, node(&cluster.worker)?);
    let ctx = Context::new(context, g).await?;
    let nodes = cluster::bind(
        &ctx,
        &cluster,
        &leader.data.name,
        &worker.data.name,
        args.cluster_name.as_deref(),
        args.ordinal,
    )
    .await?;
    for i in std::iter::once(&nodes.leader).chain(&nodes.workers) {
        instances::check_owned(&ctx, i)?;
    }
    Ok(Bound {
        ctx,
        cluster,
        leader,
        worker,
        nodes,
    })
}

fn state_is(i: &Instance, s: InstanceStateName) -> bool {
    crate::aws::state_of(i) == Some(s)
}

async fn start_node(ctx: &Context, role: &NodeRole, i: Instance) -> Result<()> {
    if state_is(&i, InstanceStateName::Running) {
        ctx.shell.info(format!(
            "`{}` is running already",
            i.instance_id().unwrap_or_default()
        ));
        return Ok(());
    }
    power::start(ctx, &role.handle, &role.data, &i).await
}

async fn stop_node(ctx: &Context, role: &NodeRole, i: Instance) -> Result<()> {
    if state_is(&i, InstanceStateName::Stopped) {
        return Ok(());
    }
    power::stop(ctx, &role.data, &i).await
}

async fn terminate_node(ctx: &Context, i: Instance, quick: bool) -> Result<()> {
    instances::terminate(ctx, &i, quick).await?;
    instances::forget(ctx, i.instance_id().unwrap_or_default()).await
}

/// Starts every stopped node: the leader first, then the workers in parallel (each boots as
/// `start` boots a box, its role's boot hooks included).
pub async fn start_cluster(args: ClusterLifecycleArgs, g: &Globals) -> Result<i32> {
    let b = bind(g, &args.context, &args.cluster).await?;
    let start = |role, i: &Instance| start_node(&b.ctx, role, i.clone());
    let failed = cluster::each(b.nodes.leader(args.skip_leader), 1, |i| start(&b.leader, i)).await;
    if !failed.is_empty() {
        return Err(cluster::failure("starting the leader", &failed));
    }
    let failed = cluster::each(b.nodes.workers(), args.cluster.num_threads, |i| {
        start(&b.worker, i)
    })
    .await;
    if !failed.is_empty() {
        return Err(cluster::failure("starting", &failed));
    }
    Ok(0)
}

/// Stops every running node: the workers first, in parallel, then the leader.
pub async fn stop_cluster(args: ClusterLifecycleArgs, g: &Globals) -> Result<i32> {
    let b = bind(g, &args.context, &args.cluster).await?;
    let stop = |role, i: &Instance| stop_node(&b.ctx, role, i.clone());
    let failed = cluster::each(b.nodes.workers(), args.cluster.num_threads, |i| {
        stop(&b.worker, i)
    })
    .await;
    if !failed.is_empty() {
        return Err(cluster::failure("stopping", &failed));
    }
    let failed = cluster::each(b.nodes.leader(args.skip_leader), 1, |i| stop(&b.leader, i)).await;
    if !failed.is_empty() {
        return Err(cluster::failure("stopping the leader", &failed));
    }
    Ok(0)
}

/// Terminates every node, the workers first, and forgets what cgcloud kept about each (host-key
/// pin, ssh config, agent queue).
pub async fn terminate_cluster(args: TerminateClusterArgs, g: &Globals) -> Result<i32> {
    let b = bind(g, &args.context, &args.cluster).await?;
    let quick = args.quick;
    let terminate = |i: &Instance| terminate_node(&b.ctx, i.clone(), quick);
    let failed = cluster::each(b.nodes.workers(), args.cluster.num_threads, terminate).await;
    if !failed.is_empty() {
        return Err(cluster::failure("terminating", &failed));
    }
    let failed = cluster::each(b.nodes.leader(args.skip_leader), 1, terminate).await;
    if !failed.is_empty() {
        return Err(cluster::failure("terminating the leader", &failed));
    }
    // The terminated nodes' persistent volumes: kept (their data outlives the cluster, for a
    // cluster made again under the same name) unless --delete-volumes.
    let Some(cluster_name) = crate::aws::tag(b.nodes.leader.tags(), "cluster_name") else {
        return Ok(0);
    };
    let gone: Vec<String> = b
        .nodes
        .leader(args.skip_leader)
        .into_iter()
        .chain(b.nodes.workers())
        .filter_map(|(_, i)| {
            let name = crate::aws::tag(i.tags(), "Name")?;
            let ordinal = crate::aws::tag(i.tags(), cluster::ORDINAL_TAG)?;
            Some(volumes::volume_name(name, ordinal))
        })
        .collect();
    let kept: Vec<_> = volumes::find(&b.ctx, cluster_name, None)
        .await?
        .into_iter()
        .filter(|v| crate::aws::tag(v.tags(), "Name").is_some_and(|n| gone.iter().any(|g| g == n)))
        .collect();
    if kept.is_empty() {
        return Ok(0);
    }
    let ids: Vec<&str> = kept.iter().filter_map(|v| v.volume_id()).collect();
    if !args.delete_volumes {
        g.shell.info(format!(
            "kept the nodes' {} persistent volume(s) ({}) for a cluster made again as `{cluster_name}`; `terminate-cluster --delete-volumes` deletes them",
            ids.len(),
            ids.join(", ")
        ));
        return Ok(0);
    }
    let failed = volumes::delete(&b.ctx, &kept).await;
    if !failed.is_empty() {
        let list: Vec<String> = failed
            .iter()
            .map(|(v, why)| format!("{v}: {why}"))
            .collect();
        crate::bail_user!(
            "{} of {} volumes were not deleted: {}",
            failed.len(),
            kept.len(),
            list.join("; ")
        );
    }
    Ok(0)
}

/// What one node's command printed, and whether it succeeded.
struct NodeOutput {
    label: String,
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

/// The nodes (the leader first unless skipped, then the workers), each with its label and its
/// role.
fn nodes_of(b: &Bound, skip_leader: bool) -> Vec<(String, &NodeRole, &Instance)> {
    let mut nodes: Vec<(String, &NodeRole, &Instance)> = b
        .nodes
        .leader(skip_leader)
        .into_iter()
        .map(|(l, i)| (l, &b.leader, i))
        .collect();
    nodes.extend(
        b.nodes
            .workers()
            .into_iter()
            .map(|(l, i)| (l, &b.worker, i)),
    );
    nodes
}

/// Runs each node's command (ssh or rsync), serially or `parallel`, prints each output line
/// prefixed with its node, and returns 2 if any node failed (naming them), else 0.
async fn on_each_node(
    b: &Bound,
    commands: Vec<(String, std::process::Command)>,
    parallel: bool,
    threads: usize,
    what: &str,
) -> Result<i32> {
    let width = if parallel { threads.max(1) } else { 1 };
    use futures_util::stream::{self, StreamExt};
    let mut outputs: Vec<(usize, NodeOutput)> = stream::iter(commands.into_iter().enumerate())
        .map(|(n, (label, command))| async move {
            let mut c = tokio::process::Command::from(command);
            c.stdin(std::process::Stdio::null()).kill_on_drop(true);
            let result = c
                .output()
                .await
                .map_err(|e| crate::user_error!("failed to run `{what}`: {e}"));
            let out = match result {
                Ok(o) => NodeOutput {
                    label,
                    status: o.status.code(),
                    stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
                },
                Err(e) => NodeOutput {
                    label,
                    status: None,
                    stdout: String::new(),
                    stderr: format!("{}\n", crate::errors::one_line(&e)),
                },
            };
            (n, out)
        })
        .buffer_unordered(width)
        .collect()
        .await;
    outputs.sort_by_key(|(n, _)| *n);
    let mut failed = Vec::new();
    for (_, o) in &outputs {
        for line in o.stdout.lines() {
            b.ctx.shell.out(format!("{}: {line}", o.label));
        }
        for line in o.stderr.lines() {
            b.ctx.shell.err_out(format!("{}: {line}", o.label));
        }
        if o.status != Some(0) {
            failed.push(match o.status {
                Some(s) => format!("{} (exit status {s})", o.label),
                None => format!("{} (did not finish)", o.label),
            });
        }
    }
    if failed.is_empty() {
        Ok(0)
    } else {
        b.ctx
            .shell
            .warn(format!("`{what}` failed on {}", failed.join(", ")));
        Ok(2)
    }
}

/// Each node's command line (ssh or rsync): `make` gets the settings and the node's target as
/// the account `login` chooses for the node's role.
async fn node_commands(
    b: &Bound,
    skip_leader: bool,
    login: &LoginArgs,
    make: impl Fn(&crate::ssh::SshSettings, &crate::ssh::Target) -> Result<std::process::Command>,
) -> Result<Vec<(String, std::process::Command)>> {
    let ssh = access::ssh_settings(None)?;
    // The nodes' targets at once: each may need a host-key pin from EC2.
    let targets = futures_util::future::join_all(nodes_of(b, skip_leader).into_iter().map(
        |(label, role, i)| {
            let ssh = &ssh;
            async move {
                let user = super::instances::login(&role.data, login)?;
                let target = access::target(&b.ctx, ssh, i, &user).await?;
                Ok::<_, anyhow::Error>((label, target))
            }
        },
    ))
    .await;
    let mut commands = Vec::new();
    for t in targets {
        let (label, target) = t?;
        commands.push((label, make(&ssh, &target)?));
    }
    Ok(commands)
}

/// Runs ssh (a command) on every node: the leader first, then the workers; serially, or all at
/// once with `-P`. Each output line is prefixed with its node (`leader`, `worker-3`); exits 2
/// if any node failed, naming them.
pub async fn ssh_cluster(args: SshClusterArgs, g: &Globals) -> Result<i32> {
    if let Some(u) = &args.login.login {
        crate::ssh::check_account(u)?;
    }
    let b = bind(g, &args.context, &args.cluster).await?;
    let commands = node_commands(&b, args.skip_leader, &args.login, |ssh, target| {
        access::ssh_command(ssh, target, args.login.forward_agent, &args.args)
    })
    .await?;
    on_each_node(&b, commands, args.parallel, args.cluster.num_threads, "ssh").await
}

/// Runs rsync against every node at once (the nodes' paths written as `:path`); exits 2 if any
/// node failed, naming them.
pub async fn rsync_cluster(args: RsyncClusterArgs, g: &Globals) -> Result<i32> {
    if let Some(u) = &args.login.login {
        crate::ssh::check_account(u)?;
    }
    let b = bind(g, &args.context, &args.cluster).await?;
    let commands = node_commands(&b, args.skip_leader, &args.login, |ssh, target| {
        access::rsync_command(
            ssh,
            target,
            args.login.forward_agent,
            args.ssh_opts.as_deref(),
            &args.args,
        )
    })
    .await?;
    on_each_node(&b, commands, true, args.cluster.num_threads, "rsync").await
}

/// Reports the workers of a launch: a line each, and an error naming every one that failed.
fn report_workers(
    g: &Globals,
    outcomes: &[create::NodeOutcome],
    never_terminate: bool,
) -> Result<()> {
    let mut failed = Vec::new();
    for o in outcomes {
        let label = format!("worker-{}", o.ordinal.unwrap_or_default());
        match &o.result {
            Ok(_) => g.shell.out(format!("{label} {}", o.instance_id)),
            Err(e) => failed.push(format!(
                "{label} (`{}`): {}",
                o.instance_id,
                crate::errors::one_line(e)
            )),
        }
    }
    if failed.is_empty() {
        return Ok(());
    }
    let fate = if never_terminate {
        "kept (-N)"
    } else {
        "terminated (-N keeps them)"
    };
    Err(crate::user_error!(
        "{} of {} workers failed, {fate}: {}",
        failed.len(),
        outcomes.len(),
        failed.join("; ")
    ))
}

/// Worker options: the node image, the workers' type, one box per ordinal of `placement`.
fn worker_options(
    base: &CreateOptions,
    boot_image: &ImageRef,
    quick: bool,
    placement: ClusterPlacement,
) -> CreateOptions {
    let mut opts = base.clone();
    opts.from_image = Some(boot_image.clone());
    opts.quick = quick;
    opts.count = placement.ordinals.len();
    opts.cluster = Some(placement);
    opts
}

/// Creates a cluster: the leader from the node image, then all workers in one RunInstances,
/// set up in parallel. Every worker that fails is named (and terminated unless `-N`), and the
/// command fails: never a silent success with fewer workers.
pub async fn create_cluster(args: CreateClusterArgs, g: &Globals) -> Result<i32> {
    if let Some(gb) = args.ebs_volume_size {
        volumes::check_size(gb)?;
        if args.quick {
            crate::bail_user!(
                "-Q does not wait for the nodes, so their volumes could not be mounted; leave out -Q or --ebs-volume-size"
            );
        }
    }
    if let Some(t) = &args.leader_instance_type {
        super::create::check_instance_type(t)?;
    }
    if let Some(share) = &args.share {
        if !share.exists() {
            crate::bail_user!("--share `{}` does not exist", share.display());
        }
    }
    let roles = Roles::load(g)?;
    let cluster = roles.registry.cluster(&args.cluster_type)?;
    let secret = match ClusterSecret::check(&cluster, args.quick)? {
        Some(spec) => Some(ClusterSecret::generate(spec)?),
        None => None,
    };
    let ctx = Context::new(&args.context, g).await?;
    let ssh = access::ssh_settings(args.creation.ssh_key.clone())?;
    let base = super::create::creation_options(&args.creation, false, args.never_terminate)?;
    let mut leader_opts = base.clone();
    leader_opts.from_image = Some(args.boot_image.clone());
    leader_opts.quick = args.quick;
    leader_opts.instance_type = args
        .leader_instance_type
        .clone()
        .or_else(|| args.creation.instance_type.clone());
    if args.leader_on_demand {
        leader_opts.spot_bid = None;
    }
    // The leader stays claimed by this run until the workers are made: a run killed half-way
    // leaves a whole cluster for `cleanup`, not a leader (or workers) that look finished.
    leader_opts.stay_unfinished = true;
    leader_opts.cluster = Some(ClusterPlacement {
        name: args.cluster_name.clone(),
        leader: None,
        ordinals: vec![0],
        threads: 1,
        secret: secret.clone(),
        volume_gb: args.ebs_volume_size,
    });
    let Some((leader, _)) =
        create::create(&ctx, roles.handle(&cluster.leader)?, &leader_opts, &ssh).await?
    else {
        crate::bail_user!("the leader was not created");
    };
    let leader_id = leader.instance_id.clone();
    g.shell.out(format!("leader {leader_id}"));
    let lease = crate::ops::progress::keep(&ctx, vec![leader_id.clone()]);
    let mut done = vec![leader_id.clone()];
    let rest = create_workers(
        &args, g, &ctx, &roles, &cluster, &ssh, &base, secret, &leader_id, &mut done,
    )
    .await;
    drop(lease);
    // Whatever became of the workers, this run is done with the cluster: its nodes are marked
    // done in one call.
    crate::ops::progress::mark_all(&ctx, &done, crate::ops::progress::READY).await;
    rest
}

/// The part of `create-cluster` after the leader: the shared folder and the workers.
#[allow(clippy::too_many_arguments)]
async fn create_workers(
    args: &CreateClusterArgs,
    g: &Globals,
    ctx: &Context,
    roles: &Roles,
    cluster: &ClusterSummary,
    ssh: &crate::ssh::SshSettings,
    base: &CreateOptions,
    secret: Option<ClusterSecret>,
    leader_id: &str,
    done: &mut Vec<String>,
) -> Result<i32> {
    if let Some(share) = &args.share {
        let data = roles.get(&cluster.leader)?;
        let i = crate::aws::instance_by_id(&ctx.aws.ec2(), leader_id)
            .await?
            .ok_or_else(|| crate::user_error!("the leader `{leader_id}` has disappeared"))?;
        let target = access::target(ctx, ssh, &i, &data.default_account).await?;
        let c = access::rsync_command(
            ssh,
            &target,
            false,
            args.ssh_opts.as_deref(),
            &["-r".into(), share.display().to_string(), ":shared/".into()],
        )?;
        if access::exec(c, "rsync")? != 0 {
            crate::bail_user!(
                "copying `{}` to the leader `{leader_id}` failed; the leader is left running",
                share.display()
            );
        }
    }
    if args.num_workers == 0 {
        ctx.shell.warn("the cluster has no workers (-s 0)");
        return Ok(0);
    }
    let placement = ClusterPlacement {
        name: args.cluster_name.clone(),
        leader: Some(leader_id.to_string()),
        ordinals: (1..=args.num_workers as u32).collect(),
        threads: args.num_threads,
        secret,
        volume_gb: args.ebs_volume_size,
    };
    let mut opts = worker_options(base, &args.boot_image, args.quick, placement);
    // Marked done with the leader, once all are made.
    opts.stay_unfinished = true;
    let worker = Arc::new(roles.handle(&cluster.worker)?);
    let outcomes = create::create_nodes(ctx, worker, &opts, ssh)
        .await?
        .unwrap_or_default();
    done.extend(
        outcomes
            .iter()
            .filter(|o| o.result.as_ref().is_ok_and(|(c, _)| !c.terminated))
            .map(|o| o.instance_id.clone()),
    );
    report_workers(g, &outcomes, args.never_terminate)?;
    let name = args.cluster_name.as_deref().unwrap_or(leader_id);
    ctx.shell.info(format!(
        "Run `cgcloud ssh-cluster -n {} -z {} {} -c {name} …` to use the cluster.",
        ctx.namespace, ctx.zone, cluster.name
    ));
    Ok(0)
}

/// Adds workers to a cluster, at the cluster ordinals its workers leave free (gaps first).
pub async fn grow_cluster(args: GrowClusterArgs, g: &Globals) -> Result<i32> {
    let b = bind(g, &args.context, &args.cluster).await?;
    let ssh = access::ssh_settings(args.creation.ssh_key.clone())?;
    let base = super::create::creation_options(&args.creation, false, false)?;
    // The new workers get the secret the cluster's nodes share, read from the leader first.
    let secret = match ClusterSecret::check(&b.cluster, args.quick)? {
        Some(spec) => {
            let leader = &b.nodes.leader;
            let target = access::target(&b.ctx, &ssh, leader, &b.leader.data.admin_account).await?;
            let remote = Remote::connect(&ssh, &target, timeouts().ssh, &b.ctx.shell).await?;
            let read = ClusterSecret::read(&remote, spec).await;
            remote.close().await;
            Some(read?)
        }
        None => None,
    };
    let existing: Vec<u32> = b
        .nodes
        .workers
        .iter()
        .filter_map(|w| {
            crate::aws::tag(w.tags(), cluster::ORDINAL_TAG).and_then(|o| o.parse().ok())
        })
        .collect();
    let ordinals = cluster::allocate_ordinals(&existing, args.num_workers);
    let leader_id = b.nodes.leader.instance_id().unwrap_or_default().to_string();
    let name = crate::aws::tag(b.nodes.leader.tags(), "cluster_name").map(str::to_string);
    // New workers get a persistent volume when the cluster's nodes have one.
    let volume_gb = volumes::size_of(b.nodes.leader.tags());
    if volume_gb.is_some() && args.quick {
        crate::bail_user!(
            "the cluster's nodes have persistent volumes, which -Q could not mount; leave out -Q"
        );
    }
    let placement = ClusterPlacement {
        name,
        leader: Some(leader_id),
        ordinals,
        threads: args.cluster.num_threads,
        secret,
        volume_gb,
    };
    let opts = worker_options(&base, &args.boot_image, args.quick, placement);
    // The worker role `bind` loaded: the plugins are not loaded twice.
    let outcomes = create::create_nodes(&b.ctx, b.worker.handle.clone(), &opts, &ssh)
        .await?
        .unwrap_or_default();
    report_workers(g, &outcomes, false)?;
    Ok(0)
}
