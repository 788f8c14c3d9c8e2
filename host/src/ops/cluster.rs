//! A cluster's nodes: its leader (a box of the cluster type's leader role, picked by cluster
//! name and ordinal like any box) and its workers (boxes of the worker role whose
//! `leader_instance_id` tag names the leader, as the original found them), in `cluster_ordinal`
//! order; and running one piece of work on each, the leader first (or last) and the workers
//! in parallel.

use std::future::Future;
use std::sync::Arc;

use aws_sdk_ec2::types::Instance;
use cgcloud_plugin_api::SharedSecret;
use cgcloud_plugin_host::{ClusterSummary, RoleData, RoleHandle};

use super::instances;
use crate::aws::{self, tag};
use crate::bail_user;
use crate::ctx::Context;
use crate::errors::Result;
use crate::ssh::remote::{quote, Remote};

/// The tag naming a node's leader (the leader's own ID on the leader); nodes read it at boot.
pub use cgcloud_agent::discover::LEADER_TAG;
/// The tag with a node's place in its cluster: 0 for the leader, 1… for workers.
pub const ORDINAL_TAG: &str = "cluster_ordinal";

/// A role of a cluster type, ready to use.
pub struct NodeRole {
    pub handle: Arc<RoleHandle>,
    pub data: RoleData,
}

/// A cluster's nodes.
pub struct Nodes {
    pub leader: Instance,
    /// Ordered by `cluster_ordinal`.
    pub workers: Vec<Instance>,
}

impl Nodes {
    /// The leader with its label, unless skipped.
    pub fn leader(&self, skip: bool) -> Vec<(String, &Instance)> {
        if skip {
            Vec::new()
        } else {
            vec![("leader".to_string(), &self.leader)]
        }
    }

    /// The workers with their labels.
    pub fn workers(&self) -> Vec<(String, &Instance)> {
        self.workers.iter().map(|w| (worker_label(w), w)).collect()
    }
}

/// A worker as output and errors name it: `worker-N`, N its cluster ordinal.
pub fn worker_label(i: &Instance) -> String {
    match tag(i.tags(), ORDINAL_TAG) {
        Some(n) => format!("worker-{n}"),
        None => format!("worker-{}", i.instance_id().unwrap_or_default()),
    }
}

/// Finds the cluster: its leader by `cluster_name` and `ordinal` among the leader role's
/// boxes, then that leader's workers.
pub async fn bind(
    ctx: &Context,
    cluster: &ClusterSummary,
    leader_role: &str,
    worker_role: &str,
    cluster_name: Option<&str>,
    ordinal: i64,
) -> Result<Nodes> {
    // Leaders are the leader role's boxes at cluster ordinal 0 (a box made by `create` leads a
    // cluster of one); when leader and worker share a role, that tells them apart.
    let leaders: Vec<Instance> = instances::list(ctx, leader_role, cluster_name)
        .await?
        .into_iter()
        .filter(|i| matches!(tag(i.tags(), ORDINAL_TAG), Some("0") | None))
        .collect();
    let in_cluster = cluster_name
        .map(|c| format!(" named `{c}`"))
        .unwrap_or_default();
    if leaders.is_empty() {
        bail_user!(
            "no cluster of type `{}`{in_cluster} found: no box of its leader role `{leader_role}` in namespace `{}`",
            cluster.name,
            ctx.namespace
        );
    }
    let Some(leader) = crate::names::at_ordinal(&leaders, ordinal).cloned() else {
        bail_user!(
            "no cluster of type `{}`{in_cluster} at ordinal {ordinal}: there are {} (ordinals 0 to {}, or -1 to -{})",
            cluster.name,
            leaders.len(),
            leaders.len() - 1,
            leaders.len()
        );
    };
    let id = leader.instance_id().unwrap_or_default().to_string();
    let mut workers = aws::instances_named(
        &ctx.aws.ec2(),
        &ctx.aws_name(worker_role)?,
        &[(LEADER_TAG, &id)],
    )
    .await?;
    // The leader itself, when leader and worker share a role.
    workers.retain(|w| w.instance_id() != Some(id.as_str()));
    workers.sort_by_key(|w| {
        tag(w.tags(), ORDINAL_TAG)
            .and_then(|o| o.parse::<u64>().ok())
            .unwrap_or(u64::MAX)
    });
    Ok(Nodes { leader, workers })
}

/// `n` new cluster ordinals next to `existing` ones: the smallest unused from 1 on, so gaps
/// are filled first (as the original's `grow-cluster` did).
pub fn allocate_ordinals(existing: &[u32], n: usize) -> Vec<u32> {
    let mut out = Vec::with_capacity(n);
    let mut next = 1u32;
    while out.len() < n {
        if !existing.contains(&next) {
            out.push(next);
        }
        next += 1;
    }
    out
}

/// Runs `work` on every node of `nodes`, at most `threads` at once, and returns the labels of
/// those where it failed, each with its error.
pub async fn each<'a, F, Fut>(
    nodes: Vec<(String, &'a Instance)>,
    threads: usize,
    work: F,
) -> Vec<(String, String)>
where
    F: Fn(&'a Instance) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    use futures_util::stream::{self, StreamExt};
    let results: Vec<(String, Result<()>)> = stream::iter(nodes)
        .map(|(label, i)| {
            let fut = work(i);
            async move { (label, fut.await) }
        })
        .buffer_unordered(threads.max(1))
        .collect()
        .await;
    let mut failed: Vec<(String, String)> = results
        .into_iter()
        .filter_map(|(label, r)| r.err().map(|e| (label, crate::errors::one_line(&e))))
        .collect();
    failed.sort();
    failed
}

