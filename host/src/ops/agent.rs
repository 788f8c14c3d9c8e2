//! cgcloud's side of the on-box agent (`cgcloud-agent`): installing it on a box during
//! set-up, its IAM policy, telling agents about new keys, removing an instance's queue when it
//! is terminated, and comparing what each box applied with what it should have.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use cgcloud_agent::RunOptions;
use cgcloud_common::elf::{Arch, ElfInfo, GlibcVersion};
use cgcloud_plugin_api::IamPolicy;
use sha2::Digest;

use crate::ctx::Context;
use crate::errors::Result;
use crate::ssh::remote::{failure, quote, Remote};
use crate::{bail_user, user_error};

/// Where the agent lives on a box.
pub const REMOTE_BINARY: &str = "/usr/local/bin/cgcloud-agent";
/// Its systemd unit.
pub const REMOTE_UNIT: &str = "/etc/systemd/system/cgcloud-agent.service";
/// Instance tag holding the box's unexpanded key pair globs (space-separated).
pub const KEYPAIRS_TAG: &str = "cgcloud:keypairs";

/// How large an agent program may be (a release build is a few MB; a debug build about 60).
const MAX_AGENT_BYTES: u64 = 256 << 20;

/// The lowest glibc of the distributions cgcloud's roles boot (Amazon Linux 2023, Rocky 9).
pub const GLIBC_FLOOR: GlibcVersion = GlibcVersion(2, 34);

/// A `cgcloud-agent` program chosen for a box's architecture, read and checked.
#[derive(Debug, Clone)]
pub struct AgentProgram {
    pub path: PathBuf,
    /// Where it was found: `CGCLOUD_AGENT_BIN`, `the data directory` or `next to cgcloud`.
    pub source: &'static str,
    pub arch: Arch,
    pub bytes: Arc<Vec<u8>>,
    pub sha256: String,
    pub info: ElfInfo,
}

impl AgentProgram {
    /// What `--plan` and `cgcloud config` show.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "path": self.path, "from": self.source, "arch": self.arch.as_str(), "bytes": self.bytes.len(),
            "sha256": self.sha256, "static": !self.info.dynamic,
            "glibc": self.info.glibc.map(|g| g.to_string()),
        })
    }
}

/// Where agents for boxes of `arch` are kept: `<data dir>/agents/<arch>/cgcloud-agent`.
pub fn data_dir_agent(data_dir: &Path, arch: Arch) -> PathBuf {
    data_dir
        .join("agents")
        .join(arch.as_str())
        .join("cgcloud-agent")
}

/// How to build an agent for `arch` and put it where cgcloud looks.
pub fn build_hint(data_dir: &Path, arch: Arch) -> String {
    let dest = data_dir_agent(data_dir, arch);
    if Arch::host() == Some(arch) && cfg!(target_os = "linux") {
        format!(
            "build one with `cargo build --profile agent -p cgcloud-agent` in cgcloud's source and copy \
             `target/agent/cgcloud-agent` to `{}`",
            dest.display()
        )
    } else {
        format!(
            "build one with `cargo build --profile agent -p cgcloud-agent --target {t}` (needs the Rust \
             target `{t}` and a linker for it) and copy `target/{t}/agent/cgcloud-agent` to `{}`",
            dest.display(),
            t = arch.rust_target()
        )
    }
}

/// Reads and checks one candidate file.
fn read_candidate(path: &Path, source: &'static str, arch: Arch) -> Result<AgentProgram> {
    let bytes = crate::fsutil::read_small(path, MAX_AGENT_BYTES).map_err(|e| {
        user_error!(
            "cannot read the cgcloud-agent `{}` ({source}): {e}",
            path.display()
        )
    })?;
    let info = cgcloud_common::elf::inspect(&bytes).map_err(|e| {
        user_error!(
            "`{}` ({source}) is not a cgcloud-agent program for Linux: {e}",
            path.display()
        )
    })?;
    if info.arch != Some(arch) {
        let has = info
            .arch
            .map(|a| a.as_str().to_string())
            .unwrap_or_else(|| format!("ELF machine {}", info.machine));
        bail_user!(
            "`{}` ({source}) is a cgcloud-agent for {has} but the box is {arch}",
            path.display()
        );
    }
    let sha256 = hex::encode(sha2::Sha256::digest(&bytes));
    Ok(AgentProgram {
        path: path.to_path_buf(),
        source,
        arch,
        bytes: Arc::new(bytes),
        sha256,
        info,
    })
}

