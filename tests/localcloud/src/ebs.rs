//! EBS volumes attached to instances, played by loop devices. Each volume is a sparse file in
//! the cloud's folder (`volumes/<vol-id>.img`, as large as the volume, taking only what is
//! written), set up as a loop device whose node appears in the box under the Xen name of the
//! attachment's device (`/dev/sdf` → `/dev/xvdf`, as on EC2's Xen instances): bound in before a
//! boot, so that `/etc/fstab` finds it, and created in a running box when the volume is
//! attached. The root volume is the box's own disk and is left out. The file lives as long as
//! moto has the volume, across the instances it is attached to.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::boxes::Layout;
use crate::moto::{xml_field, Instance, MotoApi};
use crate::util::{self, run_quiet};

/// The most a volume may have here (EBS's own limit, 16 TiB; the file is sparse).
const MAX_GB: u64 = 16384;

/// A volume attached to an instance: its ID, its size, and the device name in the box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub volume: String,
    pub size_gb: u64,
    pub device: String,
}

/// The name a device attached as `ec2` has in the box: `/dev/sdX` and `/dev/xvdX` become
/// `/dev/xvdX`; `None` for root devices and names EC2 would not accept for data volumes.
pub fn box_device(ec2: &str) -> Option<String> {
    let letters = ec2
        .strip_prefix("/dev/sd")
        .or_else(|| ec2.strip_prefix("/dev/xvd"))?;
    let ok = !letters.is_empty()
        && letters.len() <= 2
        && letters.chars().all(|c| c.is_ascii_lowercase())
        && letters != "a";
    ok.then(|| format!("/dev/xvd{letters}"))
}

/// The data volumes moto has attached to `inst` (`DescribeVolumes` by attachment).
pub fn attachments(moto: &MotoApi, inst: &Instance) -> Result<Vec<Attachment>> {
    let body = moto.ec2(
        &inst.owner_id,
        &inst.region_name,
        &format!(
            "Action=DescribeVolumes&Version=2016-11-15&Filter.1.Name=attachment.instance-id&Filter.1.Value.1={}",
            inst.id
        ),
    )?;
    Ok(parse_attachments(&body, &inst.id))
}

/// Each volume item of a `DescribeVolumes` answer ends with its `attachmentSet`: the volume's
/// own fields come before it, the attachment's inside it.
fn parse_attachments(body: &str, instance: &str) -> Vec<Attachment> {
    let mut out = Vec::new();
    for segment in body.split("</attachmentSet>") {
        let Some((own, attachment)) = segment.rsplit_once("<attachmentSet>") else {
            continue;
        };
        let (Some(volume), Some(size), Some(device)) = (
            xml_field(own, "volumeId"),
            xml_field(own, "size").and_then(|s| s.parse::<u64>().ok()),
            xml_field(attachment, "device"),
        ) else {
            continue;
        };
        let attached = xml_field(attachment, "instanceId").as_deref() == Some(instance)
            && matches!(
                xml_field(attachment, "status").as_deref(),
                Some("attached") | Some("attaching")
            );
        let valid_id = volume.len() <= 32
            && volume.starts_with("vol-")
            && volume[4..].chars().all(|c| c.is_ascii_alphanumeric());
        if let (true, true, Some(device)) = (attached, valid_id, box_device(&device)) {
            out.push(Attachment {
                volume,
                size_gb: size.min(MAX_GB),
                device,
            });
        }
    }
    out
}

fn image(l: &Layout, volume: &str) -> PathBuf {
    l.dir.join("volumes").join(format!("{volume}.img"))
}

/// Where moto keeps volume `volume`: `<account> <region>`, kept next to its file.
fn whereabouts(l: &Layout, volume: &str) -> PathBuf {
    l.dir.join("volumes").join(format!("{volume}.where"))
}

