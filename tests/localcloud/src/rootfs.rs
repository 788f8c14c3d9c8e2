//! The boxes' Debian root file systems: built once with debootstrap, baked to look like a fresh
//! Debian cloud image, and cached outside the checkout under a key that hashes the whole recipe
//! (suite, packages, every baked file and command), so changing any of them rebuilds.
//!
//! To change what boxes contain, edit [`recipe`]; the key changes by itself.

use crate::host;
use crate::util::{self, run};
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Where cached root file systems live unless `CGCLOUD_LOCALCLOUD_CACHE` says otherwise.
pub const DEFAULT_CACHE: &str = "/var/cache/cgcloud-localcloud";

/// Debian suites boxes can run, with the Debian release number AMIs name.
pub const SUITES: &[(&str, &str)] = &[("bookworm", "12"), ("trixie", "13")];

/// Packages every box has: what real Debian cloud images have that cgcloud relies on.
/// `python3-cffi-backend`: debootstrap does not resolve the virtual package cloud-init needs.
const PACKAGES: &[&str] = &[
    "openssh-server",
    "sudo",
    "systemd",
    "systemd-sysv",
    "dbus",
    "iproute2",
    "procps",
    "ca-certificates",
    "cloud-init",
    "python3",
    "python3-cffi-backend",
    "rsync",
    "curl",
    "netbase",
];

/// The cache folder.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("CGCLOUD_LOCALCLOUD_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE))
}

/// One step of the bake, in order.
#[derive(Debug, Clone)]
enum Step {
    /// Write a file (path inside the rootfs, mode, content).
    File(&'static str, u32, &'static str),
    /// Run a command inside the rootfs with `chroot`.
    Chroot(&'static [&'static str]),
    /// Delete paths inside the rootfs (globs expanded by `sh`).
    Remove(&'static str),
}

/// How a rootfs is built: everything that goes into its cache key.
#[derive(Debug, Clone)]
pub struct Recipe {
    pub suite: String,
    packages: Vec<&'static str>,
    steps: Vec<Step>,
}

const SSHD_CONF: &str = "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUseDNS no\n";

// NOTE: cloud-init in a box: NoCloud seed only; the network is set up from outside; Debian's
// default locale makes `update-locale` fail in minbase; `manage_etc_hosts: true` would drop the
// apt-relay line from /etc/hosts on every boot (cloud-init-in-boxes.md).
const CLOUD_CFG: &str = "datasource_list: [ NoCloud, None ]
network: {config: disabled}
locale: C.UTF-8
manage_etc_hosts: localhost
system_info:
  default_user:
    name: admin
";

const HOSTS: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";

const JOURNALD: &str = "[Journal]\nStorage=volatile\n";

const APT_CONF: &str = "Acquire::Languages \"none\";\n";

/// The recipe for `suite`.
pub fn recipe(suite: &str) -> Result<Recipe> {
    if !SUITES.iter().any(|(s, _)| *s == suite) {
        bail!(
            "unknown suite `{suite}`; the local cloud builds {}",
            SUITES
                .iter()
                .map(|(s, _)| *s)
                .collect::<Vec<_>>()
                .join(" and ")
        );
    }
    let steps = vec![
        Step::Remove("/etc/ssh/ssh_host_*"),
        Step::File("/etc/ssh/sshd_config.d/10-localcloud.conf", 0o644, SSHD_CONF),
        Step::File("/etc/cloud/cloud.cfg.d/90-localcloud.cfg", 0o644, CLOUD_CFG),
        Step::File("/etc/hosts", 0o644, HOSTS),
        Step::File("/etc/systemd/journald.conf.d/localcloud.conf", 0o644, JOURNALD),
        Step::File("/etc/apt/apt.conf.d/90localcloud", 0o644, APT_CONF),
        Step::Remove("/etc/apt/sources.list /etc/apt/sources.list.d/*"),
        Step::Chroot(&[
            "systemctl",
            "mask",
            "getty@tty1.service",
            "console-getty.service",
            "systemd-networkd-wait-online.service",
        ]),
        Step::Chroot(&["systemctl", "enable", "ssh.service"]),
        Step::Remove(
            "/var/cache/apt/archives/*.deb /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* /usr/share/locale/*",
        ),
        Step::File("/etc/machine-id", 0o444, ""),
    ];
    Ok(Recipe {
        suite: suite.to_string(),
        packages: PACKAGES.to_vec(),
        steps,
    })
}

