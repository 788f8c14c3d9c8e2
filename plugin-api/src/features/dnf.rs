//! dnf, for Amazon Linux 2023, Rocky Linux and Fedora: the commands behind
//! [`PackageManager::Dnf4`] and [`PackageManager::Dnf5`].
//!
//! dnf 4 waits forever while another dnf holds its lock; `exit_on_lock` makes it exit with
//! status 200 instead, so that [`run`] waits for a bounded time. dnf 5 fails at once by itself.

use crate::prelude::*;

use super::package_manager::{join, run, Classifier, PackageManager};

pub(crate) static CLASSIFIER: Classifier = Classifier {
    // dnf 4: "200 - Problem with acquiring or releasing of locks" (dnf(8)).
    lock_statuses: &[200],
    lock: &[
        "already locked by",
        "Failed to obtain rpm transaction lock",
        "can't create transaction lock",
    ],
    mirror: &[
        "Curl error (6)",
        "Curl error (7)",
        "Curl error (18)",
        "Curl error (28)",
        "Curl error (35)",
        "Curl error (52)",
        "Curl error (55)",
        "Curl error (56)",
        "Timeout was reached",
        "Temporary failure in name resolution",
        "Could not resolve host",
        "Status code: 500",
        "Status code: 502",
        "Status code: 503",
        "Status code: 504",
        "checksum doesn't match",
    ],
    permanent: &[
        "Status code: 403",
        "Status code: 404",
        "No match for argument",
        "Unable to find a match",
        "GPG check FAILED",
    ],
};

/// How every dnf command starts (after `sudo -n`).
pub fn dnf(pm: PackageManager) -> &'static str {
    match pm {
        PackageManager::Dnf4 => "env LC_ALL=C dnf -q -y --setopt=exit_on_lock=True",
        _ => "env LC_ALL=C dnf -q -y",
    }
}

/// Refreshes the package metadata.
pub fn sync(cx: &Cx<'_>, pm: PackageManager) -> Result<()> {
    run(cx, pm, &format!("{} makecache", dnf(pm)))?;
    Ok(())
}

/// Installs `packages`, then checks that each is there: dnf can succeed on a partial install
/// (`skip_if_unavailable`, `strict=False` in a box's configuration). `rpm -q --whatprovides`
/// accepts package names, provides and file paths alike; groups and modules (`@…`) and local
/// or remote `.rpm` files are not checked.
pub fn install(cx: &Cx<'_>, pm: PackageManager, packages: &[String]) -> Result<()> {
    if packages.is_empty() {
        return Ok(());
    }
    run(cx, pm, &format!("{} install {}", dnf(pm), join(packages)?))?;
    let checkable: Vec<String> = packages
        .iter()
        .filter(|p| !p.starts_with('@') && !p.ends_with(".rpm"))
        .cloned()
        .collect();
    if checkable.is_empty() {
        return Ok(());
    }
    let command = format!("rpm -q --whatprovides {}", join(&checkable)?);
    let out = cx.run_unchecked(&command)?;
    if out.status == 0 {
        return Ok(());
    }
    let missing: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| {
            l.strip_prefix("no package provides ")
                .or_else(|| l.strip_prefix("package "))
                .map(|rest| rest.trim_end_matches(" is not installed").trim())
        })
        .collect();
    if missing.is_empty() {
        return Err(RoleError::command_failed(&command, out.status, &out.stderr));
    }
    Err(RoleError::failed(format!(
        "dnf reported success but {} not installed: `{}`; check the names and that the repositories providing them are enabled",
        if missing.len() == 1 { "this package is" } else { "these packages are" },
        missing.join("`, `")
    )))
}

/// Upgrades every installed package.
pub fn upgrade(cx: &Cx<'_>, pm: PackageManager) -> Result<()> {
    run(cx, pm, &format!("{} upgrade", dnf(pm)))?;
    Ok(())
}
