//! `list-images` and `delete-image`: only this account's images, and nothing left behind.

use serde_json::Value;

use cgcloud_tests::*;

const ROLE: &str = "generic-debian-bookworm-box";

/// Makes an image of a fresh instance in `w`'s account; returns (image ID, snapshot IDs).
/// An image as cgcloud makes them: named in the namespace and tagged with it.
fn make_image(w: &World, name: &str) -> (String, Vec<String>) {
    let (id, snaps) = make_untagged_image(w, name);
    let ns = format!("/{}/", name.split('_').next().unwrap_or_default());
    w.ec2(&[
        ("Action", "CreateTags"),
        ("ResourceId.1", &id),
        ("Tag.1.Key", "cgcloud:namespace"),
        ("Tag.1.Value", &ns),
    ]);
    (id, snaps)
}

fn make_untagged_image(w: &World, name: &str) -> (String, Vec<String>) {
    let instance = w.launch("scratch", &[]);
    let body = w.ec2(&[
        ("Action", "CreateImage"),
        ("InstanceId", &instance),
        ("Name", name),
    ]);
    let id = xml_field(&body, "imageId").expect("CreateImage returns an image ID");
    let body = w.ec2(&[("Action", "DescribeImages"), ("ImageId.1", &id)]);
    let snaps = xml_fields(&body, "snapshotId");
    assert!(!snaps.is_empty(), "moto gives images a snapshot: {body}");
    (id, snaps)
}

fn image_ids(o: &std::process::Output) -> Vec<String> {
    assert_success(o);
    let rows: Value = serde_json::from_str(&stdout(o)).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

fn image_exists(w: &World, id: &str) -> bool {
    let body = w.ec2(&[("Action", "DescribeImages"), ("ImageId.1", id)]);
    xml_fields(&body, "imageId").contains(&id.to_string())
}

fn snapshot_exists(w: &World, id: &str) -> bool {
    w.ec2_lists(
        "DescribeSnapshots",
        "SnapshotId.1",
        id,
        "snapshotId",
        "InvalidSnapshot.NotFound",
    )
}

#[test]
fn list_images_shows_own_images_of_the_role_oldest_first() {
    let w = World::new("alice");
    let (newer, _) = make_image(
        &w,
        "alice_generic-debian-bookworm-box__2026-02-01__00-00-00",
    );
    let (older, _) = make_image(
        &w,
        "alice_generic-debian-bookworm-box__2025-12-31__23-59-59",
    );
    make_image(
        &w,
        "alice_generic-debian-bookworm-box__extra__2026-01-01__00-00-00",
    ); // role `…-box_extra`
    make_image(&w, "bob_generic-debian-bookworm-box__2026-01-01__00-00-00"); // another namespace
    make_image(&w, "alice_generic-debian-bookworm-box__handmade"); // not cgcloud's naming

    let o = w.run(&["list-images", ROLE, "--json"]);
    assert_eq!(image_ids(&o), vec![older.clone(), newer.clone()]);
    let rows: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        rows[1]["name"],
        "generic-debian-bookworm-box_2026-02-01_00-00-00"
    );
    assert_eq!(rows[1]["ordinal"], 1);
    assert_eq!(rows[1]["state"], "available");

    let o = w.run(&["list-images", ROLE]);
    assert_success(&o);
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "name\tordinal\tid\tstate");
    assert_eq!(
        lines[1],
        format!("generic-debian-bookworm-box_2025-12-31_23-59-59\t0\t{older}\tavailable")
    );
    assert_eq!(lines.len(), 3);
}

/// One AMI catalogue entry as moto's `MOTO_AMIS_PATH` file wants it.
fn catalogue_entry(id: &str, name: &str, owner: &str) -> Value {
    serde_json::json!({
        "ami_id": id, "name": name, "owner_id": owner, "public": true, "state": "available",
        "architecture": "x86_64", "virtualization_type": "hvm", "root_device_type": "ebs",
        "root_device_name": "/dev/xvda", "image_type": "machine", "hypervisor": "xen", "sriov": "simple",
        "description": name, "platform": null, "image_location": format!("{owner}/{name}")
    })
}

