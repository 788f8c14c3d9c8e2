//! `list`, `show`, `terminate`, `list-roles` and `list-options`.

use serde_json::Value;

use cgcloud_tests::*;

const ROLE: &str = "generic-debian-bookworm-box";

fn json(o: &std::process::Output) -> Value {
    assert_success(o);
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

#[test]
fn list_shows_the_roles_boxes_in_this_namespace_only_oldest_first() {
    let w = World::new("alice");
    let a = w.launch(
        "team_generic-debian-bookworm-box",
        &[("cluster_name", "c1")],
    );
    let b = w.launch(
        "team_generic-debian-bookworm-box",
        &[("cluster_name", "c2"), ("cluster_ordinal", "0")],
    );
    let gone = w.launch("team_generic-debian-bookworm-box", &[]);
    w.ec2(&[("Action", "TerminateInstances"), ("InstanceId.1", &gone)]);
    w.launch("team_sub_generic-debian-bookworm-box", &[]); // child namespace /team/sub/
    w.launch("other_generic-debian-bookworm-box", &[]); // another namespace
    w.launch("team_generic-debian-trixie-box", &[]); // another role

    let rows = json(&w.run(&["list", ROLE, "-n", "/team/", "--json"]));
    let rows = rows.as_array().unwrap();
    let ids: Vec<&str> = rows
        .iter()
        .map(|r| r["instance_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![a.as_str(), b.as_str()],
        "launch order, no terminated, no other namespace"
    );
    assert_eq!(rows[0]["ordinal"], 0);
    assert_eq!(rows[1]["ordinal"], 1);
    assert_eq!(rows[1]["cluster_name"], "c2");
    assert_eq!(rows[1]["cluster_ordinal"], 0);
    assert_eq!(rows[0]["role_name"], ROLE);
    assert_eq!(rows[0]["state"], "running");
    assert_eq!(rows[0]["zone"], ZONE);
    assert_eq!(rows[0]["instance_type"], "t3.micro");
    for key in ["private_ip_address", "ip_address", "launch_time"] {
        assert!(rows[0][key].is_string(), "{key} in {}", rows[0]);
    }

    let rows = json(&w.run(&["list", ROLE, "-n", "/team/", "-c", "c2", "--json"]));
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["instance_id"], b.as_str());

    let rows = json(&w.run(&["list", ROLE, "-n", "/team/sub/", "--json"]));
    assert_eq!(
        rows.as_array().unwrap().len(),
        1,
        "the child namespace sees its own box"
    );
}

#[test]
fn list_prints_the_original_table() {
    let w = World::new("alice");
    let id = w.launch("alice_generic-debian-bookworm-box", &[]);
    let o = w.run(&["list", ROLE]);
    assert_success(&o);
    let text = stdout(&o);
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "cluster_name\trole_name\tordinal\tcluster_ordinal\tprivate_ip_address\tip_address\tinstance_id\t\
         instance_type\tlaunch_time\tstate\tzone"
    );
    let row: Vec<&str> = lines.next().unwrap().split('\t').collect();
    assert_eq!(row.len(), 11);
    assert_eq!(row[1], ROLE);
    assert_eq!(row[2], "0");
    assert_eq!(row[6], id);
    assert_eq!(row[9], "running");
    assert!(lines.next().is_none());
}

#[test]
fn unknown_roles_are_refused() {
    let w = World::new("alice");
    let o = w.run(&["list", "no-such-role"]);
    assert_user_error(&o, "no such role: `no-such-role`");
}

#[test]
fn show_describes_the_selected_box() {
    let w = World::new("alice");
    let first = w.launch("alice_generic-debian-bookworm-box", &[("generation", "0")]);
    let newest = w.launch("alice_generic-debian-bookworm-box", &[]);
    let shown = json(&w.run(&["show", ROLE, "--json"]));
    assert_eq!(
        shown["instance_id"],
        newest.as_str(),
        "-o defaults to -1, the newest"
    );
    let shown = json(&w.run(&["show", ROLE, "-o", "0", "--json"]));
    assert_eq!(shown["instance_id"], first.as_str());
    assert_eq!(shown["tags"]["generation"], "0");
    assert_eq!(shown["tags"]["Name"], "alice_generic-debian-bookworm-box");
    let shown = json(&w.run(&["show", ROLE, "-I", &first, "--json"]));
    assert_eq!(shown["instance_id"], first.as_str());

    let o = w.run(&["show", ROLE, "-o", "0"]);
    assert_success(&o);
    assert!(
        stdout(&o)
            .lines()
            .any(|l| l == format!("instance_id: {first}")),
        "{}",
        stdout(&o)
    );

    let o = w.run(&["show", ROLE, "-o", "2"]);
    assert_user_error(
        &o,
        "no box of role `generic-debian-bookworm-box` at ordinal 2",
    );
}