impl Recipe {
    /// Hash of everything the rootfs is built from (16 hex digits).
    pub fn key(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"cgcloud-localcloud rootfs v1\n");
        h.update(format!(
            "suite {}\npackages {}\n",
            self.suite,
            self.packages.join(",")
        ));
        for s in &self.steps {
            h.update(format!("{s:?}\n"));
        }
        hex::encode(h.finalize())[..16].to_string()
    }

    /// The cached rootfs folder for this recipe.
    pub fn dir(&self) -> PathBuf {
        cache_dir().join(format!("rootfs-{}-{}", self.suite, self.key()))
    }

    /// True when the rootfs is built and complete.
    pub fn is_built(&self) -> bool {
        self.dir().join("etc/os-release").exists()
    }

    /// Builds the rootfs unless it is cached; returns its folder.
    pub fn ensure(&self, log: &mut dyn FnMut(&str)) -> Result<PathBuf> {
        let dir = self.dir();
        if self.is_built() {
            return Ok(dir);
        }
        let mirror = host::mirror()?;
        let cache = cache_dir();
        std::fs::create_dir_all(&cache)
            .with_context(|| format!("failed to create `{}`", cache.display()))?;
        let build = cache.join(format!("build-{}-{}", self.suite, self.key()));
        if build.exists() {
            std::fs::remove_dir_all(&build)
                .with_context(|| format!("failed to remove a half-built `{}`", build.display()))?;
        }
        let t0 = Instant::now();
        log(&format!(
            "building the {} rootfs with debootstrap (about a minute)",
            self.suite
        ));
        let logfile = cache.join(format!("debootstrap-{}.log", self.suite));
        let out = std::fs::File::create(&logfile)
            .with_context(|| format!("failed to create `{}`", logfile.display()))?;
        let err = out
            .try_clone()
            .context("failed to duplicate a log file handle")?;
        let status = Command::new("debootstrap")
            .arg("--variant=minbase")
            .arg(format!("--include={}", self.packages.join(",")))
            .arg(&self.suite)
            .arg(&build)
            .arg(&mirror.archive)
            .stdout(out)
            .stderr(err)
            .status()
            .context(
                "failed to run `debootstrap`; install it with `apt-get install debootstrap`",
            )?;
        if !status.success() {
            bail!(
                "debootstrap of {} failed ({status}); its log `{}` ends with:\n{}",
                self.suite,
                logfile.display(),
                util::tail(&logfile, 15)
            );
        }
        log(&format!(
            "debootstrap {} done in {} ms; baking",
            self.suite,
            util::ms(t0)
        ));
        self.bake(&build)?;
        std::fs::rename(&build, &dir).with_context(|| {
            format!(
                "failed to move `{}` to `{}`",
                build.display(),
                dir.display()
            )
        })?;
        self.remove_stale(log);
        log(&format!(
            "{} rootfs ready at `{}` in {} ms",
            self.suite,
            dir.display(),
            util::ms(t0)
        ));
        Ok(dir)
    }

    fn bake(&self, root: &Path) -> Result<()> {
        for step in &self.steps {
            match step {
                Step::File(path, mode, content) => {
                    let p = root.join(path.trim_start_matches('/'));
                    util::write_file(&p, content.as_bytes())?;
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode))
                        .with_context(|| format!("failed to chmod `{}`", p.display()))?;
                }
                Step::Chroot(args) => {
                    run(Command::new("chroot").arg(root).args(*args))?;
                }
                Step::Remove(globs) => {
                    let list: Vec<String> = globs
                        .split_whitespace()
                        .map(|g| format!("{}/{}", root.display(), g.trim_start_matches('/')))
                        .collect();
                    run(Command::new("sh")
                        .arg("-c")
                        .arg(format!("rm -rf {}", list.join(" "))))?;
                }
            }
        }
        Ok(())
    }

    /// Deletes this suite's rootfs folders of other keys that no box has mounted.
    fn remove_stale(&self, log: &mut dyn FnMut(&str)) {
        let keep = self.dir();
        let prefix = format!("rootfs-{}-", self.suite);
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let Ok(rd) = std::fs::read_dir(cache_dir()) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p == keep || !name.starts_with(&prefix) {
                continue;
            }
            if mounts.contains(&*p.to_string_lossy()) {
                continue;
            }
            log(&format!("removing stale rootfs `{}`", p.display()));
            let _ = std::fs::remove_dir_all(&p);
        }
    }
}

/// The Debian suite a release number (`12`, `13`) names.
pub fn suite_of_release(release: &str) -> Option<&'static str> {
    SUITES.iter().find(|(_, r)| *r == release).map(|(s, _)| *s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_depends_on_suite_and_is_stable() {
        let a = recipe("bookworm").expect("known suite");
        let b = recipe("trixie").expect("known suite");
        assert_eq!(a.key(), recipe("bookworm").expect("known suite").key());
        assert_ne!(a.key(), b.key());
        assert_eq!(a.key().len(), 16);
    }

    #[test]
    fn key_changes_with_the_bake() {
        let a = recipe("bookworm").expect("known suite");
        let mut b = a.clone();
        b.steps.push(Step::Remove("/tmp/x"));
        assert_ne!(a.key(), b.key());
    }

    #[test]
    fn unknown_suite_is_refused() {
        let e = recipe("sid").expect_err("sid is not offered");
        assert!(e.to_string().contains("unknown suite `sid`"), "{e}");
        assert_eq!(suite_of_release("13"), Some("trixie"));
        assert_eq!(suite_of_release("11"), None);
    }
}
