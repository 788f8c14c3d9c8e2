//! The systemd feature: installing and starting a role's own services. Every built-in role
//! runs systemd, so roles call [`install_service`] from `post_install_packages` (after their
//! parent's, so that the packages the unit runs are installed):
//!
//! ```
//! use cgcloud_plugin_api::prelude::*;
//! use cgcloud_builtin_roles::systemd;
//!
//! struct Worker;
//! impl Role for Worker {
//!     fn post_install_packages(&self, cx: &Cx) -> Result<()> {
//!         cx.sup().post_install_packages()?;
//!         let unit = systemd::simple_service("Queue worker", "/usr/local/bin/worker --serve");
//!         systemd::install_service(cx, "worker", &unit)
//!     }
//! }
//! ```
//!
//! It contributes to no hook by itself.

use cgcloud_plugin_api::prelude::*;

/// Where units cgcloud installs live.
pub const UNIT_DIR: &str = "/etc/systemd/system";

/// Checks a service name: letters, digits and `-_.:@\`, without the `.service` suffix.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && !name.ends_with(".service")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:@\\".contains(c));
    if ok {
        Ok(())
    } else {
        Err(RoleError::failed(format!(
            "`{name}` is not a usable systemd service name; use letters, digits, `-`, `_`, `.`, `:` and `@`, without the `.service` suffix"
        )))
    }
}

/// The path of service `name`'s unit file.
pub fn unit_path(name: &str) -> String {
    format!("{UNIT_DIR}/{name}.service")
}

/// Writes `unit` as `/etc/systemd/system/<name>.service` (mode 644), reloads systemd and
/// enables and starts the service. Running it again replaces the unit and restarts nothing
/// that is already running; use `systemctl restart` for that.
pub fn install_service(cx: &Cx<'_>, name: &str, unit: &str) -> Result<()> {
    check_name(name)?;
    cx.sudo_put_file(&unit_path(name), unit.as_bytes(), 0o644)?;
    cx.sudo("systemctl daemon-reload")?;
    cx.sudo(&format!(
        "systemctl enable --now {}",
        shell_quote(&format!("{name}.service"))
    ))?;
    Ok(())
}

/// A unit for a long-running process started at boot and restarted when it dies.
pub fn simple_service(description: &str, exec_start: &str) -> String {
    format!(
        "[Unit]\nDescription={description}\nWants=network-online.target\nAfter=network-online.target\n\n\
         [Service]\nExecStart={exec_start}\nRestart=on-failure\nRestartSec=5\n\n\
         [Install]\nWantedBy=multi-user.target\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["worker", "cgcloud-agent", "getty@tty1", "a.b_c:d"] {
            check_name(good).expect(good);
        }
        for bad in ["", "a/b", "../x", "x.service", "a b", "x;reboot", ".hidden"] {
            let e = check_name(bad).expect_err(bad);
            assert!(
                e.message.contains("not a usable systemd service name"),
                "{e}"
            );
        }
    }

    #[test]
    fn simple_service_starts_at_boot_and_restarts() {
        let unit = simple_service("Queue worker", "/usr/local/bin/worker --serve");
        assert!(unit.contains("\nExecStart=/usr/local/bin/worker --serve\n"));
        assert!(unit.contains("\nRestart=on-failure\n"));
        assert!(unit.ends_with("[Install]\nWantedBy=multi-user.target\n"));
    }
}
