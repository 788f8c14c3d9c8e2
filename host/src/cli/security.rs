//! `reset-security` and `cleanup`: list what would be deleted, ask, then delete.
//!
//! Both ask for `yes` on a terminal. Without a terminal they delete only with `-y`, and
//! otherwise refuse before touching anything.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use clap::Args;

use super::args::ContextArgs;
use crate::ctx::{Context, Globals};
use crate::errors::Result;
use crate::ops::access::ssh_settings;
use crate::ops::cleanup;
use crate::ops::security::{self, Failure, Item};
use crate::{bail_user, user_error};

/// How long the confirmation prompt waits for an answer.
const PROMPT_TIMEOUT: Duration = Duration::from_secs(600);

/// Delete the security groups, IAM roles and instance profiles cgcloud made in the namespace
/// (and its child namespaces): only those carrying cgcloud's ownership tag
#[derive(Args, Debug)]
pub struct ResetSecurityArgs {
    #[command(flatten)]
    pub context: ContextArgs,
    /// Do not ask for confirmation
    #[arg(short = 'y', long)]
    pub yes: bool,
}

/// Delete leftovers: boxes and images a killed run never finished, snapshots of the namespace's
/// deleted images, agent queues and known-host pins of instances that are gone
#[derive(Args, Debug)]
pub struct CleanupArgs {
    #[command(flatten)]
    pub context: ContextArgs,
    /// Do not ask for confirmation
    #[arg(short = 'y', long)]
    pub yes: bool,
}

pub async fn reset_security(args: ResetSecurityArgs, g: &Globals) -> Result<i32> {
    let ctx = Context::new(&args.context, g).await?;
    let found = security::find_security_resources(&ctx).await?;
    if !confirm(&ctx, &found.items(), args.yes, "reset-security").await? {
        return Ok(0);
    }
    let failures = security::delete_security_resources(&ctx, &found).await;
    finish(&ctx, found.items().len(), failures)
}

pub async fn cleanup(args: CleanupArgs, g: &Globals) -> Result<i32> {
    let ctx = Context::new(&args.context, g).await?;
    let known_hosts = ssh_settings(None)?.known_hosts();
    let found = cleanup::find_leftovers(&ctx, &known_hosts).await?;
    if !confirm(&ctx, &found.items(), args.yes, "cleanup").await? {
        return Ok(0);
    }
    let failures = cleanup::delete_leftovers(&ctx, &found, &known_hosts).await;
    finish(&ctx, found.items().len(), failures)
}

/// Lists `items` on stdout and decides whether to delete them: `-y`, or `yes` typed on a
/// terminal. Without either, an error that names the way out; nothing is deleted.
async fn confirm(ctx: &Context, items: &[&Item], yes: bool, command: &str) -> Result<bool> {
    if items.is_empty() {
        ctx.shell.info(format!(
            "nothing to delete in namespace `{}`",
            ctx.namespace
        ));
        return Ok(false);
    }
    let rows: Vec<Vec<String>> = items.iter().map(|i| i.row()).collect();
    ctx.shell.table(&Item::COLUMNS, &rows);
    let n = items.len();
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        bail_user!(
            "refusing to delete {n} resources without confirmation: standard input is not a terminal; \
             run `cgcloud {command} -y` to delete them"
        );
    }
    let answer = ask(&format!(
        "Delete these {n} resources? Type `yes` to confirm: "
    ))
    .await?;
    if answer.trim() == "yes" {
        Ok(true)
    } else {
        ctx.shell.info("nothing was deleted");
        Ok(false)
    }
}

/// Shows `prompt` on the terminal and reads one line, waiting at most [`PROMPT_TIMEOUT`].
pub(super) async fn ask(prompt: &str) -> Result<String> {
    // NOTE: the prompt goes straight to stderr: it must stay on the line the answer is typed on,
    // which the shell's line-oriented output cannot do.
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(prompt.as_bytes());
    let _ = err.flush();
    drop(err);
    let (tx, rx) = tokio::sync::oneshot::channel();
    // A plain thread, not `spawn_blocking`: the runtime would wait for a blocked read at exit.
    std::thread::spawn(move || {
        let mut line = String::new();
        let res = std::io::stdin().lock().read_line(&mut line).map(|_| line);
        let _ = tx.send(res);
    });
    match tokio::time::timeout(PROMPT_TIMEOUT, rx).await {
        Ok(Ok(Ok(line))) => Ok(line),
        Ok(Ok(Err(e))) => Err(user_error!(
            "failed to read the answer: {e}; nothing was deleted"
        )),
        Ok(Err(_)) => Err(user_error!(
            "failed to read the answer; nothing was deleted"
        )),
        Err(_) => Err(user_error!(
            "no answer within {}s; nothing was deleted",
            PROMPT_TIMEOUT.as_secs()
        )),
    }
}

/// Reports each failure as a warning; an error naming them if there were any.
fn finish(ctx: &Context, total: usize, failures: Vec<Failure>) -> Result<i32> {
    if failures.is_empty() {
        ctx.shell.info(format!("deleted {total} resources"));
        return Ok(0);
    }
    for f in &failures {
        ctx.shell
            .warn(format!("could not delete {}: {}", f.what, f.why));
    }
    let names: Vec<&str> = failures.iter().map(|f| f.what.as_str()).collect();
    bail_user!(
        "could not delete {} of {total} resources ({}); the rest was deleted; fix the causes above and run the command again",
        failures.len(),
        names.join(", ")
    )
}
