//! `reset-security` and `cleanup`.

use clap::Args;

use super::args::ContextArgs;
use crate::ctx::Globals;
use crate::errors::{not_implemented, Result};

/// Delete the security groups, IAM roles and instance profiles cgcloud made in the namespace
#[derive(Args, Debug)]
pub struct ResetSecurityArgs {
    #[command(flatten)]
    pub context: ContextArgs,
    /// Do not ask for confirmation
    #[arg(short = 'y', long)]
    pub yes: bool,
}

/// Delete leftovers: unreferenced snapshots of cgcloud's images and orphaned agent queues
#[derive(Args, Debug)]
pub struct CleanupArgs {
    #[command(flatten)]
    pub context: ContextArgs,
    /// Do not ask for confirmation
    #[arg(short = 'y', long)]
    pub yes: bool,
}

pub async fn reset_security(_args: ResetSecurityArgs, _g: &Globals) -> Result<i32> {
    Err(not_implemented("reset-security"))
}

pub async fn cleanup(_args: CleanupArgs, _g: &Globals) -> Result<i32> {
    Err(not_implemented("cleanup"))
}
