//! An example third-party role plugin: `example-web-box`, an nginx web server on Debian 12.
//!
//! It extends the built-in `generic-debian-bookworm-box`, declares a role option and checks its
//! value before anything is launched, opens the web port in the role's security group, adds a
//! package, and does its own work once the packages are installed.

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
        // Runs before anything is launched: a bad title costs no box.
        let title = cx.option("site_title")?.unwrap_or_default();
        if title.is_empty() || title.chars().count() > 100 || title.contains(['<', '>', '&']) {
            return Err(RoleError::failed(format!(
                "option `site_title` must be 1 to 100 characters of plain text without `<`, `>` or `&`, not `{title}`"
            )));
        }
        Ok(())
    }

    fn security_group_rules(&self, cx: &Cx) -> Result<Vec<SecurityGroupRule>> {
        let mut rules = cx.sup().security_group_rules()?; // SSH and path-MTU discovery
        rules.push(SecurityGroupRule::tcp(
            80,
            RuleSource::Cidr("0.0.0.0/0".into()),
        ));
        Ok(rules)
    }

    fn packages(&self, cx: &Cx) -> Result<Vec<String>> {
        let mut packages = cx.sup().packages()?;
        packages.push("nginx".into());
        Ok(packages)
    }

    fn post_install_packages(&self, cx: &Cx) -> Result<()> {
        cx.sup().post_install_packages()?;
        // Always set: cgcloud supplies the declared default when `-O` gives no value.
        let title = cx.option("site_title")?.unwrap_or_default();
        let page = format!("<html><body><h1>{title}</h1></body></html>\n");
        cx.sudo_put_file("/var/www/html/index.html", page.as_bytes(), 0o644)?;
        // The web server's own account must be able to read the page.
        cx.sudo_as("www-data", "test -r /var/www/html/index.html")?;
        cx.sudo("systemctl enable --now nginx")?;
        // What a command printed: `stdout`, `stderr` and `status` of its `CmdOutput`.
        let version = cx.run("dpkg-query -W -f='${Version}' nginx")?.stdout;
        cx.info(&format!("nginx {version} serves `{title}`"));
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

    /// The role on top of its built-in parent, as cgcloud builds it.
    fn web_box() -> TestRole {
        let builtins = cgcloud_builtin_roles::plugin();
        let parent = builtins
            .roles
            .iter()
            .find(|r| r.name == "generic-debian-bookworm-box")
            .expect("built-in parent");
        let web = RoleDef::new::<WebBox>("example-web-box", "web").extending(&parent.name);
        TestRole::new(&web, &[parent])
    }

    #[test]
    fn post_install_writes_the_page_and_starts_nginx() {
        let role = web_box();
        let host = FakeHost::new()
            .with_option("site_title", "Hello")
            .respond("dpkg-query", CmdOutput::success("1.22.1-9"));
        role.setup(&host, false).expect("set-up succeeds");

        let commands = host.commands();
        assert!(
            commands[2].ends_with("install htop mdadm nginx"),
            "{commands:?}"
        );
        // The role's own work comes last, after everything its parent does.
        assert_eq!(
            commands[commands.len() - 4..],
            [
                "sudo put: /var/www/html/index.html (644)",
                "sudo -u www-data: test -r /var/www/html/index.html",
                "sudo: systemctl enable --now nginx",
                "run: dpkg-query -W -f='${Version}' nginx",
            ]
        );
        let page = host.file("/var/www/html/index.html").expect("page written");
        assert!(String::from_utf8_lossy(&page).contains("<h1>Hello</h1>"));
        assert_eq!(
            host.logs().last().map(|(_, line)| line.as_str()),
            Some("nginx 1.22.1-9 serves `Hello`")
        );
    }

    #[test]
    fn the_title_is_checked_before_launch_and_defaults_to_cgcloud() {
        let role = web_box();
        let bad = FakeHost::new().with_option("site_title", "<script>");
        let e = role.hooks(&bad).validate_options().expect_err("refused");
        assert!(e.message.contains("plain text"), "{e}");
        // No value given: the declared default, as cgcloud supplies it.
        let host = FakeHost::new();
        role.hooks(&host)
            .validate_options()
            .expect("the default is fine");
        role.hooks(&host).post_install_packages().expect("runs");
        let page = host.file("/var/www/html/index.html").expect("page written");
        assert!(String::from_utf8_lossy(&page).contains("<h1>cgcloud</h1>"));
    }

    #[test]
    fn the_web_port_is_open() {
        let rules = web_box()
            .hooks(&FakeHost::new())
            .security_group_rules()
            .expect("rules");
        assert!(rules.contains(&SecurityGroupRule::tcp(
            80,
            RuleSource::Cidr("0.0.0.0/0".into())
        )));
        assert!(rules.iter().any(|r| r.from_port == 22), "SSH stays open");
    }
}
