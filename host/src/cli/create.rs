//! `create` and `recreate`.

use clap::Args;

use super::args::{parse_image_ref, ContextArgs, CreationArgs, TerminationArgs};
use crate::ctx::{Context, Globals};
use crate::errors::Result;
use crate::names::ImageRef;
use crate::ops::create;
use crate::ops::plan::CreateOptions;
use crate::roles::Roles;

/// Create a box of a role: launch it, wait until it is ready, set it up over SSH
#[derive(Args, Debug)]
pub struct CreateArgs {
    #[command(flatten)]
    pub context: ContextArgs,
    /// The role
    #[arg(value_name = "ROLE")]
    pub role: String,
    #[command(flatten)]
    pub creation: CreationArgs,
    #[command(flatten)]
    pub termination: TerminationArgs,
    /// Boot this AMI instead of the role's base image
    #[arg(short = 'i', long = "boot-image", value_name = "AMI_ID")]
    pub boot_image: Option<String>,
    /// Do not install the agent that keeps the box's SSH keys in sync
    #[arg(long = "no-agent")]
    pub no_agent: bool,
    /// Make an image of the box once it is set up
    #[arg(short = 'I', long = "create-image")]
    pub create_image: bool,
    /// Upgrade the installed packages during set-up (the box reboots)
    #[arg(short = 'U', long)]
    pub upgrade: bool,
    /// Print what would be done, and do nothing
    #[arg(long)]
    pub plan: bool,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

/// Create a box of a role from one of the role's images, without setting it up again
#[derive(Args, Debug)]
pub struct RecreateArgs {
    #[command(flatten)]
    pub context: ContextArgs,
    /// The role
    #[arg(value_name = "ROLE")]
    pub role: String,
    #[command(flatten)]
    pub creation: CreationArgs,
    #[command(flatten)]
    pub termination: TerminationArgs,
    /// The image to boot: an ordinal among the role's images (-1 is the newest) or an AMI ID
    #[arg(short = 'i', long = "boot-image", default_value = "-1", allow_negative_numbers = true,
          value_parser = parse_image_ref, value_name = "IMAGE")]
    pub boot_image: ImageRef,
    /// Do not wait for the box to be ready
    #[arg(short = 'Q', long)]
    pub quick: bool,
    /// Print what would be done, and do nothing
    #[arg(long)]
    pub plan: bool,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

/// EBS's volume types.
const VOLUME_TYPES: &[&str] = &["gp3", "gp2", "io2", "io1", "st1", "sc1", "standard"];

/// Whether `t` is shaped like an EC2 instance type: `family.size`, lower-case letters, digits
/// and dashes (`t3.micro`, `m7i-flex.large`, `u-6tb1.metal`).
fn is_instance_type(t: &str) -> bool {
    let Some((family, size)) = t.split_once('.') else {
        return false;
    };
    let part = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    t.len() <= 64
        && part(family)
        && part(size)
        && family.starts_with(|c: char| c.is_ascii_lowercase())
}

/// Refuses `t` unless it is shaped like an EC2 instance type.
pub(super) fn check_instance_type(t: &str) -> Result<()> {
    if !is_instance_type(t) {
        crate::bail_user!(
            "`{t}` is not an EC2 instance type: write it as family.size, like `t3.micro`"
        );
    }
    Ok(())
}

/// Values EC2 would refuse, or take to mean something else, refused before anything is made.
fn check_creation_values(c: &CreationArgs) -> Result<()> {
    if let Some(bid) = c.spot_bid {
        if !bid.is_finite() || bid <= 0.0 || bid > 1_000_000.0 {
            crate::bail_user!(
                "--spot-bid must be a price per hour above 0 (in USD, like 0.05), not `{bid}`"
            );
        }
    }
    if let Some(t) = &c.instance_type {
        check_instance_type(t)?;
    }
    if let Some(t) = &c.root_volume_type {
        if !VOLUME_TYPES.contains(&t.as_str()) {
            crate::bail_user!(
                "--root-volume-type `{t}` is not an EBS volume type: use one of {}",
                VOLUME_TYPES.join(", ")
            );
        }
    }
    if let Some(gib) = c.root_volume_size {
        if !(1..=65536).contains(&gib) {
            crate::bail_user!(
                "--root-volume-size {gib} is out of range: an EBS volume has 1 to 65536 GiB"
            );
        }
    }
    Ok(())
}

