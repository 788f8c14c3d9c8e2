//! The instance-store disk script run for real, by dash (Debian's `sh`) and by bash (the RHEL
//! family's `sh`), against a fake tree: `CGCLOUD_EPHEMERAL_ROOT` points it at a temporary
//! `sys/`, `dev/` and `proc/mounts`, and `PATH` holds only stand-ins for `mdadm`,
//! `mkfs.ext4`, `blkid`, `mount` and `curl` (which keep their state in the tree and log what
//! they were asked) plus the harmless tools the script needs. No real disk, no real mount,
//! no network.
#![allow(clippy::unwrap_used)] // A test crate: an unwrap that fails is a failing test.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use cgcloud_builtin_roles::ephemeral::SCRIPT;

const INSTANCE_STORE: &str = "Amazon EC2 NVMe Instance Storage          \n";
const EBS: &str = "Amazon Elastic Block Store              \n";

/// Stand-ins, sharing `$ROOT` with the script. Devices are regular files; `<dev>.LABEL` and
/// `<dev>.TYPE` next to a device are what blkid reports for it.
const FAKES: &[(&str, &str)] = &[
    (
        "log",
        r#"#!/bin/sh
echo "$*" | sed "s|$CGCLOUD_EPHEMERAL_ROOT||g" >> "$CGCLOUD_EPHEMERAL_ROOT/log"
"#,
    ),
    (
        "blkid",
        r#"#!/bin/sh
key=""; for a; do dev=$a; done
while [ $# -gt 0 ]; do [ "$1" = -s ] && key=$2; shift; done
f="$(readlink -f "$dev").$key"
[ -f "$f" ] || exit 2
cat "$f"
"#,
    ),
    (
        "mkfs.ext4",
        r#"#!/bin/sh
log mkfs.ext4 "$@"
for a; do dev=$a; done
label=""; while [ $# -gt 0 ]; do [ "$1" = -L ] && label=$2; shift; done
dev=$(readlink -f "$dev")
echo "$label" > "$dev.LABEL"
echo ext4 > "$dev.TYPE"
"#,
    ),
    (
        "mdadm",
        r#"#!/bin/sh
log mdadm "$@"
mode=$1; md=$2; shift 2
members=""
for a; do case $a in "$CGCLOUD_EPHEMERAL_ROOT"/dev/*) members="$members $a";; esac; done
if [ "$mode" = --assemble ]; then
    for m in $members; do [ "$(cat "$m.TYPE" 2>/dev/null)" = linux_raid_member ] || exit 1; done
fi
for m in $members; do
    echo linux_raid_member > "$m.TYPE"
    mkdir -p "$CGCLOUD_EPHEMERAL_ROOT/sys/block/${m##*/}/holders/md127"
done
touch "$CGCLOUD_EPHEMERAL_ROOT/dev/md127"
mkdir -p "${md%/*}"
ln -sf "$CGCLOUD_EPHEMERAL_ROOT/dev/md127" "$md"
"#,
    ),
    (
        "mount",
        r#"#!/bin/sh
log mount "$@"
[ "$1" = -t ] && shift 2
echo "$1 $2 ext4 rw 0 0" >> "$CGCLOUD_EPHEMERAL_ROOT/proc/mounts"
"#,
    ),
    (
        "curl",
        r#"#!/bin/sh
method=GET; token=""
for a; do url=$a; done
while [ $# -gt 0 ]; do
    case $1 in
    -X) method=$2 ;;
    -H) case $2 in "X-aws-ec2-metadata-token: "*) token=${2#*: } ;; esac ;;
    esac
    shift
done
log curl "$method" "$url"
imds="$CGCLOUD_EPHEMERAL_ROOT/imds"
[ -d "$imds" ] || exit 7
case $url in
*/api/token) [ "$method" = PUT ] || exit 22; echo TOKEN; exit 0 ;;
esac
[ "$token" = TOKEN ] || exit 22
case $url in
*/block-device-mapping/) cat "$imds/keys" ;;
*/block-device-mapping/*) cat "$imds/${url##*/}" 2>/dev/null || exit 22 ;;
*) exit 22 ;;
esac
"#,
    ),
];

/// Real tools the script and the stand-ins use; nothing that can touch a disk.
const TOOLS: &[&str] = &[
    "awk", "sed", "mkdir", "cat", "ln", "readlink", "touch", "rm",
];

