//! Commands about one role's instances: `list`, `show`, `terminate`, `start`, `stop`, `reboot`,
//! `ssh`, `rsync` and `update-instance-profile`.

use clap::Args;
use serde_json::Value;

use super::args::{ContextArgs, InstanceArgs, LoginArgs};
use crate::ctx::{Context, Globals};
use crate::errors::{not_implemented, Result};
use crate::ops::instances::{self, Selection, LIST_COLUMNS};
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
            #[allow(dead_code)] // used by the commands that are not implemented yet
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
async fn bind(ctx: &Context, g: &Globals, role: &str, mut sel: Selection) -> Result<aws_sdk_ec2::types::Instance> {
    sel.role = Roles::load(g)?.get(role)?.name;
    instances::bind(ctx, &sel).await
}

pub async fn list(args: ListArgs, g: &Globals) -> Result<()> {
    let ctx = Context::new(&args.context, g).await?;
    let role = Roles::load(g)?.get(&args.role)?;
    let found = instances::list(&ctx, &role.name, args.cluster_name.as_deref()).await?;
    let rows: Vec<Value> = found.iter().enumerate().map(|(n, i)| instances::list_row(&ctx, n, i)).collect();
    if args.json {
        g.shell.json(&Value::Array(rows));
    } else {
        let text: Vec<Vec<String>> = rows.iter().map(|r| instances::row_text(r, &LIST_COLUMNS)).collect();
        g.shell.table(&LIST_COLUMNS, &text);
    }
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
    instances::terminate(&ctx, &i, args.quick).await
}

pub async fn start(_args: StartArgs, _g: &Globals) -> Result<i32> {
    Err(not_implemented("start"))
}

pub async fn stop(_args: StopArgs, _g: &Globals) -> Result<i32> {
    Err(not_implemented("stop"))
}

pub async fn reboot(_args: RebootArgs, _g: &Globals) -> Result<i32> {
    Err(not_implemented("reboot"))
}

pub async fn ssh(_args: SshArgs, _g: &Globals) -> Result<i32> {
    Err(not_implemented("ssh"))
}

pub async fn rsync(_args: RsyncArgs, _g: &Globals) -> Result<i32> {
    Err(not_implemented("rsync"))
}

pub async fn update_instance_profile(_args: UpdateInstanceProfileArgs, _g: &Globals) -> Result<i32> {
    Err(not_implemented("update-instance-profile"))
}
