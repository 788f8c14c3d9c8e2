//! Persistent EBS volumes of cluster nodes (`create-cluster --ebs-volume-size GB`), as the
//! original's: one per node, named `<node's Name tag>__<cluster ordinal>`, in the node's zone,
//! tagged with the namespace and the cluster's name, so that a cluster made again under the
//! same name finds its nodes' data again.
//!
//! Unlike the original (where each node attached its own volume at boot, with EC2 rights in its
//! instance profile), cgcloud finds or creates each volume and attaches it as `/dev/sdf` while it
//! sets the node up; then, over the verified SSH connection, it formats the volume if it is
//! blank (never otherwise) and mounts it at `/mnt/persistent` with an `/etc/fstab` entry, so it
//! is mounted again at every later boot, however the node is started (the volume stays
//! attached while the node is stopped). Nodes need no EC2 rights.
//! `terminate-cluster` keeps the volumes unless asked to delete them.

use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{
    Filter, ResourceType, Tag, TagSpecification, Volume, VolumeAttachmentState, VolumeState,
    VolumeType,
};

use super::prepare::OWNER_TAG;
use crate::aws::{tag, AwsResultExt};
use crate::bail_user;
use crate::ctx::Context;
use crate::errors::Result;
use crate::ssh::remote::{quote, Remote};

/// The tag with a node's volume size in GB (`0`: none), as the original's boot tools read it.
pub const SIZE_TAG: &str = "ebs_volume_size";
/// Where the volume is mounted on the node.
pub const MOUNT_POINT: &str = "/mnt/persistent";
/// The device name the volume is attached under (`/dev/xvdf`, or an NVMe device, on the box).
pub const DEVICE: &str = "/dev/sdf";
/// EBS's limits for gp3 volumes, in GiB.
pub const MIN_GB: u32 = 1;
pub const MAX_GB: u32 = 16384;
/// How long a new volume may take to become available, and an attachment to complete.
const WAIT: Duration = Duration::from_secs(300);

/// A node's persistent volume: its name, its cluster and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSpec {
    /// `<node's Name tag>__<cluster ordinal>`.
    pub name: String,
    /// The cluster's name (`cluster_name` tag).
    pub cluster: String,
    pub size_gb: u32,
    /// The zone of the node, and so of its volume.
    pub zone: String,
}

impl VolumeSpec {
    pub fn new(
        node_name: &str,
        ordinal: u32,
        cluster: &str,
        size_gb: u32,
        zone: &str,
    ) -> VolumeSpec {
        VolumeSpec {
            name: volume_name(node_name, &ordinal.to_string()),
            cluster: cluster.to_string(),
            size_gb,
            zone: zone.to_string(),
        }
    }
}

/// The name of the volume of the node named `node_name` (its Name tag) at cluster ordinal
/// `ordinal`, as the original named them.
pub fn volume_name(node_name: &str, ordinal: &str) -> String {
    format!("{node_name}__{ordinal}")
}

/// Checks `--ebs-volume-size` before anything is launched.
pub fn check_size(gb: u32) -> Result<()> {
    if !(MIN_GB..=MAX_GB).contains(&gb) {
        bail_user!(
            "--ebs-volume-size {gb} is out of range: an EBS volume has {MIN_GB} to {MAX_GB} GB"
        );
    }
    Ok(())
}

/// The size the `ebs_volume_size` tag of a node gives its cluster's new workers (`None` for a
/// missing tag, `0` or a value that is no size).
pub fn size_of(tags: &[Tag]) -> Option<u32> {
    tag(tags, SIZE_TAG)
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|gb| (MIN_GB..=MAX_GB).contains(gb))
}

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// The volumes of this namespace tagged with cluster `cluster` (and, if given, named `name`),
/// that are not being deleted.
pub async fn find(ctx: &Context, cluster: &str, name: Option<&str>) -> Result<Vec<Volume>> {
    let mut req = ctx
        .aws
        .ec2()
        .describe_volumes()
        .filters(filter(&format!("tag:{OWNER_TAG}"), ctx.namespace.as_str()))
        .filters(filter("tag:cluster_name", cluster));
    if let Some(n) = name {
        req = req.filters(filter("tag:Name", n));
    }
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = req
            .clone()
            .set_next_token(token)
            .send()
            .await
            .aws(|| format!("failed to list the volumes of cluster `{cluster}`"))?;
        out.extend(page.volumes().iter().cloned());
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    // Only what carries the namespace's ownership tag exactly (filters match, this checks).
    out.retain(|v| {
        tag(v.tags(), OWNER_TAG) == Some(ctx.namespace.as_str())
            && !matches!(
                v.state(),
                Some(VolumeState::Deleting) | Some(VolumeState::Deleted)
            )
    });
    Ok(out)
}

