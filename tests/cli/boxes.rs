//! The box lifecycle end to end on the local cloud: real boxes (systemd, sshd, cloud-init)
//! behind moto's EC2, reached with verified host keys.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use cgcloud_localcloud::LocalCloud;
use cgcloud_tests::*;
use serde_json::Value;

/// A local cloud with cgcloud set up to use it: a home, a data directory, a registered key.
pub struct Cloud {
    pub cloud: LocalCloud,
    pub home: tempfile::TempDir,
    pub key: PathBuf,
}

impl Cloud {
    pub fn start() -> Cloud {
        let cloud =
            LocalCloud::start().unwrap_or_else(|e| panic!("the local cloud did not start: {e:#}"));
        let home = tempfile::tempdir().unwrap();
        let key = ssh_keygen(home.path(), "id_ed25519", "ed25519");
        // The release agent, where cgcloud looks for the agent of x86_64 boxes.
        let agents = home.path().join("data/agents/x86_64");
        std::fs::create_dir_all(&agents).unwrap();
        std::fs::copy(agent_bin(), agents.join("cgcloud-agent")).unwrap();
        let c = Cloud { cloud, home, key };
        let o = c.run(&[
            "register-key",
            c.key.with_extension("pub").to_str().unwrap(),
        ]);
        assert_success(&o);
        c
    }

    pub fn cgcloud(&self, args: &[&str]) -> Command {
        let mut c = bare_cgcloud(self.home.path(), args);
        c.envs(self.cloud.env())
            .env("CGCLOUD_DATA_DIR", self.home.path().join("data"))
            .env("CGCLOUD_SSH_KEY", &self.key);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let o = run(self.cgcloud(args));
        eprintln!("$ cgcloud {}\n{}{}", args.join(" "), stdout(&o), stderr(&o));
        o
    }

    /// Runs cgcloud with the fixture plugin `plugin` (`tests/cli/fixtures`).
    pub fn run_with_plugin(&self, plugin: &str, args: &[&str]) -> Output {
        let lib = fixture_plugin(plugin);
        let mut all = vec!["--plugin", lib.to_str().unwrap()];
        all.extend(args);
        self.run(&all)
    }

    pub fn ec2(&self, pairs: &[(&str, &str)]) -> String {
        let mut all = pairs.to_vec();
        all.push(("Version", "2016-11-15"));
        self.cloud
            .ec2(&form(&all))
            .unwrap_or_else(|e| panic!("EC2 call failed: {e:#}"))
    }

