//! Namespaces, zones and `__me__`: validated first, resolved through STS or CGCLOUD_ME.

use cgcloud_tests::*;

/// Commands with their other arguments; the namespace must be refused before any of them
/// matters (a missing key file, an unknown role, no credentials, no zone).
const COMMANDS: &[&[&str]] = &[
    &["list", "no-such-role"],
    &["list-images", "generic-debian-bookworm-box"],
    &["register-key", "/no/such/key.pub"],
    &["terminate", "no-such-role", "-o", "5"],
    &["list-options", "no-such-role"],
    &["create", "no-such-role"],
    &["show", "generic-debian-bookworm-box", "-I", "i-00000000"],
];

#[test]
fn invalid_namespaces_are_refused_before_anything_else() {
    let home = tempfile::tempdir().unwrap();
    for bad in ["/Bad/", "foo", "/foo", "//foo/", "/_foo/", "/foo//"] {
        for args in COMMANDS {
            let mut all = args.to_vec();
            all.extend(["-n", bad]);
            let o = run(bare_cgcloud(home.path(), &all));
            assert_user_error(&o, &format!("invalid namespace `{bad}`"));
            assert!(
                stderr(&o).contains("lower-case"),
                "the message names the rule: {}",
                stderr(&o)
            );
        }
    }
}

#[test]
fn invalid_namespace_from_the_environment_is_refused_too() {
    let home = tempfile::tempdir().unwrap();
    let mut c = bare_cgcloud(home.path(), &["list", "generic-debian-bookworm-box"]);
    c.env("CGCLOUD_NAMESPACE", "/Upper/");
    assert_user_error(&run(c), "invalid namespace `/Upper/`");
}

#[test]
fn a_missing_zone_is_a_clear_error() {
    let w = World::new("alice");
    let mut c = w.cgcloud(&["list", "generic-debian-bookworm-box"]);
    c.env_remove("CGCLOUD_ZONE");
    let o = run(c);
    assert_user_error(&o, "no availability zone given: pass --zone");
}

#[test]
fn zones_of_every_partition_are_accepted_and_bad_ones_refused() {
    let w = World::new("alice");
    for bad in ["us-east-1", "mars", "US-EAST-1A"] {
        let o = w.run(&["list", "generic-debian-bookworm-box", "-z", bad]);
        assert_user_error(&o, bad);
    }
    // A zone of another region works (an empty listing there).
    let o = w.run(&["list", "generic-debian-bookworm-box", "-z", "eu-west-1b"]);
    assert_success(&o);
}

#[test]
fn me_is_the_iam_user_behind_the_credentials() {
    let w = World::new("Alice");
    // Default namespace /__me__/ resolves to /alice/ (lower-cased) through STS.
    let id = w.launch("alice_generic-debian-bookworm-box", &[]);
    w.launch("bob_generic-debian-bookworm-box", &[]);
    let o = w.run(&["list", "generic-debian-bookworm-box", "--json"]);
    assert_success(&o);
    let rows: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let ids: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["instance_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![id.as_str()]);
}

#[test]
fn cgcloud_me_wins_and_loses_its_host_part_in_namespaces() {
    let w = World::new("alice");
    let id = w.launch("bob_generic-debian-bookworm-box", &[]);
    let mut c = w.cgcloud(&["list", "generic-debian-bookworm-box", "--json"]);
    c.env("CGCLOUD_ME", "Bob@Example.org");
    let o = run(c);
    assert_success(&o);
    assert!(stdout(&o).contains(&id), "{}", stdout(&o));
}

#[test]
fn no_credentials_is_a_clear_error() {
    let home = tempfile::tempdir().unwrap();
    let mut c = bare_cgcloud(home.path(), &["list", "generic-debian-bookworm-box"]);
    c.env("CGCLOUD_ZONE", ZONE)
        .env("AWS_ENDPOINT_URL", moto().endpoint());
    let o = run(c);
    assert_user_error(&o, "no usable AWS credentials");
}