/// The agent program for boxes of `arch`: `CGCLOUD_AGENT_BIN` if set (it must fit), else
/// `<data dir>/agents/<arch>/cgcloud-agent`, else a `cgcloud-agent` next to `cgcloud` that is
/// built for `arch`.
pub fn select(data_dir: &Path, arch: Arch) -> Result<AgentProgram> {
    if let Some(p) = std::env::var_os("CGCLOUD_AGENT_BIN").filter(|p| !p.is_empty()) {
        return read_candidate(Path::new(&p), "CGCLOUD_AGENT_BIN", arch);
    }
    let in_data = data_dir_agent(data_dir, arch);
    if std::fs::symlink_metadata(&in_data).is_ok() {
        return read_candidate(&in_data, "the data directory", arch);
    }
    let next = std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name("cgcloud-agent"));
    let mut looked = vec![format!("`{}`", in_data.display())];
    if let Some(next) = next {
        looked.push(format!("`{}`", next.display()));
        if next.is_file() {
            match read_candidate(&next, "next to cgcloud", arch) {
                Ok(p) => return Ok(p),
                Err(e) => looked.push(format!("({})", crate::errors::one_line(&e))),
            }
        }
    }
    bail_user!(
        "there is no cgcloud-agent for {arch} boxes (looked at {}): {}, set CGCLOUD_AGENT_BIN, or pass --no-agent",
        looked.join(", "),
        build_hint(data_dir, arch)
    )
}

/// The distribution an image name stands for, with its glibc version, for the distributions
/// cgcloud's roles boot.
pub fn distro_of(image_name: &str) -> Option<(&'static str, GlibcVersion)> {
    const BY_PREFIX: &[(&str, &str, GlibcVersion)] = &[
        ("debian-11-", "Debian 11", GlibcVersion(2, 31)),
        ("debian-12-", "Debian 12", GlibcVersion(2, 36)),
        ("debian-13-", "Debian 13", GlibcVersion(2, 41)),
        ("al2023-ami-", "Amazon Linux 2023", GlibcVersion(2, 34)),
        ("amzn2-ami-", "Amazon Linux 2", GlibcVersion(2, 26)),
        ("Rocky-8-", "Rocky Linux 8", GlibcVersion(2, 28)),
        ("Rocky-9-", "Rocky Linux 9", GlibcVersion(2, 34)),
        ("RHEL-9", "Red Hat Enterprise Linux 9", GlibcVersion(2, 34)),
        ("AlmaLinux OS 9", "AlmaLinux 9", GlibcVersion(2, 34)),
    ];
    const BY_PART: &[(&str, &str, GlibcVersion)] = &[
        ("ubuntu-focal-20.04", "Ubuntu 20.04", GlibcVersion(2, 31)),
        ("ubuntu-jammy-22.04", "Ubuntu 22.04", GlibcVersion(2, 35)),
        ("ubuntu-noble-24.04", "Ubuntu 24.04", GlibcVersion(2, 39)),
    ];
    const FEDORA: &[(&str, &str, GlibcVersion)] = &[
        ("40", "Fedora 40", GlibcVersion(2, 39)),
        ("41", "Fedora 41", GlibcVersion(2, 40)),
        ("42", "Fedora 42", GlibcVersion(2, 41)),
        ("43", "Fedora 43", GlibcVersion(2, 42)),
    ];
    if let Some((_, d, g)) = BY_PREFIX.iter().find(|(p, _, _)| image_name.starts_with(p)) {
        return Some((d, *g));
    }
    if let Some((_, d, g)) = BY_PART.iter().find(|(p, _, _)| image_name.contains(p)) {
        return Some((d, *g));
    }
    // Fedora-Cloud-Base-AmazonEC2.x86_64-43-1.6
    let release = image_name
        .strip_prefix("Fedora-Cloud-Base-")?
        .split('-')
        .nth(2)?;
    FEDORA
        .iter()
        .find(|(r, _, _)| *r == release)
        .map(|(_, d, g)| (*d, *g))
}

