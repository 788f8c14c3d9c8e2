//! Option groups shared by many commands, named as in the original cgcloud (A to F).

use clap::{ArgGroup, Args, ValueEnum};

use crate::names::ImageRef;

/// (A) Where: the zone (and so the region) and the namespace.
#[derive(Args, Debug, Clone)]
pub struct ContextArgs {
    /// The availability zone to work in; the region is derived from it (e.g. us-west-2a,
    /// us-gov-west-1a, cn-north-1a, us-west-2-lax-1a)
    #[arg(short = 'z', long, env = "CGCLOUD_ZONE", value_name = "ZONE")]
    pub zone: Option<String>,

    /// The namespace to work in: starts and ends with `/`; `__me__` stands for your IAM user
    /// name (or CGCLOUD_ME), without anything after an `@`
    #[arg(
        short = 'n',
        long,
        env = "CGCLOUD_NAMESPACE",
        default_value = "/__me__/",
        value_name = "PREFIX"
    )]
    pub namespace: String,
}

/// (C) Which instance of a role.
#[derive(Args, Debug, Clone)]
#[command(group(ArgGroup::new("selection").args(["ordinal", "instance_id"]).multiple(false)))]
pub struct InstanceArgs {
    /// Only consider instances of the cluster with this name
    #[arg(short = 'c', long = "cluster-name", value_name = "NAME")]
    pub cluster_name: Option<String>,

    /// Index of the instance among those of the role, sorted by launch time; negative values
    /// count from the end (-1 is the newest)
    #[arg(short = 'o', long, default_value_t = -1, allow_negative_numbers = true, value_name = "N")]
    pub ordinal: i64,

    /// The instance's ID, instead of an ordinal
    #[arg(short = 'I', long = "instance-id", value_name = "ID")]
    pub instance_id: Option<String>,
}

/// (D) As whom to log in.
#[derive(Args, Debug, Clone)]
#[command(group(ArgGroup::new("account").args(["login", "admin"]).multiple(false)))]
pub struct LoginArgs {
    /// The account to log in as (default: the role's default account)
    #[arg(short = 'l', long, value_name = "USER")]
    pub login: Option<String>,

    /// Log in as the role's admin account
    #[arg(short = 'a', long)]
    pub admin: bool,

    /// Forward your SSH agent to the box (off unless asked)
    #[arg(short = 'A', long = "forward-agent")]
    pub forward_agent: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Virtualization {
    Hvm,
    Paravirtual,
}

/// (E) How to create boxes: shared by `create`, `recreate`, `create-cluster` and `grow-cluster`.
#[derive(Args, Debug, Clone)]
pub struct CreationArgs {
    /// Key pairs for SSH access: names, shell globs, `@user` or `@@group`; the first must be a
    /// literal, existing key pair (default: CGCLOUD_KEYPAIRS, whitespace-separated, else __me__)
    #[arg(short = 'k', long = "keypairs", num_args = 1.., value_name = "NAME")]
    pub keypairs: Vec<String>,

    /// The EC2 instance type, any name EC2 knows (default: CGCLOUD_INSTANCE_TYPE, else the
    /// role's recommendation)
    #[arg(
        short = 't',
        long = "instance-type",
        env = "CGCLOUD_INSTANCE_TYPE",
        value_name = "TYPE"
    )]
    pub instance_type: Option<String>,

    /// The virtualization type of the image to boot
    #[arg(long = "virtualization-type", value_enum)]
    pub virtualization_type: Option<Virtualization>,

    /// Use the spot market, paying at most this much per hour
    #[arg(long = "spot-bid", value_name = "AMOUNT")]
    pub spot_bid: Option<f64>,

    /// Launch into this VPC (its first subnet in the zone, unless --subnet)
    #[arg(long, value_name = "VPC_ID")]
    pub vpc: Option<String>,

    /// Launch into this subnet
    #[arg(long, value_name = "SUBNET_ID")]
    pub subnet: Option<String>,

    /// Spot launch group (namespaced)
    #[arg(long = "spot-launch-group", value_name = "NAME")]
    pub spot_launch_group: Option<String>,

    /// Let cgcloud pick the zone for spot instances (kept for compatibility)
    #[arg(long = "spot-auto-zone")]
    pub spot_auto_zone: bool,

    /// Give up on spot capacity not found within this many seconds
    #[arg(long = "spot-timeout", value_name = "SECONDS")]
    pub spot_timeout: Option<f64>,

    /// Give up as soon as spot capacity looks unavailable
    #[arg(long = "spot-tentative")]
    pub spot_tentative: bool,

    /// Print the created boxes
    #[arg(long)]
    pub list: bool,

    /// A role option, NAME=VALUE; repeatable; see `cgcloud list-options ROLE`
    #[arg(short = 'O', long = "option", value_name = "NAME=VALUE")]
    pub options: Vec<String>,

    /// Size of the root volume in GiB
    #[arg(long = "root-volume-size", value_name = "GIB")]
    pub root_volume_size: Option<u32>,

    /// Type of the root volume (gp3, gp2, io2, …)
    #[arg(long = "root-volume-type", value_name = "TYPE")]
    pub root_volume_type: Option<String>,

    /// Encrypt the root volume
    #[arg(long = "encrypt-root")]
    pub encrypt_root: bool,

    /// Reach the box by its private IP address (for VPC-only set-ups and bastions)
    #[arg(long = "private-ip")]
    pub private_ip: bool,

    /// The identity file for SSH (default: the SSH agent and the default identities)
    #[arg(long = "ssh-key", env = "CGCLOUD_SSH_KEY", value_name = "PATH")]
    pub ssh_key: Option<std::path::PathBuf>,
}

/// `-T`/`-N`: what to do with the box when done.
#[derive(Args, Debug, Clone)]
#[command(group(ArgGroup::new("termination").args(["terminate", "never_terminate"]).multiple(false)))]
pub struct TerminationArgs {
    /// Terminate the box when done, even if everything worked
    #[arg(short = 'T', long)]
    pub terminate: bool,

    /// Never terminate the box, even if something failed
    #[arg(short = 'N', long = "never-terminate")]
    pub never_terminate: bool,
}

/// (F) Which cluster.
#[derive(Args, Debug, Clone)]
pub struct ClusterArgs {
    /// The cluster type, e.g. spark, mesos or toil
    #[arg(value_name = "TYPE")]
    pub cluster_type: String,

    /// Only consider the cluster of this name
    #[arg(short = 'c', long = "cluster-name", value_name = "NAME")]
    pub cluster_name: Option<String>,

    /// Index of the leader among the matching leaders (-1 is the newest)
    #[arg(short = 'o', long, default_value_t = -1, allow_negative_numbers = true, value_name = "N")]
    pub ordinal: i64,

    /// How many nodes to work on at once
    #[arg(long = "num-threads", default_value_t = 100, value_name = "NUM")]
    pub num_threads: usize,
}

/// An image: an ordinal among the role's images (negative counts from the newest) or an AMI ID.
pub fn parse_image_ref(s: &str) -> Result<ImageRef, String> {
    ImageRef::parse(s)
}
