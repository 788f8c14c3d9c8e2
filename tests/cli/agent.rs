//! The agent on real boxes of the local cloud: a systemd service that keeps the admin
//! account's keys equal to the key pairs the box's globs match, pushed by `register-key`,
//! reconciled periodically, and restarted by systemd.

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
