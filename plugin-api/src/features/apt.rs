//! apt, for Debian and Ubuntu: the commands behind [`PackageManager::Apt`].
//!
//! Every `apt-get` runs non-interactively in the C locale (so failures can be told apart by
//! their text), waits up to five minutes for dpkg's lock by itself (`DPkg::Lock::Timeout`), and
//! keeps a changed configuration file's installed version instead of asking.

use crate::prelude::*;

use super::package_manager::{join, run, Classifier, PackageManager};

/// How every `apt-get` starts (after `sudo -n`).
pub const APT_GET: &str =
    "env LC_ALL=C DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=300";

/// Options of commands that unpack packages: never ask about changed configuration files.
pub const DPKG_OPTIONS: &str =
    "-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold";

/// Where apt's network settings go.
pub const NETWORK_CONF: &str = "/etc/apt/apt.conf.d/99timeout";

/// Short network timeouts, so a dead mirror fails fast and [`run`] can retry; apt retries
/// single downloads a few times by itself.
pub const NETWORK_SETTINGS: &str = "Acquire::http::Timeout \"10\";\nAcquire::https::Timeout \"10\";\nAcquire::ftp::Timeout \"10\";\nAcquire::Retries \"3\";\n";

pub(crate) static CLASSIFIER: Classifier = Classifier {
    lock_statuses: &[],
    lock: &[
        "Could not get lock",
        "Unable to lock",
        "Unable to acquire the dpkg frontend lock",
    ],
    mirror: &[
        "Hash Sum mismatch",
        "File has unexpected size",
        "Mirror sync in progress",
        "Temporary failure resolving",
        "Could not resolve",
        "Could not connect to",
        "Unable to connect to",
        "Connection failed",
        "Connection timed out",
        "Connection reset",
        "500  Internal Server Error",
        "502  Bad Gateway",
        "503  Service Unavailable",
        "504  Gateway Time",
    ],
    permanent: &[
        "404  Not Found",
        "403  Forbidden",
        "does not have a Release file",
        "NO_PUBKEY",
        "is not signed",
        "Unable to locate package",
        "has no installation candidate",
    ],
};

/// Writes apt's network settings and runs `apt-get update`. `--error-on=any` makes a failed
/// index download an error instead of a warning, so a hiccup is retried rather than leaving
/// a stale or empty index behind.
pub fn sync(cx: &Cx<'_>) -> Result<()> {
    cx.sudo_put_file(NETWORK_CONF, NETWORK_SETTINGS.as_bytes(), 0o644)?;
    run(
        cx,
        PackageManager::Apt,
        &format!("{APT_GET} --error-on=any update"),
    )?;
    Ok(())
}

/// Installs `packages` without recommended packages. apt fails by itself when one is
/// missing, so there is nothing to verify afterwards.
pub fn install(cx: &Cx<'_>, packages: &[String]) -> Result<()> {
    if packages.is_empty() {
        return Ok(());
    }
    let command = format!(
        "{APT_GET} {DPKG_OPTIONS} --no-install-recommends install {}",
        join(packages)?
    );
    run(cx, PackageManager::Apt, &command)?;
    Ok(())
}

/// Upgrades every installed package, installing or removing dependencies as needed.
pub fn upgrade(cx: &Cx<'_>) -> Result<()> {
    run(
        cx,
        PackageManager::Apt,
        &format!("{APT_GET} {DPKG_OPTIONS} dist-upgrade"),
    )?;
    Ok(())
}
