//! The agent on real boxes of the local cloud: a systemd service that keeps the admin
//! account's keys equal to the key pairs the box's globs match, pushed by `register-key`,
//! reconciled periodically, and restarted by systemd.

use std::process::Command;
use std::time::{Duration, Instant};

use cgcloud_tests::*;

use crate::boxes::Cloud;

const ROLE: &str = "generic-debian-bookworm-box";

/// Polls `f` every half second until it returns true, for at most `limit`; shows the agent's
/// journal if it never does.
fn eventually(c: &Cloud, limit: Duration, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!(
        "{what} did not happen within {limit:?}; the agent's journal:\n{}",
        journal(c, 30)
    );
}

/// The last `lines` lines of the agent's journal on the box.
fn journal(c: &Cloud, lines: usize) -> String {
    let n = lines.to_string();
    let mut cmd = c.cgcloud(&[
        "ssh",
        ROLE,
        "sudo",
        "journalctl",
        "-u",
        "cgcloud-agent",
        "--no-pager",
        "-n",
        &n,
    ]);
    cmd.env("CGCLOUD_SSH_KEY", &c.key);
    stdout(&run(cmd))
}

/// Whether `key` logs in to the box as its admin account.
fn key_logs_in(c: &Cloud, key: &std::path::Path) -> bool {
    let mut cmd = c.cgcloud(&["ssh", ROLE, "true"]);
    cmd.env("CGCLOUD_SSH_KEY", key).env("SSH_AUTH_SOCK", "");
    run(cmd).status.success()
}

pub(crate) fn queue_names(c: &Cloud) -> Vec<String> {
    let body = c.cloud.moto().call_in(
        &c.cloud.account().id,
        cgcloud_localcloud::REGION,
        "sqs",
        &form(&[("Action", "ListQueues"), ("Version", "2012-11-05")]),
    );
    xml_fields(&body.unwrap_or_default(), "QueueUrl")
}

#[test]
fn the_agent_keeps_keys_in_sync_and_survives_a_kill() {
    let c = Cloud::start();
    let bob = ssh_keygen(c.home.path(), "bob", "ed25519");
    let carol = ssh_keygen(c.home.path(), "carol", "ed25519");
    let mut create = c.cgcloud(&["create", ROLE, "-k", "tester", "team-*"]);
    create.env("CGCLOUD_AGENT_INTERVAL", "3");
    let o = run(create);
    assert_success(&o);
    let o = c.run(&["ssh", ROLE, "systemctl", "is-active", "cgcloud-agent"]);
    if stdout(&o).trim() != "active" {
        let log = c.run(&[
            "ssh",
            ROLE,
            "sudo",
            "journalctl",
            "-u",
            "cgcloud-agent",
            "--no-pager",
            "-n",
            "40",
        ]);
        panic!(
            "the agent is not running as a systemd service ({}):\n{}",
            stdout(&o).trim(),
            stdout(&log)
        );
    }
    assert!(!key_logs_in(&c, &bob), "bob's key is not registered yet");

    // register-key pushes: the new key matching `team-*` works on the box soon after.
    assert_success(&c.run(&[
        "register-key",
        bob.with_extension("pub").to_str().unwrap(),
        "-k",
        "team-bob",
    ]));
    let took = eventually(&c, Duration::from_secs(60), "bob's key logging in", || {
        key_logs_in(&c, &bob)
    });
    eprintln!("bob's key worked {took:?} after register-key returned");
    eventually(
        &c,
        Duration::from_secs(60),
        "keys status showing the box converged",
        || {
            let o = c.run(&["keys", "status", "--json"]);
            let rows: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap_or_default();
            rows.as_array()
                .is_some_and(|r| r.len() == 1 && r[0]["status"] == "converged")
        },
    );
    assert_eq!(queue_names(&c).len(), 1, "the box has its queue");

    // A key pair deleted behind cgcloud's back loses its access within the reconcile interval.
    c.ec2(&[("Action", "DeleteKeyPair"), ("KeyName", "team-bob")]);
    eventually(
        &c,
        Duration::from_secs(60),
        "bob's key being refused",
        || !key_logs_in(&c, &bob),
    );
    assert!(key_logs_in(&c, &c.key), "the launch key still works");

    // Killed, the agent is restarted by systemd and converges again.
    let o = c.run(&[
        "ssh",
        ROLE,
        "sudo",
        "systemctl",
        "kill",
        "--signal=KILL",
        "cgcloud-agent",
    ]);
    assert_success(&o);
    assert_success(&c.run(&[
        "register-key",
        carol.with_extension("pub").to_str().unwrap(),
        "-k",
        "team-carol",
    ]));
    eventually(
        &c,
        Duration::from_secs(90),
        "carol's key logging in after the agent was killed",
        || key_logs_in(&c, &carol),
    );
    let o = c.run(&[
        "ssh",
        ROLE,
        "systemctl",
        "show",
        "-p",
        "NRestarts",
        "cgcloud-agent",
    ]);
    assert_ne!(
        stdout(&o).trim(),
        "NRestarts=0",
        "systemd restarted the agent"
    );

    // Terminating the box removes its queue.
    assert_success(&c.run(&["terminate", ROLE]));
    assert!(
        queue_names(&c).is_empty(),
        "the queue is gone: {:?}",
        queue_names(&c)
    );
}

