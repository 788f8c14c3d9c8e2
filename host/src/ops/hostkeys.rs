//! Host keys for the whole team: every box's SSH host public key is published in its
//! [`HOST_KEY_TAG`] tag, where every teammate's cgcloud reads it through the AWS API and pins it
//! on first use ([`ensure_pinned`]); boxes without it (made by the original cgcloud or other
//! tools) are pinned from the keys cloud-init printed to their console, never on trust. The key
//! that travelled in user data is replaced right after the first verified connection by one
//! generated on the box ([`rotate`]), so what user data, IMDS or `DescribeInstanceAttribute`
//! reveal no longer opens anything.

use aws_sdk_ec2::types::{Instance, Tag};

use crate::aws::{self, AwsResultExt};
use crate::ctx::Context;
use crate::errors::Result;
use crate::ssh::remote::{quote, Remote};
use crate::ssh::{known_hosts, SshSettings};
use crate::{bail_user, user_error};

/// Instance tag holding the box's SSH host public key (`<type> <base64>`): what every member
/// of the team pins on first use.
pub use cgcloud_agent::discover::HOST_KEY_TAG;

/// Makes sure cgcloud has the box's host key pinned before anything connects to it. A box
/// pinned on this machine keeps its pin; otherwise the key the box's creator published in the
/// [`HOST_KEY_TAG`] tag is pinned, else the ed25519 (or best) key the box printed to its console
/// at first boot (boxes made by the original cgcloud or other tools). Nothing else is ever
/// trusted: with neither, this refuses.
pub async fn ensure_pinned(ctx: &Context, ssh: &SshSettings, i: &Instance) -> Result<()> {
    let id = i.instance_id().unwrap_or_default();
    let file = ssh.known_hosts();
    if known_hosts::lookup(&file, id)?.is_some() {
        return Ok(());
    }
    if let Some(published) = aws::tag(i.tags(), HOST_KEY_TAG) {
        let key = cgcloud_common::parse_public_key(published)
            .map_err(|e| user_error!("box `{id}` publishes a host key that is not an SSH public key ({e}) in its `{HOST_KEY_TAG}` tag; refusing to connect"))?;
        let pinned = known_hosts::pin_if_absent(&file, id, published)?;
        ctx.shell.info(format!(
            "pinned the host key of `{id}` that its creator published ({}, {})",
            key.ssh_type(),
            cgcloud_common::keys::openssh_fingerprint(&key)
        ));
        ctx.shell.debug(format!(
            "{id}: pinned `{pinned}` from its `{HOST_KEY_TAG}` tag"
        ));
        return Ok(());
    }
    match console_host_key(ctx, id).await? {
        Some(key) => {
            known_hosts::pin_if_absent(&file, id, &key)?;
            if let Ok(parsed) = cgcloud_common::parse_public_key(&key) {
                ctx.shell.info(format!(
                    "pinned the host key `{id}` printed to its console at first boot ({})",
                    cgcloud_common::keys::openssh_fingerprint(&parsed)
                ));
            }
            Ok(())
        }
        None => bail_user!(
            "cgcloud has no host key for `{id}` and will not connect to it: the box publishes none (no `{HOST_KEY_TAG}` tag: \
             made by the original cgcloud or another tool?) and its console output shows no SSH host keys (EC2 can take \
             minutes to post it after a boot); try again later, or check the key on the box and pin it in `{}` as \
             `{id} <type> <base64>`",
            file.display()
        ),
    }
}

