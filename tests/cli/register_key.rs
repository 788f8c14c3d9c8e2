//! `register-key`: EC2 is the key registry, and EC2 must agree with cgcloud's fingerprint.

use std::path::Path;
use std::process::Command;

use cgcloud_tests::*;

/// EC2's view of a key pair: (fingerprint, public key), or None.
fn key_pair(w: &World, name: &str) -> Option<(String, String)> {
    let body = w.ec2(&[("Action", "DescribeKeyPairs"), ("IncludePublicKey", "true")]);
    body.split("<item>")
        .skip(1)
        .find(|item| xml_field(item, "keyName").as_deref() == Some(name))
        .map(|item| {
            (
                xml_field(item, "keyFingerprint").unwrap(),
                xml_field(item, "publicKey").unwrap_or_default(),
            )
        })
}

fn key_pair_names(w: &World) -> Vec<String> {
    let body = w.ec2(&[("Action", "DescribeKeyPairs")]);
    xml_fields(&body, "keyName")
}

/// The fingerprint AWS documents for an imported RSA key, computed by OpenSSL independently of
/// cgcloud: MD5 over the DER SubjectPublicKeyInfo.
fn openssl_rsa_fingerprint(pub_key: &Path) -> String {
    let script = format!(
        "ssh-keygen -e -m PKCS8 -f '{}' | openssl pkey -pubin -outform DER | openssl md5 -c",
        pub_key.display()
    );
    let o = run({
        let mut c = Command::new("sh");
        c.args(["-c", &script]);
        c
    });
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o).trim().rsplit(' ').next().unwrap().to_string()
}

#[test]
fn registers_an_rsa_key_whose_ec2_fingerprint_equals_ours() {
    let w = World::new("alice");
    let key = ssh_keygen(w.home.path(), "id_rsa", "rsa");
    let public = key.with_extension("pub");
    let o = w.run(&["register-key", public.to_str().unwrap()]);
    assert_success(&o);
    let (fingerprint, material) = key_pair(&w, "alice").expect("key pair `alice` exists");
    let expected = openssl_rsa_fingerprint(&public);
    assert_eq!(
        fingerprint, expected,
        "EC2's fingerprint is MD5 of the SPKI DER"
    );
    assert!(
        stderr(&o).contains(&expected),
        "cgcloud reports the fingerprint: {}",
        stderr(&o)
    );
    assert_eq!(
        material.trim(),
        std::fs::read_to_string(&public).unwrap().trim(),
        "the key is kept verbatim"
    );
}

#[test]
fn registers_an_ed25519_key_under_an_explicit_name() {
    let w = World::new("alice");
    let key = ssh_keygen(w.home.path(), "id_ed25519", "ed25519");
    let public = key.with_extension("pub");
    let o = w.run(&["register-key", public.to_str().unwrap(), "-k", "team-key"]);
    assert_success(&o);
    assert_eq!(key_pair_names(&w), vec!["team-key"]);
}

#[test]
fn keypair_names_keep_the_host_part_of_me() {
    let w = World::new("alice");
    let public = ssh_keygen(w.home.path(), "k", "ed25519").with_extension("pub");
    let mut c = w.cgcloud(&["register-key", public.to_str().unwrap()]);
    c.env("CGCLOUD_ME", "Jenkins@Jenkins-Master");
    assert_success(&run(c));
    assert_eq!(key_pair_names(&w), vec!["jenkins@jenkins-master"]);
}

#[test]
fn a_private_key_is_refused_and_nothing_is_created() {
    let w = World::new("alice");
    for kind in ["rsa", "ed25519"] {
        let private = ssh_keygen(w.home.path(), &format!("id_{kind}"), kind);
        let o = w.run(&["register-key", private.to_str().unwrap()]);
        assert_user_error(&o, "private keys are refused");
    }
    assert!(key_pair_names(&w).is_empty());
}