    fn instance_states(&self) -> Vec<(String, String)> {
        let body = self.ec2(&[("Action", "DescribeInstances")]);
        body.split("<instancesSet>")
            .skip(1)
            .flat_map(|set| {
                set.split("<item>")
                    .skip(1)
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .filter_map(|item| {
                let id = xml_field(&item, "instanceId")?;
                let state = item
                    .split("<instanceState>")
                    .nth(1)
                    .and_then(|s| xml_field(s, "name"))?;
                Some((id, state))
            })
            .collect()
    }

    pub(crate) fn state_of(&self, id: &str) -> String {
        self.instance_states()
            .into_iter()
            .find(|(i, _)| i == id)
            .map(|(_, s)| s)
            .unwrap_or_default()
    }

    fn own_image_ids(&self) -> Vec<String> {
        xml_fields(
            &self.ec2(&[("Action", "DescribeImages"), ("Owner.1", "self")]),
            "imageId",
        )
    }

    pub(crate) fn known_hosts(&self) -> String {
        std::fs::read_to_string(self.home.path().join("data/known_hosts")).unwrap_or_default()
    }
}

fn created(o: &Output) -> Value {
    assert_success(o);
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

/// A fixture plugin of the CLI tests (`tests/cli/fixtures`), all built once per run.
pub fn fixture_plugin(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let target = BUILT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf();
        let target = root.join("target/plugin-fixtures/cli");
        let manifest = root.join("tests/cli/fixtures/Cargo.toml");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let o = run({
            let mut c = Command::new(cargo);
            c.args(["build", "--quiet", "--workspace", "--manifest-path"])
                .arg(&manifest)
                .arg("--target-dir")
                .arg(&target);
            c
        });
        assert!(
            o.status.success(),
            "building the fixture plugin failed: {}",
            stderr(&o)
        );
        target
    });
    target
        .join("debug")
        .join(format!("lib{}.so", name.replace('-', "_")))
}

fn core_sequence(role: &str) {
    let c = Cloud::start();
    let o = c.run(&["create", role, "--json"]);
    let first = created(&o);
    let id = first["instance_id"].as_str().unwrap().to_string();
    assert_eq!(c.state_of(&id), "running");
    assert!(
        c.known_hosts().starts_with(&format!("{id} ssh-ed25519 ")),
        "the host key is pinned by instance ID"
    );
    for phase in [
        "api",
        "pending-to-running",
        "boot-to-ssh",
        "cloud-init",
        "setup",
    ] {
        assert!(
            first["phases"][phase].is_number(),
            "phase {phase} timed: {first}"
        );
    }

    let o = c.run(&["ssh", role, "uname", "-s"]);
    assert_success(&o);
    assert_eq!(stdout(&o).trim(), "Linux");
    let o = c.run(&["ssh", role, "exit", "7"]);
    assert_eq!(
        o.status.code(),
        Some(7),
        "the remote exit status is passed through"
    );
    // cgcloud's user data passes cloud-init's own schema check (the user data as EC2 holds it,
    // checked on the box; cgcloud removes cloud-init's own copy once the host key is replaced),
    // and cloud-init logged no schema warning at boot.
    let body = c.ec2(&[
        ("Action", "DescribeInstanceAttribute"),
        ("InstanceId", &id),
        ("Attribute", "userData"),
    ]);
    let user_data = c.home.path().join("user-data");
    std::fs::write(&user_data, user_data_in(&body)).unwrap();
    assert_success(&c.run(&["rsync", role, user_data.to_str().unwrap(), ":user-data"]));
    let o = c.run(&["ssh", role, "cloud-init", "schema", "-c", "user-data"]);
    assert_success(&o);
    // (Debian 12's cloud-init says "Valid cloud-config: user-data", newer ones "Valid schema".)
    let said = stdout(&o);
    assert!(
        said.contains("Valid cloud-config") || said.contains("Valid schema"),
        "{said}{}",
        stderr(&o)
    );
    assert!(!said.to_lowercase().contains("error"), "{said}");
    let o = c.run(&[
        "ssh",
        role,
        "sudo grep -ciE 'invalid cloud-config|failed schema validation' /var/log/cloud-init.log",
    ]);
    assert_eq!(
        stdout(&o).trim(),
        "0",
        "cloud-init logged schema trouble: {}",
        stdout(&o)
    );

    let local = c.home.path().join("payload");
    std::fs::write(
        &local,
        "a file that must survive stop, image and recreate\n",
    )
    .unwrap();
    assert_success(&c.run(&["rsync", role, "-a", local.to_str().unwrap(), ":payload"]));
    assert_success(&c.run(&["ssh", role, "touch", "created-by-ssh"]));

    assert_success(&c.run(&["stop", role]));
    assert_eq!(c.state_of(&id), "stopped");
    let o = c.run(&["image", role]);
    assert_success(&o);
    let image = stdout(&o).trim().to_string();
    // `stop` readied the disk: the image (the local cloud keeps it as a folder) carries no
    // personal keys and no copy of the user data.
    c.cloud.sync().unwrap();
    let layer = cgcloud_localcloud::boxes::state_root()
        .join(c.cloud.cid())
        .join("images")
        .join(&image)
        .join("layer");
    assert!(
        layer.is_dir(),
        "the image's files are at `{}`",
        layer.display()
    );
    let keys = std::fs::read_to_string(layer.join("home/admin/.ssh/authorized_keys.cgcloud"))
        .expect("the agent's key file is in the image");
    assert!(
        keys.trim().is_empty(),
        "the agent's key file in the image is empty: {keys}"
    );
    let authorized = std::fs::read_to_string(layer.join("home/admin/.ssh/authorized_keys"))
        .expect("cloud-init's authorized_keys is in the image");
    let mine = std::fs::read_to_string(c.key.with_extension("pub")).unwrap();
    assert!(
        !authorized.contains(mine.split_whitespace().nth(1).unwrap()),
        "no launch key in the image: {authorized}"
    );
    assert!(
        layer.join(format!("var/lib/cloud/instances/{id}")).is_dir(),
        "cloud-init's folder of the instance is in the image"
    );
    assert!(
        !layer
            .join(format!("var/lib/cloud/instances/{id}/user-data.txt"))
            .exists(),
        "no user data in the image"
    );
    assert_eq!(c.own_image_ids(), vec![image.clone()]);
    let body = c.ec2(&[("Action", "DescribeImages"), ("ImageId.1", &image)]);
    assert!(
        body.contains("<key>generation</key><value>1</value>") || body.contains("generation"),
        "{body}"
    );
    assert!(
        body.contains("cgcloud:role-hash"),
        "images carry the role's hash: {body}"
    );
    assert_success(&c.run(&["terminate", role]));
    assert_eq!(c.state_of(&id), "terminated");
    assert!(
        !c.known_hosts().contains(&id),
        "a terminated box's pin is forgotten"
    );

    let again = created(&c.run(&["recreate", role, "--json"]));
    let id2 = again["instance_id"].as_str().unwrap().to_string();
    assert_ne!(id2, id);
    assert_eq!(again["image_id"], image.as_str());
    let o = c.run(&["ssh", role, "cat", "payload"]);
    assert_success(&o);
    assert_eq!(
        stdout(&o),
        "a file that must survive stop, image and recreate\n"
    );
    let back = c.home.path().join("back");
    std::fs::create_dir_all(&back).unwrap();
    assert_success(&c.run(&[
        "rsync",
        role,
        "-a",
        ":created-by-ssh",
        back.to_str().unwrap(),
    ]));
    assert!(back.join("created-by-ssh").exists());
    assert_success(&c.run(&["terminate", role]));
    assert_eq!(c.state_of(&id2), "terminated");
    assert_success(&c.run(&["delete-image", role]));
    assert!(c.own_image_ids().is_empty());
}

#[test]
fn core_sequence_on_debian_bookworm() {
    core_sequence("generic-debian-bookworm-box");
}

#[test]
fn core_sequence_on_debian_trixie() {
    core_sequence("generic-debian-trixie-box");
}

#[test]
fn a_plugin_role_creates_and_provisions_a_real_box() {
    let c = Cloud::start();
    let plugin = cgcloud_bin().with_file_name("libexample_roles.so");
    let p = plugin.to_str().unwrap();
    let o = c.run(&[
        "--plugin",
        p,
        "create",
        "example-web-box",
        "-O",
        "site_title=Hello from a plugin",
        "--json",
    ]);
    let made = stderr(&o);
    let box_ = created(&o);
    let o = c.run(&[
        "--plugin",
        p,
        "ssh",
        "example-web-box",
        "curl",
        "-s",
        "http://localhost/",
    ]);
    assert_success(&o);
    assert!(
        stdout(&o).contains("<h1>Hello from a plugin</h1>"),
        "nginx serves the role's page: {}",
        stdout(&o)
    );
    let id = box_["instance_id"].as_str().unwrap();
    let body = c.ec2(&[("Action", "DescribeInstances"), ("InstanceId.1", id)]);
    assert!(
        body.contains("site_title"),
        "role options are tagged: {body}"
    );
    assert!(
        body.contains("cgcloud:namespace"),
        "the ownership tag is there at launch: {body}"
    );
    // The role's own ingress rule, next to its parent's.
    let groups = c.ec2(&[("Action", "DescribeSecurityGroups")]);
    let ports = xml_fields(&groups, "fromPort");
    assert!(
        ports.iter().any(|p| p == "80") && ports.iter().any(|p| p == "22"),
        "{groups}"
    );
    // Run as another user and read a command's output, on the real box.
    assert!(made.contains("serves `Hello from a plugin`"), "{made}");
    assert_success(&c.run(&["--plugin", p, "terminate", "example-web-box"]));
}

#[test]
fn a_setup_failure_terminates_the_instance_unless_never_terminate() {
    let c = Cloud::start();
    let plugin = fixture_plugin("setup-panics");
    let p = plugin.to_str().unwrap();
    let o = c.run(&["--plugin", p, "create", "setup-panics-box"]);
    assert_user_error(&o, "panicked in hook `post_install_packages`");
    assert!(
        stderr(&o).contains("setup-panics-box") && stderr(&o).contains("setup-panics"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("terminated instance"), "{}", stderr(&o));
    let states = c.instance_states();
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].1, "terminated");