/// Checks that `agent` can run on a box of `distro` (as [`distro_of`] tells it; `None` for an
/// image cgcloud cannot place, judged against [`GLIBC_FLOOR`]).
pub fn check_runs_on(
    agent: &AgentProgram,
    distro: Option<(&str, GlibcVersion)>,
    image_id: &str,
) -> Result<()> {
    let Some(needs) = agent.info.glibc else {
        return Ok(());
    };
    let (name, has) = distro.unwrap_or(("the oldest distribution cgcloud supports", GLIBC_FLOOR));
    if needs > has {
        bail_user!(
            "the cgcloud-agent `{}` ({}) needs glibc {needs}, but image `{image_id}` is {name}, which has glibc {has}: \
             build the agent on a system with glibc {has} or older (or link it statically), or pass --no-agent",
            agent.path.display(),
            agent.source
        );
    }
    Ok(())
}

/// Seconds between the agent's periodic refreshes (`CGCLOUD_AGENT_INTERVAL`, default 300).
pub fn interval() -> Result<u64> {
    match std::env::var("CGCLOUD_AGENT_INTERVAL") {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=86_400).contains(n))
            .ok_or_else(|| {
                user_error!(
                    "CGCLOUD_AGENT_INTERVAL must be a number of seconds from 1 to 86400, not `{v}`"
                )
            }),
        _ => Ok(cgcloud_agent::DEFAULT_INTERVAL_SECONDS),
    }
}

/// `data` compressed with gzip (the box unpacks it with `gzip -dc`).
fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 3),
        flate2::Compression::default(),
    );
    enc.write_all(data)?;
    enc.finish()
}

/// The inline policy the box's IAM role needs for the agent: only what the agent calls.
pub fn policy(ctx: &Context) -> IamPolicy {
    let partition = cgcloud_common::arn::partition_for_region(&ctx.region);
    IamPolicy::new(
        "cgcloud_agent",
        &cgcloud_agent::iam_policy(&ctx.namespace, partition).to_string(),
    )
}