#[test]
fn garbage_and_missing_files_are_refused() {
    let w = World::new("alice");
    let junk = w.home.path().join("junk.pub");
    std::fs::write(&junk, "this is not a key\n").unwrap();
    let o = w.run(&["register-key", junk.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(255));
    assert!(stderr(&o).contains("junk.pub"), "{}", stderr(&o));
    let o = w.run(&["register-key", "/no/such/file.pub"]);
    assert_user_error(&o, "failed to read the public key file `/no/such/file.pub`");
    assert!(key_pair_names(&w).is_empty());
}

#[test]
fn a_different_key_needs_force_and_force_replaces_it() {
    let w = World::new("alice");
    let first = ssh_keygen(w.home.path(), "a", "rsa").with_extension("pub");
    let second = ssh_keygen(w.home.path(), "b", "rsa").with_extension("pub");
    assert_success(&w.run(&["register-key", first.to_str().unwrap()]));
    let (fp1, _) = key_pair(&w, "alice").unwrap();

    let o = w.run(&["register-key", second.to_str().unwrap()]);
    assert_user_error(&o, "already exists with a different key");
    assert!(stderr(&o).contains("--force"));
    assert_eq!(
        key_pair(&w, "alice").unwrap().0,
        fp1,
        "the old key is untouched"
    );

    let o = w.run(&["register-key", second.to_str().unwrap(), "--force"]);
    assert_success(&o);
    let (fp2, _) = key_pair(&w, "alice").unwrap();
    assert_eq!(fp2, openssl_rsa_fingerprint(&second));
    assert_ne!(fp1, fp2);
}

#[test]
fn registering_the_same_key_again_changes_nothing() {
    let w = World::new("alice");
    let public = ssh_keygen(w.home.path(), "a", "rsa").with_extension("pub");
    assert_success(&w.run(&["register-key", public.to_str().unwrap()]));
    let before = w.ec2(&[("Action", "DescribeKeyPairs")]);
    let o = w.run(&["register-key", public.to_str().unwrap()]);
    assert_success(&o);
    assert!(stderr(&o).contains("already registered"), "{}", stderr(&o));
    let after = w.ec2(&[("Action", "DescribeKeyPairs")]);
    assert_eq!(
        xml_fields(&before, "keyPairId"),
        xml_fields(&after, "keyPairId"),
        "not re-imported"
    );
}

#[test]
fn names_that_globs_could_not_match_are_refused() {
    let w = World::new("alice");
    let public = ssh_keygen(w.home.path(), "k", "ed25519").with_extension("pub");
    for bad in ["@bob", "team-*", "a b"] {
        let o = w.run(&["register-key", public.to_str().unwrap(), "-k", bad]);
        assert_user_error(&o, &format!("`{bad}` cannot name a key pair"));
    }
    assert!(key_pair_names(&w).is_empty());
}

#[test]
fn create_refuses_an_unknown_first_key_pair_before_making_anything() {
    let w = World::new("alice");
    // An image of this account: the only kind besides the role's base images that `-i` boots.
    let scratch = w.launch("scratch", &[]);
    let ami = xml_field(
        &w.ec2(&[
            ("Action", "CreateImage"),
            ("InstanceId", &scratch),
            ("Name", "own"),
        ]),
        "imageId",
    )
    .unwrap();
    let o = w.run(&[
        "create",
        "generic-debian-bookworm-box",
        "-i",
        &ami,
        "-k",
        "nobody",
    ]);
    assert_user_error(&o, "key pair `nobody` does not exist in region us-east-1");
    assert!(
        stderr(&o).contains("cgcloud register-key"),
        "the way out is named: {}",
        stderr(&o)
    );
    let o = w.run(&[
        "create",
        "generic-debian-bookworm-box",
        "-i",
        &ami,
        "-k",
        "team-*",
    ]);
    assert_user_error(
        &o,
        "the first key pair must be a key pair name, not the glob `team-*`",
    );
    let body = w.ec2(&[("Action", "DescribeInstances")]);
    assert_eq!(
        xml_fields(&body, "instanceId"),
        vec![scratch],
        "no instance launched"
    );
    let groups = w.ec2(&[("Action", "DescribeSecurityGroups")]);
    assert!(
        !groups.contains("generic-debian-bookworm-box"),
        "no security group made: {groups}"
    );
}

#[test]
fn devices_are_refused_at_once_and_bad_names_before_anything_is_made() {
    let w = World::new("alice");
    for device in ["/dev/zero", "/dev/urandom"] {
        let started = std::time::Instant::now();
        let o = w.run(&["register-key", device]);
        assert_user_error(&o, "not a regular file");
        assert!(started.elapsed().as_secs() < 10, "{device} was read");
    }
    let key = ssh_keygen(w.home.path(), "k", "ed25519").with_extension("pub");
    let long = "k".repeat(256);
    for name in ["bad\u{1}name", "ünï", long.as_str()] {
        let o = w.run(&["register-key", key.to_str().unwrap(), "-k", name]);
        assert_user_error(&o, "EC2 takes up to 255 printable ASCII characters");
    }
    assert!(key_pair_names(&w).is_empty());
}

#[test]
fn create_refuses_values_ec2_would_refuse_before_making_anything() {
    let w = World::new("alice");
    let key = ssh_keygen(w.home.path(), "k", "ed25519").with_extension("pub");
    assert_success(&w.run(&["register-key", key.to_str().unwrap()]));
    let role = "generic-debian-bookworm-box";
    let long_ns = format!("/{}/", "a".repeat(44));
    let cases: &[(&[&str], &str)] = &[
        (
            &["--spot-bid", "NaN"],
            "--spot-bid must be a price per hour above 0",
        ),
        (
            &["--spot-bid", "inf"],
            "--spot-bid must be a price per hour above 0",
        ),
        (
            &["--spot-bid=-1"],
            "--spot-bid must be a price per hour above 0",
        ),
        (&["-t", "x y"], "`x y` is not an EC2 instance type"),
        (&["-t", "t3"], "`t3` is not an EC2 instance type"),
        (
            &["--root-volume-type", "bogus"],
            "`bogus` is not an EBS volume type",
        ),
        (
            &["--root-volume-size", "0"],
            "--root-volume-size 0 is out of range",
        ),
        (
            &["-n", &long_ns],
            "use a namespace of at most 44 characters",
        ),
    ];
    for (extra, want) in cases {
        let mut args = vec!["create", role];
        args.extend_from_slice(extra);
        let o = w.run(&args);
        assert_user_error(&o, want);
    }
    // Nothing was launched, and no security group made.
    let d = w.ec2(&[("Action", "DescribeInstances")]);
    assert!(xml_fields(&d, "instanceId").is_empty(), "{d}");
    let g = w.ec2(&[("Action", "DescribeSecurityGroups")]);
    assert_eq!(xml_fields(&g, "groupName"), ["default"], "{g}");
}
