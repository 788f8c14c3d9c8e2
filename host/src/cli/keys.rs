//! `register-key`.

use std::path::PathBuf;

use clap::Args;

use super::args::ContextArgs;
use crate::ctx::{Context, Globals};
use crate::errors::Result;
use crate::ops::register_key::{self, Outcome};

/// Import your public SSH key into EC2 as a key pair, so boxes let you in
#[derive(Args, Debug)]
pub struct RegisterKeyArgs {
    #[command(flatten)]
    pub context: ContextArgs,

    /// The public key file, e.g. ~/.ssh/id_ed25519.pub (private keys are refused)
    #[arg(value_name = "KEY_FILE")]
    pub key_file: PathBuf,

    /// Replace a key pair of that name that holds a different key
    #[arg(short = 'F', long)]
    pub force: bool,

    /// The key pair's name; `__me__` stands for your IAM user name (or CGCLOUD_ME)
    #[arg(short = 'k', long, default_value = "__me__", value_name = "NAME")]
    pub keypair: String,
}

pub async fn register_key(args: RegisterKeyArgs, g: &Globals) -> Result<()> {
    let ctx = Context::new(&args.context, g).await?;
    match register_key::register_key(&ctx, &args.key_file, &args.keypair, args.force).await? {
        Outcome::Imported { name, fingerprint } => {
            ctx.shell.info(format!("registered key pair `{name}` (fingerprint {fingerprint})"))
        }
        Outcome::Replaced { name, fingerprint, old_fingerprint } => ctx.shell.info(format!(
            "replaced key pair `{name}`: fingerprint {old_fingerprint} is now {fingerprint}"
        )),
        Outcome::Unchanged { .. } => {}
    }
    Ok(())
}
