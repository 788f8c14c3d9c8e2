//! Teams on the local cloud: two people (two data directories, two key pairs, CGCLOUD_ME
//! differing) in one namespace. The second reaches the first's box with `ssh` and `rsync`, host
//! keys checked, pinned from what the box's creator published; a forged published key or pin is
//! refused for everyone; the live host key is not the one that travelled in user data; IMDSv1
//! is refused on the box.

use std::path::PathBuf;
use std::process::Output;

use cgcloud_localcloud::LocalCloud;
use cgcloud_tests::*;

const ROLE: &str = "generic-debian-bookworm-box";
const NAMESPACE: &str = "/team/";

/// One member of the team: their own home, data directory and key pair, on a shared cloud.
struct Person<'a> {
    cloud: &'a LocalCloud,
    me: &'static str,
    home: tempfile::TempDir,
    key: PathBuf,
}

impl<'a> Person<'a> {
    fn join(cloud: &'a LocalCloud, me: &'static str) -> Person<'a> {
        let home = tempfile::tempdir().unwrap();
        let key = ssh_keygen(home.path(), "id_ed25519", "ed25519");
        let agents = home.path().join("data/agents/x86_64");
        std::fs::create_dir_all(&agents).unwrap();
        std::fs::copy(agent_bin(), agents.join("cgcloud-agent")).unwrap();
        let p = Person {
            cloud,
            me,
            home,
            key,
        };
        assert_success(&p.run(&[
            "register-key",
            p.key.with_extension("pub").to_str().unwrap(),
        ]));
        p
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut c = bare_cgcloud(self.home.path(), args);
        c.envs(self.cloud.env())
            .env("CGCLOUD_DATA_DIR", self.home.path().join("data"))
            .env("CGCLOUD_SSH_KEY", &self.key)
            .env("CGCLOUD_ME", self.me)
            .env("CGCLOUD_NAMESPACE", NAMESPACE)
            .env("CGCLOUD_AGENT_INTERVAL", "3");
        let o = run(c);
        eprintln!(
            "[{}] $ cgcloud {}\n{}{}",
            self.me,
            args.join(" "),
            stdout(&o),
            stderr(&o)
        );
        o
    }

    fn known_hosts(&self) -> String {
        std::fs::read_to_string(self.home.path().join("data/known_hosts")).unwrap_or_default()
    }

    fn pin_of(&self, id: &str) -> Option<String> {
        self.known_hosts()
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{id} ")).map(str::to_string))
    }

    fn set_pin(&self, id: &str, key: &str) {
        let text: String = self
            .known_hosts()
            .lines()
            .map(|l| {
                if l.starts_with(&format!("{id} ")) {
                    format!("{id} {key}\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        std::fs::write(self.home.path().join("data/known_hosts"), text).unwrap();
    }

    /// Runs `ssh ROLE ARGS…` until it works (the agent adds keys 2…n within seconds).
    fn ssh_eventually(&self, args: &[&str]) -> Output {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let mut all = vec!["ssh", ROLE];
            all.extend(args);
            let o = self.run(&all);
            if o.status.success() || std::time::Instant::now() > deadline {
                return o;
            }
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }
}

fn ec2(cloud: &LocalCloud, pairs: &[(&str, &str)]) -> String {
    let mut all = pairs.to_vec();
    all.push(("Version", "2016-11-15"));
    cloud
        .ec2(&form(&all))
        .unwrap_or_else(|e| panic!("EC2 call failed: {e:#}"))
}

fn published_key(cloud: &LocalCloud, id: &str) -> String {
    let body = ec2(
        cloud,
        &[
            ("Action", "DescribeTags"),
            ("Filter.1.Name", "resource-id"),
            ("Filter.1.Value.1", id),
            ("Filter.2.Name", "key"),
            ("Filter.2.Value.1", "cgcloud:host-key"),
        ],
    );
    xml_field(&body, "value").unwrap_or_else(|| panic!("no cgcloud:host-key tag on {id}: {body}"))
}

/// A host key nobody's box has.
fn stranger_key(dir: &std::path::Path) -> String {
    let k = ssh_keygen(dir, "stranger", "ed25519");
    key_part(&std::fs::read_to_string(k.with_extension("pub")).unwrap())
}

#[track_caller]
fn assert_refused(o: &Output) {
    assert_refused_with(o, &[255]);
}

/// Refused for its host key, exiting with one of `codes`.
fn assert_refused_with(o: &Output, codes: &[i32]) {
    let err = stderr(o);
    assert!(
        o.status.code().is_some_and(|c| codes.contains(&c)),
        "exit {:?}, not one of {codes:?}: {err}",
        o.status.code()
    );
    assert!(
        err.contains("Host key verification failed")
            || err.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
        "refused for its host key: {err}"
    );
}

#[test]
fn a_teammate_reaches_the_box_with_a_verified_host_key_and_forgeries_are_refused() {
    let cloud =
        LocalCloud::start().unwrap_or_else(|e| panic!("the local cloud did not start: {e:#}"));
    let alice = Person::join(&cloud, "alice");
    let bob = Person::join(&cloud, "bob");

    let o = alice.run(&["create", ROLE, "-k", "alice", "bob", "--json"]);
    assert_success(&o);
    let created: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let id = created["instance_id"].as_str().unwrap().to_string();

    // Bob has never seen the box: his cgcloud pins what Alice's published, and connects.
    assert!(bob.pin_of(&id).is_none());
    let o = bob.ssh_eventually(&["hostname"]);
    assert_success(&o);
    assert!(
        stderr(&o).contains("pinned the host key of"),
        "{}",
        stderr(&o)
    );
    let published = published_key(&cloud, &id);
    assert_eq!(bob.pin_of(&id).as_deref(), Some(published.as_str()));
    assert_eq!(alice.pin_of(&id).as_deref(), Some(published.as_str()));
    let local = bob.home.path().join("from-bob");
    std::fs::write(&local, "bob was here\n").unwrap();
    assert_success(&bob.run(&["rsync", ROLE, "-a", local.to_str().unwrap(), ":from-bob"]));
    let o = alice.run(&["ssh", ROLE, "cat", "from-bob"]);
    assert_success(&o);
    assert_eq!(stdout(&o), "bob was here\n");

    // The live host key is the published one, generated on the box: not the one in user data,
    // whose copies cloud-init kept are gone.
    let o = alice.run(&["ssh", ROLE, "cat", "/etc/ssh/ssh_host_ed25519_key.pub"]);
    assert_success(&o);
    let live = key_part(&stdout(&o));
    assert_eq!(live, published);
    let body = ec2(
        &cloud,
        &[
            ("Action", "DescribeInstanceAttribute"),
            ("InstanceId", &id),
            ("Attribute", "userData"),
        ],
    );
    let user_data = user_data_in(&body);
    let travelled = user_data
        .lines()
        .find(|l| l.contains("ed25519_public"))
        .and_then(|l| l.split('"').nth(3))
        .expect("the launch host key is in user data")
        .to_string();
    assert!(travelled.starts_with("ssh-ed25519 "));
    assert_ne!(
        travelled.split_whitespace().nth(1),
        live.split_whitespace().nth(1),
        "the host key was replaced"
    );
    let o = alice.run(&[
        "ssh",
        ROLE,
        "sudo sh -c 'ls /var/lib/cloud/instances/*/user-data.txt'",
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("No such file"),
        "cloud-init's copy of the user data is gone"
    );
    let o = alice.run(&["ssh", ROLE, "sudo sh -c 'ls /var/lib/cloud/instances/*/'"]);
    assert!(
        o.status.success() && stdout(&o).contains("sem"),
        "cloud-init's instance folder itself stays: {}",
        stdout(&o)
    );

    // IMDSv2 only: a plain GET is refused, a token opens it.
    let imds = "curl -s -o /dev/null -w '%{http_code}' http://169.254.169.254/latest/meta-data/instance-id";
    let o = alice.run(&["ssh", ROLE, imds]);
    assert_eq!(stdout(&o), "401", "IMDSv1 is refused: {}", stderr(&o));
    let with_token = "t=$(curl -s -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token) \
                      && curl -s -H \"X-aws-ec2-metadata-token: $t\" http://169.254.169.254/latest/meta-data/instance-id";
    let o = alice.run(&["ssh", ROLE, with_token]);
    assert_eq!(stdout(&o), id);

    // A forged pin is refused, for Alice and for Bob, even when asked to look away.
    let forged = stranger_key(alice.home.path());
    for p in [&alice, &bob] {
        p.set_pin(&id, &forged);
        assert_refused(&p.run(&["ssh", ROLE, "true"]));
        assert_refused(&p.run(&["ssh", ROLE, "--", "-o", "StrictHostKeyChecking=no", "true"]));
        assert_refused(&p.run(&["keys", "set", ROLE, "alice", "bob"]));
        // rsync passes on ssh's 255, or says 12 when it saw its stream close first.
        assert_refused_with(
            &p.run(&[
                "rsync",
                ROLE,
                "-a",
                ":from-bob",
                p.home.path().to_str().unwrap(),
            ]),
            &[255, 12],
        );
        p.set_pin(&id, &published);
    }
    assert_success(&bob.run(&["ssh", ROLE, "true"]));

    // A forged published key is refused for a teammate who pins it.
    let carol = Person::join(&cloud, "carol");
    ec2(
        &cloud,
        &[
            ("Action", "CreateTags"),
            ("ResourceId.1", &id),
            ("Tag.1.Key", "cgcloud:host-key"),
            ("Tag.1.Value", &forged),
        ],
    );
    assert_refused(&carol.run(&["ssh", ROLE, "true"]));
    // Those who pinned the real key keep it.
    assert_success(&alice.run(&["ssh", ROLE, "true"]));

    // Arguments cannot weaken the connection.
    let o = alice.run(&[
        "ssh",
        ROLE,
        "-l",
        "admin\nProxyCommand sh -c 'touch /tmp/pwned'",
        "true",
    ]);
    assert_user_error(&o, "is not an account name");
    for rsh in [
        &["--rsh=ssh -o StrictHostKeyChecking=no"][..],
        &["-ave", "ssh -o StrictHostKeyChecking=no"][..],
    ] {
        let mut args = vec!["rsync", ROLE, "--"];
        args.extend(rsh);
        args.extend([":from-bob", "."]);
        assert_user_error(&alice.run(&args), "would replace the ssh cgcloud runs");
    }
    for opts in [
        "-o UserKnownHostsFile=/dev/null",
        "-oStrictHostKeyChecking=no",
        "-F /tmp/other_config",
        "-o 'ProxyCommand nc %h %p'",
    ] {
        let o = alice.run(&["rsync", ROLE, "--ssh-opts", opts, ":from-bob", "."]);
        assert_user_error(&o, "is not allowed in --ssh-opts");
    }

    // Revocation: the launch key (Alice's) lives in the agent's file, not in authorized_keys,
    // so revoking her key pair takes her access away; Bob keeps his.
    let alice_key = std::fs::read_to_string(alice.key.with_extension("pub")).unwrap();
    let alice_data = alice_key.split_whitespace().nth(1).unwrap().to_string();
    let o = bob.run(&[
        "ssh",
        ROLE,
        &format!("grep -c {alice_data} ~/.ssh/authorized_keys ~/.ssh/authorized_keys.cgcloud"),
    ]);
    assert!(
        stdout(&o).contains("authorized_keys:0")
            && stdout(&o).contains("authorized_keys.cgcloud:1"),
        "{}",
        stdout(&o)
    );
    let o = bob.run(&["keys", "revoke", "alice"]);
    assert_user_error(&o, "without confirmation");
    assert_success(&bob.run(&["keys", "revoke", "alice", "-y"]));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let o = alice.run(&["ssh", ROLE, "true"]);
        if o.status.code() == Some(255) && stderr(&o).contains("Permission denied") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "alice's revoked key still logs in: {}",
            stderr(&o)
        );
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    assert_success(&bob.run(&["ssh", ROLE, "true"]));
    let o = bob.run(&["keys", "revoke", "alice", "-y"]);
    assert_user_error(&o, "there is no key pair `alice`");

    assert_success(&alice.run(&["terminate", ROLE]));
}

/// A box that publishes no host key and whose console shows none (moto's console is a fake boot
/// log without cloud-init's key block) is refused: nothing is trusted on first use.
#[test]
fn a_box_with_no_published_key_is_never_trusted_on_first_use() {
    let w = World::new("dora");
    let id = w.launch(
        "team_generic-debian-bookworm-box",
        &[("cgcloud:namespace", NAMESPACE)],
    );
    let home = w.home.path();
    let key = ssh_keygen(home, "id_ed25519", "ed25519");
    for args in [
        &["ssh", ROLE, "true"][..],
        &["rsync", ROLE, ":x", "."][..],
        &["start", ROLE][..],
        &["reboot", ROLE][..],
    ] {
        let mut c = w.cgcloud(args);
        c.env("CGCLOUD_NAMESPACE", NAMESPACE)
            .env("CGCLOUD_SSH_KEY", &key)
            .env("CGCLOUD_DATA_DIR", home.join("data"));
        let o = run(c);
        if args[0] == "start" {
            // A running box is not started; the refusal that matters is for the others.
            assert_user_error(&o, "not stopped");
            continue;
        }
        assert_user_error(&o, "cgcloud has no host key for");
        assert!(
            stderr(&o).contains("cgcloud:host-key") && stderr(&o).contains("console"),
            "{}",
            stderr(&o)
        );
        assert!(
            !home.join("data/known_hosts").exists()
                || std::fs::read_to_string(home.join("data/known_hosts"))
                    .unwrap()
                    .is_empty()
        );
    }
    assert_eq!(
        w.instance_state(&id),
        "running",
        "reboot refused before stopping anything"
    );
}
