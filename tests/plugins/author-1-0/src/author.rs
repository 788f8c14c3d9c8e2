// A role written against cgcloud-plugin-api 1.0 the way its documentation shows, touching every
// item of the documented surface: the prelude, every constructor and builder, every `Cx`
// call, the package-manager features, the enums (matched with a wildcard arm, as their
// `#[non_exhaustive]` requires), the error type and the testing module. It is compiled
// against this plugin-api and against a later 1.x; `author_box` is also loaded and its hooks
// run by cgcloud-plugin-host's tests.

use cgcloud_plugin_api::features::{apt, dnf, PackageManager};
use cgcloud_plugin_api::prelude::*;
use cgcloud_plugin_api::testing::{FakeHost, TestRole};
use cgcloud_plugin_api::{ErrorKind, HostInfo};

#[derive(Default)]
pub struct AuthorBox;

fn arch_name(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "x86_64",
        Arch::Arm64 => "arm64",
        _ => "other",
    }
}

fn describe_source(source: &RuleSource) -> String {
    match source {
        RuleSource::Cidr(cidr) => cidr.clone(),
        RuleSource::SameGroup => "same group".into(),
        RuleSource::SshClients => "ssh clients".into(),
        _ => "unknown".into(),
    }
}

impl Role for AuthorBox {
    fn options(&self, cx: &Cx) -> Result<Vec<RoleOption>> {
        let mut options = cx.sup().options()?;
        options.push(RoleOption::string("greeting", "what to say").with_default("hello"));
        options.push(RoleOption::bool("loud", "shout it").inherited());
        options.push(RoleOption::int("times", "how often").with_default("1"));
        options.push(RoleOption::new("extra", OptionKind::String, "anything"));
        Ok(options)
    }

    fn validate_options(&self, cx: &Cx) -> Result<()> {
        cx.sup().validate_options()?;
        let times = cx.option("times")?.unwrap_or_default();
        match times.parse::<u32>() {
            Ok(n) if n <= 10 => Ok(()),
            _ => Err(RoleError::failed(format!(
                "`times` must be 0 to 10, not `{times}`"
            ))),
        }
    }

    fn recommended_instance_type(&self, _cx: &Cx) -> Result<String> {
        Ok("t3.small".into())
    }

    fn virtualization_types(&self, _cx: &Cx) -> Result<Vec<Virtualization>> {
        Ok(vec![Virtualization::Hvm])
    }

    fn architectures(&self, cx: &Cx) -> Result<Vec<Arch>> {
        let archs = cx.sup().architectures()?;
        cx.log(
            Level::Debug,
            &archs.iter().map(|a| arch_name(*a)).collect::<String>(),
        );
        Ok(archs)
    }

    fn base_image(&self, _cx: &Cx) -> Result<BaseImageQuery> {
        let query = BaseImageQuery::new("136693071363", "debian-12-amd64-*", Arch::X86_64);
        let _owner: &str = &query.owner;
        Ok(query)
    }

    fn security_group_rules(&self, cx: &Cx) -> Result<Vec<SecurityGroupRule>> {
        let mut rules = cx.sup().security_group_rules()?;
        rules.push(SecurityGroupRule::tcp(
            80,
            RuleSource::Cidr("0.0.0.0/0".into()),
        ));
        rules.push(SecurityGroupRule::tcp_range(
            8000,
            8010,
            RuleSource::SameGroup,
        ));
        rules.push(SecurityGroupRule::udp(53, RuleSource::SshClients));
        rules.push(SecurityGroupRule::icmp(8, 0, RuleSource::SameGroup));
        rules.push(SecurityGroupRule::new(
            "tcp",
            443,
            443,
            RuleSource::Cidr("10.0.0.0/8".into()),
        ));
        for r in &rules {
            let _ = (
                &r.protocol,
                r.from_port,
                r.to_port,
                describe_source(&r.source),
            );
        }
        Ok(rules)
    }

    fn iam_role_features(&self, cx: &Cx) -> Result<Vec<String>> {
        let mut features = cx.sup().iam_role_features()?;
        features.push("author".into());
        Ok(features)
    }

    fn iam_policies(&self, _cx: &Cx) -> Result<Vec<IamPolicy>> {
        Ok(vec![IamPolicy::new(
            "read_only",
            r#"{"Version":"2012-10-17","Statement":[]}"#,
        )])
    }

    fn block_devices(&self, _cx: &Cx) -> Result<Vec<BlockDevice>> {
        Ok(vec![
            BlockDevice::ebs("/dev/sdf", 10),
            BlockDevice::instance_store("/dev/sdb", "ephemeral0"),
        ])
    }

