//! The instance-storage feature: instance-store disks (NVMe on Nitro, `/dev/xvd*`/`/dev/sd*`
//! on Xen) mounted at `/mnt/ephemeral`, striped into RAID 0 when there are several, on every
//! boot. The work is done by one POSIX shell script, [`SCRIPT`] (at the end of this file, where
//! its rules are written down), installed as [`SCRIPT_PATH`]. It is run for real against a fake
//! `/sys` and `/dev` by `tests/ephemeral_script.rs`.
//!
//! Hooks it contributes to, in order:
//! 1. `cloud_config` ([`cloud_init`]): a `bootcmd` that writes the script and runs it on every
//!    boot, before SSH answers, and a `mounts` entry that keeps cloud-init from mounting
//!    `ephemeral0` at `/mnt` itself;
//! 2. `install_packages` ([`setup`], right after the package manager installed
//!    [`RAID_PACKAGE`]): installs the script and runs it once more, because on a first boot
//!    with several disks `mdadm` may not have been there yet when `bootcmd` ran (the script
//!    then leaves the disks alone). A role whose set-up installs no `mdadm` (every built-in
//!    role's does) relies on the boot-time run alone. Either way, a role's own
//!    `post_install_packages` finds the disks mounted.
//!
//! NOTE: on Xen instance types the disks exist only when the launch's block-device mapping
//! (or the image's) names them; Nitro instance types attach them whatever the mapping says.

use cgcloud_plugin_api::prelude::*;

use crate::cloud_init::CloudInit;

/// Where the script is installed on a box.
pub const SCRIPT_PATH: &str = "/usr/local/sbin/cgcloud-ephemeral-disks";
/// The package that assembles RAID arrays; installing it triggers [`setup`].
pub const RAID_PACKAGE: &str = "mdadm";
/// Where the disks are mounted.
pub const MOUNT_POINT: &str = "/mnt/ephemeral";

/// The here-document delimiter of the `bootcmd` entry; the script must not contain it.
const EOF_MARK: &str = "CGCLOUD_EPHEMERAL_DISKS_EOF";

/// The `bootcmd` entry: write the script, then run it.
pub fn bootcmd() -> String {
    format!(
        "mkdir -p /usr/local/sbin && cat > {SCRIPT_PATH} <<'{EOF_MARK}' && chmod 755 {SCRIPT_PATH} && {SCRIPT_PATH}\n{SCRIPT}{EOF_MARK}"
    )
}

/// The feature's cloud-config contribution.
pub fn cloud_init() -> CloudInit {
    CloudInit::new().bootcmd(bootcmd()).unmount("ephemeral0")
}

/// Installs the script and runs it.
pub fn setup(cx: &Cx<'_>) -> Result<()> {
    cx.sudo_put_file(SCRIPT_PATH, SCRIPT.as_bytes(), 0o755)?;
    cx.sudo(SCRIPT_PATH)?;
    Ok(())
}

/// The disk script. It must stay POSIX `sh` (dash on Debian and Ubuntu, bash on the RHEL
/// family) and must not contain the here-document delimiter of [`bootcmd`].
pub const SCRIPT: &str = r##"#!/bin/sh
# cgcloud-ephemeral-disks: mounts an EC2 instance's instance-store disks at /mnt/ephemeral,
# striped into one RAID 0 array when there are several. cgcloud runs it at every boot (from
# cloud-config bootcmd) and once during set-up. It is idempotent and does nothing on an
# instance without instance-store disks.
#
# Instance-store disks are NVMe namespaces whose model is "Amazon EC2 NVMe Instance Storage"
# (Nitro), and the /dev/sd[b-z] or /dev/xvd[b-z] disks the instance metadata maps to an
# `ephemeralN` name (Xen). EBS volumes are never touched; neither is a disk that is mounted,
# partitioned or used by LVM or device-mapper. The file system carries the label
# `cgcloud-eph`: one that has it is mounted, anything else on the disks is replaced (instance
# storage is scratch space, and blank again after every stop). mdadm.conf and the initramfs
# are left alone, so the same steps work on Debian, Ubuntu and the RHEL family.
#
# CGCLOUD_EPHEMERAL_ROOT, when set, is a directory holding a fake sys/, dev/ and proc/mounts
# that the script works on instead of the real ones (tests).
set -eu