/// The loop device playing `a`'s volume (of `inst`'s account and region), set up (and its file
/// made) if need be.
pub fn loop_device(l: &Layout, inst: &Instance, a: &Attachment) -> Result<String> {
    let file = image(l, &a.volume);
    let place = whereabouts(l, &a.volume);
    if !place.exists() {
        std::fs::create_dir_all(l.dir.join("volumes"))
            .context("failed to create the volumes folder")?;
        std::fs::write(&place, format!("{} {}\n", inst.owner_id, inst.region_name))
            .with_context(|| format!("failed to write `{}`", place.display()))?;
    }
    if let Some(dev) = loop_of(&file) {
        return Ok(dev);
    }
    std::fs::create_dir_all(file.parent().unwrap_or(Path::new("/")))
        .context("failed to create the volumes folder")?;
    if !file.exists() {
        let f = std::fs::File::create(&file)
            .with_context(|| format!("failed to create `{}`", file.display()))?;
        f.set_len(a.size_gb << 30)
            .with_context(|| format!("failed to size `{}`", file.display()))?;
    }
    let dev = util::output(
        Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&file),
    )
    .with_context(|| format!("failed to set up a loop device for `{}`", a.volume))?;
    Ok(dev.trim().to_string())
}

/// The loop device already backed by `file`, if any.
fn loop_of(file: &Path) -> Option<String> {
    let out = util::output(Command::new("losetup").arg("-j").arg(file)).ok()?;
    out.lines()
        .next()
        .and_then(|l| l.split(':').next())
        .map(str::to_string)
        .filter(|d| d.starts_with("/dev/loop"))
}

/// `major:minor` of block device `dev`.
fn numbers(dev: &str) -> Result<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(dev).with_context(|| format!("no device `{dev}`"))?;
    let rdev = m.rdev();
    Ok((libc_major(rdev), libc_minor(rdev)))
}