    let o = c.run(&["--plugin", p, "create", "setup-panics-box", "-N"]);
    assert_user_error(&o, "panicked in hook `post_install_packages`");
    let kept: Vec<_> = c
        .instance_states()
        .into_iter()
        .filter(|(_, s)| s == "running")
        .collect();
    assert_eq!(kept.len(), 1, "-N keeps the instance");
    let o = c.run(&[
        "--plugin",
        p,
        "ssh",
        "setup-panics-box",
        "test",
        "-e",
        "/var/tmp/setup-reached-post-install",
    ]);
    assert_eq!(o.status.code(), Some(0), "the kept box can be inspected");
}

/// The `hook-record:` lines a run of cgcloud logged for the hook-recorder fixture, in order,
/// without the boot IDs; and the boot IDs `on_instance_ready` saw.
fn hook_records(o: &Output) -> (Vec<String>, Vec<String>) {
    let mut hooks = Vec::new();
    let mut boots = Vec::new();
    for line in stderr(o).lines() {
        let Some((_, record)) = line.split_once("hook-record: ") else {
            continue;
        };
        let mut words = Vec::new();
        for word in record.split_whitespace() {
            match word.strip_prefix("boot=") {
                Some(id) => boots.push(id.to_string()),
                None => words.push(word),
            }
        }
        hooks.push(words.join(" "));
    }
    (hooks, boots)
}

#[test]
fn box_hooks_run_on_every_boot_with_first_boot_only_on_the_first() {
    let c = Cloud::start();
    let plugin = fixture_plugin("hook-recorder");
    let p = plugin.to_str().unwrap();
    let role = "hook-recorder-box";
    let first = |b: bool| {
        vec![
            format!("on_instance_running first_boot={b} box=unreachable"),
            format!("on_instance_ready first_boot={b}"),
        ]
    };
    let setup: Vec<String> = [
        "setup_package_repos",
        "sync_package_repos",
        "pre_install_packages",
        "install_packages",
        "post_install_packages",
        "upgrade_packages",
    ]
    .map(String::from)
    .to_vec();

    // create with --upgrade and --create-image: the first boot, the set-up, the reboot after the
    // upgrade, and the restart after the image.
    let o = c.run(&[
        "--plugin",
        p,
        "create",
        role,
        "-U",
        "-I",
        "--no-agent",
        "--json",
    ]);
    let made = created(&o);
    let (hooks, boots) = hook_records(&o);
    let want: Vec<String> = [first(true), setup, first(false), first(false)].concat();
    assert_eq!(hooks, want, "create -U -I");
    assert_eq!(boots.len(), 3);
    assert!(
        boots[0] != boots[1] && boots[1] != boots[2] && boots[0] != boots[2],
        "three different boots: {boots:?}"
    );

    // stop and start: no hook while stopping; one boot, not the first.
    let o = c.run(&["--plugin", p, "stop", role]);
    assert_success(&o);
    assert_eq!(hook_records(&o).0, Vec::<String>::new(), "stop");
    let o = c.run(&["--plugin", p, "start", role]);
    assert_success(&o);
    let (hooks, start_boots) = hook_records(&o);
    assert_eq!(hooks, first(false), "start");
    assert!(!boots.contains(&start_boots[0]), "a new boot");

    // reboot: one boot, not the first.
    let o = c.run(&["--plugin", p, "reboot", role]);
    assert_success(&o);
    let (hooks, reboot_boots) = hook_records(&o);
    assert_eq!(hooks, first(false), "reboot");
    assert_ne!(reboot_boots, start_boots, "a new boot");

    // An image of a stopped box boots nothing; a box recreated from it boots for the first
    // time, without the set-up phases (its image has them done).
    assert_success(&c.run(&["--plugin", p, "stop", role]));
    let o = c.run(&["--plugin", p, "image", role]);
    assert_success(&o);
    assert_eq!(hook_records(&o).0, Vec::<String>::new(), "image");
    let o = c.run(&["--plugin", p, "recreate", role, "--json"]);
    let again = created(&o);
    assert_ne!(again["instance_id"], made["instance_id"]);
    assert_eq!(hook_records(&o).0, first(true), "recreate");

    for id in [&made["instance_id"], &again["instance_id"]] {
        let id = id.as_str().unwrap();
        assert_success(&c.run(&["--plugin", p, "terminate", role, "--instance-id", id]));
    }
}

#[test]
fn create_plan_touches_nothing() {
    let c = Cloud::start();
    let before = c.ec2(&[("Action", "DescribeSecurityGroups")]);
    let o = c.run(&["create", "generic-debian-bookworm-box", "--plan"]);
    let plan = created(&o);
    assert_eq!(plan["image"]["owner"], "136693071363");
    assert_eq!(
        plan["image"]["name"], "debian-12-amd64-20250610-2140",
        "the newest of the verified owner's images"
    );
    assert_eq!(plan["instance_type"], "t3.micro");
    assert!(plan["security_group"]["rules"]
        .as_array()
        .is_some_and(|r| !r.is_empty()));
    assert!(plan["iam_role"].as_str().unwrap().contains("cgcloud-"));
    assert_eq!(
        plan["tags"]["Name"],
        format!(
            "{}_generic-debian-bookworm-box",
            c.cloud.account().user.to_lowercase()
        )
    );
    assert!(c.instance_states().is_empty());
    assert_eq!(
        c.ec2(&[("Action", "DescribeSecurityGroups")]),
        before,
        "no security group made"
    );
}

