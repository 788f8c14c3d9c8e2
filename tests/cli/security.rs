//! `reset-security` and `cleanup`: only what carries cgcloud's ownership tag for the namespace
//! (or a child namespace) is deleted, never what merely has a name like ours, and nothing at
//! all without confirmation.

use std::path::{Path, PathBuf};
use std::process::Output;

use cgcloud_tests::*;

const OWNER: &str = "cgcloud:namespace";
const ROLE: &str = "generic-debian-bookworm-box";

fn iam(w: &World, pairs: &[(&str, &str)]) -> Result<String, String> {
    let mut all = pairs.to_vec();
    all.push(("Version", "2010-05-08"));
    w.moto.iam(&w.account.id, &form(&all))
}

fn iam_ok(w: &World, pairs: &[(&str, &str)]) -> String {
    iam(w, pairs).unwrap_or_else(|e| panic!("IAM call failed: {e}"))
}

/// A security group, tagged with `owner` as its namespace if given; returns its ID.
fn make_group(w: &World, name: &str, owner: Option<&str>) -> String {
    let mut pairs = vec![
        ("Action", "CreateSecurityGroup"),
        ("GroupName", name),
        ("GroupDescription", "test"),
    ];
    if let Some(o) = owner {
        pairs.extend([
            ("TagSpecification.1.ResourceType", "security-group"),
            ("TagSpecification.1.Tag.1.Key", OWNER),
            ("TagSpecification.1.Tag.1.Value", o),
        ]);
    }
    let body = w.ec2(&pairs);
    xml_field(&body, "groupId").expect("CreateSecurityGroup returns a group ID")
}

fn group_exists(w: &World, id: &str) -> bool {
    w.ec2_lists(
        "DescribeSecurityGroups",
        "GroupId.1",
        id,
        "groupId",
        "InvalidGroup.NotFound",
    )
}

const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
const POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:Describe*","Resource":"*"}]}"#;

/// An IAM role with an inline policy, tagged with `owner` if given.
fn make_role(w: &World, name: &str, owner: Option<&str>) {
    let mut pairs = vec![
        ("Action", "CreateRole"),
        ("RoleName", name),
        ("AssumeRolePolicyDocument", TRUST),
    ];
    if let Some(o) = owner {
        pairs.extend([("Tags.member.1.Key", OWNER), ("Tags.member.1.Value", o)]);
    }
    iam_ok(w, &pairs);
    iam_ok(
        w,
        &[
            ("Action", "PutRolePolicy"),
            ("RoleName", name),
            ("PolicyName", "ec2_read_only"),
            ("PolicyDocument", POLICY),
        ],
    );
}

/// An instance profile holding `role`, tagged with `owner` if given.
fn make_profile(w: &World, name: &str, owner: Option<&str>, role: &str) {
    let mut pairs = vec![
        ("Action", "CreateInstanceProfile"),
        ("InstanceProfileName", name),
    ];
    if let Some(o) = owner {
        pairs.extend([("Tags.member.1.Key", OWNER), ("Tags.member.1.Value", o)]);
    }
    iam_ok(w, &pairs);
    iam_ok(
        w,
        &[
            ("Action", "AddRoleToInstanceProfile"),
            ("InstanceProfileName", name),
            ("RoleName", role),
        ],
    );
}

fn iam_exists(w: &World, action: &str, param: &str, name: &str) -> bool {
    match iam(w, &[("Action", action), (param, name)]) {
        Ok(_) => true,
        Err(e) if e.contains("NoSuchEntity") => false,
        Err(e) => panic!("{action} failed: {e}"),
    }
}

fn role_exists(w: &World, name: &str) -> bool {
    iam_exists(w, "GetRole", "RoleName", name)
}

fn profile_exists(w: &World, name: &str) -> bool {
    iam_exists(w, "GetInstanceProfile", "InstanceProfileName", name)
}

/// The tab-separated rows `reset-security`/`cleanup` listed, without the header.
fn listed(o: &Output) -> Vec<String> {
    stdout(o).lines().skip(1).map(str::to_string).collect()
}

fn listed_ids(o: &Output) -> Vec<String> {
    let mut ids: Vec<String> = listed(o)
        .iter()
        .map(|l| l.split('\t').nth(1).unwrap_or_default().to_string())
        .collect();
    ids.sort();
    ids
}

