//! Cluster commands: a leader and workers booted from a node role's image.

use std::path::PathBuf;

use clap::Args;

use super::args::{parse_image_ref, ClusterArgs, ContextArgs, CreationArgs, LoginArgs};
use crate::names::ImageRef;

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
    /// Give each node a persistent EBS volume of this many GB
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