#[test]
fn create_can_image_the_box_and_terminate_it() {
    let c = Cloud::start();
    let done = created(&c.run(&[
        "create",
        "generic-debian-bookworm-box",
        "-I",
        "-T",
        "--no-agent",
        "--json",
    ]));
    let image = done["created_image"]
        .as_str()
        .expect("an image was made")
        .to_string();
    assert_eq!(done["terminated"], true);
    assert_eq!(
        c.state_of(done["instance_id"].as_str().unwrap()),
        "terminated"
    );
    assert_eq!(c.own_image_ids(), vec![image.clone()]);
    let body = c.ec2(&[("Action", "DescribeImages"), ("ImageId.1", &image)]);
    for tag in [
        "cgcloud:role-hash",
        "cgcloud:plugin",
        "cgcloud:base-ami",
        "cgcloud:namespace",
    ] {
        assert!(body.contains(tag), "image tag {tag}: {body}");
    }
    // An image of a box without the agent makes boxes without the agent.
    let again = created(&c.run(&["recreate", "generic-debian-bookworm-box", "--json"]));
    let id = again["instance_id"].as_str().unwrap();
    let o = c.run(&["show", "generic-debian-bookworm-box", "--json"]);
    let shown: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(shown["instance_id"], id);
    assert_eq!(shown["tags"]["enable_agent"], "False");
    assert_success(&c.run(&["terminate", "generic-debian-bookworm-box"]));
}

#[test]
fn an_image_of_an_agent_box_carries_no_user_data_and_the_box_goes_on_with_a_new_host_key() {
    let c = Cloud::start();
    let role = "generic-debian-bookworm-box";
    let done = created(&c.run(&["create", role, "-I", "--json"]));
    let first = done["instance_id"].as_str().unwrap().to_string();
    let image = done["created_image"]
        .as_str()
        .expect("an image was made")
        .to_string();
    assert_eq!(c.state_of(&first), "running", "without -T the box goes on");
    // It answers with a host key generated after the image was made: the one published.
    let o = c.run(&["ssh", role, "cat", "/etc/ssh/ssh_host_ed25519_key.pub"]);
    assert_success(&o);
    let live = key_part(&stdout(&o));
    let body = c.ec2(&[
        ("Action", "DescribeTags"),
        ("Filter.1.Name", "resource-id"),
        ("Filter.1.Value.1", &first),
    ]);
    assert!(
        body.contains(&live),
        "the live key is the published one: {body}"
    );
    assert!(
        c.known_hosts().contains(&format!("{first} {live}")),
        "and the pinned one"
    );

    // A box from the image: no user data of the first box came along, and its own launch key
    // went from authorized_keys to the agent's file.
    let again = created(&c.run(&["recreate", role, "--json"]));
    assert_eq!(again["image_id"], image.as_str());
    let second = again["instance_id"].as_str().unwrap().to_string();
    let o = c.run(&[
        "ssh",
        role,
        "-I",
        &second,
        &format!("sudo ls -a /var/lib/cloud/instances/{first}/"),
    ]);
    assert_success(&o);
    assert!(
        !stdout(&o).contains("user-data.txt") && !stdout(&o).contains("obj.pkl"),
        "{}",
        stdout(&o)
    );
    let key = std::fs::read_to_string(c.key.with_extension("pub")).unwrap();
    let data = key.split_whitespace().nth(1).unwrap().to_string();
    let o = c.run(&[
        "ssh",
        role,
        "-I",
        &second,
        &format!("grep -c {data} ~/.ssh/authorized_keys ~/.ssh/authorized_keys.cgcloud"),
    ]);
    assert!(
        stdout(&o).contains("authorized_keys:0")
            && stdout(&o).contains("authorized_keys.cgcloud:1"),
        "{}",
        stdout(&o)
    );
    assert_success(&c.run(&["terminate", role, "-I", &second]));
    assert_success(&c.run(&["terminate", role, "-I", &first]));
    assert_success(&c.run(&["delete-image", role]));
}

#[test]
fn without_the_agent_keys_two_to_n_go_in_at_first_boot() {
    let c = Cloud::start();
    let erin = ssh_keygen(c.home.path(), "erin", "ed25519");
    assert_success(&c.run(&[
        "register-key",
        erin.with_extension("pub").to_str().unwrap(),
        "-k",
        "erin",
    ]));
    let user = c.cloud.account().user.to_lowercase();
    assert_success(&c.run(&[
        "create",
        "generic-debian-bookworm-box",
        "--no-agent",
        "-k",
        &user,
        "erin",
    ]));
    let mut cmd = c.cgcloud(&["ssh", "generic-debian-bookworm-box", "true"]);
    cmd.env("CGCLOUD_SSH_KEY", &erin).env("SSH_AUTH_SOCK", "");
    assert!(
        run(cmd).status.success(),
        "erin's key, the second key pair, logs in"
    );
    let o = c.run(&[
        "ssh",
        "generic-debian-bookworm-box",
        "systemctl",
        "is-enabled",
        "cgcloud-agent",
    ]);
    assert_ne!(stdout(&o).trim(), "enabled", "no agent without the agent");
}

