//! Pre-flight: everything `create` needs locally or can check cheaply is checked before the
//! first call that changes anything. Each missing prerequisite launches nothing, creates no
//! security group, IAM role or instance profile, and its one error line names the fix. `--plan`
//! runs the same checks. Against moto, with the local cloud's base images (Debian 12 for
//! x86_64 and arm64).

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cgcloud_tests::*;
use serde_json::Value;

const ROLE: &str = "generic-debian-bookworm-box";
const ARM64_DEBIAN_12: &str = "ami-0de12a0000000b1a1";

pub(crate) fn moto_with_base_images() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| {
        let amis = Path::new(env!("CARGO_MANIFEST_DIR")).join("localcloud/amis.json");
        Moto::start_with(&[
            ("MOTO_AMIS_PATH", amis.to_str().unwrap()),
            ("MOTO_ENABLE_AMI_VALIDATION", "true"),
            ("MOTO_ENABLE_KEYPAIR_VALIDATION", "true"),
        ])
        .unwrap_or_else(|e| panic!("moto_server did not start: {e}"))
    })
}

/// A person with a registered key pair and the release agent in their data directory.
pub(crate) struct Person {
    pub(crate) w: World,
    pub(crate) key: PathBuf,
}

impl Person {
    pub(crate) fn new(user: &str) -> Person {
        let w = World::on(moto_with_base_images(), user);
        let key = ssh_keygen(w.home.path(), "id_ed25519", "ed25519");
        let p = Person { w, key };
        assert_success(&p.run(
            &[
                "register-key",
                p.key.with_extension("pub").to_str().unwrap(),
            ],
            &[],
        ));
        p
    }

    pub(crate) fn data_dir(&self) -> PathBuf {
        self.w.home.path().join("data")
    }

    pub(crate) fn put_agent(&self, arch: &str, bytes: &[u8]) -> PathBuf {
        let path = self
            .data_dir()
            .join("agents")
            .join(arch)
            .join("cgcloud-agent");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        path
    }

    pub(crate) fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = self.w.cgcloud(args);
        c.env("CGCLOUD_DATA_DIR", self.data_dir())
            .env("CGCLOUD_SSH_KEY", &self.key);
        for (k, v) in env {
            c.env(k, v);
        }
        run(c)
    }

    /// Asserts that nothing was created: no instance, no security group but the default, no
    /// IAM role or instance profile.
    #[track_caller]
    fn assert_nothing_made(&self) {
        let body = self.w.ec2(&[("Action", "DescribeInstances")]);
        assert!(
            xml_fields(&body, "instanceId").is_empty(),
            "an instance was launched: {body}"
        );
        let body = self.w.ec2(&[("Action", "DescribeSecurityGroups")]);
        let groups = xml_fields(&body, "groupName");
        assert!(
            groups.iter().all(|g| g == "default"),
            "a security group was made: {groups:?}"
        );
        let iam = |action: &str| {
            self.w
                .moto
                .iam(
                    &self.w.account.id,
                    &form(&[("Action", action), ("Version", "2010-05-08")]),
                )
                .unwrap()
        };
        assert!(
            xml_fields(&iam("ListRoles"), "RoleName").is_empty(),
            "an IAM role was made"
        );
        assert!(
            xml_fields(&iam("ListInstanceProfiles"), "InstanceProfileName").is_empty(),
            "an instance profile was made"
        );
    }
}

pub(crate) fn release_agent() -> Vec<u8> {
    std::fs::read(agent_bin()).unwrap()
}

/// The release agent relabelled as an arm64 program (ELF `e_machine` 183): what cgcloud reads
/// of it is then what an arm64 build shows.
fn fake_arm64_agent() -> Vec<u8> {
    let mut bytes = release_agent();
    bytes[18..20].copy_from_slice(&183u16.to_le_bytes());
    bytes
}

fn plan(o: &Output) -> Value {
    assert_success(o);
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

/// Extra `create` arguments, environment values, and what the error line must contain.
type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);