root=${CGCLOUD_EPHEMERAL_ROOT:-}
mount_point=/mnt/ephemeral
label=cgcloud-eph
array=cgcloud-eph
nvme_model="Amazon EC2 NVMe Instance Storage"

say() { echo "cgcloud-ephemeral-disks: $*" >&2; }

if [ -z "$root" ] && command -v systemd-detect-virt >/dev/null 2>&1 \
    && systemd-detect-virt --container --quiet; then
    say "running in a container, which has no instance-store disks; nothing to do"
    exit 0
fi

is_block() {
    if [ -n "$root" ]; then [ -f "$1" ]; else [ -b "$1" ]; fi
}

# Whether a device or a directory appears in the mount table.
is_mounted() {
    awk -v x="$1" '$1 == x || $2 == x { found = 1 } END { exit !found }' "$root/proc/mounts"
}

if is_mounted "$root$mount_point"; then
    say "$mount_point is mounted already"
    exit 0
fi

# Whether disk $1 (a name under /dev) is free for instance storage.
usable() {
    is_block "$root/dev/$1" || return 1
    if is_mounted "$root/dev/$1"; then
        say "leaving /dev/$1 alone: it is mounted"
        return 1
    fi
    for part in "$root/sys/block/$1/$1"*; do
        if [ -e "$part/partition" ]; then
            say "leaving /dev/$1 alone: it has partitions"
            return 1
        fi
    done
    for holder in "$root/sys/block/$1/holders/"*; do
        case ${holder##*/} in
        '*' | md*) ;;
        *)
            say "leaving /dev/$1 alone: ${holder##*/} uses it"
            return 1
            ;;
        esac
    done
    return 0
}

disks=""
add() {
    case " $disks " in *" $1 "*) return 0 ;; esac
    if usable "$1"; then disks="$disks $1"; fi
}

# Nitro: instance-store NVMe namespaces, told apart from EBS by their model.
for dir in "$root"/sys/block/nvme*; do
    [ -f "$dir/device/model" ] || continue
    model=$(sed 's/[[:space:]]*$//' "$dir/device/model")
    if [ "$model" = "$nvme_model" ]; then add "${dir##*/}"; fi
done

# Xen: disks look alike, so ask the instance metadata (IMDSv2) which ones are instance
# storage. Only asked when such disks exist; without an answer they are left alone.
imds() {
    curl -fsS --connect-timeout 1 --max-time 3 "$@"
}
xen=""
for dev in "$root"/dev/xvd[b-z] "$root"/dev/sd[b-z]; do
    if is_block "$dev" && [ ! -L "$dev" ]; then xen=1; fi
done
if [ -n "$xen" ] && command -v curl >/dev/null 2>&1; then
    base=http://169.254.169.254/latest
    if token=$(imds -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 60" "$base/api/token" 2>/dev/null) \
        && keys=$(imds -H "X-aws-ec2-metadata-token: $token" "$base/meta-data/block-device-mapping/" 2>/dev/null); then
        for key in $keys; do
            case $key in ephemeral*) ;; *) continue ;; esac
            dev=$(imds -H "X-aws-ec2-metadata-token: $token" "$base/meta-data/block-device-mapping/$key" 2>/dev/null) || continue
            dev=${dev#/dev/}
            case $dev in
            sd*) names="$dev xvd${dev#sd}" ;;
            xvd*) names="$dev sd${dev#xvd}" ;;
            *) names=$dev ;;
            esac
            for name in $names; do
                if [ ! -L "$root/dev/$name" ] && is_block "$root/dev/$name"; then add "$name"; fi
            done
        done
    else
        say "the instance metadata did not say which disks are instance storage; leaving them alone"
    fi