#[test]
fn host_keys_are_pinned_by_instance_so_a_recycled_address_never_prompts() {
    let c = Cloud::start();
    let role = "generic-debian-bookworm-box";
    let first = created(&c.run(&["create", role, "--no-agent", "--json"]));
    let old_id = first["instance_id"].as_str().unwrap().to_string();
    assert_success(&c.run(&["terminate", role]));
    let box_ = created(&c.run(&["create", role, "--no-agent", "--json"]));
    let id = box_["instance_id"].as_str().unwrap().to_string();
    let address = box_["address"].as_str().unwrap().to_string();
    assert!(
        !c.known_hosts().contains(&old_id),
        "the old box's pin is gone"
    );

    // The user's own known_hosts remembers another machine at this address (as after the
    // address was recycled): cgcloud neither prompts nor fails, since it pins by instance ID.
    let other = ssh_keygen(c.home.path(), "other_host", "ed25519");
    let other_pub = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let ssh_dir = c.home.path().join(".ssh");
    std::fs::create_dir_all(&ssh_dir).unwrap();
    std::fs::write(
        ssh_dir.join("known_hosts"),
        format!("{address} {other_pub}"),
    )
    .unwrap();
    let o = c.run(&["ssh", role, "echo", "reached"]);
    assert_success(&o);
    assert_eq!(stdout(&o).trim(), "reached");

    // A box answering with another key than the pinned one is refused, never accepted.
    let pinned = c.known_hosts();
    let key_of_other: Vec<&str> = other_pub.split_whitespace().take(2).collect();
    let forged: String = pinned
        .lines()
        .map(|l| {
            if l.starts_with(&id) {
                format!("{id} {}\n", key_of_other.join(" "))
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(c.home.path().join("data/known_hosts"), forged).unwrap();
    let o = c.run(&["ssh", role, "echo", "reached"]);
    assert_ne!(
        o.status.code(),
        Some(0),
        "a host key that does not match the pin is refused"
    );
    assert!(
        stderr(&o).contains("Host key verification failed")
            || stderr(&o).contains("HOST IDENTIFICATION HAS CHANGED"),
        "{}",
        stderr(&o)
    );
    std::fs::write(c.home.path().join("data/known_hosts"), pinned).unwrap();
    assert_success(&c.run(&["terminate", role]));
}

#[test]
fn creation_options_reach_ec2_and_the_other_box_commands_work() {
    let c = Cloud::start();
    let role = "generic-debian-bookworm-box";
    let o = c.run(&[
        "create",
        role,
        "--no-agent",
        "--spot-bid",
        "0.05",
        "--root-volume-size",
        "12",
        "--root-volume-type",
        "gp2",
        "--encrypt-root",
        "--virtualization-type",
        "hvm",
        "-t",
        "m7i.large",
        "--list",
    ]);
    assert_success(&o);
    let listed = stdout(&o);
    assert!(
        listed.starts_with("cluster_name\trole_name\tordinal"),
        "--list prints the box: {listed}"
    );
    let id = listed
        .lines()
        .nth(1)
        .and_then(|l| l.split('\t').nth(6))
        .expect("the listed box")
        .to_string();
    let body = c.ec2(&[("Action", "DescribeInstances"), ("InstanceId.1", &id)]);
    assert!(
        body.contains("<instanceLifecycle>spot</instanceLifecycle>"),
        "a spot instance: {body}"
    );
    assert!(
        body.contains("<instanceType>m7i.large</instanceType>"),
        "any instance type name: {body}"
    );
    let volumes = c.ec2(&[
        ("Action", "DescribeVolumes"),
        ("Filter.1.Name", "attachment.instance-id"),
        ("Filter.1.Value.1", &id),
    ]);
    assert!(
        volumes.contains("<size>12</size>") && volumes.contains("<volumeType>gp2</volumeType>"),
        "{volumes}"
    );
    assert!(volumes.contains("<encrypted>true</encrypted>"), "{volumes}");
    assert!(
        volumes.contains("cgcloud:namespace"),
        "volumes carry the ownership tag from launch: {volumes}"
    );

    let o = c.run(&["create", role, "--virtualization-type", "paravirtual"]);
    assert_user_error(
        &o,
        "supports the virtualization types hvm, not `paravirtual`",
    );

    assert_success(&c.run(&["reboot", role]));
    assert_eq!(c.state_of(&id), "running");
    assert_success(&c.run(&["ssh", role, "true"]));
    assert_success(&c.run(&["update-instance-profile", role]));
    let o = c.run(&["start", role]);
    assert_user_error(&o, "is `running`, not stopped");
    assert_success(&c.run(&["terminate", role]));
}

#[test]
fn a_box_that_never_answers_times_out_clearly_and_is_terminated() {
    let c = Cloud::start();
    // The local cloud looks up Ubuntu's images but cannot boot them: SSH never answers.
    let mut create = c.cgcloud(&["create", "generic-ubuntu-noble-box", "--no-agent"]);
    create.env("CGCLOUD_TIMEOUT_SSH", "5");
    let started = std::time::Instant::now();
    let o = run(create);
    assert_user_error(&o, "could not log in to");
    assert!(stderr(&o).contains("within 5s"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("Connection closed"),
        "the last SSH error says why: {}",
        stderr(&o)
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "the wait is bounded"
    );
    let states = c.instance_states();
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].1, "terminated", "the instance is cleaned up");
}

/// Tags `id` as a node of cluster `name` whose leader is `leader`, at `ordinal`.
fn tag_node(c: &Cloud, id: &str, name: &str, leader: &str, ordinal: u32) {
    let ordinal = ordinal.to_string();
    c.ec2(&[
        ("Action", "CreateTags"),
        ("ResourceId.1", id),
        ("Tag.1.Key", "cluster_name"),
        ("Tag.1.Value", name),
        ("Tag.2.Key", "leader_instance_id"),
        ("Tag.2.Value", leader),
        ("Tag.3.Key", "cluster_ordinal"),
        ("Tag.3.Value", &ordinal),
    ]);
}

#[test]
fn cluster_commands_reach_the_leader_and_its_workers() {
    let c = Cloud::start();
    let role = "hook-recorder-box";
    let cg = |args: &[&str]| c.run_with_plugin("hook-recorder", args);
    let o = cg(&["ssh-cluster", "recorder-cluster", "-c", "c1", "true"]);
    assert_user_error(&o, "no cluster of type `recorder-cluster` named `c1` found");

    // A leader and two workers, tagged as the original tags cluster nodes.
    let mut ids = Vec::new();
    for _ in 0..3 {
        let made = created(&cg(&["create", role, "--no-agent", "--json"]));
        ids.push(made["instance_id"].as_str().unwrap().to_string());
    }
    let leader = ids[0].clone();
    for (n, id) in ids.iter().enumerate() {
        tag_node(&c, id, "c1", &leader, n as u32);
    }
    assert_success(&cg(&[
        "ssh",
        role,
        "--instance-id",
        &leader,
        "touch",
        "/tmp/on-the-leader",
    ]));

    // Every node answers, each line prefixed with its node; serially and in parallel.
    for extra in [&[][..], &["-P"][..]] {
        let mut args = vec!["ssh-cluster", "recorder-cluster", "-c", "c1"];
        args.extend(extra);
        args.extend(["echo", "hello"]);
        let o = cg(&args);
        assert_success(&o);
        assert_eq!(
            stdout(&o),
            "leader: hello\nworker-1: hello\nworker-2: hello\n",
            "{extra:?}"
        );
    }
    // A command that fails on some nodes: exit 2, naming them.
    let o = cg(&[
        "ssh-cluster",
        "recorder-cluster",
        "-c",
        "c1",
        "-P",
        "test",
        "-e",
        "/tmp/on-the-leader",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("failed on worker-1 (exit status 1), worker-2 (exit status 1)"),
        "{}",
        stderr(&o)
    );
    // -L leaves the leader out.
    let o = cg(&[
        "ssh-cluster",
        "recorder-cluster",
        "-c",
        "c1",
        "-L",
        "echo",
        "hi",
    ]);
    assert_eq!(stdout(&o), "worker-1: hi\nworker-2: hi\n");

    // rsync-cluster copies to every node.
    let file = c.home.path().join("shared.txt");
    std::fs::write(&file, "shared by rsync\n").unwrap();
    let o = cg(&[
        "rsync-cluster",
        "recorder-cluster",
        "-c",
        "c1",
        file.to_str().unwrap(),
        ":",
    ]);
    assert_success(&o);
    let o = cg(&[
        "ssh-cluster",
        "recorder-cluster",
        "-c",
        "c1",
        "cat",
        "shared.txt",
    ]);
    assert_eq!(
        stdout(&o),
        "leader: shared by rsync\nworker-1: shared by rsync\nworker-2: shared by rsync\n"
    );

    // stop-cluster, then start-cluster boots every node again (their boot hooks run).
    assert_success(&cg(&["stop-cluster", "recorder-cluster", "-c", "c1"]));
    for id in &ids {
        assert_eq!(c.state_of(id), "stopped");
    }
    let o = cg(&["start-cluster", "recorder-cluster", "-c", "c1"]);
    assert_success(&o);
    let (hooks, _) = hook_records(&o);
    let ready = hooks
        .iter()
        .filter(|h| h.as_str() == "on_instance_ready first_boot=false")
        .count();
    assert_eq!(ready, 3, "{hooks:?}");
    for id in &ids {
        assert_eq!(c.state_of(id), "running");
    }

    // terminate-cluster leaves no instance and no pin.
    assert_success(&cg(&["terminate-cluster", "recorder-cluster", "-c", "c1"]));
    for id in &ids {
        assert_eq!(c.state_of(id), "terminated");
        assert!(!c.known_hosts().contains(id.as_str()), "{id} is forgotten");
    }
}

#[test]
fn create_cluster_boots_a_leader_and_its_workers_from_the_node_image() {
    let c = Cloud::start();
    let role = "hook-recorder-box";
    let cg = |args: &[&str]| c.run_with_plugin("hook-recorder", args);
    // The node image, as the original's users made it: `create -IT`.
    let made = created(&cg(&["create", role, "-I", "-T", "--no-agent", "--json"]));
    assert!(made["created_image"].is_string());

    let o = cg(&["create-cluster", "recorder-cluster", "-s", "2", "-c", "c2"]);
    assert_success(&o);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].starts_with("leader i-"));
    assert!(lines[1].starts_with("worker-1 i-") && lines[2].starts_with("worker-2 i-"));
    let id = |line: &str| line.split_whitespace().nth(1).unwrap().to_string();
    let (leader, w1, w2) = (id(lines[0]), id(lines[1]), id(lines[2]));
    // Every node boots for the first time, with no set-up (the image has it).
    let (hooks, _) = hook_records(&o);
    let firsts = hooks
        .iter()
        .filter(|h| h.as_str() == "on_instance_ready first_boot=true")
        .count();
    assert_eq!(firsts, 3, "{hooks:?}");
    assert!(
        !hooks.iter().any(|h| h == "post_install_packages"),
        "{hooks:?}"
    );
    // The workers came from one RunInstances.
    let body = c.ec2(&[
        ("Action", "DescribeInstances"),
        ("InstanceId.1", &w1),
        ("InstanceId.2", &w2),
    ]);
    assert_eq!(xml_fields(&body, "reservationId").len(), 1, "{body}");
    // Each with the role's instance profile (moto gives it to the first only; cgcloud checks).
    for w in [&w1, &w2] {
        let body = c.ec2(&[("Action", "DescribeInstances"), ("InstanceId.1", w)]);
        assert!(body.contains("<iamInstanceProfile>"), "{w}: {body}");
    }
    // The original's tags: cluster name, ordinals, the leader.
    let o = cg(&["list", role, "-c", "c2", "--json"]);
    let rows: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let mut seen: Vec<(String, i64)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["instance_id"].as_str().unwrap().to_string(),
                r["cluster_ordinal"].as_i64().unwrap(),
            )
        })
        .collect();
    seen.sort_by_key(|(_, o)| *o);
    assert_eq!(
        seen,
        [(leader.clone(), 0), (w1.clone(), 1), (w2.clone(), 2)]
    );
    for w in [&w1, &w2] {
        let body = c.ec2(&[("Action", "DescribeInstances"), ("InstanceId.1", w)]);
        assert!(
            body.contains(&format!(
                "<key>leader_instance_id</key><value>{leader}</value>"
            )),
            "{body}"
        );
    }

    // grow-cluster fills the gap a terminated worker left, and names the workers that fail.
    assert_success(&cg(&["terminate", role, "--instance-id", &w1]));
    let o = cg(&["grow-cluster", "recorder-cluster", "-c", "c2", "-s", "1"]);
    assert_success(&o);
    assert!(stdout(&o).starts_with("worker-1 i-"), "{}", stdout(&o));
    let o = cg(&[
        "grow-cluster",
        "recorder-cluster",
        "-c",
        "c2",
        "-s",
        "2",
        "-O",
        "fail_ready=true",
    ]);
    assert_user_error(
        &o,
        "2 of 2 workers failed, terminated (-N keeps them): worker-3 (`i-",
    );
    assert!(stderr(&o).contains("worker-4 (`i-"), "{}", stderr(&o));
    let o = cg(&["ssh-cluster", "recorder-cluster", "-c", "c2", "echo", "hi"]);
    assert_eq!(stdout(&o), "leader: hi\nworker-1: hi\nworker-2: hi\n");

    assert_success(&cg(&["terminate-cluster", "recorder-cluster", "-c", "c2"]));
    let o = cg(&["list", role, "--json"]);
    assert_eq!(stdout(&o).trim(), "[]", "nothing is left");
}