/// Uploads the agent (gzip-compressed, checked by sha256 on the box; skipped when the box
/// already has the same program, as boxes booted from cgcloud's images do), writes its unit and
/// sshd's drop-in, and starts it. `globs` are the box's key pair globs, unexpanded but with
/// `__me__` substituted.
pub async fn install(
    ctx: &Context,
    remote: &Remote,
    instance_id: &str,
    agent: &AgentProgram,
    globs: &[String],
    accounts: &[String],
) -> Result<()> {
    let sum = &agent.sha256;
    let has = remote
        .run(&format!("sha256sum {REMOTE_BINARY} 2>/dev/null"))
        .await?;
    if has.status == 0 && has.stdout.split_whitespace().next() == Some(sum.as_str()) {
        ctx.shell.info(format!(
            "{instance_id}: the box already has this cgcloud-agent (sha256 {}); not uploaded",
            &sum[..12]
        ));
    } else {
        let packed = gzip(&agent.bytes).context("failed to compress the agent")?;
        ctx.shell.info(format!(
            "{instance_id}: uploading cgcloud-agent from `{}` ({} bytes, {} compressed)",
            agent.path.display(),
            agent.bytes.len(),
            packed.len()
        ));
        // A fresh temporary file next to the destination (never a predictable name, since
        // this runs as root), filled, checked, then renamed over the old program.
        let script = format!(
            "set -e; umask 022; t=$(mktemp {REMOTE_BINARY}.XXXXXXXX); trap 'rm -f -- \"$t\"' EXIT; \
             gzip -dc > \"$t\"; echo '{sum}  '\"$t\" | sha256sum -c --status || {{ echo 'checksum mismatch' >&2; exit 3; }}; \
             chmod 755 -- \"$t\"; mv -f -- \"$t\" {REMOTE_BINARY}; trap - EXIT"
        );
        let out = remote
            .run_with_stdin(&format!("sudo -n sh -c {}", quote(&script)), Some(&packed))
            .await?;
        if out.status == 3 {
            bail_user!(
                "the agent uploaded to `{instance_id}` does not have the sha256 of `{}` ({sum}); not installed",
                agent.path.display()
            );
        }
        if out.status != 0 {
            bail_user!("{}", failure(instance_id, "upload cgcloud-agent", &out));
        }
    }
    let options = RunOptions {
        namespace: ctx.namespace.as_str().to_string(),
        zone: ctx.zone.clone(),
        keypairs: globs.to_vec(),
        accounts: accounts.to_vec(),
        interval: interval()?,
        // The agent asks the instance metadata for its instance: an image of this box keeps
        // the unit, and the boxes made from it are other instances.
        instance_id: None,
        no_notifications: false,
        no_ack: false,
    };
    let args: Vec<String> = options.to_args().iter().map(|a| quote(a)).collect();
    // The unit is rendered on the box, which knows its accounts' home directories.
    let unit = remote
        .run(&format!("sudo -n {REMOTE_BINARY} unit {}", args.join(" ")))
        .await?;
    if unit.status != 0 {
        bail_user!("{}", failure(instance_id, "cgcloud-agent unit", &unit));
    }
    // Cluster nodes find their leader at every boot (`cgcloud_agent::discover`); on any other
    // box the unit finds no leader tag and does nothing.
    let discover =
        cgcloud_agent::discover::discover_unit(std::path::Path::new(REMOTE_BINARY), &ctx.zone);
    let script = format!(
        "set -e; umask 022; cat > {REMOTE_UNIT}; mkdir -p /etc/ssh/sshd_config.d; printf %s {dropin} > {dropin_path}; \
         printf %s {discover} > {discover_path}; \
         systemctl daemon-reload; systemctl enable cgcloud-agent.service cgcloud-discover.service; \
         systemctl restart cgcloud-agent.service; \
         systemctl reload ssh.service 2>/dev/null || systemctl reload sshd.service",
        dropin = quote(cgcloud_agent::SSHD_DROP_IN),
        dropin_path = cgcloud_agent::SSHD_DROP_IN_PATH,
        discover = quote(&discover),
        discover_path = cgcloud_agent::discover::DISCOVER_UNIT_PATH,
    );
    remote
        .run_as_root(
            &script,
            Some(unit.stdout.as_bytes()),
            "install the cgcloud-agent service",
        )
        .await?;
    ctx.shell.info(format!(
        "{instance_id}: the agent keeps the SSH keys of {} in sync",
        accounts.join(", ")
    ));
    Ok(())
}

/// Creates the box's notification queue (tagged with the instance's ARN, which the agent's
/// policy matches) and subscribes it to the namespace's topic. cgcloud does this, not the box:
/// the box's role needs no SNS permission and cannot create, read or delete other queues.
/// Safe to call again.
pub async fn wire(ctx: &Context, instance_id: &str) -> Result<()> {
    let account = ctx.identity().await?.account.clone();
    let partition = cgcloud_common::arn::partition_for_region(&ctx.region);
    let arn = format!(
        "arn:{partition}:ec2:{}:{account}:instance/{instance_id}",
        ctx.region
    );
    let sns = aws_sdk_sns::Client::new(ctx.aws.sdk());
    let sqs = aws_sdk_sqs::Client::new(ctx.aws.sdk());
    cgcloud_agent::ensure_instance_wiring(&sqs, &sns, &ctx.namespace, instance_id, &arn)
        .await
        .map_err(|e| {
            user_error!(
                "failed to set up the agent's notification queue for `{instance_id}`: {e:#}"
            )
        })?;
    Ok(())
}

