//! What the local cloud needs from the machine it runs on: root, kernel features, host tools, and
//! the Debian mirror apt is configured with (read at run time, never written into the project).

use anyhow::{bail, Context, Result};
use std::path::Path;

/// Host tools the local cloud calls, with the Debian package that provides each.
pub const HOST_TOOLS: &[(&str, &str)] = &[
    ("systemd-nspawn", "systemd-container"),
    ("debootstrap", "debootstrap"),
    ("ip", "iproute2"),
    ("nft", "nftables"),
    ("nsenter", "util-linux"),
    ("unshare", "util-linux"),
    ("mount", "mount"),
    ("ssh-keygen", "openssh-client"),
];

/// The Debian packages `setup` installs on the host (also listed in the CI script).
pub const HOST_PACKAGES: &[&str] = &[
    "systemd-container",
    "debootstrap",
    "iproute2",
    "nftables",
    "openssh-client",
];

/// Checks root, the kernel features boxes need and the host tools; one line names what is missing.
pub fn preflight(need_debootstrap: bool) -> Result<()> {
    // NOTE: uid 0 check through /proc, to stay free of `unsafe` libc calls.
    let status = std::fs::read_to_string("/proc/self/status")
        .context("failed to read `/proc/self/status`")?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("");
    if uid != "0" {
        bail!("the local cloud needs root (it creates network namespaces, overlay mounts and containers); run it as root, e.g. with `sudo`");
    }
    let mut missing = Vec::new();
    if !Path::new("/proc/self/ns/net").exists() {
        missing.push("network namespaces (CONFIG_NET_NS)".to_string());
    }
    let fs = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !fs.lines().any(|l| l.trim_end().ends_with("overlay")) {
        missing.push("overlayfs (`modprobe overlay`)".to_string());
    }
    if !Path::new("/sys/fs/cgroup").exists() {
        missing.push("cgroups at /sys/fs/cgroup".to_string());
    }
    if !missing.is_empty() {
        bail!(
            "this kernel lacks what the local cloud needs: {}",
            missing.join(", ")
        );
    }
    let mut pkgs = Vec::new();
    for (tool, pkg) in HOST_TOOLS {
        if *tool == "debootstrap" && !need_debootstrap {
            continue;
        }
        if which(tool).is_none() {
            pkgs.push(format!("`{tool}` (package {pkg})"));
        }
    }
    if !pkgs.is_empty() {
        bail!(
            "missing host tools: {}; install them with `apt-get install {}` or run `cgcloud-localcloud setup`",
            pkgs.join(", "),
            HOST_PACKAGES.join(" ")
        );
    }
    Ok(())
}

/// Finds `tool` on PATH (plus the sbin folders, which a non-login root shell may lack).
pub fn which(tool: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file());
    found
}

/// The Debian mirror the host's apt uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// e.g. `http`
    pub scheme: String,
    /// Host name only.
    pub host: String,
    pub port: u16,
    /// URL of the main archive, e.g. `<scheme>://<host>/debian`.
    pub archive: String,
    /// URL of the security archive when it lives on the same host.
    pub security: Option<String>,
}

/// Reads the mirror from `/etc/apt/sources.list` and `/etc/apt/sources.list.d/*`.
pub fn mirror() -> Result<Mirror> {
    let mut uris = Vec::new();
    let mut files = vec![std::path::PathBuf::from("/etc/apt/sources.list")];
    if let Ok(rd) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<_> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        more.sort();
        files.extend(more);
    }
    for f in files {
        if let Ok(text) = std::fs::read_to_string(&f) {
            uris.extend(source_uris(&text));
        }
    }
    mirror_from_uris(&uris).with_context(|| {
        "found no Debian archive (a URI ending in `/debian`) in the host's apt sources; \
         the local cloud relays boxes' apt to the host's own Debian mirror"
            .to_string()
    })
}

/// Every archive URI in a sources file, one-line (`deb URI suite…`) or deb822 (`URIs: …`) style.
pub fn source_uris(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("URIs:") {
            out.extend(rest.split_whitespace().map(str::to_string));
        } else if line.starts_with("deb ") {
            // Skip an option group `[a=b c=d]`, which may span several words.
            let mut in_opts = false;
            for w in line.split_whitespace().skip(1) {
                if w.starts_with('[') {
                    in_opts = true;
                }
                if in_opts {
                    in_opts = !w.ends_with(']');
                    continue;
                }
                out.push(w.to_string());
                break;
            }
        }
    }
    out
}

/// Picks the first plain Debian archive and, on the same host, its security archive.
pub fn mirror_from_uris(uris: &[String]) -> Option<Mirror> {
    let archive = uris.iter().map(|u| u.trim_end_matches('/')).find(|u| {
        u.ends_with("/debian") && (u.starts_with("http://") || u.starts_with("https://"))
    })?;
    let (scheme, rest) = archive.split_once("://")?;
    let authority = rest.split('/').next()?;
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p.parse().ok()?),
        None => (
            authority.to_string(),
            if scheme == "https" { 443 } else { 80 },
        ),
    };
    let prefix = format!("{scheme}://{authority}/");
    let security = uris
        .iter()
        .map(|u| u.trim_end_matches('/'))
        .find(|u| u.starts_with(&prefix) && u.ends_with("/debian-security"))
        .map(str::to_string);
    Some(Mirror {
        scheme: scheme.to_string(),
        host,
        port,
        archive: archive.to_string(),
        security,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_deb822_and_one_line_sources() {
        let deb822 = "Types: deb\n# comment\nURIs: http://mirror.example/debian\nSuites: bookworm\n\nTypes: deb\nURIs: http://mirror.example/debian-security\n";
        let one = "deb [arch=amd64 signed-by=/x.gpg] https://other.example/apt stable main\n";
        let mut uris = source_uris(deb822);
        uris.extend(source_uris(one));
        assert_eq!(
            uris,
            vec![
                "http://mirror.example/debian",
                "http://mirror.example/debian-security",
                "https://other.example/apt"
            ]
        );
        let m = mirror_from_uris(&uris).expect("a Debian archive is listed");
        assert_eq!(m.host, "mirror.example");
        assert_eq!(m.port, 80);
        assert_eq!(
            m.security.as_deref(),
            Some("http://mirror.example/debian-security")
        );
    }

    #[test]
    fn no_debian_archive_means_no_mirror() {
        assert!(mirror_from_uris(&["https://other.example/apt".into()]).is_none());
        let m =
            mirror_from_uris(&["http://m.example:8080/debian/".into()]).expect("archive with port");
        assert_eq!(
            (m.host.as_str(), m.port, m.security),
            ("m.example", 8080, None)
        );
    }
}