#[test]
fn cluster_nodes_find_their_leader_at_every_boot_even_when_started_through_ec2() {
    let c = Cloud::start();
    let role = "hook-recorder-box";
    let cg = |args: &[&str]| c.run_with_plugin("hook-recorder", args);
    // The node image with the agent, whose boot unit finds the leader.
    assert_success(&cg(&["create", role, "-I", "-T"]));
    let o = cg(&["create-cluster", "recorder-cluster", "-s", "1", "-c", "c3"]);
    assert_success(&o);
    let out = stdout(&o);
    let ids: Vec<String> = out
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
        .collect();
    let (leader, worker) = (&ids[0], &ids[1]);
    let leader_ip = xml_field(
        &c.ec2(&[("Action", "DescribeInstances"), ("InstanceId.1", leader)]),
        "privateIpAddress",
    )
    .unwrap();
    let check = |when: &str| {
        // Every node knows the leader by name at its private address…
        let o = cg(&[
            "ssh-cluster",
            "recorder-cluster",
            "-c",
            "c3",
            "getent",
            "hosts",
            "cgcloud-leader",
        ]);
        assert_success(&o);
        for line in stdout(&o).lines() {
            assert!(line.contains(&leader_ip), "{when}: {line}");
        }
        // …and reaches it over SSH with its host key verified: the only refusal left is the
        // worker's own missing credentials.
        let o = cg(&[
            "ssh",
            role,
            "--instance-id",
            worker,
            "ssh -o BatchMode=yes -o StrictHostKeyChecking=yes cgcloud-leader true; echo status=$?",
        ]);
        let text = format!("{}{}", stdout(&o), stderr(&o));
        assert!(
            text.contains("Permission denied (publickey"),
            "{when}: {text}"
        );
        assert!(
            !text.contains("Host key verification failed"),
            "{when}: {text}"
        );
    };
    check("after create-cluster");
    // Stopped and started through the EC2 API alone, not cgcloud, with what the nodes found
    // erased first: they find it again while they boot.
    assert_success(&cg(&[
        "ssh-cluster",
        "recorder-cluster",
        "-c",
        "c3",
        "sudo sed -i '/# cgcloud cluster$/d' /etc/hosts /etc/ssh/ssh_known_hosts",
    ]));
    for action in ["StopInstances", "StartInstances"] {
        c.ec2(&[
            ("Action", action),
            ("InstanceId.1", leader),
            ("InstanceId.2", worker),
        ]);
        let want = if action == "StopInstances" {
            "stopped"
        } else {
            "running"
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while [leader, worker].iter().any(|i| c.state_of(i) != want) {
            assert!(
                std::time::Instant::now() < deadline,
                "{action} took too long"
            );
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }
    // The discovery runs before cloud-init's last stage: wait for that on every node.
    assert_success(&cg(&[
        "ssh-cluster",
        "recorder-cluster",
        "-c",
        "c3",
        "cloud-init status --wait >/dev/null; true",
    ]));
    check("after a stop and start through EC2");
    assert_success(&cg(&["terminate-cluster", "recorder-cluster", "-c", "c3"]));
}

#[test]
fn cluster_spot_requests_and_ordinal_gaps_without_booting_the_nodes() {
    // The node image (one box, seconds); then -Q: nothing waits for SSH, so no node boots:
    // this is EC2's side of clusters.
    let c = Cloud::start();
    let cg = |args: &[&str]| c.run_with_plugin("hook-recorder", args);
    assert_success(&cg(&[
        "create",
        "hook-recorder-box",
        "-I",
        "-T",
        "--no-agent",
    ]));
    let o = cg(&[
        "create-cluster",
        "recorder-cluster",
        "-Q",
        "-s",
        "3",
        "-c",
        "spot",
        "--spot-bid",
        "0.05",
        "--leader-on-demand",
    ]);
    assert_success(&o);
    let out = stdout(&o);
    let id = |node: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{node} ")))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or_else(|| panic!("{node} in {out}"))
            .to_string()
    };
    let (leader, w1, w2, w3) = (id("leader"), id("worker-1"), id("worker-2"), id("worker-3"));
    let describe = |ids: &[&String]| {
        let keys: Vec<String> = (1..=ids.len()).map(|k| format!("InstanceId.{k}")).collect();
        let mut pairs = vec![("Action", "DescribeInstances")];
        for (k, i) in keys.iter().zip(ids) {
            pairs.push((k.as_str(), i.as_str()));
        }
        c.ec2(&pairs)
    };
    // The workers: one spot request (one RunInstances, one reservation), each a spot instance.
    let body = describe(&[&w1, &w2, &w3]);
    assert_eq!(xml_fields(&body, "reservationId").len(), 1, "{body}");
    assert_eq!(
        body.matches("<instanceLifecycle>spot</instanceLifecycle>")
            .count(),
        3,
        "{body}"
    );
    // The leader on demand (-D).
    let body = describe(&[&leader]);
    assert!(!body.contains("<instanceLifecycle>spot"), "{body}");

    // A worker gone: grow-cluster fills its ordinal first, then goes on after the last.
    c.ec2(&[("Action", "TerminateInstances"), ("InstanceId.1", &w2)]);
    let o = cg(&[
        "grow-cluster",
        "recorder-cluster",
        "-c",
        "spot",
        "-Q",
        "-s",
        "2",
    ]);
    assert_success(&o);
    let o = cg(&["list", "hook-recorder-box", "-c", "spot", "--json"]);
    assert_success(&o);
    let nodes: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let mut ordinals: Vec<i64> = nodes
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["state"] != "terminated")
        .map(|n| n["cluster_ordinal"].as_i64().unwrap())
        .collect();
    ordinals.sort();
    assert_eq!(ordinals, [0, 1, 2, 3, 4], "{nodes}");
    assert_success(&cg(&[
        "terminate-cluster",
        "recorder-cluster",
        "-c",
        "spot",
        "-Q",
    ]));
}