fi

# shellcheck disable=SC2086 # the names are words on purpose
set -- $disks
if [ $# -eq 0 ]; then
    say "no instance-store disks"
    exit 0
fi

fs_label() {
    blkid -p -s LABEL -o value "$1" 2>/dev/null || true
}

if [ $# -eq 1 ]; then
    device="$root/dev/$1"
else
    if ! command -v mdadm >/dev/null 2>&1; then
        say "$# instance-store disks need mdadm, which is not installed yet; set-up installs it and runs this again"
        exit 0
    fi
    device=""
    # An array the kernel assembled from these disks already (udev does at boot).
    for name in "$@"; do
        for holder in "$root/sys/block/$name/holders/"md*; do
            if [ -e "$holder" ]; then
                device="$root/dev/${holder##*/}"
                break 2
            fi
        done
    done
    if [ -z "$device" ]; then
        device="$root/dev/md/$array"
        members=""
        all_members=1
        for name in "$@"; do
            members="$members $root/dev/$name"
            kind=$(blkid -p -s TYPE -o value "$root/dev/$name" 2>/dev/null || true)
            [ "$kind" = linux_raid_member ] || all_members=""
        done
        # shellcheck disable=SC2086
        if [ -n "$all_members" ] && mdadm --assemble "$device" $members; then
            say "assembled $device from$members"
        else
            say "striping$members into $device"
            # shellcheck disable=SC2086
            mdadm --create "$device" --run --level=0 --raid-devices=$# --name="$array" $members
        fi
    fi
fi

if [ "$(fs_label "$device")" != "$label" ]; then
    say "making a file system on $device"
    mkfs.ext4 -q -F -L "$label" -E nodiscard "$device"
fi
mkdir -p "$root$mount_point"
mount -t ext4 "$device" "$root$mount_point"
say "mounted $device at $mount_point"
"##;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootcmd_writes_the_whole_script_and_runs_it() {
        let cmd = bootcmd();
        let (first, rest) = cmd.split_once('\n').expect("a here-document");
        assert_eq!(
            first,
            "mkdir -p /usr/local/sbin && cat > /usr/local/sbin/cgcloud-ephemeral-disks <<'CGCLOUD_EPHEMERAL_DISKS_EOF' && chmod 755 /usr/local/sbin/cgcloud-ephemeral-disks && /usr/local/sbin/cgcloud-ephemeral-disks"
        );
        assert_eq!(rest, format!("{SCRIPT}{EOF_MARK}"));
        assert!(SCRIPT.ends_with('\n'), "the delimiter starts a line");
        assert_eq!(
            cmd.matches(EOF_MARK).count(),
            2,
            "the script never ends the here-document"
        );
    }

    #[test]
    fn script_finds_both_disk_kinds_and_never_touches_ebs() {
        assert!(SCRIPT.starts_with("#!/bin/sh\n"));
        assert!(SCRIPT.contains("nvme_model=\"Amazon EC2 NVMe Instance Storage\""));
        assert!(SCRIPT.contains("/dev/xvd[b-z] \"$root\"/dev/sd[b-z]"));
        assert!(SCRIPT.contains("case $key in ephemeral*)"));
        assert!(SCRIPT.contains(&format!("\nmount_point={MOUNT_POINT}\n")));
        assert!(SCRIPT.contains("mdadm --create \"$device\" --run --level=0"));
        // Distribution-specific steps of the original (Debian's paths) are gone.
        assert!(!SCRIPT.contains("update-initramfs"));
        assert!(!SCRIPT.contains("mdadm.conf\n"));
        // The container guard comes before any disk is looked at.
        let guard = SCRIPT
            .find("systemd-detect-virt --container")
            .expect("guard");
        assert!(guard < SCRIPT.find("/sys/block/nvme").expect("scan"));
    }
}
