//! `config`: the effective configuration and where each value came from. Never prints a
//! secret; reaches AWS only to say whose credentials are in use (`--offline` not even that).

use std::path::Path;
use std::time::Duration;

use clap::Args;
use serde_json::{json, Value};

use super::args::ContextArgs;
use crate::config::{Config, Source};
use crate::ctx::{Context, Globals};
use crate::errors::Result;
use crate::ops::agent;

/// Show the effective configuration: zone, namespace, `__me__`, credentials (never the
/// secret), plugins and lock file, data directory, agents per architecture, SSH, timeouts
#[derive(Args, Debug)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub context: ContextArgs,

    /// Make no AWS call (`__me__` and the credentials are then not checked)
    #[arg(long)]
    pub offline: bool,

    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

struct Rows(Vec<(String, String, String)>);

impl Rows {
    fn add(&mut self, what: &str, value: impl Into<String>, from: impl std::fmt::Display) {
        self.0
            .push((what.to_string(), value.into(), from.to_string()));
    }
}

fn env_source(var: &str, value: Option<&str>, default: &str) -> String {
    match (std::env::var(var).ok(), value) {
        (Some(e), Some(v)) if e == v => var.to_string(),
        (_, Some(v)) if v == default => "default".to_string(),
        (_, Some(_)) => "command line".to_string(),
        (_, None) => "not set".to_string(),
    }
}