#[test]
fn each_missing_prerequisite_launches_nothing_and_names_the_fix() {
    let p = Person::new("alice");
    p.put_agent("x86_64", &release_agent());
    let unreadable = p.w.home.path().join("no-such-key");
    let not_elf = p.w.home.path().join("not-an-agent");
    std::fs::write(&not_elf, "#!/bin/sh\necho I am not the agent\n").unwrap();
    let arm = p.w.home.path().join("arm64-agent");
    std::fs::write(&arm, fake_arm64_agent()).unwrap();
    let cases: Vec<Case> = vec![
        (
            vec![],
            vec![("CGCLOUD_SSH_KEY", unreadable.to_str().unwrap())],
            "cannot read the SSH identity",
        ),
        (
            vec!["-k", "nobody"],
            vec![],
            "register your public key with `cgcloud register-key",
        ),
        (
            vec!["-O", "no_such_option=1"],
            vec![],
            "`cgcloud list-options",
        ),
        (
            vec!["-t", "t4g.micro"],
            vec![],
            "pick an instance type for x86_64",
        ),
        (
            vec!["-t", "t3.nonexistent"],
            vec![],
            "EC2 knows no instance type `t3.nonexistent`",
        ),
        (
            vec![],
            vec![("CGCLOUD_AGENT_BIN", "/nonexistent/cgcloud-agent")],
            "CGCLOUD_AGENT_BIN",
        ),
        (
            vec![],
            vec![("CGCLOUD_AGENT_BIN", not_elf.to_str().unwrap())],
            "is not a cgcloud-agent program for Linux",
        ),
        (
            vec![],
            vec![("CGCLOUD_AGENT_BIN", arm.to_str().unwrap())],
            "is a cgcloud-agent for arm64 but the box is x86_64",
        ),
        (
            vec![],
            vec![("CGCLOUD_TIMEOUT_SSH", "soon")],
            "CGCLOUD_TIMEOUT_SSH must be a whole number of seconds",
        ),
    ];
    for plan_only in [false, true] {
        for (extra, env, needle) in &cases {
            let mut args = vec!["create", ROLE];
            args.extend(extra);
            if plan_only {
                args.push("--plan");
            }
            let o = p.run(&args, env);
            assert_user_error(&o, needle);
            assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
            p.assert_nothing_made();
        }
    }
}

#[test]
fn no_agent_for_the_architecture_names_the_build_command() {
    let p = Person::new("bob");
    // No agent in the data directory and none next to this copy of cgcloud: the arm64 box
    // has nothing to run.
    let o = p.run(
        &["create", ROLE, "-i", ARM64_DEBIAN_12, "-t", "t4g.micro"],
        &[],
    );
    assert_user_error(&o, "there is no cgcloud-agent for arm64 boxes");
    let err = stderr(&o);
    assert!(
        err.contains("--target aarch64-unknown-linux-gnu")
            && err.contains("agents/arm64/cgcloud-agent"),
        "{err}"
    );
    assert!(err.contains("--no-agent"), "{err}");
    p.assert_nothing_made();
    // --no-agent needs none.
    let j = plan(&p.run(
        &[
            "create",
            ROLE,
            "-i",
            ARM64_DEBIAN_12,
            "-t",
            "t4g.micro",
            "--no-agent",
            "--plan",
        ],
        &[],
    ));
    assert_eq!(j["agent"], false);
}

#[test]
fn the_agent_is_picked_by_the_boxs_architecture() {
    let p = Person::new("carol");
    let x86 = p.put_agent("x86_64", &release_agent());
    let arm = p.put_agent("arm64", &fake_arm64_agent());
    let j = plan(&p.run(&["create", ROLE, "--plan"], &[]));
    assert_eq!(j["agent_program"]["path"], x86.to_str().unwrap(), "{j}");
    assert_eq!(j["agent_program"]["arch"], "x86_64");
    assert_eq!(j["agent_program"]["from"], "the data directory");
    let j = plan(&p.run(
        &[
            "create",
            ROLE,
            "-i",
            ARM64_DEBIAN_12,
            "-t",
            "t4g.micro",
            "--plan",
        ],
        &[],
    ));
    assert_eq!(j["agent_program"]["path"], arm.to_str().unwrap(), "{j}");
    assert_eq!(j["agent_program"]["arch"], "arm64");
    assert_eq!(j["instance_type"], "t4g.micro");
    // CGCLOUD_AGENT_BIN wins, and must fit the box too.
    let j = plan(&p.run(
        &["create", ROLE, "--plan"],
        &[("CGCLOUD_AGENT_BIN", agent_bin().to_str().unwrap())],
    ));
    assert_eq!(j["agent_program"]["from"], "CGCLOUD_AGENT_BIN");
    p.assert_nothing_made();
}

