//! Commands about one role's instances: `list`, `show`, `terminate`, `start`, `stop`, `reboot`,
//! `ssh`, `rsync` and `update-instance-profile`.

use clap::Args;
use serde_json::Value;

use super::args::{ContextArgs, InstanceArgs, LoginArgs};
use crate::ctx::{Context, Globals};
use crate::errors::Result;
use crate::ops::instances::{self, Selection, LIST_COLUMNS};
use std::sync::Arc;

use crate::ops::{access, plan, power, prepare};
use crate::roles::Roles;

/// List the boxes of a role in the namespace, oldest first
#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub context: ContextArgs,
    /// The role
    #[arg(value_name = "ROLE")]
    pub role: String,
    /// Only list boxes of the cluster with this name
    #[arg(short = 'c', long = "cluster-name", value_name = "NAME")]
    pub cluster_name: Option<String>,
    /// Print JSON (an array of objects with the table's column names as keys)
    #[arg(long)]
    pub json: bool,
}

macro_rules! instance_command {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Args, Debug)]
        pub struct $name {
            #[command(flatten)]
            pub context: ContextArgs,
            /// The role
            #[arg(value_name = "ROLE")]
            pub role: String,
            #[command(flatten)]
            pub instance: InstanceArgs,
            $($(#[$fdoc])* pub $field: $ty,)*
        }
        impl $name {
            fn selection(&self) -> Selection {
                Selection {
                    role: self.role.clone(),
                    cluster_name: self.instance.cluster_name.clone(),
                    ordinal: self.instance.ordinal,
                    instance_id: self.instance.instance_id.clone(),
                }
            }
        }
    };
}

instance_command!(
    /// Show everything EC2 says about a box
    ShowArgs {
        /// Print JSON
        #[arg(long)]
        json: bool,
    }
);
instance_command!(
    /// Terminate a box
    TerminateArgs {
        /// Do not wait for the box to be terminated
        #[arg(short = 'Q', long)]
        quick: bool,
    }
);
instance_command!(
    /// Start a stopped box and wait until it answers over SSH
    StartArgs {}
);
instance_command!(
    /// Stop a running box
    StopArgs {}
);
instance_command!(
    /// Stop and start a box (its public IP address usually changes)
    RebootArgs {}
);
instance_command!(
    /// Re-run the set-up of the box's IAM role and instance profile
    UpdateInstanceProfileArgs {}
);
instance_command!(
    /// Log in to a box with ssh, or run a command on it; the remote exit status is passed through
    SshArgs {
        #[command(flatten)]
        login: LoginArgs,
        /// Arguments for ssh, e.g. a command to run
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGS")]
        args: Vec<String>,
    }
);
instance_command!(
    /// Copy files to or from a box with rsync; write the box's paths as `:path`
    RsyncArgs {
        #[command(flatten)]
        login: LoginArgs,
        /// Extra options for the ssh that rsync runs
        #[arg(short = 'e', long = "ssh-opts", value_name = "OPTS", allow_hyphen_values = true)]
        ssh_opts: Option<String>,
        /// Arguments for rsync, e.g. `-av ~/stuff :`
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGS")]
        args: Vec<String>,
    }
);

/// Binds the selection after resolving the role (a qualified `plugin/role` name selects by the
/// role's own name, which is what instances are named after).
async fn bind(
    ctx: &Context,
    g: &Globals,
    role: &str,
    mut sel: Selection,
) -> Result<aws_sdk_ec2::types::Instance> {
    sel.role = Roles::load(g)?.get(role)?.name;
    instances::bind(ctx, &sel).await
}

pub async fn list(args: ListArgs, g: &Globals) -> Result<()> {
    let ctx = Context::new(&args.context, g).await?;
    let role = Roles::load(g)?.get(&args.role)?;
    let found = instances::list(&ctx, &role.name, args.cluster_name.as_deref()).await?;
    let rows: Vec<Value> = found
        .iter()
        .enumerate()
        .map(|(n, i)| instances::list_row(&ctx, n, i))
        .collect();
    // The table keeps the original's columns; unfinished boxes are said beside it.
    for row in &rows {
        let id = row["instance_id"].as_str().unwrap_or_default();
        match row["setup"].as_str() {
            Some(crate::ops::progress::ABANDONED) => g.shell.warn(format!(
                "`{id}` was never finished: the run setting it up stopped (killed, or it lost its network); `cgcloud cleanup` terminates it"
            )),
            Some(crate::ops::progress::SETTING_UP) => {
                g.shell.info(format!("`{id}` is still being set up by a cgcloud run"))
            }
            _ => {}
        }
    }
    g.shell.rows(&LIST_COLUMNS, rows, args.json);
    Ok(())
}

pub async fn show(args: ShowArgs, g: &Globals) -> Result<()> {
    let ctx = Context::new(&args.context, g).await?;
    let i = bind(&ctx, g, &args.role, args.selection()).await?;
    let described = instances::describe(&i);
    if args.json {
        g.shell.json(&described);
    } else {
        print_tree(g, &described, 0);
    }
    Ok(())
}

/// `key: value` lines, nested values indented.
fn print_tree(g: &Globals, v: &Value, depth: usize) {
    let pad = "  ".repeat(depth);
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::Object(m) if !m.is_empty() => {
                        g.shell.out(format!("{pad}{k}:"));
                        print_tree(g, v, depth + 1);
                    }
                    Value::Array(a) if !a.is_empty() => {
                        g.shell.out(format!("{pad}{k}:"));
                        for item in a {
                            g.shell.out(format!("{pad}  -"));
                            print_tree(g, item, depth + 2);
                        }
                    }
                    Value::Null => g.shell.out(format!("{pad}{k}:")),
                    Value::String(s) => g.shell.out(format!("{pad}{k}: {s}")),
                    other => g.shell.out(format!("{pad}{k}: {other}")),
                }
            }
        }
        other => g.shell.out(format!("{pad}{other}")),
    }
}