/// One error line naming every node that failed and why.
pub fn failure(what: &str, failed: &[(String, String)]) -> anyhow::Error {
    let list: Vec<String> = failed
        .iter()
        .map(|(node, why)| format!("{node}: {why}"))
        .collect();
    crate::user_error!(
        "{what} failed on {} node(s): {}",
        failed.len(),
        list.join("; ")
    )
}

/// The secret a cluster's nodes share (a munge key, say): made when the leader is created,
/// written to each node over SSH with its verified host key before the node's
/// `on_instance_ready`, and read back from the leader when workers are added. cgcloud keeps no
/// copy; it is never in user data, tags or images.
#[derive(Clone)]
pub struct ClusterSecret {
    pub spec: SharedSecret,
    bytes: Vec<u8>,
}

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ClusterSecret({}, {} bytes)",
            self.spec.path,
            self.bytes.len()
        )
    }
}

impl ClusterSecret {
    /// Checks what the cluster type `cluster` declares, before anything is launched: a usable
    /// secret, and SSH to write it (not `-Q`, `quick`).
    pub fn check(cluster: &ClusterSummary, quick: bool) -> Result<Option<&SharedSecret>> {
        match &cluster.shared_secret {
            Some(s) => match s.problem() {
                Some(p) => bail_user!(
                    "cluster type `{}` of plugin `{}` declares an unusable {p}; tell its authors",
                    cluster.name,
                    cluster.plugin
                ),
                None if quick => bail_user!(
                    "the nodes of a `{}` cluster need their shared secret, written once SSH answers; leave out -Q",
                    cluster.name
                ),
                None => Ok(Some(s)),
            },
            None => Ok(None),
        }
    }

    /// A new secret of `spec.bytes` random bytes.
    pub fn generate(spec: &SharedSecret) -> Result<Self> {
        Ok(Self {
            spec: spec.clone(),
            bytes: crate::fsutil::random_bytes(spec.bytes as usize)?,
        })
    }

    /// Runs `script` on the box behind `remote` as the secret's owner, with `input`. The owner
    /// (not root) reads and writes the file: its folder belongs to that account, which could
    /// otherwise lead root's writes or reads elsewhere through a link it plants.
    async fn as_owner(
        &self,
        remote: &Remote,
        script: &str,
        input: Option<&[u8]>,
        what: &str,
    ) -> Result<String> {
        let command = format!(
            "sudo -n -u {} sh -c {}",
            quote(&self.spec.owner),
            quote(script)
        );
        let out = remote.run_with_stdin(&command, input).await?;
        if out.status != 0 {
            bail_user!(
                "{}",
                crate::ssh::remote::failure(&remote.target.instance_id, what, &out)
            );
        }
        Ok(out.stdout)
    }

    /// The secret as the leader (reached through `remote`) has it.
    pub async fn read(remote: &Remote, spec: &SharedSecret) -> Result<Self> {
        use base64::Engine;
        let reader = Self {
            spec: spec.clone(),
            bytes: Vec::new(),
        };
        let stdout = reader
            .as_owner(
                remote,
                &format!("base64 -w0 < {}", quote(&spec.path)),
                None,
                &format!("reading the cluster's shared secret `{}`", spec.path),
            )
            .await?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(stdout.trim())
            .map_err(|e| {
                crate::user_error!(
                    "the leader's shared secret `{}` did not come back readable: {e}",
                    spec.path
                )
            })?;
        if bytes.len() < 16 {
            bail_user!(
                "the leader's shared secret `{}` holds {} bytes, too few to be the cluster's",
                spec.path,
                bytes.len()
            );
        }
        Ok(Self {
            spec: spec.clone(),
            bytes,
        })
    }

    /// Writes the secret to its file on the box behind `remote`, atomically, as its owner and
    /// with its mode; the file's folder must exist and be writable by the owner.
    pub async fn push(&self, remote: &Remote) -> Result<()> {
        use base64::Engine;
        let path = quote(&self.spec.path);
        let script = format!(
            "set -e; umask 077; t=$(mktemp \"$(dirname {path})/.cgcloud-secret.XXXXXXXX\"); \
             trap 'rm -f -- \"$t\"' EXIT; base64 -d > \"$t\"; chmod {mode:o} -- \"$t\"; \
             mv -f -- \"$t\" {path}; trap - EXIT",
            mode = self.spec.mode,
        );
        let data = base64::engine::general_purpose::STANDARD.encode(&self.bytes);
        self.as_owner(
            remote,
            &script,
            Some(data.as_bytes()),
            &format!("writing the cluster's shared secret `{}`", self.spec.path),
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_fill_gaps_first() {
        assert_eq!(allocate_ordinals(&[], 3), [1, 2, 3]);
        assert_eq!(allocate_ordinals(&[1, 2, 5], 3), [3, 4, 6]);
        assert_eq!(allocate_ordinals(&[2], 1), [1]);
        assert_eq!(allocate_ordinals(&[1, 2], 0), Vec::<u32>::new());
    }
}