#[test]
fn the_shipped_agent_is_small_and_runs_on_glibc_2_34() {
    let bytes = release_agent();
    assert!(
        bytes.len() <= 10 << 20,
        "the release agent is {} bytes; the goal is at most 10 MiB",
        bytes.len()
    );
    // Read independently of cgcloud: the newest GLIBC_ symbol version objdump reports.
    let o = run({
        let mut c = std::process::Command::new("objdump");
        c.arg("-T").arg(agent_bin());
        c
    });
    assert_success(&o);
    let mut newest = (0u32, 0u32);
    for word in stdout(&o).split(|c: char| c.is_whitespace() || c == '(' || c == ')') {
        if let Some(v) = word.strip_prefix("GLIBC_") {
            let mut parts = v.split('.').map(|n| n.parse::<u32>().unwrap_or(0));
            let version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
            newest = newest.max(version);
        }
    }
    assert!(newest > (2, 0), "a glibc program names GLIBC_ versions");
    assert!(
        newest <= (2, 34),
        "the agent needs glibc {}.{}; Amazon Linux 2023 and Rocky 9 have 2.34",
        newest.0,
        newest.1
    );
    // And cgcloud reads the same: `cgcloud config` shows what the agent needs.
    let p = Person::new("dave");
    p.put_agent("x86_64", &bytes);
    let o = p.run(&["config", "--json", "--offline"], &[]);
    let rows = plan(&o);
    let agent = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["setting"] == "agent for x86_64 boxes")
        .unwrap()
        .clone();
    assert!(
        agent["value"]
            .as_str()
            .unwrap()
            .contains(&format!("needs glibc {}.{}", newest.0, newest.1)),
        "{agent}"
    );
}

#[test]
fn a_role_checks_its_option_values_before_anything_is_launched() {
    let p = Person::new("carol");
    p.put_agent("x86_64", &release_agent());
    let plugin = cgcloud_bin().with_file_name("libexample_roles.so");
    let plugin = plugin.to_str().unwrap();
    for plan_only in [false, true] {
        let mut args = vec![
            "--plugin",
            plugin,
            "create",
            "example-web-box",
            "-O",
            "site_title=<script>",
        ];
        if plan_only {
            args.push("--plan");
        }
        let o = p.run(&args, &[]);
        assert_user_error(&o, "failed in hook `validate_options`");
        assert!(
            stderr(&o).contains("option `site_title` must be 1 to 100 characters"),
            "{}",
            stderr(&o)
        );
        p.assert_nothing_made();
    }
    // A good value (and the default) passes the same check.
    let o = p.run(
        &[
            "--plugin",
            plugin,
            "create",
            "example-web-box",
            "-O",
            "site_title=Hi",
            "--plan",
        ],
        &[],
    );
    assert_eq!(plan(&o)["options"]["site_title"], "Hi");
    let o = p.run(
        &["--plugin", plugin, "create", "example-web-box", "--plan"],
        &[],
    );
    assert_eq!(plan(&o)["options"]["site_title"], "cgcloud");
}