#[test]
fn terminate_terminates_the_selected_box_and_nothing_else() {
    let w = World::new("alice");
    let owned = [("cgcloud:namespace", "/alice/")];
    let keep = w.launch("alice_generic-debian-bookworm-box", &owned);
    let doomed = w.launch("alice_generic-debian-bookworm-box", &owned);
    let o = w.run(&["terminate", ROLE]);
    assert_success(&o);
    assert_eq!(w.instance_state(&doomed), "terminated");
    assert_eq!(w.instance_state(&keep), "running");
}

#[test]
fn boxes_without_the_ownership_tag_are_never_changed() {
    let w = World::new("alice");
    // Named like a box of the role, but not tagged as cgcloud's (the original cgcloud, another
    // tool, or someone naming an instance to get it terminated), or tagged for another namespace.
    let untagged = w.launch("alice_generic-debian-bookworm-box", &[]);
    let foreign = w.launch(
        "alice_generic-debian-bookworm-box",
        &[("cgcloud:namespace", "/bob/")],
    );
    for (id, needle) in [
        (&untagged, "has no `cgcloud:namespace` tag"),
        (&foreign, "belongs to namespace `/bob/`"),
    ] {
        for cmd in [
            "terminate",
            "stop",
            "image",
            "reboot",
            "update-instance-profile",
        ] {
            let o = w.run(&[cmd, ROLE, "-I", id]);
            assert_user_error(&o, needle);
            assert_eq!(w.instance_state(id), "running", "{cmd} left `{id}` alone");
        }
        let o = w.run(&["keys", "set", ROLE, "-I", id, "alice"]);
        assert_user_error(&o, needle);
    }
    let o = w.run(&["terminate", ROLE, "-I", &untagged]);
    assert!(
        stderr(&o).contains("aws ec2 create-tags --resources"),
        "the way to adopt it is named: {}",
        stderr(&o)
    );
    // Adopted, it is cgcloud's.
    w.ec2(&[
        ("Action", "CreateTags"),
        ("ResourceId.1", &untagged),
        ("Tag.1.Key", "cgcloud:namespace"),
        ("Tag.1.Value", "/alice/"),
    ]);
    assert_success(&w.run(&["terminate", ROLE, "-I", &untagged]));
    assert_eq!(w.instance_state(&untagged), "terminated");
}

#[test]
fn terminate_refuses_an_instance_of_another_role_or_namespace() {
    let w = World::new("alice");
    let foreign = w.launch("bob_generic-debian-bookworm-box", &[]);
    let o = w.run(&["terminate", ROLE, "-I", &foreign]);
    assert_user_error(
        &o,
        &format!("instance `{foreign}` is not a box of role `{ROLE}` in namespace `/alice/`"),
    );
    assert_eq!(w.instance_state(&foreign), "running");
    let o = w.run(&["terminate", ROLE, "-I", "i-0123456789abcdef0"]);
    assert_user_error(&o, "there is no instance `i-0123456789abcdef0`");
    let o = w.run(&["terminate", ROLE]);
    assert_user_error(
        &o,
        "no box of role `generic-debian-bookworm-box` in namespace `/alice/`",
    );
}

#[test]
fn list_roles_and_list_options_need_no_credentials() {
    let home = tempfile::tempdir().unwrap();
    let o = run(bare_cgcloud(home.path(), &["list-roles"]));
    assert_success(&o);
    for role in [
        "generic-debian-bookworm-box",
        "generic-debian-trixie-box",
        "generic-ubuntu-noble-box",
    ] {
        assert!(
            stdout(&o)
                .lines()
                .any(|l| l.starts_with(&format!("{role}\t"))),
            "{role}: {}",
            stdout(&o)
        );
    }
    let o = run(bare_cgcloud(home.path(), &["list-roles", "--json"]));
    let roles = json(&o);
    assert!(roles.as_array().unwrap().iter().any(|r| r["name"] == ROLE));

    let mut c = bare_cgcloud(home.path(), &["list-options", ROLE]);
    c.env("CGCLOUD_ZONE", ZONE);
    let o = run(c);
    assert_success(&o);
    assert!(!stdout(&o).is_empty());
}