pub async fn terminate(args: TerminateArgs, g: &Globals) -> Result<()> {
    let ctx = Context::new(&args.context, g).await?;
    let i = bind(&ctx, g, &args.role, args.selection()).await?;
    instances::check_owned(&ctx, &i)?;
    instances::terminate(&ctx, &i, args.quick).await?;
    instances::forget(&ctx, i.instance_id().unwrap_or_default()).await
}

/// The role's data, the bound instance and its options (its tags), for a command on a box.
async fn bind_with_role(
    ctx: &Context,
    g: &Globals,
    role: &str,
    mut sel: Selection,
) -> Result<(
    cgcloud_plugin_host::RoleHandle,
    cgcloud_plugin_host::RoleData,
    aws_sdk_ec2::types::Instance,
)> {
    let roles = Roles::load(g)?;
    let handle = roles.handle(role)?;
    let data = handle.declared(&cgcloud_plugin_host::Offline::quiet())?;
    sel.role = data.name.clone();
    let i = instances::bind(ctx, &sel).await?;
    Ok((handle, data, i))
}

pub async fn start(args: StartArgs, g: &Globals) -> Result<i32> {
    let ctx = Context::new(&args.context, g).await?;
    let (handle, data, i) = bind_with_role(&ctx, g, &args.role, args.selection()).await?;
    power::start(&ctx, &Arc::new(handle), &data, &i).await?;
    Ok(0)
}

pub async fn stop(args: StopArgs, g: &Globals) -> Result<i32> {
    let ctx = Context::new(&args.context, g).await?;
    let (_, data, i) = bind_with_role(&ctx, g, &args.role, args.selection()).await?;
    power::stop(&ctx, &data, &i).await?;
    Ok(0)
}

pub async fn reboot(args: RebootArgs, g: &Globals) -> Result<i32> {
    let ctx = Context::new(&args.context, g).await?;
    let (handle, data, i) = bind_with_role(&ctx, g, &args.role, args.selection()).await?;
    power::reboot(&ctx, &Arc::new(handle), &data, &i).await?;
    Ok(0)
}

pub async fn image(args: super::images::ImageArgs, g: &Globals) -> Result<i32> {
    let ctx = Context::new(&args.context, g).await?;
    let sel = Selection {
        role: args.role.clone(),
        cluster_name: args.instance.cluster_name.clone(),
        ordinal: args.instance.ordinal,
        instance_id: args.instance.instance_id.clone(),
    };
    let (handle, data, i) = bind_with_role(&ctx, g, &args.role, sel).await?;
    let id = power::image(&ctx, &handle, &data, &i, args.force).await?;
    g.shell.out(id);
    Ok(0)
}

pub(super) fn login(
    data: &cgcloud_plugin_host::RoleData,
    l: &super::args::LoginArgs,
) -> Result<String> {
    let user = match (&l.login, l.admin) {
        (Some(u), _) => u.clone(),
        (None, true) => data.admin_account.clone(),
        (None, false) => data.default_account.clone(),
    };
    crate::ssh::check_account(&user)?;
    Ok(user)
}

/// The SSH settings and the target for logging in to the selected box as the account `l`
/// chooses (checked before anything else).
async fn login_target(
    g: &Globals,
    context: &ContextArgs,
    role: &str,
    sel: Selection,
    l: &LoginArgs,
) -> Result<(crate::ssh::SshSettings, crate::ssh::Target)> {
    if let Some(u) = &l.login {
        crate::ssh::check_account(u)?;
    }
    let ctx = Context::new(context, g).await?;
    let (_, data, i) = bind_with_role(&ctx, g, role, sel).await?;
    let ssh = access::ssh_settings(None)?;
    let target = access::target(&ctx, &ssh, &i, &login(&data, l)?).await?;
    Ok((ssh, target))
}

pub async fn ssh(args: SshArgs, g: &Globals) -> Result<i32> {
    let (ssh, target) =
        login_target(g, &args.context, &args.role, args.selection(), &args.login).await?;
    access::exec(
        access::ssh_command(&ssh, &target, args.login.forward_agent, &args.args)?,
        "ssh",
    )
}

pub async fn rsync(args: RsyncArgs, g: &Globals) -> Result<i32> {
    let (ssh, target) =
        login_target(g, &args.context, &args.role, args.selection(), &args.login).await?;
    let cmd = access::rsync_command(
        &ssh,
        &target,
        args.login.forward_agent,
        args.ssh_opts.as_deref(),
        &args.args,
    )?;
    access::exec(cmd, "rsync")
}

pub async fn update_instance_profile(args: UpdateInstanceProfileArgs, g: &Globals) -> Result<i32> {
    let ctx = Context::new(&args.context, g).await?;
    let (_, data, i) = bind_with_role(&ctx, g, &args.role, args.selection()).await?;
    instances::check_owned(&ctx, &i)?;
    // The same IAM as `create` computed for this box: a box with the agent keeps its policy.
    let enable_agent = crate::aws::tag(i.tags(), "enable_agent") == Some("True");
    let (features, policies) = plan::iam_for(&ctx, &data, enable_agent);
    let arn = prepare::ensure_instance_profile(&ctx, &data.name, &features, &policies).await?;
    ctx.shell
        .info(format!("instance profile `{arn}` is up to date"));
    Ok(0)
}
