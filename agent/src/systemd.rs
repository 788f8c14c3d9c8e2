//! The agent's systemd unit. The host writes it to [`UNIT_PATH`] (with the binary at
//! [`BINARY_PATH`] and the sshd drop-in of [`crate::authorized`]), then runs
//! `systemctl daemon-reload && systemctl enable --now cgcloud-agent`.
//!
//! The agent runs as root because it writes into several accounts' homes, but with only the
//! capabilities that needs (`CAP_CHOWN`, `CAP_DAC_OVERRIDE`, `CAP_FOWNER`), a read-only file
//! system except the homes, and the usual sandboxing.

use std::path::{Path, PathBuf};

use crate::options::RunOptions;

/// Where the host installs the binary.
pub const BINARY_PATH: &str = "/usr/local/bin/cgcloud-agent";
/// Where the host installs the unit.
pub const UNIT_PATH: &str = "/etc/systemd/system/cgcloud-agent.service";
/// The unit's name.
pub const UNIT_NAME: &str = "cgcloud-agent.service";

/// The unit text for `binary run <options>`. `writable` are the directories the agent may
/// write: the managed accounts' homes (missing ones are ignored by systemd).
pub fn unit(binary: &Path, options: &RunOptions, writable: &[&Path]) -> String {
    let mut exec = vec![quote(&binary.display().to_string()), "run".to_string()];
    exec.extend(options.to_args().iter().map(|a| quote(a)));
    let mut paths: Vec<String> = vec!["-/home".to_string(), "-/root".to_string()];
    for w in writable {
        let q = format!("-{}", quote_path(&w.display().to_string()));
        if !paths.contains(&q) {
            paths.push(q);
        }
    }
    format!(
        "\
[Unit]
Description=cgcloud agent: keeps SSH keys in sync with the namespace's key pairs
Wants=network-online.target
After=network-online.target
StartLimitIntervalSec=0

[Service]
Type=exec
ExecStart={exec}
Restart=on-failure
RestartSec=5s
TimeoutStopSec=30s
KillMode=mixed
User=root
CapabilityBoundingSet=CAP_CHOWN CAP_DAC_OVERRIDE CAP_FOWNER
AmbientCapabilities=
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths={paths}
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
UMask=0077

[Install]
WantedBy=multi-user.target
",
        exec = exec.join(" "),
        paths = paths.join(" "),
    )
}

/// What to make writable for an account with this home: the home itself, so that the agent
/// can create `~/.ssh`, unless the home is a system directory (Debian's `daemon` lives in
/// `/usr/sbin`, `nobody` in `/nonexistent`): then only its `.ssh`.
pub fn writable_dir(home: &Path) -> PathBuf {
    const SYSTEM: &[&str] = &[
        "/",
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/lib",
        "/lib32",
        "/lib64",
        "/libx32",
        "/nonexistent",
        "/opt",
        "/proc",
        "/run",
        "/sbin",
        "/srv",
        "/sys",
        "/usr",
        "/var",
    ];
    let system = SYSTEM.iter().any(|s| {
        let s = Path::new(s);
        home == s || (home.starts_with(s) && s != Path::new("/") && !home.starts_with("/var/lib"))
    });
    if system || home.components().count() < 2 {
        home.join(".ssh")
    } else {
        home.to_path_buf()
    }
}

/// One `ExecStart=` word: always in double quotes, with `\`, `"`, `%` (specifiers) and `$`
/// (variables) escaped, so systemd passes it through verbatim.
fn quote(arg: &str) -> String {
    let mut out = String::from("\"");
    for c in arg.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A path in a path list (`ReadWritePaths=`): specifiers escaped, spaces as `\x20`.
fn quote_path(p: &str) -> String {
    p.replace('\\', "\\\\")
        .replace('%', "%%")
        .replace(' ', "\\x20")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> RunOptions {
        RunOptions {
            namespace: "/alice/".into(),
            zone: "us-west-2a".into(),
            keypairs: vec![
                "alice".into(),
                "team-*".into(),
                "@@ops".into(),
                "%h$HOME".into(),
            ],
            accounts: vec!["admin".into(), "jenkins".into()],
            interval: 300,
            instance_id: None,
            no_notifications: false,
            no_ack: false,
        }
    }

    #[test]
    fn unit_is_hardened_installable_and_quoted() {
        let u = unit(
            Path::new(BINARY_PATH),
            &opts(),
            &[Path::new("/var/lib/jenkins")],
        );
        for line in [
            "[Install]",
            "WantedBy=multi-user.target",
            "Restart=on-failure",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ReadWritePaths=-/home -/root -/var/lib/jenkins",
        ] {
            assert!(u.lines().any(|l| l == line), "missing `{line}` in\n{u}");
        }
        let exec = u.lines().find(|l| l.starts_with("ExecStart=")).unwrap();
        assert_eq!(
            exec,
            "ExecStart=\"/usr/local/bin/cgcloud-agent\" run \"--namespace\" \"/alice/\" \"--zone\" \
             \"us-west-2a\" \"--keypairs\" \"alice\" \"team-*\" \"@@ops\" \"%%h$$HOME\" \"--accounts\" \
             \"admin\" \"jenkins\" \"--interval\" \"300\""
        );
    }

    #[test]
    fn system_directories_are_not_made_writable() {
        for (home, dir) in [
            ("/home/admin", "/home/admin"),
            ("/var/lib/jenkins", "/var/lib/jenkins"),
            ("/root", "/root"),
            ("/usr/sbin", "/usr/sbin/.ssh"),
            ("/nonexistent", "/nonexistent/.ssh"),
            ("/var/run/x", "/var/run/x/.ssh"),
            ("/", "/.ssh"),
            ("/bin", "/bin/.ssh"),
        ] {
            assert_eq!(writable_dir(Path::new(home)), Path::new(dir), "{home}");
        }
    }

    #[test]
    fn systemd_analyze_accepts_the_unit() {
        // Skipped where systemd-analyze is not installed; CI images have it.
        let Ok(out) = std::process::Command::new("systemd-analyze")
            .arg("--version")
            .output()
        else {
            eprintln!("systemd-analyze not found; skipping");
            return;
        };
        assert!(out.status.success());
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("cgcloud-agent");
        std::fs::write(&bin, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let path = dir.path().join(UNIT_NAME);
        std::fs::write(&path, unit(&bin, &opts(), &[])).unwrap();
        let out = std::process::Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let ours: Vec<&str> = stderr.lines().filter(|l| l.contains(UNIT_NAME)).collect();
        assert!(ours.is_empty(), "systemd-analyze complains:\n{stderr}");
    }
}
