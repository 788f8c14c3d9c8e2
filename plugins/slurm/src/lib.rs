//! Slurm clusters: the node role `slurm-box` (Debian 13 with Slurm and munge), its leader and
//! worker roles, and the cluster type `slurm`.
//!
//! Make the node image once, then clusters from it:
//!
//! ```text
//! cgcloud --plugin libcgcloud_slurm.so create -IT slurm-box
//! cgcloud --plugin libcgcloud_slurm.so create-cluster slurm -s 3
//! cgcloud --plugin libcgcloud_slurm.so ssh-cluster slurm -c CLUSTER -L -- sinfo
//! ```
//!
//! How a node becomes one: the image holds Slurm, munge and a small boot script,
//! `cgcloud-slurm`, started by a path unit once the cluster's munge key is in place. cgcloud
//! makes that key when it creates the cluster (the cluster type's shared secret) and writes it
//! to each node over SSH with the node's verified host key; it is never in user data, tags or
//! images. At every boot the script finds the leader by the name `cgcloud-leader`, which
//! cgcloud's boot-time discovery points at the leader's private address: the leader writes
//! `slurm.conf` naming itself and runs `slurmctld`; every node runs `slurmd` as a dynamic node
//! (`slurmd -Z`), the workers with their configuration from the leader (configless). So nodes
//! that `grow-cluster` adds join without a restart, and a cluster stopped and started through
//! the EC2 API alone comes back by itself. The leader runs jobs too: a cluster of `-s N`
//! workers has N + 1 nodes.

use cgcloud_plugin_api::prelude::*;

/// The node role's name, which the leader and worker roles share for their image and security
/// group.
pub const NODE_ROLE: &str = "slurm-box";
/// slurmctld and slurmd.
const DAEMON_PORTS: (u16, u16) = (6817, 6818);
/// Where `srun` listens for its tasks (`SrunPortRange` in the leader's `slurm.conf`).
const SRUN_PORTS: (u16, u16) = (60001, 63000);
/// The cluster's munge key: its shared secret.
pub const MUNGE_KEY: &str = "/etc/munge/munge.key";

const BOOT_SCRIPT: &str = include_str!("../files/cgcloud-slurm");
const BOOT_SERVICE: &str = include_str!("../files/cgcloud-slurm.service");
const BOOT_PATH: &str = include_str!("../files/cgcloud-slurm.path");
const SLURMD_DROP_IN: &str = include_str!("../files/slurmd-restart.conf");

/// `slurm-box`: what every node of a Slurm cluster is, and what its image holds.
#[derive(Default)]
pub struct SlurmBox;

impl Role for SlurmBox {
    fn image_name_prefix(&self, _cx: &Cx) -> Result<String> {
        // The leader and worker roles boot this role's image and share its security group.
        Ok(NODE_ROLE.into())
    }

    fn security_group_rules(&self, cx: &Cx) -> Result<Vec<SecurityGroupRule>> {
        let mut rules = cx.sup().security_group_rules()?;
        // Only the cluster's own nodes talk Slurm to each other.
        rules.push(SecurityGroupRule::tcp_range(
            DAEMON_PORTS.0,
            DAEMON_PORTS.1,
            RuleSource::SameGroup,
        ));
        rules.push(SecurityGroupRule::tcp_range(
            SRUN_PORTS.0,
            SRUN_PORTS.1,
            RuleSource::SameGroup,
        ));
        Ok(rules)
    }

    fn packages(&self, cx: &Cx) -> Result<Vec<String>> {
        let mut packages = cx.sup().packages()?;
        packages.extend(["slurm-wlm".to_string(), "munge".to_string()]);
        Ok(packages)
    }

    fn post_install_packages(&self, cx: &Cx) -> Result<()> {
        cx.sup().post_install_packages()?;
        // The daemons start only once the box is a cluster node, with the cluster's key: the
        // key the munge package made here would end up in the image.
        cx.sudo("systemctl disable --now slurmctld slurmd munge")?;
        cx.sudo(&format!("rm -f {MUNGE_KEY}"))?;
        cx.sudo_put_file(
            "/usr/local/sbin/cgcloud-slurm",
            BOOT_SCRIPT.as_bytes(),
            0o755,
        )?;
        cx.sudo_put_file(
            "/etc/systemd/system/cgcloud-slurm.service",
            BOOT_SERVICE.as_bytes(),
            0o644,
        )?;
        cx.sudo_put_file(
            "/etc/systemd/system/cgcloud-slurm.path",
            BOOT_PATH.as_bytes(),
            0o644,
        )?;
        cx.sudo("mkdir -p /etc/systemd/system/slurmd.service.d")?;
        cx.sudo_put_file(
            "/etc/systemd/system/slurmd.service.d/cgcloud.conf",
            SLURMD_DROP_IN.as_bytes(),
            0o644,
        )?;
        cx.sudo("systemctl daemon-reload")?;
        cx.sudo("systemctl enable cgcloud-slurm.path")?;
        let version = cx.run("dpkg-query -W -f='${Version}' slurm-wlm")?.stdout;
        cx.info(&format!("Slurm {version} installed"));
        Ok(())
    }
}