#[test]
fn reset_security_deletes_only_tagged_resources_of_the_namespace_and_its_children() {
    let w = World::new("alice");
    // Ours, in /alice/ and in the child namespace /alice/test/.
    let web = make_group(&w, "alice_web", Some("/alice/"));
    make_role(&w, "alice_cgcloud-drlqaw4bbigxu", Some("/alice/"));
    make_profile(
        &w,
        "alice_web",
        Some("/alice/"),
        "alice_cgcloud-drlqaw4bbigxu",
    );
    let child = make_group(&w, "alice_test_web", Some("/alice/test/"));
    make_role(&w, "alice_test_cgcloud-drlqaw4bbigxu", Some("/alice/test/"));
    make_profile(
        &w,
        "alice_test_web",
        Some("/alice/test/"),
        "alice_test_cgcloud-drlqaw4bbigxu",
    );
    // Named like ours but without the tag: someone else's.
    let lookalike = make_group(&w, "alice_lookalike", None);
    make_role(&w, "alice_cgcloud-qjcdp7lv4sqlu", None);
    make_profile(&w, "alice_lookalike", None, "alice_cgcloud-qjcdp7lv4sqlu");
    // Another namespace's, and tags that only look like ours.
    let bob = make_group(&w, "bob_web", Some("/bob/"));
    make_role(&w, "bob_cgcloud-drlqaw4bbigxu", Some("/bob/"));
    make_profile(&w, "bob_web", Some("/bob/"), "bob_cgcloud-drlqaw4bbigxu");
    let sneaky = make_group(&w, "alice_sneaky", Some("/bob/"));
    let alicex = make_group(&w, "alicex_web", Some("/alicex/"));
    let untouched = |w: &World| {
        for g in [&lookalike, &bob, &sneaky, &alicex] {
            assert!(group_exists(w, g), "group {g} survives");
        }
        for r in ["alice_cgcloud-qjcdp7lv4sqlu", "bob_cgcloud-drlqaw4bbigxu"] {
            assert!(role_exists(w, r), "role {r} survives");
        }
        for p in ["alice_lookalike", "bob_web"] {
            assert!(profile_exists(w, p), "profile {p} survives");
        }
    };

    // No terminal and no -y: the list, a refusal, and nothing deleted.
    let o = w.run(&["reset-security", "-n", "/alice/"]);
    assert_user_error(&o, "refusing to delete 6 resources without confirmation");
    assert!(
        stderr(&o).contains("cgcloud reset-security -y"),
        "{}",
        stderr(&o)
    );
    let mut expected = vec![
        web.clone(),
        child.clone(),
        "alice_cgcloud-drlqaw4bbigxu".to_string(),
        "alice_test_cgcloud-drlqaw4bbigxu".to_string(),
        "alice_web".to_string(),
        "alice_test_web".to_string(),
    ];
    expected.sort();
    assert_eq!(listed_ids(&o), expected, "{}", stdout(&o));
    assert!(
        stdout(&o).starts_with("kind\tid\tdetail\tnamespace\n"),
        "{}",
        stdout(&o)
    );
    assert!(group_exists(&w, &web) && group_exists(&w, &child));
    assert!(role_exists(&w, "alice_cgcloud-drlqaw4bbigxu") && profile_exists(&w, "alice_web"));
    untouched(&w);

    let o = w.run(&["reset-security", "-n", "/alice/", "-y"]);
    assert_success(&o);
    assert_eq!(listed_ids(&o), expected);
    assert!(!group_exists(&w, &web) && !group_exists(&w, &child));
    for r in [
        "alice_cgcloud-drlqaw4bbigxu",
        "alice_test_cgcloud-drlqaw4bbigxu",
    ] {
        assert!(!role_exists(&w, r), "role {r} is deleted");
    }
    for p in ["alice_web", "alice_test_web"] {
        assert!(!profile_exists(&w, p), "profile {p} is deleted");
    }
    untouched(&w);

    // Nothing left: nothing to confirm, success.
    let o = w.run(&["reset-security", "-n", "/alice/"]);
    assert_success(&o);
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    assert!(stderr(&o).contains("nothing to delete"), "{}", stderr(&o));

    // A child namespace's reset leaves the parent's alone.
    let parent = make_group(&w, "alice_web", Some("/alice/"));
    let kid = make_group(&w, "alice_test_web", Some("/alice/test/"));
    assert_success(&w.run(&["reset-security", "-n", "/alice/test/", "-y"]));
    assert!(group_exists(&w, &parent) && !group_exists(&w, &kid));
}