#[test]
fn a_public_image_of_another_account_never_shows() {
    // A moto whose catalogue holds a public image of another account, named like one of ours:
    // the attack of the original's name-only lookup.
    let dir = tempfile::tempdir().unwrap();
    let spoof = "ami-0badc0ffee0000001";
    let catalogue = serde_json::json!([
        catalogue_entry(
            spoof,
            "alice_generic-debian-bookworm-box__2099-01-01__00-00-00",
            "666666666666"
        ),
        catalogue_entry("ami-0000000000000b001", "plain-base-image", "137112412989"),
    ]);
    let path = dir.path().join("amis.json");
    std::fs::write(&path, catalogue.to_string()).unwrap();
    let moto: &'static Moto = Box::leak(Box::new(
        Moto::start_with(&[
            ("MOTO_AMIS_PATH", path.to_str().unwrap()),
            ("MOTO_ENABLE_AMI_VALIDATION", "true"),
            ("MOTO_ENABLE_KEYPAIR_VALIDATION", "true"),
        ])
        .unwrap(),
    ));
    let w = World::on(moto, "alice");
    // The spoof is visible to alice's account through a name filter alone ...
    let body = w.ec2(&[
        ("Action", "DescribeImages"),
        ("Filter.1.Name", "name"),
        ("Filter.1.Value.1", "alice_generic-debian-bookworm-box__*"),
    ]);
    assert!(
        xml_fields(&body, "imageId").contains(&spoof.to_string()),
        "the spoof must be visible: {body}"
    );
    // ... but never to cgcloud, which only looks at images the account owns.
    let (own, _) = make_image(
        &w,
        "alice_generic-debian-bookworm-box__2026-01-01__00-00-00",
    );
    assert_eq!(
        image_ids(&w.run(&["list-images", ROLE, "--json"])),
        vec![own.clone()]
    );
    let o = w.run(&["delete-image", ROLE, "-i", spoof]);
    assert_user_error(
        &o,
        &format!("there is no image `{spoof}` owned by this account"),
    );
    assert!(image_exists(&w, spoof));
    // The newest image is ours, not the spoof dated 2099.
    assert_success(&w.run(&["delete-image", ROLE]));
    assert!(!image_exists(&w, &own));
    assert!(image_exists(&w, spoof));
}

#[test]
fn delete_image_deregisters_and_leaves_no_snapshot_behind() {
    let w = World::new("alice");
    let (old, old_snaps) = make_image(
        &w,
        "alice_generic-debian-bookworm-box__2026-01-01__00-00-00",
    );
    let (new, new_snaps) = make_image(
        &w,
        "alice_generic-debian-bookworm-box__2026-01-02__00-00-00",
    );
    let o = w.run(&["delete-image", ROLE]); // -1: the newest
    assert_success(&o);
    assert!(!image_exists(&w, &new));
    for s in &new_snaps {
        assert!(!snapshot_exists(&w, s), "snapshot {s} is gone");
    }
    assert!(image_exists(&w, &old), "the older image is untouched");
    for s in &old_snaps {
        assert!(snapshot_exists(&w, s));
    }
}

#[test]
fn delete_image_keeps_snapshots_when_asked() {
    let w = World::new("alice");
    let (id, snaps) = make_image(
        &w,
        "alice_generic-debian-bookworm-box__2026-01-01__00-00-00",
    );
    assert_success(&w.run(&["delete-image", ROLE, "-i", &id, "--keep-snapshot"]));
    assert!(!image_exists(&w, &id));
    assert!(snaps.iter().all(|s| snapshot_exists(&w, s)));
}

#[test]
fn delete_image_refuses_images_of_other_roles() {
    let w = World::new("alice");
    let (other, _) = make_image(&w, "alice_generic-debian-trixie-box__2026-01-01__00-00-00");
    let o = w.run(&["delete-image", ROLE, "-i", &other]);
    assert_user_error(&o, &format!("image `{other}`"));
    assert!(stderr(&o).contains("is not an image of role `generic-debian-bookworm-box`"));
    assert!(image_exists(&w, &other));
    let o = w.run(&["delete-image", ROLE]);
    assert_user_error(
        &o,
        "role `generic-debian-bookworm-box` has no images in namespace `/alice/`",
    );
    let o = w.run(&["delete-image", "generic-debian-trixie-box", "-i", "3"]);
    assert_user_error(&o, "has no image at ordinal 3");
}

#[test]
fn images_without_the_ownership_tag_are_never_deleted_or_booted_from_elsewhere() {
    let w = World::new("alice");
    let (untagged, snaps) = make_untagged_image(
        &w,
        "alice_generic-debian-bookworm-box__2026-01-01__00-00-00",
    );
    let o = w.run(&["delete-image", ROLE, "-i", &untagged]);
    assert_user_error(
        &o,
        &format!("image `{untagged}` has no `cgcloud:namespace` tag"),
    );
    assert!(
        stderr(&o).contains("aws ec2 create-tags --resources"),
        "{}",
        stderr(&o)
    );
    assert!(image_exists(&w, &untagged) && snaps.iter().all(|s| snapshot_exists(&w, s)));
    // `create -i` boots only images of this account or of the role's base-image vendor: not
    // one of Amazon's public images.
    let public = w.any_public_ami();
    let o = w.run(&["create", ROLE, "-i", &public]);
    assert_user_error(&o, &format!("image `{public}` belongs to account"));
    assert!(stderr(&o).contains("cgcloud boots only images it can vouch for"));
    let body = w.ec2(&[("Action", "DescribeInstances")]);
    assert_eq!(
        xml_fields(&body, "instanceId").len(),
        1,
        "only the scratch instance: {body}"
    );
}