async fn describe(ctx: &Context, id: &str) -> Result<Volume> {
    let out = ctx
        .aws
        .ec2()
        .describe_volumes()
        .volume_ids(id)
        .send()
        .await
        .aws(|| format!("failed to describe volume `{id}`"))?;
    out.volumes()
        .first()
        .cloned()
        .ok_or_else(|| crate::user_error!("volume `{id}` has disappeared"))
}

/// Waits until `check` holds for volume `id`, polling; fails after [`WAIT`] naming `what`.
async fn wait_for(
    ctx: &Context,
    id: &str,
    what: &str,
    check: impl Fn(&Volume) -> bool,
) -> Result<Volume> {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = describe(ctx, id).await?;
        if check(&v) {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail_user!(
                "volume `{id}` did not become {what} within {}s (it is `{}`)",
                WAIT.as_secs(),
                v.state().map(|s| s.as_str()).unwrap_or("unknown")
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn attached_to(v: &Volume, instance_id: &str) -> bool {
    v.attachments().iter().any(|a| {
        a.instance_id() == Some(instance_id) && a.state() == Some(&VolumeAttachmentState::Attached)
    })
}

/// Finds node `instance_id`'s volume in `zone` (or creates it) and attaches it as [`DEVICE`];
/// returns its ID. A volume of that name attached to another instance is an error, never
/// taken over.
pub async fn attach(ctx: &Context, instance_id: &str, spec: &VolumeSpec) -> Result<String> {
    let zone = spec.zone.as_str();
    let found: Vec<Volume> = find(ctx, &spec.cluster, Some(&spec.name))
        .await?
        .into_iter()
        .filter(|v| v.availability_zone() == Some(zone))
        .collect();
    if found.len() > 1 {
        let ids: Vec<&str> = found.iter().filter_map(|v| v.volume_id()).collect();
        bail_user!(
            "{} volumes are named `{}` in {zone} for cluster `{}` ({}); delete all but one",
            found.len(),
            spec.name,
            spec.cluster,
            ids.join(", ")
        );
    }
    let ec2 = ctx.aws.ec2();
    let volume = match found.into_iter().next() {
        Some(v) => {
            let id = v.volume_id().unwrap_or_default().to_string();
            if attached_to(&v, instance_id) {
                return Ok(id);
            }
            if v.attachments()
                .iter()
                .any(|a| a.instance_id() == Some(instance_id))
            {
                // Being attached to this node already (an earlier try): wait for it.
                wait_for(ctx, &id, "attached", |v| attached_to(v, instance_id)).await?;
                return Ok(id);
            }
            if let Some(other) = v.attachments().iter().find_map(|a| a.instance_id()) {
                bail_user!(
                    "volume `{id}` (`{}`) is attached to `{other}`; a node's volume serves one node",
                    spec.name
                );
            }
            let size = v.size().unwrap_or_default();
            if i64::from(spec.size_gb) != i64::from(size) {
                ctx.shell.warn(format!(
                    "{instance_id}: reusing volume `{id}` (`{}`) of {size} GB, not {} GB",
                    spec.name, spec.size_gb
                ));
            } else {
                ctx.shell.info(format!(
                    "{instance_id}: reusing volume `{id}` (`{}`)",
                    spec.name
                ));
            }
            v
        }
        None => {
            let tags = [
                ("Name", spec.name.as_str()),
                (OWNER_TAG, ctx.namespace.as_str()),
                ("cluster_name", spec.cluster.as_str()),
            ]
            .map(|(k, v)| Tag::builder().key(k).value(v).build());
            let out = ec2
                .create_volume()
                .availability_zone(zone)
                .size(i32::try_from(spec.size_gb).unwrap_or(i32::MAX))
                .volume_type(VolumeType::Gp3)
                .tag_specifications(
                    TagSpecification::builder()
                        .resource_type(ResourceType::Volume)
                        .set_tags(Some(tags.to_vec()))
                        .build(),
                )
                .send()
                .await
                .aws(|| {
                    format!(
                        "failed to create the {} GB volume `{}` for `{instance_id}`",
                        spec.size_gb, spec.name
                    )
                })?;
            let id = out.volume_id().unwrap_or_default().to_string();
            ctx.shell.info(format!(
                "{instance_id}: created volume `{id}` (`{}`, {} GB)",
                spec.name, spec.size_gb
            ));
            wait_for(ctx, &id, "available", |v| {
                v.state() == Some(&VolumeState::Available)
            })
            .await?
        }
    };
    let id = volume.volume_id().unwrap_or_default().to_string();
    if volume.state() != Some(&VolumeState::Available) {
        wait_for(ctx, &id, "available", |v| {
            v.state() == Some(&VolumeState::Available)
        })
        .await?;
    }
    ec2.attach_volume()
        .volume_id(&id)
        .instance_id(instance_id)
        .device(DEVICE)
        .send()
        .await
        .aws(|| format!("failed to attach volume `{id}` to `{instance_id}`"))?;
    wait_for(ctx, &id, "attached", |v| attached_to(v, instance_id)).await?;
    Ok(id)
}

/// The unit that mounts the persistent volume at every boot (and at `create-cluster`).
pub const UNIT: &str = "cgcloud-persistent.service";

/// The script that makes volume `volume_id` (attached as [`DEVICE`]) the box's
/// [`MOUNT_POINT`]: waits for its device, makes an ext4 file system only if the device holds
/// none, puts an `/etc/fstab` entry under the device's stable name in place of an earlier one
/// of cgcloud's, and installs and starts [`UNIT`], which mounts it at every boot. (A unit, not
/// fstab alone: fstab's device entries are skipped in containers, and the unit waits for a
/// device that appears late.)
pub fn mount_script(volume_id: &str) -> String {
    // On Nitro instances EBS volumes are NVMe devices whose serial is the volume ID without
    // its dash (udev names them by it); elsewhere the device keeps its name, or Xen's `xvd` one.
    let serial = volume_id.replace('-', "");
    format!(
        r#"set -eu
path=
i=0
while [ -z "$path" ]; do
  for d in /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_{serial} {DEVICE} /dev/xvdf; do
    if [ -b "$d" ]; then path=$d; break; fi
  done
  if [ -z "$path" ]; then
    i=$((i + 1))
    if [ "$i" -gt 120 ]; then echo "volume {volume_id} did not appear as a block device within 120 s" >&2; exit 1; fi
    sleep 1
  fi
done
# blkid exits 2 when it finds nothing on the device: only then is it blank.
rc=0
blkid -p "$path" >/dev/null 2>&1 || rc=$?
case $rc in
  0) ;;
  2)
    # Debian 13 no longer installs e2fsprogs everywhere.
    if ! command -v mkfs.ext4 >/dev/null; then
      command -v apt-get >/dev/null || {{ echo "mkfs.ext4 is missing and there is no apt-get to install e2fsprogs" >&2; exit 1; }}
      export DEBIAN_FRONTEND=noninteractive
      apt-get install -y -q e2fsprogs >/dev/null || {{ apt-get update -q >/dev/null && apt-get install -y -q e2fsprogs >/dev/null; }}
    fi
    mkfs.ext4 -q -L cgcloud-data "$path" ;;
  *) echo "blkid could not read $path (exit $rc); not formatting or mounting it" >&2; exit 1 ;;
esac
mkdir -p {mnt}
sed -i '/ # cgcloud persistent volume$/d' /etc/fstab
printf '%s {mnt} auto defaults,nofail,noauto 0 2 # cgcloud persistent volume\n' "$path" >> /etc/fstab
cat > /usr/local/sbin/cgcloud-mount-persistent <<'END'
#!/bin/sh
# Written by cgcloud: mounts this node's persistent volume (device $1) at {mnt}.
set -eu
i=0
until [ -b "$1" ]; do
  i=$((i + 1))
  if [ "$i" -gt 120 ]; then echo "$1 did not appear within 120 s" >&2; exit 1; fi
  sleep 1
done
mountpoint -q {mnt} || mount {mnt}
END
chmod 755 /usr/local/sbin/cgcloud-mount-persistent
cat > /etc/systemd/system/{UNIT} <<END
[Unit]
Description=cgcloud: mount this node's persistent volume at {mnt}
After=local-fs.target
Before=cloud-final.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/cgcloud-mount-persistent $path

[Install]
WantedBy=multi-user.target
END
systemctl daemon-reload
systemctl enable --quiet {UNIT}
systemctl restart {UNIT}
"#,
        mnt = quote(MOUNT_POINT)
    )
}