/// `kill -9` of `create` at two points — right after RunInstances, and once the box's agent
/// queue and host-key pin exist (it then waits for SSH, which never answers here) — with a
/// short claim (`CGCLOUD_TIMEOUT_LEASE`). While the claim lasts `list` says the boxes are
/// being set up and `cleanup` leaves them alone (a teammate's run looks the same); once it ran
/// out `list` calls them abandoned and `cleanup -y` terminates them and removes their queues,
/// subscriptions and pins, and nothing else: a third run still working is left alone.
#[test]
fn a_killed_create_leaves_nothing_cleanup_cannot_find() {
    let p = Person::new("carol");
    p.put_agent("x86_64", &release_agent());
    // SSH fails closed: no box answers, and no address beyond loopback is ever contacted.
    let ssh_config = p.w.home.path().join("no-ssh.config");
    std::fs::write(&ssh_config, "Host *\n  ProxyCommand false\n").unwrap();
    let start = |lease: &str| {
        let mut c = p.w.cgcloud(&["create", ROLE]);
        c.env("CGCLOUD_DATA_DIR", p.data_dir())
            .env("CGCLOUD_SSH_KEY", &p.key)
            .env("CGCLOUD_SSH_CONFIG", &ssh_config)
            .env("CGCLOUD_TIMEOUT_LEASE", lease)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        c.spawn().unwrap()
    };
    let instances = || {
        let body = p.w.ec2(&[
            ("Action", "DescribeInstances"),
            ("Filter.1.Name", "instance-state-name"),
            ("Filter.1.Value.1", "pending"),
            ("Filter.1.Value.2", "running"),
        ]);
        xml_fields(&body, "instanceId")
    };
    let queues = || p.w.queue_urls();
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done() {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let mut early = start("20");
    wait_for("an instance", &|| instances().len() == 1);
    early.kill().unwrap();
    early.wait().unwrap();
    let pins = || {
        std::fs::read_to_string(p.data_dir().join("known_hosts"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    // What the first run got to make before it was killed.
    let (q0, p0) = (queues().len(), pins());
    let mut later = start("20");
    wait_for("a second queue", &|| {
        queues().len() == q0 + 1 && instances().len() == 2
    });
    wait_for("the second pin", &|| pins() == p0 + 1);
    later.kill().unwrap();
    later.wait().unwrap();
    let killed = instances();
    let killed_at = Instant::now();
    // A run still at work, claiming its box for long.
    let mut working = start("600");
    wait_for("a third instance", &|| instances().len() == 3);
    let theirs: Vec<String> = instances()
        .into_iter()
        .filter(|i| !killed.contains(i))
        .collect();

    let setup_states = || {
        let o = p.run(&["list", ROLE, "--json"], &[]);
        let rows: Value = serde_json::from_str(&stdout(&o)).unwrap();
        let mut states: Vec<(String, String)> = rows
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["instance_id"].as_str().unwrap().to_string(),
                    r["setup"].as_str().unwrap_or("none").to_string(),
                )
            })
            .collect();
        states.sort();
        states
    };
    assert!(
        setup_states().iter().all(|(_, s)| s == "setting-up"),
        "{:?}",
        setup_states()
    );
    let o = p.run(&["cleanup", "-y"], &[]);
    assert_success(&o);
    assert!(
        !stdout(&o).contains("unfinished instance"),
        "claimed boxes are left alone: {}",
        stdout(&o)
    );
    assert_eq!(instances().len(), 3);

    // Once the killed runs' claims ran out.
    let until = killed_at + Duration::from_secs(21);
    std::thread::sleep(until.saturating_duration_since(Instant::now()));
    let states = setup_states();
    for (id, state) in &states {
        let want = if killed.contains(id) {
            "abandoned"
        } else {
            "setting-up"
        };
        assert_eq!(state, want, "{id}: {states:?}");
    }
    let o = p.run(&["list", ROLE], &[]);
    assert!(stderr(&o).contains("was never finished"), "{}", stderr(&o));
    let o = p.run(&["cleanup", "-y"], &[]);
    assert_success(&o);
    for id in &killed {
        assert!(
            stdout(&o).contains(id.as_str()),
            "{id} listed: {}",
            stdout(&o)
        );
        assert_eq!(p.w.instance_state(id), "terminated", "{id}");
    }
    assert_eq!(instances(), theirs, "the working run's box is left alone");
    // The killed boxes' queue and pin are gone; the working run's stay.
    let left = queues();
    assert!(
        killed
            .iter()
            .all(|id| !left.iter().any(|q| q.ends_with(id.as_str()))),
        "{left:?}"
    );
    let pins = std::fs::read_to_string(p.data_dir().join("known_hosts")).unwrap_or_default();
    assert!(
        killed.iter().all(|id| !pins.contains(id.as_str())),
        "{pins}"
    );
    let subs = p.w.subscription_endpoints().join("\n");
    assert!(
        killed.iter().all(|id| !subs.contains(id.as_str())),
        "{subs}"
    );
    working.kill().unwrap();
    working.wait().unwrap();
    p.w.ec2(&[
        ("Action", "TerminateInstances"),
        ("InstanceId.1", &theirs[0]),
    ]);
}