#[test]
fn reset_security_reports_a_failure_and_deletes_the_rest() {
    let w = World::new("alice");
    let web = make_group(&w, "alice_web", Some("/alice/"));
    make_role(&w, "alice_cgcloud-drlqaw4bbigxu", Some("/alice/"));
    // Our role is held by a profile cgcloud did not make: the role cannot go, and the profile
    // is not ours to change.
    make_profile(&w, "alice_handmade", None, "alice_cgcloud-drlqaw4bbigxu");
    let o = w.run(&["reset-security", "-n", "/alice/", "-y"]);
    assert_user_error(
        &o,
        "could not delete 1 of 2 resources (iam role `alice_cgcloud-drlqaw4bbigxu`)",
    );
    let err = stderr(&o);
    assert!(
        err.lines()
            .any(|l| l.starts_with("WARNING: ") && l.contains("DeleteConflict")),
        "{err}"
    );
    assert!(
        !group_exists(&w, &web),
        "the group is deleted despite the role's failure"
    );
    assert!(role_exists(&w, "alice_cgcloud-drlqaw4bbigxu"));
    assert!(profile_exists(&w, "alice_handmade"));
}

#[test]
fn reset_security_pages_through_iam_listings() {
    let w = World::new("alice");
    // IAM lists 100 roles a page: some of ours are only on the second page.
    for n in 0..110 {
        let name = format!("alice_cgcloud-r{n:03}");
        iam_ok(
            &w,
            &[
                ("Action", "CreateRole"),
                ("RoleName", &name),
                ("AssumeRolePolicyDocument", TRUST),
                ("Tags.member.1.Key", OWNER),
                ("Tags.member.1.Value", "/alice/"),
            ],
        );
    }
    let o = w.run(&["reset-security", "-n", "/alice/", "-y"]);
    assert_success(&o);
    assert_eq!(listed(&o).len(), 110);
    let body = iam_ok(&w, &[("Action", "ListRoles"), ("MaxItems", "1000")]);
    let left: Vec<String> = xml_fields(&body, "RoleName")
        .into_iter()
        .filter(|r| r.starts_with("alice_"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// Makes an image of a fresh instance; tags its snapshots as `cgcloud image` does when
/// `owner` is given. Returns (image ID, snapshot IDs).
fn make_image(w: &World, name: &str, owner: Option<&str>) -> (String, Vec<String>) {
    let instance = w.launch("scratch", &[]);
    let body = w.ec2(&[
        ("Action", "CreateImage"),
        ("InstanceId", &instance),
        ("Name", name),
    ]);
    let id = xml_field(&body, "imageId").expect("CreateImage returns an image ID");
    let snaps = image_snapshots(w, &id);
    assert!(!snaps.is_empty(), "moto gives images a snapshot");
    if let Some(o) = owner {
        let mut pairs = vec![
            ("Action".to_string(), "CreateTags".to_string()),
            ("Tag.1.Key".into(), OWNER.into()),
            ("Tag.1.Value".into(), o.into()),
            ("Tag.2.Key".into(), "cgcloud:image".into()),
            ("Tag.2.Value".into(), id.clone()),
        ];
        for (n, s) in snaps.iter().enumerate() {
            pairs.push((format!("ResourceId.{}", n + 1), s.clone()));
        }
        let refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        w.ec2(&refs);
    }
    (id, snaps)
}

fn image_snapshots(w: &World, image: &str) -> Vec<String> {
    let body = w.ec2(&[("Action", "DescribeImages"), ("ImageId.1", image)]);
    xml_fields(&body, "snapshotId")
}

fn deregister(w: &World, image: &str) {
    w.ec2(&[("Action", "DeregisterImage"), ("ImageId", image)]);
}

fn snapshot_exists(w: &World, id: &str) -> bool {
    let body = w.moto.call(
        &w.account.id,
        "ec2",
        &form(&[
            ("Action", "DescribeSnapshots"),
            ("SnapshotId.1", id),
            ("Version", "2016-11-15"),
        ]),
    );
    match body {
        Ok(b) => xml_fields(&b, "snapshotId").contains(&id.to_string()),
        Err(e) if e.contains("InvalidSnapshot.NotFound") => false,
        Err(e) => panic!("DescribeSnapshots failed: {e}"),
    }
}

/// cgcloud with its data directory (and so its known_hosts) in the world's home.
fn run_with_data(w: &World, args: &[&str]) -> Output {
    let mut c = w.cgcloud(args);
    c.env("CGCLOUD_DATA_DIR", data_dir(w));
    run(c)
}

fn data_dir(w: &World) -> PathBuf {
    w.home.path().join("data-dir")
}

fn pinned(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut ids: Vec<String> = text
        .lines()
        .filter_map(|l| l.split(' ').next())
        .map(str::to_string)
        .collect();
    ids.sort();
    ids
}

/// One EC2 call in another region of the world's account.
fn ec2_in(w: &World, region: &str, pairs: &[(&str, &str)]) -> String {
    let mut all = pairs.to_vec();
    all.push(("Version", "2016-11-15"));
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential=testing/20260101/{region}/ec2/aws4_request, SignedHeaders=host, Signature=0"
    );
    let (status, body) = w
        .moto
        .http(
            "POST",
            "/",
            &[
                ("Authorization", &auth),
                ("x-moto-account-id", &w.account.id),
            ],
            &form(&all),
        )
        .unwrap();
    assert_eq!(status, 200, "EC2 call in {region} failed: {body}");
    body
}

#[test]
fn cleanup_deletes_orphaned_snapshots_of_the_namespace_and_pins_of_gone_instances() {
    let w = World::new("alice");
    let (gone, gone_snaps) = make_image(&w, "alice_r__2026-01-01__00-00-00", Some("/alice/"));
    let (_kept, kept_snaps) = make_image(&w, "alice_r__2026-01-02__00-00-00", Some("/alice/"));
    let (child, child_snaps) = make_image(
        &w,
        "alice_test_r__2026-01-01__00-00-00",
        Some("/alice/test/"),
    );
    let (bob, bob_snaps) = make_image(&w, "bob_r__2026-01-01__00-00-00", Some("/bob/"));
    let (plain, plain_snaps) = make_image(&w, "alice_r__handmade", None);
    for img in [&gone, &child, &bob, &plain] {
        deregister(&w, img);
    }

    // Pins: a running box here, one in another region, a terminated one, one EC2 never had.
    let live = w.launch("alice_r", &[]);
    let dead = w.launch("alice_r", &[]);
    w.ec2(&[("Action", "TerminateInstances"), ("InstanceId.1", &dead)]);
    let west_ami = xml_field(
        &ec2_in(
            &w,
            "us-west-2",
            &[("Action", "DescribeImages"), ("Owner.1", "amazon")],
        ),
        "imageId",
    )
    .expect("moto ships images in us-west-2");
    let west = xml_field(
        &ec2_in(
            &w,
            "us-west-2",
            &[
                ("Action", "RunInstances"),
                ("ImageId", &west_ami),
                ("MinCount", "1"),
                ("MaxCount", "1"),
                ("InstanceType", "t3.micro"),
            ],
        ),
        "instanceId",
    )
    .expect("an instance in us-west-2");
    let never = "i-0123456789abcdef0";
    let known_hosts = data_dir(&w).join("known_hosts");
    std::fs::create_dir_all(data_dir(&w)).unwrap();
    let text: String = [&live, &dead, &west, &never.to_string()]
        .iter()
        .map(|id| format!("{id} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG0oQ0GXtZwCL9RVZTXt1bOIzB/3WxWk1w/GHhWP8g7S\n"))
        .collect();
    std::fs::write(&known_hosts, &text).unwrap();

    let mut expected: Vec<String> = gone_snaps
        .iter()
        .chain(&child_snaps)
        .cloned()
        .chain([dead.clone(), never.to_string()])
        .collect();
    expected.sort();

    let o = run_with_data(&w, &["cleanup", "-n", "/alice/"]);
    assert_user_error(
        &o,
        &format!(
            "refusing to delete {} resources without confirmation",
            expected.len()
        ),
    );
    assert_eq!(listed_ids(&o), expected, "{}", stdout(&o));
    assert!(
        gone_snaps.iter().all(|s| snapshot_exists(&w, s)),
        "nothing is deleted without -y"
    );
    assert_eq!(std::fs::read_to_string(&known_hosts).unwrap(), text);

    let o = run_with_data(&w, &["cleanup", "-n", "/alice/", "-y"]);
    assert_success(&o);
    assert_eq!(listed_ids(&o), expected, "{}", stdout(&o));
    for s in gone_snaps.iter().chain(&child_snaps) {
        assert!(
            !snapshot_exists(&w, s),
            "snapshot {s} of a deleted image is gone"
        );
    }
    for s in kept_snaps.iter().chain(&bob_snaps).chain(&plain_snaps) {
        assert!(snapshot_exists(&w, s), "snapshot {s} survives");
    }
    let mut still = vec![live.clone(), west.clone()];
    still.sort();
    assert_eq!(pinned(&known_hosts), still);

    let o = run_with_data(&w, &["cleanup", "-n", "/alice/"]);
    assert_success(&o);
    assert!(stderr(&o).contains("nothing to delete"), "{}", stderr(&o));
}

#[test]
fn image_tags_its_snapshots_so_cleanup_finds_them_after_delete_image() {
    let w = World::new("alice");
    let box_id = w.launch(
        &format!("alice_{ROLE}"),
        &[(OWNER, "/alice/"), ("generation", "0")],
    );
    w.ec2(&[("Action", "StopInstances"), ("InstanceId.1", &box_id)]);
    // Stopped behind cgcloud's back, its disk was not readied for an image.
    let o = run_with_data(&w, &["image", ROLE, "-n", "/alice/"]);
    assert_user_error(
        &o,
        "was not stopped by `cgcloud stop` since it last started",
    );
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    let o = run_with_data(&w, &["image", ROLE, "-n", "/alice/", "--force"]);
    assert_success(&o);
    let image = stdout(&o).trim().to_string();
    let snaps = image_snapshots(&w, &image);
    assert!(!snaps.is_empty());
    for s in &snaps {
        let body = w.ec2(&[("Action", "DescribeSnapshots"), ("SnapshotId.1", s)]);
        let tags: Vec<(String, String)> = xml_fields(&body, "key")
            .into_iter()
            .zip(xml_fields(&body, "value"))
            .collect();
        assert!(
            tags.contains(&(OWNER.to_string(), "/alice/".to_string())),
            "{tags:?}"
        );
        assert!(
            tags.contains(&("cgcloud:image".to_string(), image.clone())),
            "{tags:?}"
        );
    }
    // While the image exists its snapshots are not leftovers.
    let o = run_with_data(&w, &["cleanup", "-n", "/alice/", "-y"]);
    assert_success(&o);
    assert!(snaps.iter().all(|s| snapshot_exists(&w, s)));
    assert_success(&run_with_data(
        &w,
        &["delete-image", ROLE, "-n", "/alice/", "--keep-snapshot"],
    ));
    let o = run_with_data(&w, &["cleanup", "-n", "/alice/", "-y"]);
    assert_success(&o);
    assert!(
        snaps.iter().all(|s| !snapshot_exists(&w, s)),
        "{}",
        stdout(&o)
    );
}

/// `cgcloud ARGS…` on a terminal (util-linux `script` gives it one), typing `answer`.
fn run_on_terminal(w: &World, args: &[&str], answer: &str) -> Output {
    use std::io::Write as _;
    let inner = w.cgcloud(args);
    let line = std::iter::once(inner.get_program().to_string_lossy().into_owned())
        .chain(args.iter().map(|a| a.to_string()))
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut c = std::process::Command::new("script");
    c.args(["-qec", &line, "/dev/null"]).env_clear();
    for (k, v) in inner.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c
        .spawn()
        .unwrap_or_else(|e| panic!("failed to run `script` (util-linux) for a terminal: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{answer}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn reset_security_asks_on_a_terminal_and_deletes_only_after_yes() {
    let w = World::new("alice");
    let web = make_group(&w, "alice_web", Some("/alice/"));
    let o = run_on_terminal(&w, &["reset-security", "-n", "/alice/"], "no");
    let text = stdout(&o);
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains("Delete these 1 resources? Type `yes` to confirm"),
        "{text}"
    );
    assert!(text.contains("nothing was deleted"), "{text}");
    assert!(group_exists(&w, &web));
    let o = run_on_terminal(&w, &["reset-security", "-n", "/alice/"], "yes");
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(!group_exists(&w, &web));
}