    fn cloud_config(&self, cx: &Cx) -> Result<CloudConfig> {
        let mut config = cx.sup().cloud_config()?;
        config.append("runcmd", [serde_json::json!("true")]);
        config.set("timezone", serde_json::json!("UTC"));
        let _ = config.get("timezone");
        Ok(config)
    }

    fn init_commands(&self, _cx: &Cx) -> Result<Vec<String>> {
        Ok(vec!["true".into()])
    }

    fn on_instance_running(&self, cx: &Cx, first_boot: bool) -> Result<()> {
        cx.sup().on_instance_running(first_boot)?;
        cx.info(&format!("running, first boot: {first_boot}"));
        Ok(())
    }

    fn on_instance_ready(&self, cx: &Cx, first_boot: bool) -> Result<()> {
        cx.sup().on_instance_ready(first_boot)?;
        let host: HostInfo = cx.host()?;
        if !host.offers("run") {
            return Err(RoleError::host(format!("cgcloud {} cannot run", host.api)));
        }
        Ok(())
    }

    fn sync_package_repos(&self, cx: &Cx) -> Result<()> {
        match cx.option("extra")?.as_deref() {
            Some("dnf") => dnf::sync(cx, PackageManager::Dnf5),
            _ => apt::sync(cx),
        }
    }

    fn package_substitutions(&self, cx: &Cx) -> Result<Vec<Substitution>> {
        let mut subs = cx.sup().package_substitutions()?;
        subs.push(Substitution::new("python", &["python3"]));
        subs.push(Substitution::new::<&str>("drop-me", &[]));
        Ok(subs)
    }

    fn packages(&self, cx: &Cx) -> Result<Vec<String>> {
        let mut packages = cx.sup().packages()?;
        packages.push("python".into());
        Ok(packages)
    }

    fn install_packages(&self, cx: &Cx, packages: Vec<String>) -> Result<()> {
        match cx.option("extra")?.as_deref() {
            Some("dnf") => dnf::install(cx, PackageManager::Dnf4, &packages),
            Some("any") => PackageManager::Apt.install(cx, &packages),
            _ => apt::install(cx, &packages),
        }
    }

    fn post_install_packages(&self, cx: &Cx) -> Result<()> {
        cx.sup().post_install_packages()?;
        let greeting = cx.option("greeting")?.unwrap_or_default();
        let out: CmdOutput = cx.run(&format!("echo {}", shell_quote(&greeting)))?;
        let status = cx.run_unchecked("false")?.status;
        cx.sudo("true")?;
        cx.sudo_as("nobody", "true")?;
        cx.put_file("/tmp/greeting", out.stdout.as_bytes(), 0o644)?;
        cx.sudo_put_file("/etc/greeting", out.stderr.as_bytes(), 0o644)?;
        let _bytes: Vec<u8> = cx.get_file("/tmp/greeting")?;
        cx.log(
            Level::Warn,
            &format!(
                "{} in {} (false: {status})",
                cx.role_name()?,
                cx.current_role()
            ),
        );
        if cx.is_cancelled() {
            return Err(RoleError::cancelled());
        }
        cx.this().default_account()?;
        Ok(())
    }

    fn upgrade_packages(&self, cx: &Cx) -> Result<()> {
        match cx.sup().upgrade_packages() {
            Ok(()) => Ok(()),
            Err(e) => match e.kind {
                ErrorKind::Failed => PackageManager::Apt.upgrade(cx),
                _ => Err(e.context("upgrading")),
            },
        }
    }
}

/// The testing module as an author's unit tests use it (compiled here; a plugin's own tests
/// would run it with `cargo test`).
pub fn check_with_fake_host() -> Result<Vec<String>> {
    let parent = RoleDef::new::<Parent>("parent-box", "a parent");
    let def = RoleDef::new::<AuthorBox>("author-box", "an author's box").extending("parent-box");
    let role = TestRole::new(&def, &[&parent]);
    let host = FakeHost::new()
        .with_option("greeting", "hi")
        .respond("echo", CmdOutput::success("hi\n"))
        .respond("false", CmdOutput::new(1, "", "no"));
    role.hooks(&host).validate_options()?;
    role.hooks(&host).post_install_packages()?;
    role.setup(&host, false)?;
    let _ = (host.file("/tmp/greeting"), host.logs());
    host.cancel();
    Ok(host.commands())
}

#[derive(Default)]
struct Parent;

impl Role for Parent {
    fn admin_account(&self, _cx: &Cx) -> Result<String> {
        Ok("admin".into())
    }
}

cgcloud_plugin_api::export_plugin! {
    roles: [
        {
            name: "author-box",
            extends: "generic-debian-bookworm-box",
            description: "Written against cgcloud-plugin-api 1.0",
            new: AuthorBox::default,
        },
    ]
}
