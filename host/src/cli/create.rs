//! `create` and `recreate`.

use clap::Args;

use super::args::{parse_image_ref, ContextArgs, CreationArgs, TerminationArgs};
use crate::ctx::Globals;
use crate::errors::{not_implemented, Result};
use crate::names::ImageRef;

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

pub async fn create(_args: CreateArgs, _g: &Globals) -> Result<i32> {
    Err(not_implemented("create"))
}

pub async fn recreate(_args: RecreateArgs, _g: &Globals) -> Result<i32> {
    Err(not_implemented("recreate"))
}