/// How long a node may take to join its cluster at boot.
const JOIN_SECONDS: u32 = 300;
/// How long a node may go unregistered before it joins again from the start
/// (`cgcloud-slurm.service`): a dynamic node whose registration was lost is never asked again.
const REGISTER_SECONDS: u32 = 30;

/// Waits until this node's slurmd is registered with the cluster's controller and accepts
/// jobs; `leader` also waits for the controller itself.
fn wait_joined(cx: &Cx, leader: bool) -> Result<()> {
    let controller = if leader {
        "scontrol ping 2>/dev/null | grep -q 'is UP' && "
    } else {
        ""
    };
    let script = format!(
        "end=$(($(date +%s) + {JOIN_SECONDS})); again=$(($(date +%s) + {REGISTER_SECONDS})); \
         until {controller}sinfo -h -N -n \"$(hostname -s)\" -o %T 2>/dev/null \
               | grep -qxE 'idle|mixed|allocated|completing'; do \
           now=$(date +%s); \
           if [ \"$now\" -ge \"$end\" ]; then exit 1; fi; \
           if [ \"$now\" -ge \"$again\" ]; then \
             systemctl restart --no-block cgcloud-slurm.service; again=$((now + {REGISTER_SECONDS})); \
           fi; \
           sleep 1; \
         done"
    );
    let out = cx.run_unchecked(&format!("sudo -n sh -c {}", shell_quote(&script)))?;
    if out.status == 0 {
        return Ok(());
    }
    let journal = cx
        .sudo("journalctl -b --no-pager -n 8 -u cgcloud-slurm -u slurmd -u slurmctld -u munge")
        .map(|o| o.stdout)
        .unwrap_or_default();
    let last = journal
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no journal");
    Err(RoleError::failed(format!(
        "this node did not join its Slurm cluster within {JOIN_SECONDS} s (last journal line: {})",
        last.trim()
    )))
}

/// `slurm-leader`: the cluster's controller, and a node that runs jobs.
#[derive(Default)]
pub struct SlurmLeader;

impl Role for SlurmLeader {
    fn on_instance_ready(&self, cx: &Cx, first_boot: bool) -> Result<()> {
        cx.sup().on_instance_ready(first_boot)?;
        wait_joined(cx, true)
    }
}

/// `slurm-worker`: a node that runs jobs.
#[derive(Default)]
pub struct SlurmWorker;

impl Role for SlurmWorker {
    fn on_instance_ready(&self, cx: &Cx, first_boot: bool) -> Result<()> {
        cx.sup().on_instance_ready(first_boot)?;
        wait_joined(cx, false)
    }
}

