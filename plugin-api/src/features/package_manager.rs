//! The package-manager feature: apt for Debian and Ubuntu ([`super::apt`]), dnf for Amazon
//! Linux 2023, Rocky Linux and Fedora ([`super::dnf`]).
//!
//! Hooks it contributes to, in the set-up order cgcloud calls them:
//! 1. `sync_package_repos`: refresh the package index ([`PackageManager::sync`]);
//! 2. `package_substitutions`: the family's renames ([`PackageManager::substitutions`]), after
//!    the parent's, before the release's own; cgcloud applies them transitively;
//! 3. `install_packages`: install, then verify where the tool can lie about it
//!    ([`PackageManager::install`]);
//! 4. `upgrade_packages` (only with `--upgrade`): upgrade everything ([`PackageManager::upgrade`]).
//!
//! Every command goes through [`run`]: it waits (bounded) while another process holds the
//! package manager's lock — cloud-init, unattended upgrades and `dnf-makecache` all do right
//! after boot — and retries when a mirror hiccups (bad hash, timeout, 5xx), but fails at once
//! on anything else, such as a missing package or a repository that does not exist.

use crate::prelude::*;

/// How often a command is tried in all when a mirror keeps hiccuping.
pub const MIRROR_ATTEMPTS: u32 = 5;
/// Seconds between polls while another process holds the package manager's lock.
pub const LOCK_POLL_SECS: u32 = 5;
/// How many times the lock is polled before giving up: with [`LOCK_POLL_SECS`], five minutes.
pub const LOCK_POLLS: u32 = 60;

/// A package-manager feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageManager {
    /// apt (Debian, Ubuntu).
    Apt,
    /// dnf 4 (Rocky Linux 9, Amazon Linux 2023), which waits for its lock forever unless told
    /// to exit instead.
    Dnf4,
    /// dnf 5 (Fedora 41 and later), which fails at once when its lock is taken.
    Dnf5,
}

impl PackageManager {
    /// The feature's name as `features()` declares it.
    pub fn feature(self) -> &'static str {
        match self {
            Self::Apt => "apt",
            Self::Dnf4 | Self::Dnf5 => "dnf",
        }
    }

    /// Refreshes the package index.
    pub fn sync(self, cx: &Cx<'_>) -> Result<()> {
        match self {
            Self::Apt => super::apt::sync(cx),
            Self::Dnf4 | Self::Dnf5 => super::dnf::sync(cx, self),
        }
    }

    /// Installs `packages` (nothing when empty).
    pub fn install(self, cx: &Cx<'_>, packages: &[String]) -> Result<()> {
        match self {
            Self::Apt => super::apt::install(cx, packages),
            Self::Dnf4 | Self::Dnf5 => super::dnf::install(cx, self, packages),
        }
    }

    /// Upgrades every installed package.
    pub fn upgrade(self, cx: &Cx<'_>) -> Result<()> {
        match self {
            Self::Apt => super::apt::upgrade(cx),
            Self::Dnf4 | Self::Dnf5 => super::dnf::upgrade(cx, self),
        }
    }

    /// The family's substitutions: names that roles written for another family, or for the
    /// original cgcloud's Python 2 era, use, mapped to this family's current names.
    pub fn substitutions(self) -> Vec<Substitution> {
        let table: &[(&str, &[&str])] = match self {
            Self::Apt => APT_SUBSTITUTIONS,
            Self::Dnf4 | Self::Dnf5 => DNF_SUBSTITUTIONS,
        };
        substitutions(table)
    }

    /// The classifier of this package manager's failures.
    pub(crate) fn classifier(self) -> &'static Classifier {
        match self {
            Self::Apt => &super::apt::CLASSIFIER,
            Self::Dnf4 | Self::Dnf5 => &super::dnf::CLASSIFIER,
        }
    }
}

/// Python 2 is gone from every supported release.
const APT_SUBSTITUTIONS: &[(&str, &[&str])] = &[
    ("python", &["python3"]),
    ("python-pip", &["python3-pip"]),
    ("python-dev", &["python3-dev"]),
];