/// Takes the launch key out of `user`'s `authorized_keys` once the agent's own file holds it
/// (waiting up to a minute for the agent's first refresh): from then on, deleting the launch
/// key pair revokes it on this box like any other key. Lines people added by hand stay. When
/// the agent does not take it over (its globs do not match the launch key pair, as for a box
/// recreated by someone the image's globs leave out), the key stays and a warning says so.
pub async fn hand_over_launch_key(
    ctx: &Context,
    remote: &Remote,
    instance_id: &str,
    user: &str,
    launch_key: &str,
) -> Result<()> {
    let Some(data) = launch_key.split_whitespace().nth(1) else {
        bail_user!("the launch key of `{instance_id}` is not an SSH public key");
    };
    let home = format!("$(getent passwd {} | cut -d: -f6)", quote(user));
    let managed = format!("{home}/.ssh/{}", cgcloud_agent::MANAGED_FILE);
    let has = format!("grep -qF -- {} \"{managed}\"", quote(data));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let out = remote
            .run(&format!("sudo -n sh -c {}", quote(&has)))
            .await?;
        if out.status == 0 {
            break;
        }
        if std::time::Instant::now() >= deadline {
            ctx.shell.warn(format!(
                "the agent on `{instance_id}` did not take the launch key into its own file within 60s, so it stays in \
                 `authorized_keys` and deleting its key pair will not revoke it there (are the box's key pair globs \
                 leaving it out? see `sudo journalctl -u cgcloud-agent` on the box)"
            ));
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    let script = format!(
        "set -e; f=\"{home}/.ssh/authorized_keys\"; [ -f \"$f\" ] || exit 0; t=$(mktemp -- \"$f.XXXXXXXX\"); \
         trap 'rm -f -- \"$t\"' EXIT; grep -vF -- {data} \"$f\" > \"$t\" || true; chown --reference=\"$f\" -- \"$t\"; \
         chmod --reference=\"$f\" -- \"$t\"; mv -f -- \"$t\" \"$f\"; trap - EXIT",
        data = quote(data)
    );
    remote
        .run_as_root(&script, None, "take the launch key out of authorized_keys")
        .await?;
    Ok(())
}

/// Stops the agent and empties the key files it manages, so that an image of the box carries
/// no personal keys (boxes made from it get theirs from their own agent). The agent starts
/// again with the box.
pub async fn clear_for_image(remote: &Remote, accounts: &[String]) -> Result<()> {
    let mut script = String::from("set -e; systemctl stop cgcloud-agent.service");
    for a in accounts {
        let f = format!(
            "$(getent passwd {} | cut -d: -f6)/.ssh/{}",
            quote(a),
            cgcloud_agent::MANAGED_FILE
        );
        script.push_str(&format!("; if [ -f \"{f}\" ]; then : > \"{f}\"; fi"));
    }
    remote
        .run_as_root(
            &script,
            None,
            "clear the agent's key files before the image",
        )
        .await?;
    Ok(())
}

/// Tells the namespace's agents that key pairs changed. Returns whether a topic existed.
pub async fn notify(ctx: &Context, keypair: &str) -> Result<bool> {
    let sns = aws_sdk_sns::Client::new(ctx.aws.sdk());
    cgcloud_agent::publish(
        &sns,
        &ctx.namespace,
        &cgcloud_agent::register_key_notification(ctx.namespace.as_str(), keypair),
    )
    .await
    .map_err(|e| {
        user_error!(
            "failed to notify the agents of namespace `{}`: {e:#}",
            ctx.namespace
        )
    })
}

/// Removes a terminated instance's queue and subscription.
pub async fn remove_wiring(ctx: &Context, instance_id: &str) -> Result<()> {
    let sns = aws_sdk_sns::Client::new(ctx.aws.sdk());
    let sqs = aws_sdk_sqs::Client::new(ctx.aws.sdk());
    cgcloud_agent::delete_instance_wiring(&sqs, &sns, &ctx.namespace, instance_id)
        .await
        .map_err(|e| user_error!("failed to remove the agent queue of `{instance_id}`: {e:#}"))?;
    Ok(())
}

/// The hash of the key set `globs` stands for now, as agents compute it.
pub async fn expected_hash(ctx: &Context, globs: &[String]) -> Result<String> {
    let parsed = super::keypairs::parse(ctx, globs).await?;
    let expansion = cgcloud_agent::expand(&ctx.aws.ec2(), &ctx.aws.iam(), &parsed)
        .await
        .map_err(|e| {
            user_error!(
                "failed to expand the key pairs `{}`: {e:#}",
                globs.join(" ")
            )
        })?;
    Ok(expansion.hash())
}