#[test]
fn keys_set_changes_the_globs_of_a_running_box() {
    let c = Cloud::start();
    let dave = ssh_keygen(c.home.path(), "dave", "ed25519");
    assert_success(&c.run(&[
        "register-key",
        dave.with_extension("pub").to_str().unwrap(),
        "-k",
        "dave",
    ]));
    let mut create = c.cgcloud(&["create", ROLE]);
    create.env("CGCLOUD_AGENT_INTERVAL", "3");
    let o = run(create);
    assert_success(&o);
    // The release agent travels compressed, at most 10 MiB before compression.
    let line = stderr(&o)
        .lines()
        .find(|l| l.contains("uploading cgcloud-agent from"))
        .map(str::to_string);
    let line = line.unwrap_or_else(|| panic!("create says what it uploads: {}", stderr(&o)));
    assert!(
        line.contains("agents/x86_64/cgcloud-agent"),
        "the agent comes from the data directory: {line}"
    );
    let numbers: Vec<u64> = line
        .split(['(', ' ', ','])
        .filter_map(|w| w.parse().ok())
        .collect();
    let [size, packed] = numbers[..] else {
        panic!("two sizes in: {line}")
    };
    assert!(size <= 10 << 20 && packed < size, "{line}");
    assert!(!key_logs_in(&c, &dave));
    // The box has this agent already: `keys set` does not upload it again.
    let o = c.run(&["keys", "set", ROLE, "tester", "dave"]);
    assert_success(&o);
    assert!(
        stderr(&o).contains("already has this cgcloud-agent"),
        "{}",
        stderr(&o)
    );
    assert!(
        !stderr(&o).contains("uploading cgcloud-agent"),
        "{}",
        stderr(&o)
    );
    eventually(
        &c,
        Duration::from_secs(60),
        "dave's key logging in after keys set",
        || key_logs_in(&c, &dave),
    );
    // `update-instance-profile` applies the IAM that `create` gave this agent box: key changes
    // keep reaching it. Dave's key pair now holds a new key, which logs in within seconds.
    assert_success(&c.run(&["update-instance-profile", ROLE]));
    let iam = |pairs: &[(&str, &str)]| {
        let mut all = pairs.to_vec();
        all.push(("Version", "2010-05-08"));
        c.cloud
            .moto()
            .call_in(
                &c.cloud.account().id,
                cgcloud_localcloud::REGION,
                "iam",
                &form(&all),
            )
            .unwrap()
    };
    let profiles = iam(&[("Action", "ListInstanceProfiles")]);
    let roles = xml_fields(&profiles, "RoleName");
    assert_eq!(
        roles.len(),
        1,
        "one role in the box's instance profile: {profiles}"
    );
    let policies = xml_fields(
        &iam(&[("Action", "ListRolePolicies"), ("RoleName", &roles[0])]),
        "member",
    );
    assert!(
        policies.contains(&"cgcloud_agent".to_string()),
        "the agent's policy stays: {policies:?}"
    );
    let dave2 = ssh_keygen(c.home.path(), "dave2", "ed25519");
    assert_success(&c.run(&[
        "register-key",
        dave2.with_extension("pub").to_str().unwrap(),
        "-k",
        "dave",
        "--force",
    ]));
    eventually(
        &c,
        Duration::from_secs(30),
        "dave's new key logging in after update-instance-profile",
        || key_logs_in(&c, &dave2),
    );
    let o = c.run(&["show", ROLE, "--json"]);
    let shown: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(shown["tags"]["cgcloud:keypairs"], "tester dave");

    // Terminated behind cgcloud's back, the box leaves its queue; `cleanup` removes it.
    let id = shown["instance_id"].as_str().unwrap().to_string();
    eventually(&c, Duration::from_secs(30), "the agent's queue", || {
        queue_names(&c).len() == 1
    });
    c.ec2(&[("Action", "TerminateInstances"), ("InstanceId.1", &id)]);
    let o = c.run(&["cleanup", "-y"]);
    assert_success(&o);
    assert!(
        stdout(&o).contains("agent-queue"),
        "cleanup lists the queue: {}",
        stdout(&o)
    );
    assert!(
        queue_names(&c).is_empty(),
        "the leftover queue is gone: {:?}",
        queue_names(&c)
    );
}

