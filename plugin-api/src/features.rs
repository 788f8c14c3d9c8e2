//! Reusable pieces of role behaviour ("features") that roles compose instead of inheriting:
//! package managers today. A role calls them from its hooks, e.g.
//! `fn install_packages(&self, cx: &Cx, p: Vec<String>) -> Result<()> { apt::install(cx, &p) }`.

use crate::cx::Cx;
use crate::error::Result;

/// Quotes `word` for a POSIX shell.
pub fn shell_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.+=:/,@%".contains(c));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn join(packages: &[String]) -> String {
    packages
        .iter()
        .map(|p| shell_quote(p))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Debian and Ubuntu: apt.
pub mod apt {
    use super::*;

    /// Options every apt-get call gets: wait for the dpkg lock (cloud-init and unattended
    /// upgrades hold it right after boot) instead of failing.
    pub const APT_GET: &str =
        "DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=300";

    /// How often `apt-get update` is tried when a mirror hiccups.
    pub const UPDATE_ATTEMPTS: u32 = 5;

    /// Writes network timeouts for apt and runs `apt-get update`, retrying on mirror errors.
    pub fn sync(cx: &Cx<'_>) -> Result<()> {
        cx.sudo_put_file(
            "/etc/apt/apt.conf.d/99timeout",
            b"Acquire::http::Timeout \"10\";\nAcquire::ftp::Timeout \"10\";\n",
            0o644,
        )?;
        let command = format!("{APT_GET} update");
        let mut attempt = 1;
        loop {
            let out = cx.run_unchecked(&format!("sudo {command}"))?;
            let mirror_hiccup = out.stderr.contains("Hash Sum mismatch")
                || out.stderr.contains("Temporary failure");
            if out.status == 0 {
                return Ok(());
            }
            if !mirror_hiccup || attempt >= UPDATE_ATTEMPTS {
                return Err(crate::RoleError::command_failed(
                    &command,
                    out.status,
                    &out.stderr,
                ));
            }
            cx.log(
                crate::Level::Warn,
                &format!("`apt-get update` hit a mirror error (attempt {attempt}); retrying"),
            );
            attempt += 1;
        }
    }

    /// Installs `packages` without recommended packages.
    pub fn install(cx: &Cx<'_>, packages: &[String]) -> Result<()> {
        if packages.is_empty() {
            return Ok(());
        }
        cx.sudo(&format!(
            "{APT_GET} --no-install-recommends install {}",
            join(packages)
        ))?;
        Ok(())
    }

    /// Upgrades all installed packages.
    pub fn upgrade(cx: &Cx<'_>) -> Result<()> {
        cx.sudo(&format!("{APT_GET} dist-upgrade"))?;
        Ok(())
    }
}

/// Fedora, Rocky Linux and Amazon Linux 2023: dnf.
pub mod dnf {
    use super::*;

    /// Refreshes the package metadata.
    pub fn sync(cx: &Cx<'_>) -> Result<()> {
        cx.sudo("dnf -q -y makecache")?;
        Ok(())
    }

    /// Installs `packages`, then checks each with `rpm -q` (dnf can succeed on a partial
    /// install when packages are missing from the repositories).
    pub fn install(cx: &Cx<'_>, packages: &[String]) -> Result<()> {
        if packages.is_empty() {
            return Ok(());
        }
        let list = join(packages);
        cx.sudo(&format!("dnf -q -y install {list}"))?;
        cx.run(&format!("rpm -q {list}"))?;
        Ok(())
    }

    /// Upgrades all installed packages.
    pub fn upgrade(cx: &Cx<'_>) -> Result<()> {
        cx.sudo("dnf -q -y upgrade")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_quotes_only_when_needed() {
        assert_eq!(shell_quote("htop"), "htop");
        assert_eq!(shell_quote("python3.12=3.12*"), "'python3.12=3.12*'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
