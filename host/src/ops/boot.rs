//! One boot of a box, the same in every command that boots one (`create`, `recreate`, `start`,
//! `reboot`, the reboot after `create --upgrade`, the restart after `create --image`): once EC2
//! says the instance runs, the role's `on_instance_running`; then SSH with the pinned host key
//! and cloud-init; then (for a new cluster node) the cluster's shared secret and its persistent
//! volume; then `on_instance_ready`. `first_boot` is true only on an instance's first
//! boot, which only `create` and `recreate` see.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use cgcloud_plugin_host::{HookError, RoleHandle};

use super::launch::{self, Phases};
use crate::ctx::Context;
use crate::errors::Result;
use crate::ssh::remote::{BoxServices, Remote};
use crate::ssh::{SshSettings, Target};
use crate::user_error;

/// Runs role hooks on a blocking thread, with services that reach box `id` over `remote`
/// (`None`: the hooks may log and read options but not reach the box).
pub async fn run_hooks<F>(
    ctx: &Context,
    role: &Arc<RoleHandle>,
    id: &str,
    remote: Option<&Arc<Remote>>,
    options: &BTreeMap<String, String>,
    f: F,
) -> Result<()>
where
    F: FnOnce(&RoleHandle, &BoxServices) -> std::result::Result<(), Box<HookError>>
        + Send
        + 'static,
{
    let services = BoxServices {
        instance_id: id.to_string(),
        remote: remote.cloned(),
        handle: tokio::runtime::Handle::current(),
        options: options.clone(),
        shell: ctx.shell.clone(),
        cancelled: Arc::new(AtomicBool::new(false)),
        label: format!("{} on {id}", role.name()),
        hooks: Default::default(),
    };
    let role = role.clone();
    tokio::task::spawn_blocking(move || f(&role, &services))
        .await
        .map_err(|e| user_error!("a role hook thread failed: {e}"))?
        .map_err(|e| user_error!("{e}"))
}

/// A boot of box `id` of `role`.
pub struct Boot<'a> {
    pub role: &'a Arc<RoleHandle>,
    /// The role options of the box (defaults included).
    pub options: &'a BTreeMap<String, String>,
    pub ssh: &'a SshSettings,
    pub id: &'a str,
    /// The account cgcloud provisions through.
    pub admin: &'a str,
    /// Whether this is the instance's first boot.
    pub first_boot: bool,
    /// Whether to replace the box's host key after the first connection verified it (after the
    /// first boot, the key from the user data; after an image, the key the image holds).
    pub rotate_host_key: bool,
    /// A cluster's shared secret, written to the box before `on_instance_ready`.
    pub secret: Option<&'a super::cluster::ClusterSecret>,
    /// A new cluster node's persistent volume, attached and mounted before `on_instance_ready`.
    pub volume: Option<&'a super::volumes::VolumeSpec>,
}

impl Boot<'_> {
    /// The instance reached `running`: runs `on_instance_running`.
    pub async fn running(&self, ctx: &Context) -> Result<()> {
        let first_boot = self.first_boot;
        run_hooks(ctx, self.role, self.id, None, self.options, move |r, s| {
            r.on_instance_running(s, first_boot).map_err(Box::new)
        })
        .await
    }

    /// The instance runs at `address` and `on_instance_running` returned: waits for SSH and
    /// cloud-init, then runs `on_instance_ready`. Returns the connection for what follows.
    pub async fn ready(
        &self,
        ctx: &Context,
        address: String,
        phases: &mut Phases,
        t: Instant,
    ) -> Result<(Arc<Remote>, Instant)> {
        let target = Target {
            instance_id: self.id.to_string(),
            address,
            user: self.admin.to_string(),
        };
        let (remote, t) = launch::wait_ready(ctx, self.ssh, &target, phases, t).await?;
        if self.rotate_host_key {
            if let Err(e) = super::hostkeys::rotate(ctx, self.ssh, &remote, self.id).await {
                remote.close().await;
                return Err(e);
            }
        }
        if let Some(secret) = self.secret {
            ctx.shell
                .status(self.id, "writing the cluster's shared secret");
            if let Err(e) = secret.push(&remote).await {
                remote.close().await;
                return Err(e);
            }
        }
        if let Some(spec) = self.volume {
            ctx.shell
                .status(self.id, &format!("attaching its volume `{}`", spec.name));
            let mounted = async {
                let volume = super::volumes::attach(ctx, self.id, spec).await?;
                super::volumes::mount(&remote, &volume).await
            }
            .await;
            if let Err(e) = mounted {
                remote.close().await;
                return Err(e);
            }
        }
        let remote = Arc::new(remote);
        let first_boot = self.first_boot;
        let result = run_hooks(
            ctx,
            self.role,
            self.id,
            Some(&remote),
            self.options,
            move |r, s| r.on_instance_ready(s, first_boot).map_err(Box::new),
        )
        .await;
        match result {
            Ok(()) => Ok((remote, t)),
            Err(e) => {
                close(remote).await;
                Err(e)
            }
        }
    }

    /// The whole boot once the instance runs at `address`.
    pub async fn booted(
        &self,
        ctx: &Context,
        address: String,
        phases: &mut Phases,
        t: Instant,
    ) -> Result<(Arc<Remote>, Instant)> {
        self.running(ctx).await?;
        self.ready(ctx, address, phases, t).await
    }
}

/// Closes the connection once no hook thread holds it any more.
pub async fn close(remote: Arc<Remote>) {
    if let Ok(r) = Arc::try_unwrap(remote) {
        r.close().await;
    }
}