/// The best host key in the instance's console output (the newest output on instance types
/// that have it, else what EC2 posted), if there is a complete key block.
async fn console_host_key(ctx: &Context, id: &str) -> Result<Option<String>> {
    use base64::Engine as _;
    let ec2 = ctx.aws.ec2();
    let latest = ec2
        .get_console_output()
        .instance_id(id)
        .latest(true)
        .send()
        .await;
    let out = match latest {
        Ok(o) => o,
        // NOTE: `Latest` works on Nitro instance types only; the others take the buffered output.
        Err(_) => ec2
            .get_console_output()
            .instance_id(id)
            .send()
            .await
            .map_err(|e| {
                user_error!(
                    "failed to read the console output of `{id}`: {}",
                    aws::describe(&e)
                )
            })?,
    };
    let Some(encoded) = out.output() else {
        return Ok(None);
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .unwrap_or_default();
    Ok(
        cgcloud_common::console::host_keys(&String::from_utf8_lossy(&bytes))
            .into_iter()
            .next(),
    )
}

/// Where cloud-init keeps the user data of each instance it ran (with the host key that
/// travelled in it); removed once that key is replaced.
const CLOUD_INIT_USER_DATA: &str =
    "/var/lib/cloud/instances/*/user-data.txt /var/lib/cloud/instances/*/user-data.txt.i /var/lib/cloud/instances/*/cloud-config.txt /var/lib/cloud/instances/*/obj.pkl";

/// Instance tag `cgcloud stop` sets once the box's disk is ready for an image (RFC 3339 time).
pub const IMAGE_READY_TAG: &str = "cgcloud:image-ready";

/// Removes cloud-init's copies of the user data (cloud-init writes them again at each boot that
/// fetches the user data anew), e.g. right before an image is made.
pub async fn forget_user_data(remote: &Remote) -> Result<()> {
    remote
        .run_as_root(
            &format!("rm -f -- {CLOUD_INIT_USER_DATA}"),
            None,
            "remove cloud-init's copies of the user data",
        )
        .await?;
    Ok(())
}

/// Replaces the box's host key, over a connection verified with the key from user data, by an
/// ed25519 key generated on the box; pins and publishes its public half, then removes
/// cloud-init's copies of the user data. Existing connections stay up (sshd is reloaded).
pub async fn rotate(ctx: &Context, ssh: &SshSettings, remote: &Remote, id: &str) -> Result<String> {
    let generate = "set -e; umask 077; d=$(mktemp -d /etc/ssh/.cgcloud-hostkey.XXXXXXXX); \
                    ssh-keygen -q -t ed25519 -N '' -C '' -f \"$d/key\"; echo \"$d\"; cat -- \"$d/key.pub\"";
    let out = remote
        .run_as_root(generate, None, "generate a new SSH host key")
        .await?;
    let mut lines = out.stdout.lines();
    let (Some(dir), Some(public)) = (lines.next(), lines.next()) else {
        bail_user!("generating a new SSH host key on `{id}` printed no key");
    };
    let dir = dir.trim().to_string();
    let suffix = dir
        .strip_prefix("/etc/ssh/.cgcloud-hostkey.")
        .unwrap_or_default();
    if suffix.len() != 8 || !suffix.chars().all(|c| c.is_ascii_alphanumeric()) {
        bail_user!("generating a new SSH host key on `{id}` printed an unexpected folder `{dir}`");
    }
    let key = cgcloud_common::parse_public_key(public.trim())
        .map_err(|e| user_error!("the new SSH host key of `{id}` is not an SSH public key: {e}"))?;
    let public = key.openssh_line();
    // Pin and publish first: should anything below fail, the box is terminated (unless -N) and
    // no stale pin is left to trust the key from user data.
    known_hosts::pin(&ssh.known_hosts(), id, &public)?;
    ctx.aws
        .ec2()
        .create_tags()
        .resources(id)
        .tags(Tag::builder().key(HOST_KEY_TAG).value(&public).build())
        .send()
        .await
        .aws(|| format!("failed to publish the host key of `{id}`"))?;
    let install = format!(
        "set -e; d={d}; chmod 600 -- \"$d/key\"; chmod 644 -- \"$d/key.pub\"; mv -f -- \"$d/key\" /etc/ssh/ssh_host_ed25519_key; mv -f -- \"$d/key.pub\" /etc/ssh/ssh_host_ed25519_key.pub; \
         rmdir -- \"$d\"; rm -f -- {CLOUD_INIT_USER_DATA}; \
         systemctl reload ssh.service 2>/dev/null || systemctl reload sshd.service",
        d = quote(&dir)
    );
    remote
        .run_as_root(&install, None, "install the new SSH host key")
        .await?;
    ctx.shell.debug(format!(
        "{id}: new host key {}",
        cgcloud_common::keys::openssh_fingerprint(&key)
    ));
    Ok(public)
}
