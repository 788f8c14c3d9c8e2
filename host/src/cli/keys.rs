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
        Outcome::Imported { name, fingerprint } => ctx.shell.info(format!(
            "registered key pair `{name}` (fingerprint {fingerprint})"
        )),
        Outcome::Replaced {
            name,
            fingerprint,
            old_fingerprint,
        } => ctx.shell.info(format!(
            "replaced key pair `{name}`: fingerprint {old_fingerprint} is now {fingerprint}"
        )),
        Outcome::Unchanged { .. } => return Ok(()),
    }
    // Agents also poll; a failed notification only delays the new key, so it is a warning.
    match crate::ops::agent::notify(&ctx, &args.keypair).await {
        Ok(true) => ctx.shell.info(format!(
            "notified the agents of namespace `{}`",
            ctx.namespace
        )),
        Ok(false) => {}
        Err(e) => ctx.shell.warn(format!(
            "{}; boxes pick the key up at their next periodic refresh",
            crate::errors::one_line(&e)
        )),
    }
    Ok(())
}

/// Key pairs on running boxes: which boxes have applied the current key set, and changing a
/// box's key pair globs
#[derive(clap::Subcommand, Debug)]
pub enum KeysCommand {
    /// List the namespace's boxes and whether their agent applied the current key set
    Status {
        #[command(flatten)]
        context: ContextArgs,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Change the key pair globs of a running box (its agent applies them at once)
    Set {
        #[command(flatten)]
        context: ContextArgs,
        /// The role
        #[arg(value_name = "ROLE")]
        role: String,
        /// The new globs: key pair names, shell globs, `@user`, `@@group`
        #[arg(value_name = "GLOB", required = true, num_args = 1..)]
        globs: Vec<String>,
        #[command(flatten)]
        instance: super::args::InstanceArgs,
    },
    /// Revoke a key pair: delete it from EC2 and tell the namespace's agents, which take its key
    /// off every box within seconds (and at their next periodic refresh at the latest)
    Revoke {
        #[command(flatten)]
        context: ContextArgs,
        /// The key pair's name; `__me__` stands for your IAM user name (or CGCLOUD_ME)
        #[arg(value_name = "NAME")]
        keypair: String,
        /// Do not ask for confirmation
        #[arg(short = 'y', long)]
        yes: bool,
    },
}

impl KeysCommand {
    pub fn context(&self) -> &ContextArgs {
        match self {
            KeysCommand::Status { context, .. }
            | KeysCommand::Set { context, .. }
            | KeysCommand::Revoke { context, .. } => context,
        }
    }
}

pub async fn keys(cmd: KeysCommand, g: &Globals) -> Result<i32> {
    match cmd {
        KeysCommand::Status { context, json } => {
            let ctx = Context::new(&context, g).await?;
            let rows = crate::ops::keys::status(&ctx).await?;
            // A box's own report, beside the table (it may hold anything: escaped).
            for r in &rows {
                if let Some(p) = &r.problem {
                    g.shell.warn(format!(
                        "the agent on `{}` reports a problem since {}",
                        r.instance_id,
                        p.escape_debug()
                    ));
                }
            }
            if json {
                g.shell.json(&serde_json::json!(rows));
            } else {
                let text: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![
                            r.instance_id.clone(),
                            r.role.clone(),
                            r.state.clone(),
                            r.keypairs.clone(),
                            r.applied_at.clone().unwrap_or_default(),
                            r.status.clone(),
                        ]
                    })
                    .collect();
                g.shell.table(
                    &[
                        "instance_id",
                        "role",
                        "state",
                        "keypairs",
                        "applied_at",
                        "status",
                    ],
                    &text,
                );
            }
            Ok(0)
        }
        KeysCommand::Set {
            context,
            role,
            globs,
            instance,
        } => {
            let ctx = Context::new(&context, g).await?;
            let sel = crate::ops::instances::Selection {
                role,
                cluster_name: instance.cluster_name,
                ordinal: instance.ordinal,
                instance_id: instance.instance_id,
            };
            crate::ops::keys::set(&ctx, g, sel, &globs).await?;
            Ok(0)
        }
        KeysCommand::Revoke {
            context,
            keypair,
            yes,
        } => {
            let ctx = Context::new(&context, g).await?;
            let (name, fingerprint) = crate::ops::keys::revocable(&ctx, &keypair).await?;
            ctx.shell.info(format!(
                "revoking key pair `{name}` (fingerprint {fingerprint}) deletes it from EC2, and the agents take its key off every box"
            ));
            if !yes {
                use std::io::IsTerminal as _;
                if !std::io::stdin().is_terminal() {
                    crate::bail_user!(
                        "refusing to revoke key pair `{name}` without confirmation: standard input is not a terminal; \
                         run `cgcloud keys revoke {name} -y`"
                    );
                }
                let answer = super::security::ask(&format!(
                    "Revoke key pair `{name}`? Type `yes` to confirm: "
                ))
                .await?;
                if answer.trim() != "yes" {
                    ctx.shell.info("nothing was revoked");
                    return Ok(0);
                }
            }
            crate::ops::keys::revoke(&ctx, &name).await?;
            Ok(0)
        }
    }
}