/// Which link of the AWS SDK's default chain will provide credentials, as the environment
/// and files tell it (the same order the SDK tries).
fn credentials_source(home: Option<&Path>) -> String {
    let env = |v: &str| std::env::var(v).ok().filter(|s| !s.is_empty());
    if let Some(id) = env("AWS_ACCESS_KEY_ID") {
        let tail: String = id
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return format!("environment (AWS_ACCESS_KEY_ID …{tail})");
    }
    let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
    let file = |var: &str, name: &str| {
        env(var)
            .map(Into::into)
            .or_else(|| home.map(|h| h.join(".aws").join(name)))
    };
    let files: Vec<String> = [
        file("AWS_CONFIG_FILE", "config"),
        file("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
    ]
    .into_iter()
    .flatten()
    .filter(|p: &std::path::PathBuf| p.is_file())
    .map(|p| p.display().to_string())
    .collect();
    if !files.is_empty() {
        return format!("profile `{profile}` ({})", files.join(", "));
    }
    if env("AWS_WEB_IDENTITY_TOKEN_FILE").is_some() {
        return "web identity token (AWS_WEB_IDENTITY_TOKEN_FILE)".into();
    }
    if env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").is_some()
        || env("AWS_CONTAINER_CREDENTIALS_FULL_URI").is_some()
    {
        return "container credentials (ECS)".into();
    }
    if env("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return "none found (environment, profiles; instance metadata is disabled)".into();
    }
    "instance metadata, if this is an EC2 instance (no environment or profile credentials)".into()
}

pub async fn run(args: ConfigArgs, g: &Globals) -> Result<i32> {
    let config: Config = Config::load()?;
    let mut rows = Rows(Vec::new());
    let config_from = if std::env::var_os("CGCLOUD_CONFIG").is_some_and(|v| !v.is_empty()) {
        "CGCLOUD_CONFIG"
    } else {
        "default"
    };
    match &config.path {
        Some(p) => rows.add(
            "config file",
            format!(
                "{}{}",
                p.display(),
                if config.exists {
                    ""
                } else {
                    " (not there: all defaults)"
                }
            ),
            config_from,
        ),
        None => rows.add("config file", "none (no home directory)", "default"),
    }

    let zone = args.context.zone.clone().filter(|z| !z.trim().is_empty());
    rows.add(
        "zone",
        zone.clone()
            .unwrap_or_else(|| "not set: pass --zone or set CGCLOUD_ZONE".into()),
        env_source("CGCLOUD_ZONE", zone.as_deref(), ""),
    );
    if let Some(z) = &zone {
        match cgcloud_common::zone::region_of_zone(z) {
            Ok(r) => rows.add("region", r, "the zone"),
            Err(e) => rows.add("region", format!("none: {e}"), "the zone"),
        }
    }
    let ns = &args.context.namespace;
    rows.add(
        "namespace",
        ns.clone(),
        env_source("CGCLOUD_NAMESPACE", Some(ns), "/__me__/"),
    );

    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    rows.add(
        "credentials",
        credentials_source(home.as_deref()),
        "the AWS SDK's default chain",
    );
    if let Ok(e) = std::env::var("AWS_ENDPOINT_URL") {
        rows.add("AWS endpoint", e, "AWS_ENDPOINT_URL");
    }
    let me_env = std::env::var("CGCLOUD_ME")
        .ok()
        .filter(|m| !m.trim().is_empty());
    if let Some(me) = &me_env {
        rows.add("__me__", me.trim(), "CGCLOUD_ME");
    }
    if !args.offline && zone.is_some() {
        let resolved = tokio::time::timeout(Duration::from_secs(30), async {
            let ctx = Context::new(&args.context, g).await?;
            let id = ctx.identity().await?.clone();
            let me = ctx.me().await?;
            Ok::<_, anyhow::Error>((ctx.namespace.as_str().to_string(), id, me))
        })
        .await;
        match resolved {
            Ok(Ok((namespace, id, me))) => {
                rows.add(
                    "identity",
                    format!("{} (account {})", id.arn, id.account),
                    "STS GetCallerIdentity",
                );
                if me_env.is_none() {
                    rows.add("__me__", me, "the identity");
                }
                rows.add("namespace (resolved)", namespace, "namespace and __me__");
            }
            Ok(Err(e)) => rows.add(
                "identity",
                format!("unknown: {}", crate::errors::one_line(&e)),
                "STS GetCallerIdentity",
            ),
            Err(_) => rows.add(
                "identity",
                "unknown: AWS did not answer within 30s",
                "STS GetCallerIdentity",
            ),
        }
    } else if me_env.is_none() {
        rows.add(
            "__me__",
            "your IAM user (not looked up: --offline or no zone)",
            "the identity",
        );
    }

    let data_dir = crate::roles::data_dir()?;
    let data_from = if std::env::var_os("CGCLOUD_DATA_DIR").is_some_and(|v| !v.is_empty()) {
        "CGCLOUD_DATA_DIR"
    } else {
        "default"
    };
    rows.add("data directory", data_dir.display().to_string(), data_from);
    rows.add(
        "known hosts",
        data_dir.join("known_hosts").display().to_string(),
        "the data directory",
    );
    match crate::roles::sources(g) {
        Ok(sources) => {
            let join = |v: &[std::path::PathBuf]| {
                v.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            if !sources.cli.is_empty() {
                rows.add("plugins", join(&sources.cli), "--plugin");
            }
            if !sources.env.is_empty() {
                rows.add("plugins", join(&sources.env), "CGCLOUD_PLUGIN_PATH");
            }
            if !sources.config.is_empty() {
                rows.add(
                    "plugins",
                    join(&sources.config),
                    config
                        .path
                        .clone()
                        .map(Source::File)
                        .unwrap_or(Source::Default),
                );
            }
            rows.add(
                "plugins",
                sources.data_dir.join("plugins").display().to_string(),
                "the data directory (locked only)",
            );
            let lock = sources.data_dir.join(cgcloud_plugin_host::LOCK_FILE);
            rows.add(
                "plugin lock file",
                format!(
                    "{}{}",
                    lock.display(),
                    if lock.is_file() { "" } else { " (none yet)" }
                ),
                "the data directory",
            );
            for (name, req) in &sources.pins {
                rows.add("plugin pin", format!("{name} {req}"), "[plugins.require]");
            }
        }
        Err(e) => rows.add(
            "plugins",
            format!("error: {}", crate::errors::one_line(&e)),
            "configuration",
        ),
    }

    for arch in cgcloud_common::elf::Arch::ALL {
        let what = format!("agent for {arch} boxes");
        match agent::select(&data_dir, arch) {
            Ok(a) => {
                let glibc = match a.info.glibc {
                    Some(v) => format!("needs glibc {v}"),
                    None => "static".to_string(),
                };
                rows.add(
                    &what,
                    format!(
                        "{} ({} bytes, {glibc}, sha256 {})",
                        a.path.display(),
                        a.bytes.len(),
                        &a.sha256[..12]
                    ),
                    a.source,
                );
            }
            // The whole refusal is long; `create` shows it where it matters. Here: what to do.
            Err(_) if std::env::var_os("CGCLOUD_AGENT_BIN").is_none() => rows.add(
                &what,
                format!("missing: {}", agent::build_hint(&data_dir, arch)),
                "CGCLOUD_AGENT_BIN, the data directory, next to cgcloud",
            ),
            Err(e) => rows.add(
                &what,
                format!("unusable: {}", crate::errors::one_line(&e)),
                "CGCLOUD_AGENT_BIN",
            ),
        }
    }
    let interval = agent::interval()?;
    rows.add(
        "agent interval",
        format!("{interval}s"),
        if std::env::var_os("CGCLOUD_AGENT_INTERVAL").is_some() {
            "CGCLOUD_AGENT_INTERVAL"
        } else {
            "default"
        },
    );

    match config.ssh_config_with_source() {
        Some((p, from)) => rows.add("ssh config", p.display().to_string(), from),
        None => rows.add("ssh config", "ssh's own (~/.ssh/config)", "default"),
    }
    match std::env::var("CGCLOUD_SSH_KEY")
        .ok()
        .filter(|v| !v.is_empty())
    {
        Some(k) => rows.add("ssh identity", k, "CGCLOUD_SSH_KEY"),
        None => rows.add(
            "ssh identity",
            "ssh's agent and default identities",
            "default",
        ),
    }
    match std::env::var("CGCLOUD_KEYPAIRS")
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        Some(k) => rows.add("key pairs", k, "CGCLOUD_KEYPAIRS"),
        None => rows.add("key pairs", "__me__", "default"),
    }
    match std::env::var("CGCLOUD_INSTANCE_TYPE")
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        Some(t) => rows.add("instance type", t, "CGCLOUD_INSTANCE_TYPE"),
        None => rows.add("instance type", "the role's recommendation", "default"),
    }
    let (_, timeouts) = config.timeouts()?;
    for (key, secs, from) in timeouts {
        rows.add(&format!("timeout {key}"), format!("{secs}s"), from);
    }

    if args.json {
        let list: Vec<Value> = rows
            .0
            .iter()
            .map(|(w, v, f)| json!({"setting": w, "value": v, "from": f}))
            .collect();
        g.shell.json(&Value::Array(list));
    } else {
        g.shell.settings(&rows.0);
    }
    Ok(0)
}