fn libc_major(rdev: u64) -> u32 {
    (((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0x0000_0fff)) as u32
}

fn libc_minor(rdev: u64) -> u32 {
    (((rdev >> 12) & 0xffff_ff00) | (rdev & 0x0000_00ff)) as u32
}

/// nspawn's `--bind` for the volumes attached to `inst` before a boot.
pub fn bind_args(l: &Layout, inst: &Instance, attached: &[Attachment]) -> Result<Vec<String>> {
    attached
        .iter()
        .map(|a| Ok(format!("--bind={}:{}", loop_device(l, inst, a)?, a.device)))
        .collect()
}

/// Makes `a`'s device appear in the running box of `inst` whose init has host PID `init`.
pub fn plug(l: &Layout, inst: &Instance, init: u32, a: &Attachment) -> Result<()> {
    let dev = loop_device(l, inst, a)?;
    let (major, minor) = numbers(&dev)?;
    let script = format!(
        "[ -b {d} ] && [ \"$(stat -c %t:%T {d})\" = \"{major:x}:{minor:x}\" ] || {{ rm -f {d}; mknod {d} b {major} {minor}; chmod 660 {d} 2>/dev/null; true; }}",
        d = a.device
    );
    let status = Command::new("nsenter")
        .args(["-t", &init.to_string(), "-m", "--", "sh", "-c", &script])
        .status()
        .context("failed to run nsenter")?;
    if !status.success() {
        bail!("failed to plug volume `{}` in as `{}`", a.volume, a.device);
    }
    Ok(())
}

/// Removes device `device` from the running box whose init has host PID `init` (a device
/// bound in at boot is a mount point first).
pub fn unplug(init: u32, device: &str) {
    let script = format!("umount -l {device} 2>/dev/null; rm -f {device}");
    run_quiet(Command::new("nsenter").args([
        "-t",
        &init.to_string(),
        "-m",
        "--",
        "sh",
        "-c",
        &script,
    ]));
}

/// Lets go of volume `volume`'s loop device and file (moto deleted it).
fn forget(l: &Layout, volume: &str) {
    let file = image(l, volume);
    if let Some(dev) = loop_of(&file) {
        run_quiet(Command::new("losetup").args(["-d", &dev]));
    }
    let _ = std::fs::remove_file(file);
    let _ = std::fs::remove_file(whereabouts(l, volume));
}

/// Lets go of the volumes moto no longer has (its dump keeps deleted ones, so each is asked
/// for by ID); returns how many.
pub fn sweep(l: &Layout, moto: &MotoApi) -> usize {
    let mut gone = 0;
    for v in known(l) {
        let Ok(place) = std::fs::read_to_string(whereabouts(l, &v)) else {
            continue;
        };
        let mut words = place.split_whitespace();
        let (Some(account), Some(region)) = (words.next(), words.next()) else {
            continue;
        };
        let asked = moto.ec2(
            account,
            region,
            &format!("Action=DescribeVolumes&Version=2016-11-15&VolumeId.1={v}"),
        );
        if let Err(e) = asked {
            if format!("{e:#}").contains("InvalidVolume.NotFound") {
                forget(l, &v);
                gone += 1;
            }
        }
    }
    gone
}

/// The volumes that have a file here.
pub fn known(l: &Layout) -> Vec<String> {
    std::fs::read_dir(l.dir.join("volumes"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .strip_suffix(".img")
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Lets go of every loop device of the cloud (at teardown; the files go with its folder).
pub fn release_all(l: &Layout) {
    for v in known(l) {
        if let Some(dev) = loop_of(&image(l, &v)) {
            run_quiet(Command::new("losetup").args(["-d", &dev]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_devices_get_their_xen_names_and_root_devices_none() {
        assert_eq!(box_device("/dev/sdf").as_deref(), Some("/dev/xvdf"));
        assert_eq!(box_device("/dev/xvdg").as_deref(), Some("/dev/xvdg"));
        assert_eq!(box_device("/dev/sdba").as_deref(), Some("/dev/xvdba"));
        assert_eq!(box_device("/dev/xvda"), None);
        assert_eq!(box_device("/dev/sda1"), None);
        assert_eq!(box_device("/dev/sdf;rm"), None);
        assert_eq!(box_device("/etc/passwd"), None);
    }

    #[test]
    fn attachments_are_read_per_volume_and_the_root_is_left_out() {
        let body = "<volumeSet><item><tagSet><item><key>Name</key><value>x</value></item></tagSet>\
            <volumeId>vol-1</volumeId><size>8</size><attachmentSet><item><volumeId>vol-1</volumeId>\
            <instanceId>i-1</instanceId><device>/dev/xvda</device><status>attached</status></item>\
            </attachmentSet></item><item><volumeId>vol-2</volumeId><size>3</size><attachmentSet>\
            <item><volumeId>vol-2</volumeId><instanceId>i-1</instanceId><device>/dev/sdf</device>\
            <status>attached</status></item></attachmentSet></item><item><volumeId>vol-3</volumeId>\
            <size>3</size><attachmentSet><item><volumeId>vol-3</volumeId><instanceId>i-2</instanceId>\
            <device>/dev/sdg</device><status>attached</status></item></attachmentSet></item></volumeSet>";
        assert_eq!(
            parse_attachments(body, "i-1"),
            [Attachment {
                volume: "vol-2".into(),
                size_gb: 3,
                device: "/dev/xvdf".into()
            }]
        );
    }

    #[test]
    fn device_numbers_split_as_glibc_does() {
        // makedev(7, 3) and makedev(4100, 70000), as glibc composes them.
        assert_eq!((libc_major(0x703), libc_minor(0x703)), (7, 3));
        let (major, minor) = (4100u64, 70000u64);
        let rdev = ((major & 0xfff) << 8)
            | ((major & !0xfff) << 32)
            | (minor & 0xff)
            | ((minor & !0xff) << 12);
        assert_eq!((libc_major(rdev), libc_minor(rdev)), (4100, 70000));
    }
}