#[test]
fn the_agent_rides_out_a_minute_of_failing_aws_calls_keeps_every_key_and_then_catches_up() {
    use cgcloud_moto::faults::{Fault, FaultProxy, Rule};
    let c = Cloud::start();
    let bob = ssh_keygen(c.home.path(), "bob", "ed25519");
    let carol = ssh_keygen(c.home.path(), "carol", "ed25519");
    assert_success(&c.run(&[
        "register-key",
        bob.with_extension("pub").to_str().unwrap(),
        "-k",
        "team-bob",
    ]));
    let mut create = c.cgcloud(&["create", ROLE, "-k", "tester", "team-*"]);
    create.env("CGCLOUD_AGENT_INTERVAL", "3");
    assert_success(&run(create));
    eventually(&c, Duration::from_secs(60), "bob's key logging in", || {
        key_logs_in(&c, &bob)
    });

    // From now on the box's AWS calls go through a proxy that fails every one of them.
    let proxy = FaultProxy::start(c.cloud.moto().port(), 9).unwrap_or_else(|e| panic!("{e}"));
    proxy.add(Rule::always("*", Fault::Status(503)));
    c.cloud.route_box_aws(Some(proxy.port())).unwrap();
    eventually(
        &c,
        Duration::from_secs(30),
        "the agent meeting the fault",
        || proxy.injected("DescribeKeyPairs") >= 1,
    );
    let outage = Instant::now();
    // Carol's key pair appears during the outage: the notification waits in the box's queue.
    assert_success(&c.run(&[
        "register-key",
        carol.with_extension("pub").to_str().unwrap(),
        "-k",
        "team-carol",
    ]));
    let still_in = |until: Instant| {
        while Instant::now() < until {
            assert!(
                key_logs_in(&c, &bob),
                "bob's key was dropped during the outage"
            );
            assert!(
                !key_logs_in(&c, &carol),
                "carol's key cannot arrive while DescribeKeyPairs fails"
            );
            std::thread::sleep(Duration::from_secs(3));
        }
    };
    still_in(outage + Duration::from_secs(30));
    // For the next 30 s only the key pairs cannot be read: the agent reports that in its tag.
    proxy.clear();
    proxy.add(Rule::always("DescribeKeyPairs", Fault::Status(503)));
    let reported = |c: &Cloud| {
        let o = c.run(&["keys", "status", "--json"]);
        let rows: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap_or_default();
        rows.as_array()
            .and_then(|r| r.first())
            .and_then(|r| r["problem"].as_str())
            .map(str::to_string)
    };
    eventually(
        &c,
        Duration::from_secs(30),
        "the agent's problem tag",
        || {
            reported(&c)
                .is_some_and(|p| p.contains("keys: failed to list key pairs: InternalError"))
        },
    );
    let o = c.run(&["keys", "status"]);
    assert!(
        stderr(&o).contains("reports a problem since"),
        "{}",
        stderr(&o)
    );
    still_in(outage + Duration::from_secs(60));

    // AWS answers again: the agent catches up by itself, and keeps bob.
    proxy.clear();
    let took = eventually(
        &c,
        Duration::from_secs(60),
        "carol's key after the outage",
        || key_logs_in(&c, &carol),
    );
    eprintln!("carol's key worked {took:?} after the outage ended");
    assert!(key_logs_in(&c, &bob));
    eventually(
        &c,
        Duration::from_secs(60),
        "the problem tag cleared",
        || reported(&c).is_none(),
    );
    let journal = journal(&c, 1000);
    assert!(journal.contains("recovered after"), "{journal}");
    // One line a distinct problem, not one a retry: a minute of retries every few seconds
    // gives a handful of lines.
    let problems = journal
        .lines()
        .filter(|l| l.contains("InternalError") || l.contains("InternalFailure"))
        .count();
    assert!((1..=8).contains(&problems), "{problems} lines:\n{journal}");
    c.cloud.route_box_aws(None).unwrap();
}