#[test]
fn cluster_nodes_keep_their_persistent_volumes_across_a_stop_and_a_new_cluster() {
    let c = Cloud::start();
    let role = "hook-recorder-box";
    let cg = |args: &[&str]| c.run_with_plugin("hook-recorder", args);
    // The nodes' persistent volumes (their root volumes carry the cluster's tags too).
    let volumes = || {
        c.ec2(&[
            ("Action", "DescribeVolumes"),
            ("Filter.1.Name", "tag:cluster_name"),
            ("Filter.1.Value.1", "vc"),
            ("Filter.2.Name", "tag:Name"),
            ("Filter.2.Value.1", "tester_hook-recorder-box__0"),
            ("Filter.2.Value.2", "tester_hook-recorder-box__1"),
        ])
    };
    let create = || {
        let o = cg(&[
            "create-cluster",
            "recorder-cluster",
            "-s",
            "1",
            "-e",
            "1",
            "-c",
            "vc",
        ]);
        assert_success(&o);
        o
    };
    assert_success(&cg(&["create", role, "-I", "-T"]));
    let o = create();
    assert_eq!(
        stderr(&o).matches(": created volume `vol-").count(),
        2,
        "{}",
        stderr(&o)
    );
    let ids: Vec<String> = stdout(&o)
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
        .collect();
    // One volume per node, of the size asked for, named after the node and its ordinal,
    // attached as /dev/sdf; the nodes carry the size in their `ebs_volume_size` tag.
    let v = volumes();
    assert_eq!(xml_fields(&v, "size"), ["1", "1"], "{v}");
    for (ordinal, id) in ids.iter().enumerate() {
        assert!(
            v.contains(&format!("<value>tester_{role}__{ordinal}</value>")),
            "{v}"
        );
        assert!(
            v.contains(&format!(
                "<instanceId>{id}</instanceId><device>/dev/sdf</device>"
            )),
            "{v}"
        );
        let d = c.ec2(&[("Action", "DescribeInstances"), ("InstanceId.1", id)]);
        assert!(
            d.contains("<key>ebs_volume_size</key><value>1</value>"),
            "{d}"
        );
    }
    // Each node has it formatted and mounted; each writes its own name on it.
    let o = cg(&[
        "ssh-cluster",
        "recorder-cluster",
        "-c",
        "vc",
        "findmnt -n -o SOURCE,FSTYPE /mnt/persistent && hostname | sudo tee /mnt/persistent/who >/dev/null",
    ]);
    assert_success(&o);
    let out = stdout(&o);
    assert_eq!(out.matches("/dev/xvdf ext4").count(), 2, "{out}");
    let check = |when: &str| -> Vec<String> {
        let o = cg(&[
            "ssh-cluster",
            "recorder-cluster",
            "-c",
            "vc",
            "cloud-init status --wait >/dev/null; systemctl is-active -q cgcloud-persistent.service && mountpoint -q /mnt/persistent && cat /mnt/persistent/who",
        ]);
        assert_success(&o);
        let lines: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
        assert_eq!(lines.len(), 2, "{when}: {lines:?}");
        lines
    };
    let written = check("after create-cluster");
    // Stopped by cgcloud and started through the EC2 API alone: mounted again at boot.
    assert_success(&cg(&["stop-cluster", "recorder-cluster", "-c", "vc"]));
    c.ec2(&[
        ("Action", "StartInstances"),
        ("InstanceId.1", &ids[0]),
        ("InstanceId.2", &ids[1]),
    ]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while ids.iter().any(|i| c.state_of(i) != "running") {
        assert!(
            std::time::Instant::now() < deadline,
            "the nodes did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    // `stop-cluster` emptied the agents' key files (as before an image); started behind
    // cgcloud's back, a node lets the team in once its agent has written them again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let o = cg(&["ssh-cluster", "recorder-cluster", "-c", "vc", "-P", "true"]);
        if o.status.success() {
            break;
        }
        assert!(
            stderr(&o).contains("Permission denied (publickey)")
                && std::time::Instant::now() < deadline,
            "{}",
            stderr(&o)
        );
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    assert_eq!(check("after a stop and a start through EC2"), written);
    // Terminating the cluster keeps the volumes; the same cluster made again finds its data.
    let o = cg(&["terminate-cluster", "recorder-cluster", "-c", "vc"]);
    assert_success(&o);
    assert!(
        stderr(&o).contains("kept the nodes' 2 persistent volume(s)"),
        "{}",
        stderr(&o)
    );
    let v = volumes();
    assert_eq!(xml_fields(&v, "status"), ["available", "available"], "{v}");
    let o = create();
    assert_eq!(
        stderr(&o).matches(": reusing volume `vol-").count(),
        2,
        "{}",
        stderr(&o)
    );
    assert_eq!(check("in the cluster made again"), written);
    // Deleted only when asked, after the nodes are gone.
    let o = cg(&[
        "terminate-cluster",
        "recorder-cluster",
        "-c",
        "vc",
        "--delete-volumes",
    ]);
    assert_success(&o);
    assert_eq!(
        stderr(&o).matches("INFO: deleted volume `vol-").count(),
        2,
        "{}",
        stderr(&o)
    );
    let v = volumes();
    assert!(xml_fields(&v, "volumeId").is_empty(), "{v}");
}

#[test]
fn set_up_steps_keep_their_semantics_and_one_that_hangs_or_loses_its_connection_ends_the_run() {
    let c = Cloud::start();
    let role = "hook-recorder-box";
    let plugin = fixture_plugin("hook-recorder");
    // What a step sees and returns (megabytes on both streams, binary output and files, stdin
    // at end of file, exit/cd/export kept in their step, a signal, a missing command, sudo),
    // checked by the role on the box: steps run through the step runner, a `sh` on the box.
    // Then a connection cut in the middle of the set-up: the command that was running is named.
    let o = c.run_with_plugin(
        "hook-recorder",
        &[
            "create",
            role,
            "-O",
            "probe_steps=true",
            "-O",
            "drop_ssh=true",
        ],
    );
    assert!(
        stderr(&o).contains("hook-record: step probes passed; steps run by `sh`"),
        "{}",
        stderr(&o)
    );
    assert_user_error(&o, "`sudo pkill -KILL -f 'sshd: admin'` on `i-");
    let o = c.run_with_plugin("hook-recorder", &["list", role, "--json"]);
    assert_eq!(stdout(&o).trim(), "[]", "{}", stderr(&o));
    // A step that hangs: bounded by the step wait.
    let mut cmd = c.cgcloud(&[
        "--plugin",
        plugin.to_str().unwrap(),
        "create",
        role,
        "-O",
        "hang_setup=true",
        "--json",
    ]);
    cmd.env("CGCLOUD_TIMEOUT_STEP", "10");
    let started = std::time::Instant::now();
    let o = run(cmd);
    assert_user_error(&o, "`sleep 100000` on `i-");
    assert!(
        stderr(&o).contains("did not finish within 10s (CGCLOUD_TIMEOUT_STEP)"),
        "{}",
        stderr(&o)
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(300));
    // The box was terminated, as after any failed set-up without -N.
    let o = c.run_with_plugin("hook-recorder", &["list", role, "--json"]);
    assert_eq!(stdout(&o).trim(), "[]", "{}", stderr(&o));
}
