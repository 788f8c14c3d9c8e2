//! `bench-fifty-steps-box`: the role of the provisioning benchmark (`tests/bench/provision.sh`).
//!
//! A Debian 12 box whose set-up is `steps` small remote commands (default 50), each
//! `touch /tmp/bench-cgcloud-NN`, run one after the other in `post_install_packages`. The
//! benchmark runs the very same commands as a raw `ssh` loop and as Ansible tasks, and compares.
//! The role also logs how long its steps took (`ran 50 steps in S s`).
//!
//! The role skips its parent's `apt-get update` and package install: those talk to a Debian
//! mirror, take seconds and vary from run to run, and would drown the 50 steps that are being
//! compared. With them gone the set-up phase that `create --json` reports is the steps alone,
//! plus the few hook calls of the set-up template that run nothing on the box.

use cgcloud_plugin_api::prelude::*;

/// How many steps a box gets unless `-O steps=N` says otherwise.
const DEFAULT_STEPS: &str = "50";

#[derive(Default)]
pub struct FiftySteps;

/// The command of step `i` (1-based), the same the raw loop and Ansible run with their own
/// prefix.
pub fn step_command(i: u32) -> String {
    format!("touch /tmp/bench-cgcloud-{i:02}")
}

/// The line the role logs after its steps; the benchmark reads the time from it, to show the
/// steps' own cost apart from whatever else cgcloud's set-up phase does.
pub fn steps_report(steps: u32, secs: f64) -> String {
    format!("ran {steps} steps in {secs:.6} s")
}

impl Role for FiftySteps {
    fn options(&self, cx: &Cx) -> Result<Vec<RoleOption>> {
        let mut options = cx.sup().options()?;
        options.push(
            RoleOption::string("steps", "How many remote steps the set-up runs")
                .with_default(DEFAULT_STEPS),
        );
        Ok(options)
    }

    fn sync_package_repos(&self, _cx: &Cx) -> Result<()> {
        Ok(())
    }

    fn packages(&self, _cx: &Cx) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    fn post_install_packages(&self, cx: &Cx) -> Result<()> {
        cx.sup().post_install_packages()?;
        let text = cx.option("steps")?.unwrap_or_else(|| DEFAULT_STEPS.into());
        let steps: u32 = text.parse().map_err(|_| {
            RoleError::failed(format!(
                "role option `steps` must be a whole number, not `{text}`"
            ))
        })?;
        let start = std::time::Instant::now();
        for i in 1..=steps {
            cx.run(&step_command(i))?;
        }
        cx.info(&steps_report(steps, start.elapsed().as_secs_f64()));
        Ok(())
    }
}

cgcloud_plugin_api::export_plugin! {
    roles: [
        {
            name: "bench-fifty-steps-box",
            extends: "generic-debian-bookworm-box",
            description: "A Debian 12 box set up by 50 small remote steps (benchmark)",
            new: FiftySteps::default,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use cgcloud_plugin_api::testing::{FakeHost, TestRole};

    #[test]
    fn step_commands_are_numbered_with_two_digits() {
        assert_eq!(step_command(7), "touch /tmp/bench-cgcloud-07");
        assert_eq!(step_command(50), "touch /tmp/bench-cgcloud-50");
    }

    fn setup_commands(host: &FakeHost) -> Vec<String> {
        let builtins = cgcloud_builtin_roles::plugin();
        let parent = builtins
            .roles
            .iter()
            .find(|r| r.name == "generic-debian-bookworm-box")
            .expect("built-in parent");
        let def =
            RoleDef::new::<FiftySteps>("bench-fifty-steps-box", "bench").extending(&parent.name);
        let role = TestRole::new(&def, &[parent]);
        role.setup(host, false).expect("set-up succeeds");
        host.commands()
    }

    #[test]
    fn setup_is_the_steps_and_nothing_else() {
        let host = FakeHost::new();
        let commands = setup_commands(&host);
        let logs = host.logs();
        assert_eq!(logs.len(), 1, "{logs:?}");
        assert!(logs[0].1.starts_with("ran 50 steps in "), "{logs:?}");
        let expected: Vec<String> = (1..=50)
            .map(|i| format!("run: {}", step_command(i)))
            .collect();
        assert_eq!(commands, expected);
    }

    #[test]
    fn the_steps_option_sets_the_count() {
        let commands = setup_commands(&FakeHost::new().with_option("steps", "3"));
        assert_eq!(commands.len(), 3, "{commands:?}");
        assert_eq!(commands[2], "run: touch /tmp/bench-cgcloud-03");
    }
}