/// Debian names roles commonly use, to their RPM names. `python-dev` goes through
/// `python3-dev` to `python3-devel`: substitutions chain.
const DNF_SUBSTITUTIONS: &[(&str, &[&str])] = &[
    ("python", &["python3"]),
    ("python-pip", &["python3-pip"]),
    ("python-dev", &["python3-dev"]),
    ("python3-dev", &["python3-devel"]),
    ("build-essential", &["gcc", "gcc-c++", "make"]),
    ("libssl-dev", &["openssl-devel"]),
    ("libffi-dev", &["libffi-devel"]),
    ("zlib1g-dev", &["zlib-devel"]),
];

/// Turns a `(package, replacements)` table into substitutions.
pub fn substitutions(table: &[(&str, &[&str])]) -> Vec<Substitution> {
    table
        .iter()
        .map(|(package, replacement)| Substitution::new(package, replacement))
        .collect()
}

/// Why a package-manager command failed, as far as its output tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Another process holds the package manager's lock: wait and try again.
    Locked,
    /// A mirror hiccuped (bad hash, timeout, 5xx, name resolution): try again.
    Mirror,
    /// Anything else: retrying would not help.
    Other,
}

/// Output patterns that tell failures apart. A permanent pattern wins over a mirror pattern
/// (a 404 next to a timeout is still a 404).
pub struct Classifier {
    /// Exit statuses that mean "locked" by themselves (dnf 4 exits 200).
    pub lock_statuses: &'static [i32],
    pub lock: &'static [&'static str],
    pub mirror: &'static [&'static str],
    pub permanent: &'static [&'static str],
}

impl Classifier {
    /// Classifies a failed command's output.
    pub fn classify(&self, out: &CmdOutput) -> Failure {
        let has = |patterns: &[&str]| {
            patterns
                .iter()
                .any(|p| out.stderr.contains(p) || out.stdout.contains(p))
        };
        if self.lock_statuses.contains(&out.status) || has(self.lock) {
            Failure::Locked
        } else if has(self.permanent) {
            Failure::Other
        } else if has(self.mirror) {
            Failure::Mirror
        } else {
            Failure::Other
        }
    }
}

/// Runs `command` as root, waiting while the package manager is locked and retrying on
/// mirror hiccups, both bounded. Waits are remote `sleep`s, so they show in the box's log and
/// stop when cgcloud cancels the hook. Returns the successful output.
pub fn run(cx: &Cx<'_>, pm: PackageManager, command: &str) -> Result<CmdOutput> {
    let classifier = pm.classifier();
    let line = format!("sudo -n {command}");
    let mut attempt = 1;
    let mut lock_polls = 0;
    loop {
        let out = cx.run_unchecked(&line)?;
        if out.status == 0 {
            return Ok(out);
        }
        let failed = || RoleError::command_failed(command, out.status, &out.stderr);
        match classifier.classify(&out) {
            Failure::Locked if lock_polls < LOCK_POLLS => {
                if lock_polls == 0 {
                    cx.log(
                        Level::Info,
                        &format!(
                            "another process holds the package manager's lock; waiting up to {}s",
                            LOCK_POLLS * LOCK_POLL_SECS
                        ),
                    );
                }
                lock_polls += 1;
                cx.run(&format!("sleep {LOCK_POLL_SECS}"))?;
            }
            Failure::Locked => {
                return Err(failed().context(format!(
                    "the package manager's lock was still held after {}s; find what holds it on the box (`ps -ef`) and try again",
                    LOCK_POLLS * LOCK_POLL_SECS
                )))
            }
            Failure::Mirror if attempt < MIRROR_ATTEMPTS => {
                let pause = 5 * attempt;
                cx.log(
                    Level::Warn,
                    &format!(
                        "a package mirror hiccuped (attempt {attempt} of {MIRROR_ATTEMPTS}); retrying in {pause}s"
                    ),
                );
                attempt += 1;
                cx.run(&format!("sleep {pause}"))?;
            }
            Failure::Mirror => {
                return Err(failed().context(format!(
                    "the package mirror kept failing ({MIRROR_ATTEMPTS} attempts)"
                )))
            }
            Failure::Other => return Err(failed()),
        }
    }
}