/// The managed file of the account in `ssh_dir`.
fn managed_in(dir: &std::path::Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_default()
}

#[test]
fn a_full_disk_keeps_the_keys_written_last_and_the_agent_catches_up_once_there_is_room() {
    // The release agent, run once at a time (`cgcloud-agent once`) in a mount namespace of its
    // own where the account's `~/.ssh` is a 64 KiB tmpfs (and /etc/passwd names the account):
    // filling it acts out a full disk on a box, against moto.
    let w = World::new("dora");
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");
    let out = work.path().join("out");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    for (name, k) in [("dora-a", "a"), ("dora-b", "b")] {
        let key = ssh_keygen(work.path(), k, "ed25519").with_extension("pub");
        assert_success(&w.run(&["register-key", key.to_str().unwrap(), "-k", name]));
    }
    let id = w.launch("dora_box", &[("cgcloud:namespace", "/dora/")]);
    let passwd = work.path().join("passwd");
    std::fs::write(
        &passwd,
        format!(
            "{}tester:x:4242:4242::{}:/bin/sh\n",
            std::fs::read_to_string("/etc/passwd").unwrap(),
            home.display()
        ),
    )
    .unwrap();
    let file = "authorized_keys.cgcloud";
    let ssh = home.join(".ssh");
    let script = format!(
        r#"set -u
mount --bind {passwd} /etc/passwd || exit 90
mount -t tmpfs -o size=64k,mode=0755 tmpfs {ssh} || exit 91
once() {{ {agent} once -n /dora/ -z us-east-1a --accounts tester --instance-id {id} --no-notifications --no-ack -k "$1"; }}
step() {{ n=$1; shift; once "$@" > {out}/$n.log 2>&1; echo $? > {out}/$n.rc; cp {ssh}/{file} {out}/$n.keys 2>/dev/null; ls -A {ssh} > {out}/$n.ls; }}
step 1 dora-a
dd if=/dev/zero of={ssh}/filler bs=4k 2>/dev/null
step 2 'dora-*'
rm {ssh}/filler
step 3 'dora-*'
"#,
        passwd = passwd.display(),
        ssh = ssh.display(),
        agent = agent_bin().display(),
        out = out.display(),
    );
    let mut c = Command::new("unshare");
    c.args(["-m", "sh", "-c", &script])
        .env("AWS_ENDPOINT_URL", w.moto.endpoint())
        .env("AWS_ACCESS_KEY_ID", &w.account.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &w.account.secret_access_key)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", work.path().join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", work.path().join("none"));
    let o = run(c);
    assert!(o.status.success(), "the script failed: {o:?}");
    let read = |n: u32, what: &str| managed_in(&out, &format!("{n}.{what}"));
    assert_eq!(read(1, "rc").trim(), "0", "{}", read(1, "log"));
    let first = read(1, "keys");
    assert_eq!(
        first.lines().filter(|l| l.starts_with("ssh-")).count(),
        1,
        "{first}"
    );
    // The disk is full: the refresh fails, the file keeps what it had, nothing half-written stays.
    assert_ne!(read(2, "rc").trim(), "0", "{}", read(2, "log"));
    assert!(
        read(2, "log").contains("No space left on device"),
        "{}",
        read(2, "log")
    );
    assert_eq!(read(2, "keys"), first, "the keys written last stay");
    assert_eq!(
        read(2, "ls").lines().collect::<Vec<_>>(),
        [file, "filler"],
        "no temporary file left"
    );
    // Room again: the next refresh writes both keys.
    assert_eq!(read(3, "rc").trim(), "0", "{}", read(3, "log"));
    let both = read(3, "keys");
    assert_eq!(
        both.lines().filter(|l| l.starts_with("ssh-")).count(),
        2,
        "{both}"
    );
    assert!(both.contains(first.lines().find(|l| l.starts_with("ssh-")).unwrap()));
}
