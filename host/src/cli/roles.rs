//! `list-roles` and `list-options`: no AWS calls, no credentials needed.

use clap::Args;
use serde_json::json;

use super::args::ContextArgs;
use crate::ctx::Globals;
use crate::errors::Result;
use crate::roles::Roles;

/// List the roles: built-in ones and those of every plugin found
#[derive(Args, Debug)]
pub struct ListRolesArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

/// List the options a role accepts with `create -O NAME=VALUE`
#[derive(Args, Debug)]
pub struct ListOptionsArgs {
    #[command(flatten)]
    pub context: ContextArgs,

    /// The role
    #[arg(value_name = "ROLE")]
    pub role: String,

    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

pub fn list_roles(args: ListRolesArgs, g: &Globals) -> Result<()> {
    let roles = Roles::load(g)?;
    let list = roles.list();
    let clusters = roles.registry.clusters();
    if args.json {
        let mut all: Vec<serde_json::Value> = list.iter().map(|r| json!(r)).collect();
        for c in &clusters {
            let mut entry = json!(c);
            entry["kind"] = json!("cluster-type");
            all.push(entry);
        }
        g.shell.json(&json!(all));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|r| {
            // A name two plugins define is shown qualified, so it can be used as shown.
            let name = if r.summary.conflict {
                r.summary.qualified.clone()
            } else {
                r.summary.name.clone()
            };
            let description = match &r.problem {
                Some(problem) => format!("BROKEN: {problem}"),
                None => r.summary.description.clone(),
            };
            vec![name, description]
        })
        .chain(clusters.iter().map(|c| {
            vec![
                c.name.clone(),
                format!(
                    "cluster type: a `{}` leader and `{}` workers; {}",
                    c.leader, c.worker, c.description
                ),
            ]
        }))
        .collect();
    g.shell.table(&["role", "description"], &rows);
    Ok(())
}

pub fn list_options(args: ListOptionsArgs, g: &Globals) -> Result<()> {
    let roles = Roles::load(g)?;
    let _ = &args.context;
    // A cluster type: the options of its leader's and its workers' roles.
    if roles.registry.role(&args.role).is_err() {
        if let Ok(c) = roles.registry.cluster(&args.role) {
            let leader = roles.get(&c.leader)?;
            let worker = roles.get(&c.worker)?;
            if args.json {
                g.shell
                    .json(&json!({"leader": leader.options, "worker": worker.options}));
                return Ok(());
            }
            for (part, role) in [("leader", &leader), ("workers", &worker)] {
                g.shell.out(format!("{part} (role {}):", role.name));
                print_options(g, role, "  ");
            }
            return Ok(());
        }
    }
    let role = roles.get(&args.role)?;
    if args.json {
        g.shell.json(&json!(role.options));
        return Ok(());
    }
    print_options(g, &role, "");
    Ok(())
}

/// One line per option: name, kind, default, whether images keep it, help.
fn print_options(g: &Globals, role: &cgcloud_plugin_host::RoleData, indent: &str) {
    if role.options.is_empty() {
        g.shell.out(format!(
            "{indent}The role {} does not define any options",
            role.name
        ));
    }
    for o in &role.options {
        let kind = match o.kind {
            cgcloud_plugin_api::OptionKind::Bool => "true or false",
            cgcloud_plugin_api::OptionKind::Int => "a whole number",
            _ => "text",
        };
        let mut about = vec![kind.to_string()];
        if let Some(d) = &o.default {
            about.push(format!("default `{d}`"));
        }
        if o.inherited {
            about.push("kept by images".into());
        }
        g.shell.out(format!(
            "{indent}{} ({}): {}",
            o.name,
            about.join(", "),
            o.help
        ));
    }
}
