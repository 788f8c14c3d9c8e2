//! cgcloud under AWS faults: a proxy in front of moto (`cgcloud_moto::faults`) answers calls the
//! way a bad day on AWS does — throttling, 500s and 503s, dropped connections, answers cut short
//! or late — and each command either succeeds (the SDK's standard retries, each attempt bounded
//! by `CGCLOUD_TIMEOUT_API`) or stops with one `ERROR:` line naming what failed.

use std::process::Output;
use std::time::{Duration, Instant};

use cgcloud_moto::faults::{Fault, FaultProxy, Rule};
use cgcloud_moto::xml_fields;
use cgcloud_tests::*;

const ROLE: &str = "generic-debian-bookworm-box";

fn proxy(seed: u64) -> FaultProxy {
    FaultProxy::start(moto().port(), seed).unwrap_or_else(|e| panic!("{e}"))
}

/// `cgcloud ARGS…` against `p` instead of moto, with a short attempt wait (a late answer is an
/// attempt that times out), started now.
fn spawn(w: &World, p: &FaultProxy, args: &[&str]) -> (std::process::Child, Instant) {
    let mut c = w.cgcloud(args);
    c.env("AWS_ENDPOINT_URL", p.endpoint())
        .env("CGCLOUD_TIMEOUT_API", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = c.spawn().unwrap_or_else(|e| panic!("cgcloud: {e}"));
    (child, Instant::now())
}

/// Waits for a command started by [`spawn`]: its output and how long it took.
fn finish((child, started): (std::process::Child, Instant)) -> (Output, Duration) {
    let o = child.wait_with_output().unwrap();
    (o, started.elapsed())
}

/// An answer later than the attempt wait (`CGCLOUD_TIMEOUT_API=1`).
const LATE: Duration = Duration::from_secs(3);

/// The first words of the AWS actions that change something.
const CHANGES: [&str; 16] = [
    "Create",
    "Run",
    "Delete",
    "Terminate",
    "Deregister",
    "Associate",
    "Import",
    "Put",
    "Add",
    "Authorize",
    "Subscribe",
    "Unsubscribe",
    "Tag",
    "Set",
    "Stop",
    "Remove",
];

/// The fault classes, each applied to the first attempt of every call.
fn classes() -> Vec<(&'static str, Fault)> {
    vec![
        ("throttled", Fault::Throttle),
        ("500", Fault::Status(500)),
        ("503", Fault::Status(503)),
        ("dropped", Fault::Drop),
        ("truncated", Fault::Truncate),
        ("late", Fault::Delay(LATE)),
    ]
}

#[track_caller]
fn no_panic(o: &Output) {
    let err = stderr(o);
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
}

#[test]
fn list_keys_status_cleanup_and_register_key_survive_a_failed_first_attempt_of_every_call() {
    let w = World::new("alice");
    let id = w.launch(
        "alice_generic-debian-bookworm-box",
        &[("cgcloud:namespace", "/alice/")],
    );
    // Every class at once, each command of a class at once: they mostly wait out backoffs.
    let runs: Vec<_> = classes()
        .into_iter()
        .enumerate()
        .map(|(n, (class, fault))| {
            let p = proxy(n as u64 + 1);
            p.add(Rule::first_attempts("*", fault));
            let key = ssh_keygen(w.home.path(), &format!("k{n}"), "ed25519");
            let pubkey = format!("{}.pub", key.display());
            let name = format!("key-{n}");
            let started = [
                spawn(&w, &p, &["list", ROLE, "--json"]),
                spawn(&w, &p, &["keys", "status", "--json"]),
                spawn(&w, &p, &["cleanup", "-y"]),
                spawn(&w, &p, &["register-key", &pubkey, "-k", &name]),
            ];
            (class, p, name, started)
        })
        .collect();
    for (class, p, name, started) in runs {
        let [list, status, cleanup, register] = started.map(finish);
        for (what, (o, took)) in [
            ("list", &list),
            ("keys status", &status),
            ("cleanup", &cleanup),
            ("register-key", &register),
        ] {
            assert_success(o);
            no_panic(o);
            assert!(took < &Duration::from_secs(90), "{what}, {class}: {took:?}");
        }
        assert!(
            stdout(&list.0).contains(&id),
            "list, {class}: {}",
            stdout(&list.0)
        );
        assert!(
            stdout(&status.0).contains(&id),
            "keys status, {class}: {}",
            stdout(&status.0)
        );
        // The key pair is there afterwards, whichever attempt made it.
        let pairs = w.ec2(&[("Action", "DescribeKeyPairs"), ("KeyName.1", &name)]);
        assert_eq!(xml_fields(&pairs, "keyName"), [name], "{class}");
        assert!(
            p.injected("*") >= 4,
            "{class}: every command met the fault ({} injected)",
            p.injected("*")
        );
    }
}

#[test]
fn a_clock_twenty_minutes_off_is_corrected_and_the_commands_go_through() {
    let w = World::new("alice");
    let id = w.launch(
        "alice_generic-debian-bookworm-box",
        &[("cgcloud:namespace", "/alice/")],
    );
    let p = proxy(31);
    // AWS's clock 20 minutes ahead of this machine's: requests signed with this machine's time
    // are refused until the SDK learns the difference from the answers' `Date` header.
    p.add(Rule::always(
        "*",
        Fault::ClockAhead(Duration::from_secs(1200)),
    ));
    let key = ssh_keygen(w.home.path(), "skewed", "ed25519");
    let pubkey = format!("{}.pub", key.display());
    for args in [
        &["list", ROLE, "--json"][..],
        &["keys", "status", "--json"][..],
        &["register-key", &pubkey, "-k", "skewed"][..],
        &["cleanup", "-y"][..],
    ] {
        let refused = p.skew_refused("*");
        let (o, took) = finish(spawn(&w, &p, args));
        no_panic(&o);
        assert_success(&o);
        assert!(took < Duration::from_secs(60), "{args:?}: {took:?}");
        assert!(p.skew_refused("*") > refused, "{args:?} met the skew");
        if args[0] == "list" {
            assert!(stdout(&o).contains(&id), "{}", stdout(&o));
        }
    }
    let pairs = w.ec2(&[("Action", "DescribeKeyPairs"), ("KeyName.1", "skewed")]);
    assert_eq!(xml_fields(&pairs, "keyName"), ["skewed"]);
}

#[test]
fn a_call_that_keeps_failing_stops_the_command_with_one_line_naming_it() {
    let w = World::new("alice");
    let runs: Vec<_> = classes()
        .into_iter()
        .chain([("denied", Fault::Denied)])
        .enumerate()
        .map(|(n, (class, fault))| {
            let p = proxy(n as u64 + 11);
            p.add(Rule::always("DescribeInstances", fault));
            let started = spawn(&w, &p, &["list", ROLE]);
            (class, p, started)
        })
        .collect();
    for (class, p, started) in runs {
        let (o, took) = finish(started);
        no_panic(&o);
        assert_user_error(
            &o,
            "failed to list instances named `alice_generic-debian-bookworm-box`",
        );
        if class == "denied" {
            // A denial is not transient: said at once, not retried.
            assert_eq!(p.seen("DescribeInstances"), 1, "{class}");
            assert!(
                stderr(&o).contains("UnauthorizedOperation"),
                "{}",
                stderr(&o)
            );
        } else {
            assert!(
                p.seen("DescribeInstances") >= 2,
                "{class}: retried ({} calls)",
                p.seen("DescribeInstances")
            );
        }
        // Bounded: the attempts (1 s each at most, here) and the SDK's backoff.
        assert!(took < Duration::from_secs(60), "{class}: {took:?}");
    }
}

/// What each run of the mutating commands below made, checked after all classes ran.
struct Flow {
    n: usize,
    class: &'static str,
    person: crate::preflight::Person,
    proxy: FaultProxy,
    outputs: Vec<(String, Output, Duration)>,
    /// The account's snapshots before (moto's own, of its images).
    snapshots_before: Vec<String>,
}

fn snapshots(w: &World) -> Vec<String> {
    let body = w.ec2(&[("Action", "DescribeSnapshots"), ("Owner.1", "self")]);
    let mut ids = xml_fields(&body, "snapshotId");
    ids.sort();
    ids
}

/// The commands that make, change and remove things, each under a failed first attempt of every
/// call it makes (late answers: of every call that changes something): `create` (its AWS part:
/// SSH is closed here, so it must fail naming the login and leave nothing), `image`,
/// `recreate -Q`, `create-cluster -Q`, `show`, `list-images`, `update-instance-profile`,
/// `grow-cluster -Q`, `register-key`, `keys revoke`, `terminate`, `terminate-cluster`,
/// `delete-image` and `reset-security -y`.
fn mutating_flow(n: usize, class: &'static str, fault: Fault) -> Flow {
    use crate::preflight::{moto_with_base_images, release_agent, Person};
    let person = Person::new(&format!("m{n}"));
    person.put_agent("x86_64", &release_agent());
    let ns = format!("/m{n}/");
    let proxy = FaultProxy::start(moto_with_base_images().port(), n as u64 + 21)
        .unwrap_or_else(|e| panic!("{e}"));
    if fault == Fault::Delay(LATE) {
        // Late answers cost an attempt's whole wait each: only calls that change something get
        // them (those whose retry repeats something that already took effect).
        for verb in CHANGES {
            proxy.add(Rule::first_attempts(&format!("{verb}*"), fault.clone()));
        }
    } else {
        proxy.add(Rule::first_attempts("*", fault));
    }
    let plugin = crate::boxes::fixture_plugin("hook-recorder");
    let plugin = plugin.to_str().unwrap().to_string();
    let no_ssh = person.w.home.path().join("no-ssh.config");
    std::fs::write(&no_ssh, "Host *\n  ProxyCommand false\n").unwrap();
    let node = person.w.launch(
        &format!("m{n}_hook-recorder-box"),
        &[("cgcloud:namespace", &ns), ("generation", "0")],
    );
    person
        .w
        .ec2(&[("Action", "StopInstances"), ("InstanceId.1", &node)]);
    let snapshots_before = snapshots(&person.w);
    let mut outputs = Vec::new();
    let mut go = |args: &[&str]| -> Output {
        let mut c = person.w.cgcloud(args);
        c.env("CGCLOUD_DATA_DIR", person.data_dir())
            .env("CGCLOUD_SSH_KEY", &person.key)
            .env("CGCLOUD_SSH_CONFIG", &no_ssh)
            .env("CGCLOUD_TIMEOUT_SSH", "3")
            .env("CGCLOUD_TIMEOUT_API", "1")
            .env("AWS_ENDPOINT_URL", proxy.endpoint());
        let started = Instant::now();
        let o = run(c);
        outputs.push((args.join(" "), o.clone(), started.elapsed()));
        o
    };
    let p = plugin.as_str();
    go(&["create", ROLE]);
    go(&["--plugin", p, "image", "hook-recorder-box", "--force"]);
    let o = go(&[
        "--plugin",
        p,
        "recreate",
        "hook-recorder-box",
        "-Q",
        "--json",
    ]);
    let recreated = serde_json::from_str::<serde_json::Value>(&stdout(&o))
        .ok()
        .and_then(|v| v["instance_id"].as_str().map(str::to_string))
        .unwrap_or_default();
    go(&[
        "--plugin",
        p,
        "create-cluster",
        "recorder-cluster",
        "-s",
        "2",
        "-Q",
        "-c",
        "c1",
    ]);
    go(&["--plugin", p, "show", "hook-recorder-box", "-I", &recreated]);
    go(&["--plugin", p, "list-images", "hook-recorder-box"]);
    go(&[
        "--plugin",
        p,
        "update-instance-profile",
        "hook-recorder-box",
        "-I",
        &recreated,
    ]);
    go(&[
        "--plugin",
        p,
        "grow-cluster",
        "recorder-cluster",
        "-c",
        "c1",
        "-s",
        "1",
        "-Q",
    ]);
    let extra = ssh_keygen(person.w.home.path(), "extra", "ed25519").with_extension("pub");
    go(&["register-key", extra.to_str().unwrap(), "-k", "extra"]);
    go(&["keys", "revoke", "extra", "-y"]);
    go(&[
        "--plugin",
        p,
        "terminate",
        "hook-recorder-box",
        "-I",
        &recreated,
    ]);
    go(&["--plugin", p, "terminate", "hook-recorder-box", "-I", &node]);
    go(&[
        "--plugin",
        p,
        "terminate-cluster",
        "recorder-cluster",
        "-c",
        "c1",
    ]);
    go(&["--plugin", p, "delete-image", "hook-recorder-box"]);
    // Last, what the namespace's boxes shared: its security group, IAM role and profile.
    go(&["reset-security", "-y"]);
    Flow {
        n,
        class,
        person,
        proxy,
        outputs,
        snapshots_before,
    }
}

#[test]
fn the_commands_that_change_things_survive_a_failed_first_attempt_of_every_call() {
    let flows: Vec<Flow> = std::thread::scope(|s| {
        let handles: Vec<_> = classes()
            .into_iter()
            .enumerate()
            .map(|(n, (class, fault))| s.spawn(move || mutating_flow(n, class, fault)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for f in flows {
        let class = f.class;
        let total: Duration = f.outputs.iter().map(|(_, _, t)| *t).sum();
        eprintln!("{class}: {total:?} for {} calls", f.proxy.seen("*"));
        for (what, o, took) in &f.outputs {
            no_panic(o);
            assert!(
                took < &Duration::from_secs(180),
                "{what}, {class}: {took:?}"
            );
            let err = stderr(o);
            if what.starts_with("create ") {
                // Only SSH fails: the box is terminated and its wiring removed.
                assert_eq!(o.status.code(), Some(255), "{what}, {class}: {err}");
                let last = err.lines().last().unwrap_or_default();
                assert!(
                    last.starts_with("ERROR: could not log in to"),
                    "{what}, {class}: {err}"
                );
            } else {
                assert!(o.status.success(), "{what}, {class}: {err}");
            }
        }
        let w = &f.person.w;
        // Nothing of it is left: every instance is terminated (the hand-made node too), and
        // no image, snapshot, queue or subscription stays.
        assert_eq!(
            w.live_instance_ids(None),
            Vec::<String>::new(),
            "{class}: {}",
            f.outputs
                .iter()
                .map(|(w, o, _)| format!("{w}: {}", stderr(o)))
                .collect::<Vec<_>>()
                .join("\n")
        );
        let body = w.ec2(&[("Action", "DescribeImages"), ("Owner.1", "self")]);
        assert_eq!(
            xml_fields(&body, "imageId"),
            Vec::<String>::new(),
            "{class}"
        );
        assert_eq!(snapshots(w), f.snapshots_before, "{class}");
        assert_eq!(w.queue_urls(), Vec::<String>::new(), "{class}");
        let body = w.ec2(&[("Action", "DescribeSecurityGroups")]);
        assert_eq!(xml_fields(&body, "groupName"), ["default"], "{class}");
        let iam = |action: &str, field: &str| {
            let body = w
                .moto
                .iam(
                    &w.account.id,
                    &cgcloud_moto::form(&[("Action", action), ("Version", "2010-05-08")]),
                )
                .unwrap();
            xml_fields(&body, field)
        };
        assert_eq!(
            iam("ListRoles", "RoleName"),
            Vec::<String>::new(),
            "{class}"
        );
        assert_eq!(
            iam("ListInstanceProfiles", "InstanceProfileName"),
            Vec::<String>::new(),
            "{class}"
        );
        let body = w.ec2(&[("Action", "DescribeKeyPairs")]);
        assert_eq!(
            xml_fields(&body, "keyName"),
            [format!("m{}", f.n)],
            "{class}: the revoked key pair is gone"
        );
        assert_eq!(w.subscription_endpoints(), Vec::<String>::new(), "{class}");
        assert!(
            f.proxy.injected("*") >= 50,
            "{class}: the calls met the fault ({} injected)",
            f.proxy.injected("*")
        );
    }
}

/// The commands that work over SSH, on a real box of the local cloud, with cgcloud's AWS calls
/// through the proxy: every fault class at once, each on about an eighth of the first attempts
/// (seeded), the retries let through.
#[test]
fn the_commands_on_a_real_box_survive_failed_first_attempts_of_every_class() {
    let c = crate::boxes::Cloud::start();
    let p = FaultProxy::start(c.cloud.moto().port(), 51).unwrap_or_else(|e| panic!("{e}"));
    for (_, fault) in classes().into_iter().filter(|(class, _)| *class != "late") {
        p.add(Rule {
            attempt: Some(1),
            ..Rule::sometimes(0.12, "*", fault)
        });
    }
    let payload = c.home.path().join("payload");
    std::fs::write(&payload, "through a bad day\n").unwrap();
    let extra = ssh_keygen(c.home.path(), "extra", "ed25519").with_extension("pub");
    assert_success(&c.run(&["register-key", extra.to_str().unwrap(), "-k", "extra"]));
    let payload_arg = payload.to_str().unwrap().to_string();
    let steps: Vec<Vec<&str>> = vec![
        vec!["create", ROLE],
        vec!["ssh", ROLE, "true"],
        vec!["rsync", ROLE, "-a", &payload_arg, ":payload"],
        vec!["keys", "set", ROLE, "tester", "extra"],
        vec!["stop", ROLE],
        vec!["start", ROLE],
        vec!["reboot", ROLE],
        vec!["ssh", ROLE, "cat", "payload"],
        vec!["terminate", ROLE],
    ];
    for args in &steps {
        let before = p.injected("*");
        let mut cmd = c.cgcloud(args);
        cmd.env("AWS_ENDPOINT_URL", p.endpoint());
        let started = Instant::now();
        let o = run(cmd);
        no_panic(&o);
        assert!(
            o.status.success(),
            "{args:?} ({} faults met): {}",
            p.injected("*") - before,
            stderr(&o)
        );
        assert!(started.elapsed() < Duration::from_secs(300), "{args:?}");
        if args[..2] == ["ssh", ROLE] && args.len() > 3 {
            assert_eq!(stdout(&o), "through a bad day\n");
        }
    }
    assert!(p.injected("*") >= 10, "{} faults met", p.injected("*"));
    assert!(
        crate::agent::queue_names(&c).is_empty(),
        "the box's queue is gone"
    );
    let body = c.ec2(&[
        ("Action", "DescribeInstances"),
        ("Filter.1.Name", "instance-state-name"),
        ("Filter.1.Value.1", "pending"),
        ("Filter.1.Value.2", "running"),
        ("Filter.1.Value.3", "stopping"),
        ("Filter.1.Value.4", "stopped"),
    ]);
    assert_eq!(xml_fields(&body, "instanceId"), Vec::<String>::new());
}
