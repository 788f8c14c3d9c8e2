//! An example third-party role plugin: `example-web-box`, an nginx web server on Debian 12.
//!
//! It extends the built-in `generic-debian-bookworm-box`, adds a package, declares a role option
//! and does its own work after the packages are installed.

use cgcloud_plugin_api::prelude::*;

#[derive(Default)]
pub struct WebBox;

impl Role for WebBox {
    fn options(&self, cx: &Cx) -> Result<Vec<RoleOption>> {
        let mut options = cx.sup().options()?;
        options.push(
            RoleOption::string("site_title", "The title of the welcome page")
                .with_default("cgcloud"),
        );
        Ok(options)
    }

    fn validate_options(&self, cx: &Cx) -> Result<()> {
        cx.sup().validate_options()?;
        // Checked before anything is launched: a bad title costs no box.
        let title = cx.option("site_title")?.unwrap_or_default();
        if title.is_empty() || title.chars().count() > 100 || title.contains(['<', '>', '&']) {
            return Err(RoleError::failed(format!(
                "option `site_title` must be 1 to 100 characters of plain text without `<`, `>` or `&`, not `{title}`"
            )));
        }
        Ok(())
    }

    fn packages(&self, cx: &Cx) -> Result<Vec<String>> {
        let mut packages = cx.sup().packages()?;
        packages.push("nginx".into());
        Ok(packages)
    }

    fn post_install_packages(&self, cx: &Cx) -> Result<()> {
        cx.sup().post_install_packages()?;
        // Always set: the host supplies the declared default when `-O` does not give one.
        let title = cx.option("site_title")?.unwrap_or_default();
        let page = format!("<html><body><h1>{title}</h1></body></html>\n");
        cx.sudo_put_file("/var/www/html/index.html", page.as_bytes(), 0o644)?;
        cx.sudo("systemctl enable --now nginx")?;
        cx.info(&format!("nginx serves `{title}`"));
        Ok(())
    }
}

cgcloud_plugin_api::export_plugin! {
    roles: [
        {
            name: "example-web-box",
            extends: "generic-debian-bookworm-box",
            description: "An nginx web server on Debian 12",
            new: WebBox::default,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use cgcloud_plugin_api::testing::{FakeHost, TestRole};

    #[test]
    fn post_install_writes_the_page_and_starts_nginx() {
        let builtins = cgcloud_builtin_roles::plugin();
        let parent = builtins
            .roles
            .iter()
            .find(|r| r.name == "generic-debian-bookworm-box")
            .expect("built-in parent");
        let web = RoleDef::new::<WebBox>("example-web-box", "web").extending(&parent.name);
        let role = TestRole::new(&web, &[parent]);

        let host = FakeHost::new().with_option("site_title", "Hello");
        role.setup(&host, false).expect("set-up succeeds");

        let commands = host.commands();
        assert!(
            commands[2].ends_with("install htop mdadm nginx"),
            "{commands:?}"
        );
        // The role's own work comes last, after everything its parent does.
        assert_eq!(
            commands[commands.len() - 2..],
            [
                "sudo put: /var/www/html/index.html (644)",
                "sudo: systemctl enable --now nginx"
            ]
        );
        let page = host.file("/var/www/html/index.html").expect("page written");
        assert!(String::from_utf8_lossy(&page).contains("<h1>Hello</h1>"));
    }
}