cgcloud_plugin_api::export_plugin! {
    roles: [
        {
            name: "slurm-box",
            extends: "generic-debian-trixie-box",
            description: "A Slurm node on Debian 13: image it, then create `slurm` clusters from it",
            new: SlurmBox::default,
        },
        {
            name: "slurm-leader",
            extends: "slurm-box",
            description: "The controller of a Slurm cluster (also runs jobs)",
            new: SlurmLeader::default,
        },
        {
            name: "slurm-worker",
            extends: "slurm-box",
            description: "A worker of a Slurm cluster",
            new: SlurmWorker::default,
        },
    ],
    clusters: [
        {
            name: "slurm",
            leader: "slurm-leader",
            worker: "slurm-worker",
            shared_secret: SharedSecret::new(MUNGE_KEY, "munge", 0o400, 1024),
            description: "A Slurm cluster: srun and sbatch from the leader",
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use cgcloud_plugin_api::testing::{FakeHost, TestRole};

    fn roles() -> (RoleDef, RoleDef, RoleDef) {
        let node =
            RoleDef::new::<SlurmBox>(NODE_ROLE, "node").extending("generic-debian-trixie-box");
        let leader = RoleDef::new::<SlurmLeader>("slurm-leader", "leader").extending(NODE_ROLE);
        let worker = RoleDef::new::<SlurmWorker>("slurm-worker", "worker").extending(NODE_ROLE);
        (node, leader, worker)
    }

    fn with_parents(role: &RoleDef, own: &[&RoleDef]) -> TestRole {
        let builtins = cgcloud_builtin_roles::plugin();
        let trixie = builtins
            .roles
            .iter()
            .find(|r| r.name == "generic-debian-trixie-box")
            .expect("built-in parent");
        let mut parents = own.to_vec();
        parents.push(trixie);
        TestRole::new(role, &parents)
    }

    #[test]
    fn the_image_holds_slurm_and_the_boot_script_but_no_munge_key() {
        let (node, ..) = roles();
        let role = with_parents(&node, &[]);
        let host = FakeHost::new().respond("dpkg-query", CmdOutput::success("24.11.5-4"));
        role.setup(&host, false).expect("set-up succeeds");
        let commands = host.commands();
        assert!(
            commands.iter().any(|c| c.ends_with("slurm-wlm munge")),
            "{commands:?}"
        );
        let disable = commands
            .iter()
            .position(|c| c == "sudo: systemctl disable --now slurmctld slurmd munge")
            .expect("daemons disabled");
        let remove = commands
            .iter()
            .position(|c| c == "sudo: rm -f /etc/munge/munge.key")
            .expect("the package's key removed");
        let enable = commands
            .iter()
            .position(|c| c == "sudo: systemctl enable cgcloud-slurm.path")
            .expect("path unit enabled");
        assert!(disable < remove && remove < enable, "{commands:?}");
        let script = host
            .file("/usr/local/sbin/cgcloud-slurm")
            .expect("script written");
        assert_eq!(script, BOOT_SCRIPT.as_bytes());
        let path = String::from_utf8(
            host.file("/etc/systemd/system/cgcloud-slurm.path")
                .expect("path unit"),
        )
        .expect("text");
        assert!(path.contains("PathExists=/etc/munge/munge.key"), "{path}");
    }

    #[test]
    fn leader_and_workers_share_the_node_image_and_open_slurm_only_to_the_cluster() {
        let (node, leader, worker) = roles();
        for (role, own) in [
            (&node, vec![]),
            (&leader, vec![&node]),
            (&worker, vec![&node]),
        ] {
            let role = with_parents(role, &own);
            let host = FakeHost::new();
            let hooks = role.hooks(&host);
            assert_eq!(hooks.image_name_prefix().expect("prefix"), NODE_ROLE);
            let rules = hooks.security_group_rules().expect("rules");
            for (from, to) in [DAEMON_PORTS, SRUN_PORTS] {
                assert!(
                    rules.contains(&SecurityGroupRule::tcp_range(
                        from,
                        to,
                        RuleSource::SameGroup
                    )),
                    "{rules:?}"
                );
            }
            assert!(
                !rules.iter().any(|r| r.from_port <= 6817
                    && r.to_port >= 6817
                    && r.source != RuleSource::SameGroup),
                "Slurm must not be open beyond the cluster: {rules:?}"
            );
        }
    }

    #[test]
    fn nodes_wait_until_they_joined_and_say_why_not() {
        let (node, leader, _) = roles();
        let role = with_parents(&leader, &[&node]);
        let host = FakeHost::new();
        role.hooks(&host).on_instance_ready(true).expect("joined");
        let wait = host
            .commands()
            .into_iter()
            .find(|c| c.contains("until "))
            .expect("a bounded wait");
        assert!(
            wait.contains("scontrol ping"),
            "the leader waits for slurmctld: {wait}"
        );

        let failing = FakeHost::new()
            .respond("until ", CmdOutput::new(1, "", ""))
            .respond(
                "journalctl",
                CmdOutput::success("Dec 04 slurmd[9]: error: cannot reach the controller\n"),
            );
        let e = role
            .hooks(&failing)
            .on_instance_ready(false)
            .expect_err("not joined");
        assert!(
            e.message
                .contains("did not join its Slurm cluster within 300 s")
                && e.message.contains("cannot reach the controller"),
            "{e}"
        );
    }

    #[test]
    fn the_cluster_type_shares_a_munge_key() {
        let def = <__CgcloudPlugin as cgcloud_plugin_api::abi::PluginEntry>::definition();
        let manifest = def.manifest();
        let slurm = &manifest.clusters[0];
        assert_eq!(
            (slurm.leader.as_str(), slurm.worker.as_str()),
            ("slurm-leader", "slurm-worker")
        );
        let secret = slurm.shared_secret.as_ref().expect("a shared secret");
        assert_eq!(secret, &SharedSecret::new(MUNGE_KEY, "munge", 0o400, 1024));
        assert_eq!(secret.problem(), None);
    }
}
