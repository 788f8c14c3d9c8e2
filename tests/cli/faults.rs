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

/// The fault classes, each applied to the first attempt of every call.
fn classes() -> Vec<(&'static str, Fault)> {
    vec![
        ("throttled", Fault::Throttle),
        ("500", Fault::Status(500)),
        ("503", Fault::Status(503)),
        ("dropped", Fault::Drop),
        ("truncated", Fault::Truncate),
        ("late", Fault::Delay(Duration::from_secs(3))),
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
fn a_call_that_keeps_failing_stops_the_command_with_one_line_naming_it() {
    let w = World::new("alice");
    let runs: Vec<_> = classes()
        .into_iter()
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
        assert!(
            p.seen("DescribeInstances") >= 2,
            "{class}: retried ({} calls)",
            p.seen("DescribeInstances")
        );
        // Bounded: the attempts (1 s each at most, here) and the SDK's backoff.
        assert!(took < Duration::from_secs(60), "{class}: {took:?}");
    }
}