/// `packages` quoted and joined for a command line. A name must start with a letter or digit
/// (as Debian and RPM package names do) and hold no white space: anything else could be taken
/// for an option of apt or dnf.
pub(crate) fn join(packages: &[String]) -> crate::Result<String> {
    if let Some(bad) = packages.iter().find(|p| {
        !p.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            || p.chars().any(|c| c.is_whitespace() || c.is_control())
    }) {
        return Err(crate::RoleError::failed(format!(
            "`{}` is not a package name: a name starts with a letter or digit and has no white space",
            bad.escape_debug()
        )));
    }
    Ok(packages
        .iter()
        .map(|p| shell_quote(p))
        .collect::<Vec<_>>()
        .join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_cannot_be_options() {
        assert_eq!(
            join(&["nginx".into(), "libc6:amd64".into(), "python3=3.11*".into()]).unwrap(),
            "nginx libc6:amd64 'python3=3.11*'"
        );
        for bad in [
            "-oAPT::Get::AllowUnauthenticated=1",
            "--allow-downgrades",
            "",
            "a b",
            "x\ny",
        ] {
            let e = join(&["nginx".into(), bad.into()]).unwrap_err();
            assert!(
                e.to_string().contains("is not a package name"),
                "{bad:?}: {e}"
            );
        }
    }

    fn out(status: i32, stderr: &str) -> CmdOutput {
        CmdOutput::new(status, "", stderr)
    }

    #[test]
    fn apt_failures_are_classified() {
        let c = PackageManager::Apt.classifier();
        let cases = [
            ("E: Failed to fetch http://m/x.deb  Hash Sum mismatch", Failure::Mirror),
            ("W: Failed to fetch http://m/InRelease  Temporary failure resolving 'm'", Failure::Mirror),
            ("E: Failed to fetch http://m/InRelease  503  Service Unavailable [IP: 1.2.3.4 80]", Failure::Mirror),
            ("E: Could not get lock /var/lib/apt/lists/lock. It is held by process 812 (apt-get)", Failure::Locked),
            ("E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?", Failure::Locked),
            ("E: Unable to locate package htopp", Failure::Other),
            ("E: Failed to fetch http://m/dists/x/InRelease  404  Not Found [IP: 1.2.3.4 80]\nE: Failed to fetch http://m/y  Connection timed out", Failure::Other),
            ("E: The repository 'http://m x Release' does not have a Release file.", Failure::Other),
        ];
        for (stderr, want) in cases {
            assert_eq!(c.classify(&out(100, stderr)), want, "{stderr}");
        }
    }

    #[test]
    fn dnf_failures_are_classified() {
        let c = PackageManager::Dnf4.classifier();
        let cases = [
            (1, "Curl error (28): Timeout was reached for https://m/repomd.xml", Failure::Mirror),
            (1, "Librepo error: Status code: 503 for https://m/repomd.xml", Failure::Mirror),
            (200, "Error: RPMDB already locked by 1234", Failure::Locked),
            (1, "Transaction failed: Failed to obtain rpm transaction lock. Another transaction is in progress.", Failure::Locked),
            (1, "Error: Unable to find a match: htop", Failure::Other),
            (1, "No match for argument: nope", Failure::Other),
            (1, "Status code: 404 for https://m/repomd.xml\nCurl error (28): Timeout was reached", Failure::Other),
        ];
        for (status, stderr, want) in cases {
            assert_eq!(c.classify(&out(status, stderr)), want, "{stderr}");
        }
    }

    #[test]
    fn family_substitutions_chain_through_the_generic_ones() {
        let subs = PackageManager::Dnf5.substitutions();
        let list: Vec<String> = ["python-dev", "build-essential", "htop"]
            .map(String::from)
            .to_vec();
        let got = crate::proto::substitute_packages(&list, &subs);
        assert_eq!(got, ["python3-devel", "gcc", "gcc-c++", "make", "htop"]);
        let apt = crate::proto::substitute_packages(&list, &PackageManager::Apt.substitutions());
        assert_eq!(apt, ["python3-dev", "build-essential", "htop"]);
    }
}