const SHELLS: &[&str] = &["/bin/sh", "/bin/bash"];

struct Tree {
    dir: tempfile::TempDir,
    shell: &'static str,
}

struct Run {
    status: Option<i32>,
    stderr: String,
}

fn which(tool: &str) -> PathBuf {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("`{tool}` is needed to run the disk script's tests"))
}

impl Tree {
    fn new(shell: &'static str) -> Tree {
        let dir = tempfile::tempdir().expect("temp dir");
        let t = Tree { dir, shell };
        for d in ["bin", "tools", "sys/block", "dev", "proc"] {
            fs::create_dir_all(t.path(d)).expect("mkdir");
        }
        fs::write(
            t.path("proc/mounts"),
            "/dev/nvme0n1p1 / ext4 rw 0 0\nproc /proc proc rw 0 0\n",
        )
        .expect("mounts");
        fs::write(t.path("log"), "").expect("log");
        for (name, text) in FAKES {
            let p = t.path(&format!("bin/{name}"));
            fs::write(&p, text).expect("fake");
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        for tool in TOOLS {
            symlink(which(tool), t.path(&format!("tools/{tool}"))).expect("tool");
        }
        fs::write(t.path("script"), SCRIPT).expect("script");
        // The root EBS volume: NVMe, partitioned, mounted.
        t.nvme("nvme0n1", EBS);
        fs::create_dir_all(t.path("sys/block/nvme0n1/nvme0n1p1")).expect("part");
        fs::write(t.path("sys/block/nvme0n1/nvme0n1p1/partition"), "1\n").expect("part");
        t
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn root(&self) -> String {
        self.dir.path().to_string_lossy().into_owned()
    }

    /// An NVMe namespace with a controller model.
    fn nvme(&self, name: &str, model: &str) {
        fs::create_dir_all(self.path(&format!("sys/block/{name}/device"))).expect("sys");
        fs::write(self.path(&format!("sys/block/{name}/device/model")), model).expect("model");
        fs::write(self.path(&format!("dev/{name}")), "").expect("dev");
    }

    /// A Xen or SCSI disk (no model to tell instance storage from EBS).
    fn disk(&self, name: &str) {
        fs::create_dir_all(self.path(&format!("sys/block/{name}"))).expect("sys");
        fs::write(self.path(&format!("dev/{name}")), "").expect("dev");
    }

    /// The instance metadata's block-device mapping.
    fn imds(&self, mapping: &[(&str, &str)]) {
        fs::create_dir_all(self.path("imds")).expect("imds");
        let keys: Vec<&str> = mapping.iter().map(|(k, _)| *k).collect();
        fs::write(self.path("imds/keys"), keys.join("\n") + "\n").expect("keys");
        for (k, v) in mapping {
            fs::write(self.path(&format!("imds/{k}")), v).expect("key");
        }
    }

    fn run(&self) -> Run {
        self.run_with(true)
    }

    fn run_with(&self, with_root: bool) -> Run {
        let mut c = Command::new(self.shell);
        c.arg(self.path("script")).env_clear().env(
            "PATH",
            format!(
                "{}:{}",
                self.path("bin").display(),
                self.path("tools").display()
            ),
        );
        if with_root {
            c.env("CGCLOUD_EPHEMERAL_ROOT", self.root());
        }
        let o = c.output().expect("run the script");
        Run {
            status: o.status.code(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// What the stand-ins were asked, with the tree's path removed; then forgets it.
    fn take_log(&self) -> Vec<String> {
        let text = fs::read_to_string(self.path("log")).expect("log");
        fs::write(self.path("log"), "").expect("log");
        text.lines().map(str::to_string).collect()
    }

    fn mounts(&self) -> String {
        fs::read_to_string(self.path("proc/mounts")).expect("mounts")
    }

    /// A reboot: the mount table is fresh (the disks keep their data).
    fn reboot(&self) {
        fs::write(self.path("proc/mounts"), "/dev/nvme0n1p1 / ext4 rw 0 0\n").expect("mounts");
    }

    fn ok(&self) -> String {
        let r = self.run();
        assert_eq!(r.status, Some(0), "{}: {}", self.shell, r.stderr);
        r.stderr
    }
}

fn each_shell(test: impl Fn(Tree)) {
    for shell in SHELLS {
        if Path::new(shell).exists() {
            test(Tree::new(shell));
        }
    }
}

const MNT: &str = "/mnt/ephemeral";

#[test]
fn without_instance_storage_it_does_nothing() {
    each_shell(|t| {
        let before = t.mounts();
        let err = t.ok();
        assert!(err.contains("no instance-store disks"), "{err}");
        assert_eq!(
            t.take_log(),
            Vec::<String>::new(),
            "nothing asked, not even the metadata"
        );
        assert_eq!(t.mounts(), before);
        assert!(!t.path("mnt").exists());
    });
}

#[test]
fn one_nvme_disk_is_formatted_once_and_mounted_on_every_boot() {
    each_shell(|t| {
        t.nvme("nvme1n1", INSTANCE_STORE);
        t.ok();
        assert_eq!(
            t.take_log(),
            [
                "mkfs.ext4 -q -F -L cgcloud-eph -E nodiscard /dev/nvme1n1",
                "mount -t ext4 /dev/nvme1n1 /mnt/ephemeral",
            ]
        );
        assert!(t.path("mnt/ephemeral").is_dir());
        let root = t.root();
        assert!(t
            .mounts()
            .contains(&format!("{root}/dev/nvme1n1 {root}{MNT} ext4")));

        // Again in the same boot: mounted already, nothing to do.
        let err = t.ok();
        assert!(err.contains("/mnt/ephemeral is mounted already"), "{err}");
        assert_eq!(t.take_log(), Vec::<String>::new());

        // After a reboot the file system is there: mounted, not formatted again.
        t.reboot();
        t.ok();
        assert_eq!(t.take_log(), ["mount -t ext4 /dev/nvme1n1 /mnt/ephemeral"]);
    });
}

#[test]
fn several_nvme_disks_become_one_raid0_array() {
    each_shell(|t| {
        t.nvme("nvme1n1", INSTANCE_STORE);
        t.nvme("nvme2n1", INSTANCE_STORE);
        t.nvme("nvme3n1", EBS); // an attached EBS volume: never touched
        t.ok();
        assert_eq!(
            t.take_log(),
            [
                "mdadm --create /dev/md/cgcloud-eph --run --level=0 --raid-devices=2 --name=cgcloud-eph /dev/nvme1n1 /dev/nvme2n1",
                "mkfs.ext4 -q -F -L cgcloud-eph -E nodiscard /dev/md/cgcloud-eph",
                "mount -t ext4 /dev/md/cgcloud-eph /mnt/ephemeral",
            ]
        );

        // Reboot with the array assembled by the kernel (as /dev/md127): just mounted.
        t.reboot();
        t.ok();
        assert_eq!(t.take_log(), ["mount -t ext4 /dev/md127 /mnt/ephemeral"]);

        // Reboot without it: assembled from the members, not created nor formatted again.
        t.reboot();
        for d in ["nvme1n1", "nvme2n1"] {
            fs::remove_dir_all(t.path(&format!("sys/block/{d}/holders"))).expect("holders");
        }
        fs::remove_file(t.path("dev/md127")).expect("md");
        t.ok();
        assert_eq!(
            t.take_log(),
            [
                "mdadm --assemble /dev/md/cgcloud-eph /dev/nvme1n1 /dev/nvme2n1",
                "mount -t ext4 /dev/md/cgcloud-eph /mnt/ephemeral",
            ]
        );
    });
}

#[test]
fn xen_disks_are_the_ones_the_metadata_maps_to_ephemeral_names() {
    each_shell(|t| {
        t.disk("xvda");
        t.disk("xvdb");
        t.disk("xvdc");
        t.disk("xvdf"); // EBS, mapped as ebs1
        t.imds(&[
            ("ami", "sda1"),
            ("ebs1", "sdf"),
            ("ephemeral0", "sdb"),
            ("ephemeral1", "/dev/sdc"),
            ("root", "/dev/sda1"),
        ]);
        t.ok();
        let log = t.take_log();
        let base = "http://169.254.169.254/latest";
        assert_eq!(
            log,
            [
                format!("curl PUT {base}/api/token"),
                format!("curl GET {base}/meta-data/block-device-mapping/"),
                format!("curl GET {base}/meta-data/block-device-mapping/ephemeral0"),
                format!("curl GET {base}/meta-data/block-device-mapping/ephemeral1"),
                "mdadm --create /dev/md/cgcloud-eph --run --level=0 --raid-devices=2 --name=cgcloud-eph /dev/xvdb /dev/xvdc".into(),
                "mkfs.ext4 -q -F -L cgcloud-eph -E nodiscard /dev/md/cgcloud-eph".into(),
                "mount -t ext4 /dev/md/cgcloud-eph /mnt/ephemeral".into(),
            ]
        );
    });
}

#[test]
fn xen_disks_are_left_alone_when_the_metadata_does_not_answer() {
    each_shell(|t| {
        t.disk("xvdb");
        let err = t.ok();
        assert!(
            err.contains("did not say which disks are instance storage"),
            "{err}"
        );
        assert_eq!(
            t.take_log(),
            ["curl PUT http://169.254.169.254/latest/api/token"]
        );
        assert!(!t.path("mnt").exists());
    });
}

#[test]
fn disks_in_use_are_skipped() {
    each_shell(|t| {
        t.nvme("nvme1n1", INSTANCE_STORE); // mounted elsewhere by hand
        t.nvme("nvme2n1", INSTANCE_STORE); // partitioned by hand
        fs::create_dir_all(t.path("sys/block/nvme2n1/nvme2n1p1")).expect("p");
        fs::write(t.path("sys/block/nvme2n1/nvme2n1p1/partition"), "1\n").expect("p");
        t.nvme("nvme3n1", INSTANCE_STORE); // an LVM physical volume
        fs::create_dir_all(t.path("sys/block/nvme3n1/holders/dm-0")).expect("dm");
        let root = t.root();
        fs::write(
            t.path("proc/mounts"),
            format!("/dev/nvme0n1p1 / ext4 rw 0 0\n{root}/dev/nvme1n1 /scratch xfs rw 0 0\n"),
        )
        .expect("mounts");
        let err = t.ok();
        for why in [
            "leaving /dev/nvme1n1 alone: it is mounted",
            "leaving /dev/nvme2n1 alone: it has partitions",
            "leaving /dev/nvme3n1 alone: dm-0 uses it",
            "no instance-store disks",
        ] {
            assert!(err.contains(why), "{why}: {err}");
        }
        assert_eq!(t.take_log(), Vec::<String>::new());
    });
}

#[test]
fn several_disks_without_mdadm_wait_for_set_up() {
    each_shell(|t| {
        t.nvme("nvme1n1", INSTANCE_STORE);
        t.nvme("nvme2n1", INSTANCE_STORE);
        fs::remove_file(t.path("bin/mdadm")).expect("no mdadm");
        let err = t.ok();
        assert!(
            err.contains("2 instance-store disks need mdadm, which is not installed yet"),
            "{err}"
        );
        assert_eq!(t.take_log(), Vec::<String>::new());
    });
}

#[test]
fn a_failing_step_fails_the_script() {
    each_shell(|t| {
        t.nvme("nvme1n1", INSTANCE_STORE);
        let p = t.path("bin/mkfs.ext4");
        fs::write(
            &p,
            "#!/bin/sh\necho 'mkfs.ext4: Device size reported to be zero' >&2\nexit 1\n",
        )
        .expect("fake");
        let r = t.run();
        assert_eq!(r.status, Some(1), "{}", r.stderr);
        assert!(
            r.stderr.contains("Device size reported to be zero"),
            "{}",
            r.stderr
        );
        assert!(!t.mounts().contains(MNT), "nothing mounted");
    });
}

#[test]
fn in_a_container_it_looks_at_no_disk() {
    each_shell(|t| {
        // Without the fake tree the script would look at the real machine; in a container
        // (the local cloud's boxes) it must stop before. `mkdir` is not even on the PATH.
        let p = t.path("bin/systemd-detect-virt");
        fs::write(&p, "#!/bin/sh\necho systemd-nspawn\nexit 0\n").expect("fake");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::remove_file(t.path("tools/mkdir")).expect("no mkdir");
        let r = t.run_with(false);
        assert_eq!(r.status, Some(0), "{}", r.stderr);
        assert_eq!(
            r.stderr,
            "cgcloud-ephemeral-disks: running in a container, which has no instance-store disks; nothing to do\n"
        );
        assert_eq!(t.take_log(), Vec::<String>::new());
    });
}