fn options(c: &CreationArgs, t: &TerminationArgs) -> Result<CreateOptions> {
    creation_options(c, t.terminate, t.never_terminate)
}

/// The creation options every command that makes boxes shares.
pub(super) fn creation_options(
    c: &CreationArgs,
    terminate: bool,
    never_terminate: bool,
) -> Result<CreateOptions> {
    if (c.spot_launch_group.is_some() || c.spot_auto_zone) && c.spot_bid.is_none() {
        crate::bail_user!("--spot-launch-group and --spot-auto-zone need --spot-bid");
    }
    if c.spot_auto_zone && c.subnet.is_some() {
        crate::bail_user!("--spot-auto-zone cannot be combined with --subnet");
    }
    check_creation_values(c)?;
    Ok(CreateOptions {
        keypair_globs: c.keypairs.clone(),
        instance_type: c.instance_type.clone(),
        virtualization: c.virtualization_type.map(|v| match v {
            super::args::Virtualization::Hvm => "hvm".to_string(),
            super::args::Virtualization::Paravirtual => "paravirtual".to_string(),
        }),
        spot_bid: c.spot_bid,
        vpc: c.vpc.clone(),
        subnet: c.subnet.clone(),
        role_options: c.options.clone(),
        root_volume_size: c.root_volume_size,
        root_volume_type: c.root_volume_type.clone(),
        encrypt_root: c.encrypt_root,
        private_ip: c.private_ip,
        terminate,
        never_terminate,
        ..CreateOptions::default()
    })
}

async fn run(
    context: &ContextArgs,
    role: &str,
    opts: CreateOptions,
    creation: &CreationArgs,
    json: bool,
    list: bool,
    g: &Globals,
) -> Result<i32> {
    let ctx = Context::new(context, g).await?;
    let roles = Roles::load(g)?;
    let handle = roles.handle(role)?;
    let ssh = crate::ops::access::ssh_settings(creation.ssh_key.clone())?;
    let Some((created, report)) = create::create(&ctx, handle, &opts, &ssh).await? else {
        return Ok(0);
    };
    if json {
        g.shell.json(&report);
    } else if list {
        let rows =
            crate::ops::instances::list(&ctx, report["role"].as_str().unwrap_or_default(), None)
                .await?;
        let rows: Vec<serde_json::Value> = rows
            .iter()
            .enumerate()
            .filter(|(_, i)| i.instance_id() == Some(created.instance_id.as_str()))
            .map(|(n, i)| crate::ops::instances::list_row(&ctx, n, i))
            .collect();
        g.shell
            .rows(&crate::ops::instances::LIST_COLUMNS, rows, false);
    }
    Ok(0)
}

pub async fn create(args: CreateArgs, g: &Globals) -> Result<i32> {
    let mut opts = options(&args.creation, &args.termination)?;
    opts.boot_image = args.boot_image.clone();
    opts.create_image = args.create_image;
    opts.upgrade = args.upgrade;
    opts.plan = args.plan;
    opts.no_agent = args.no_agent;
    run(
        &args.context,
        &args.role,
        opts,
        &args.creation,
        args.json,
        args.creation.list,
        g,
    )
    .await
}

pub async fn recreate(args: RecreateArgs, g: &Globals) -> Result<i32> {
    let mut opts = options(&args.creation, &args.termination)?;
    opts.from_image = Some(args.boot_image.clone());
    opts.quick = args.quick;
    opts.plan = args.plan;
    run(
        &args.context,
        &args.role,
        opts,
        &args.creation,
        args.json,
        args.creation.list,
        g,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::is_instance_type;

    #[test]
    fn instance_types_are_family_dot_size() {
        for t in ["t3.micro", "m7i-flex.large", "u-6tb1.metal", "p5e.48xlarge"] {
            assert!(is_instance_type(t), "{t}");
        }
        for t in [
            "t3",
            "x y",
            ".micro",
            "t3.",
            "T3.micro",
            "3t.micro",
            "t3.micro;",
            "",
        ] {
            assert!(!is_instance_type(t), "{t}");
        }
    }
}