/// Mounts volume `volume_id` on the box behind `remote` ([`mount_script`]).
pub async fn mount(remote: &Remote, volume_id: &str) -> Result<()> {
    remote
        .run_as_root(
            &mount_script(volume_id),
            None,
            &format!("mounting volume `{volume_id}` at {MOUNT_POINT}"),
        )
        .await
        .map(|_| ())
}

/// Deletes `volumes` once each is detached (its instance terminated); returns the IDs of those
/// that could not be deleted, each with why.
pub async fn delete(ctx: &Context, volumes: &[Volume]) -> Vec<(String, String)> {
    let mut failed = Vec::new();
    for v in volumes {
        let id = v.volume_id().unwrap_or_default().to_string();
        let result = async {
            wait_for(ctx, &id, "detached", |v| {
                v.state() == Some(&VolumeState::Available)
            })
            .await?;
            ctx.aws
                .ec2()
                .delete_volume()
                .volume_id(&id)
                .send()
                .await
                .aws(|| format!("failed to delete volume `{id}`"))?;
            Ok::<_, anyhow::Error>(())
        }
        .await;
        match result {
            Ok(()) => ctx.shell.info(format!("deleted volume `{id}`")),
            Err(e) => failed.push((id, crate::errors::one_line(&e))),
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_are_named_after_the_node_and_its_ordinal() {
        let s = VolumeSpec::new("alice_slurm-box", 3, "c1", 10, "us-west-2a");
        assert_eq!(s.name, "alice_slurm-box__3");
        assert_eq!(s.cluster, "c1");
    }

    #[test]
    fn sizes_are_checked_and_read_back_from_tags() {
        assert!(check_size(0).is_err());
        assert!(check_size(1).is_ok());
        assert!(check_size(MAX_GB).is_ok());
        assert!(check_size(MAX_GB + 1).is_err());
        let t = |v: &str| [Tag::builder().key(SIZE_TAG).value(v).build()];
        assert_eq!(size_of(&t("5")), Some(5));
        assert_eq!(size_of(&t("0")), None);
        assert_eq!(size_of(&t("x")), None);
        assert_eq!(size_of(&[]), None);
    }

    #[test]
    fn the_mount_script_formats_only_a_blank_device_and_mounts_it_at_every_boot() {
        let s = mount_script("vol-0123abc");
        assert!(s.contains("nvme-Amazon_Elastic_Block_Store_vol0123abc"));
        assert!(s.contains("mkfs.ext4 -q -L cgcloud-data \"$path\" ;;"));
        assert!(s.contains("apt-get install -y -q e2fsprogs"));
        assert!(s.contains("defaults,nofail,noauto"));
        assert!(s.contains("systemctl enable --quiet cgcloud-persistent.service"));
        assert!(s.starts_with("set -eu"));
    }

    proptest::proptest! {
        /// The size a node's tag holds, whatever anyone wrote there: a size in range or none.
        #[test]
        fn a_size_read_back_is_in_range_or_none(v in "[0-9]{0,12}|.{0,20}") {
            let tags = [Tag::builder().key(SIZE_TAG).value(&v).build()];
            match size_of(&tags) {
                Some(gb) => {
                    proptest::prop_assert!((MIN_GB..=MAX_GB).contains(&gb));
                    proptest::prop_assert_eq!(v.parse::<u32>().ok(), Some(gb));
                }
                None => proptest::prop_assert!(v.parse::<u32>().map_or(true, |n| !(MIN_GB..=MAX_GB).contains(&n))),
            }
        }
    }
}
