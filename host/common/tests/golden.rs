//! Golden tests: every vector and worked example of the original cgcloud (its doctests in
//! `lib/src/cgcloud/lib/context.py`, `util.py`, `bd2k.util.d32`, and the behaviour reference),
//! plus property tests in `golden/props.rs`.
#![allow(clippy::unwrap_used)] // A test crate: an unwrap that fails is a failing test.

#[path = "golden/props.rs"]
mod props;

use std::collections::{BTreeMap, BTreeSet};

use cgcloud_common::keypairs::KeypairGlob;
use cgcloud_common::keys::{self, KeyError, KeyKind};
use cgcloud_common::names::{self, NameError, Namespace};
use cgcloud_common::zone::ZoneError;
use cgcloud_common::{arn, d32, iam, keypairs, zone};

fn ns(s: &str) -> Namespace {
    Namespace::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

// ---------------------------------------------------------------------------------------------
// d32 and hashes

#[test]
fn d32_vectors() {
    let cases: [(&[u8], &str); 5] = [
        (b"", ""),
        (b"\x00", "22"),
        (b"\xff", "zw"),
        (b"\x00\x01\x02\x03\x04", "222k62s6"),
        (b"\x00\x01\x02\x03\x04\x05", "222k62s62o"),
    ];
    for (bytes, text) in cases {
        assert_eq!(d32::encode(bytes), text, "encode {bytes:?}");
        assert_eq!(d32::decode(text).as_deref(), Some(bytes), "decode {text:?}");
    }
    // Computed with the original `bd2k.util.d32.standard.encode`.
    assert_eq!(d32::encode(b"\x01\x02\x03"), "2632a");
    let first_40: Vec<u8> = (0u8..40).collect();
    assert_eq!(
        d32::encode(&first_40),
        "222k62s62o52i42d3c7ks5ci3wc346kn4kelg7ss56h3qb2x5sjm2cd46gm4edlb"
    );
}

#[test]
fn iam_role_hash_vectors() {
    // Reference §2.10, re-computed with the original's sha1 + d32.
    let cases = [
        ("cgcloud", "cgcloud-qjcdp7lv4sqlu"),
        ("cgcloud--agent-box", "cgcloud-drlqaw4bbigxu"),
        ("cgcloud--agent-box--spark-box", "cgcloud-athtjtga3bvtw"),
        (
            "cgcloud--agent-box--mesos-box-support",
            "cgcloud-wglyv2fi3wdsy",
        ),
        (
            "cgcloud--agent-box--mesos-box-support--toil-box-support",
            "cgcloud-kayspvrxdobds",
        ),
        (
            "cgcloud--agent-box--jenkins-master",
            "cgcloud-ig3qqycu4gk5a",
        ),
    ];
    for (chain, expected) in cases {
        assert_eq!(iam::role_name_for_chain(chain), expected, "{chain}");
    }
    let hannes = ns("/hannes/");
    assert_eq!(
        hannes
            .to_aws_name(&iam::role_name_for_chain("cgcloud--agent-box"))
            .unwrap(),
        "hannes_cgcloud-drlqaw4bbigxu"
    );
}

#[test]
fn test_namespaces() {
    // Computed with the original: d32.encode(pack('>II', time, pid)).
    let cases = [
        (0, 0, "/test/2222222222222/"),
        (1_450_000_000, 12345, "/test/etqnx22222s5m/"),
        (1_700_000_000, 4_194_304, "/test/gpdz4222c2222/"),
        (u32::MAX, u32::MAX, "/test/zzzzzzzzzzzzy/"),
    ];
    for (time, pid, expected) in cases {
        let namespace = names::test_namespace(time, pid);
        assert_eq!(namespace.as_str(), expected);
        assert_eq!(Namespace::parse(expected).unwrap(), namespace);
    }
    // Later runs sort later, whatever the PID.
    assert!(
        names::test_namespace(1_450_000_001, 0) > names::test_namespace(1_450_000_000, u32::MAX)
    );
}

// ---------------------------------------------------------------------------------------------
// Namespaces (reference §3.1; doctests of `Context.__init__`)

#[test]
fn valid_namespaces() {
    let all_component_chars = format!("/{}{}-_./", "abcdefghijklmnopqrstuvwxyz", "0123456789");
    for s in [
        "/",
        "/foo/",
        "/foo/bar/",
        "/test/abc123/",
        "/0/",
        "/a.b-c_d/",
        all_component_chars.as_str(),
    ] {
        let namespace = Namespace::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(namespace.as_str(), s);
        assert_eq!(namespace.to_string(), s);
        assert_eq!(s.parse::<Namespace>().unwrap(), namespace);
    }
    assert_eq!(Namespace::root().as_str(), "/");
    assert!(Namespace::root().is_root());
    assert!(!ns("/foo/").is_root());
}

#[test]
fn invalid_namespaces() {
    for s in [
        "", "foo", "/foo", "//foo/", "/foo//", "han//nes", "/_foo/", "/.foo/", "/-foo/", "/Foo/",
        "/fOo/", "/föo/", "/foo/\n", "/foo /", "/__me__/", "//", "/a+b/", "/a=b/", "/a,b/",
        "/a@b/",
    ] {
        match Namespace::parse(s) {
            Err(NameError::InvalidNamespace { namespace, .. }) => assert_eq!(namespace, s),
            other => panic!("{s:?} must be rejected, got {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Names (reference §3.3; doctests of `absolute_name`, `to_aws_name`, `from_aws_name`,
// `base_name`, `contains_aws_name`)

#[test]
fn absolute_name_in_root() {
    let root = Namespace::root();
    assert_eq!(root.absolute_name("bar").unwrap(), "/bar");
    assert_eq!(root.absolute_name("/bar").unwrap(), "/bar");
    assert_eq!(root.absolute_name("").unwrap(), "/");
    assert_eq!(root.absolute_name("/").unwrap(), "/");
    for bad in ["_bar", "/_bar"] {
        match root.absolute_name(bad) {
            Err(NameError::InvalidName { absolute, .. }) => assert_eq!(absolute, "/_bar"),
            other => panic!("{bad}: {other:?}"),
        }
    }
}

#[test]
fn absolute_name_in_foo() {
    let foo = ns("/foo/");
    assert_eq!(foo.absolute_name("bar").unwrap(), "/foo/bar");
    assert_eq!(foo.absolute_name("bar/").unwrap(), "/foo/bar/");
    assert_eq!(foo.absolute_name("bar1/bar2").unwrap(), "/foo/bar1/bar2");
    assert_eq!(foo.absolute_name("/bar").unwrap(), "/bar");
    assert_eq!(foo.absolute_name("").unwrap(), "/foo/");
    assert_eq!(foo.absolute_name("/").unwrap(), "/");
    match foo.absolute_name("_bar") {
        Err(NameError::InvalidName { absolute, .. }) => assert_eq!(absolute, "/foo/_bar"),
        other => panic!("{other:?}"),
    }
    match foo.absolute_name("/_bar") {
        Err(NameError::InvalidName { absolute, .. }) => assert_eq!(absolute, "/_bar"),
        other => panic!("{other:?}"),
    }
    for bad in ["Bar", "bar//x", "bar baz", "b\u{e4}r", "bar/_x"] {
        assert!(foo.absolute_name(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn aws_names_in_root() {
    let root = Namespace::root();
    assert_eq!(root.to_aws_name("foo").unwrap(), "foo");
    assert_eq!(root.from_aws_name("foo").unwrap(), "foo");
    assert_eq!(root.to_aws_name("foo_bar").unwrap(), "foo__bar");
    assert_eq!(root.from_aws_name("foo__bar").unwrap(), "foo_bar");
    assert_eq!(
        root.to_aws_name("/sub_ns/foo_bar").unwrap(),
        "sub__ns_foo__bar"
    );
    assert_eq!(
        root.to_aws_name("sub_ns/foo_bar").unwrap(),
        "sub__ns_foo__bar"
    );
    assert_eq!(
        root.from_aws_name("sub__ns_foo__bar").unwrap(),
        "sub_ns/foo_bar"
    );
    // `___` is `_/`, never `/_`.
    assert_eq!(root.to_aws_name("g_/").unwrap(), "g___");
    assert_eq!(root.from_aws_name("g___").unwrap(), "g_/");
    // Names that would make the mapping ambiguous are refused.
    match root.to_aws_name("/_") {
        Err(NameError::InvalidName { absolute, .. }) => assert_eq!(absolute, "/_"),
        other => panic!("{other:?}"),
    }
    match root.to_aws_name("/_/") {
        Err(NameError::InvalidName { absolute, .. }) => assert_eq!(absolute, "/_/"),
        other => panic!("{other:?}"),
    }
    match root.from_aws_name("___") {
        Err(NameError::InvalidAwsName { decoded, .. }) => assert_eq!(decoded, "/_/"),
        other => panic!("{other:?}"),
    }
    // Worked example: the root contains every decodable name, so results are relative.
    assert_eq!(
        root.from_aws_name("hannes_spark-master").unwrap(),
        "hannes/spark-master"
    );
    assert_eq!(root.to_aws_name("").unwrap(), "");
    assert_eq!(root.from_aws_name("").unwrap(), "");
}

#[test]
fn aws_names_in_this_ns() {
    let this = ns("/this_ns/");
    let pairs = [
        ("foo", "this__ns_foo", "foo"),
        ("foo_bar", "this__ns_foo__bar", "foo_bar"),
        (
            "/other_ns/foo_bar",
            "other__ns_foo__bar",
            "/other_ns/foo_bar",
        ),
        (
            "other_ns/foo_bar",
            "this__ns_other__ns_foo__bar",
            "other_ns/foo_bar",
        ),
        ("/this_ns/foo_bar", "this__ns_foo__bar", "foo_bar"),
    ];
    for (name, aws, decoded) in pairs {
        assert_eq!(this.to_aws_name(name).unwrap(), aws, "to_aws_name({name})");
        assert_eq!(
            this.from_aws_name(aws).unwrap(),
            decoded,
            "from_aws_name({aws})"
        );
    }
}

#[test]
fn from_aws_name_doctests() {
    assert_eq!(ns("/foo/").from_aws_name("bar__x").unwrap(), "/bar_x");
    assert_eq!(ns("/foo_x/").from_aws_name("foo__x_bar").unwrap(), "bar");
    assert_eq!(
        Namespace::root().from_aws_name("foo__x_bar__x").unwrap(),
        "foo_x/bar_x"
    );
    assert_eq!(
        ns("/bla/").from_aws_name("foo__x_bar__x").unwrap(),
        "/foo_x/bar_x"
    );
    assert_eq!(
        ns("/foo/").from_aws_name("hannes_spark-master").unwrap(),
        "/hannes/spark-master"
    );
    for bad in ["_foo", "foo__", "Foo", "foo_", "a_b_"] {
        let r = Namespace::root().from_aws_name(bad);
        // `foo__` decodes to `/foo_`, `foo_` to `/foo/` and `a_b_` to `/a/b/`: all valid.
        match bad {
            "foo__" => assert_eq!(r.unwrap(), "foo_"),
            "foo_" => assert_eq!(r.unwrap(), "foo/"),
            "a_b_" => assert_eq!(r.unwrap(), "a/b/"),
            _ => assert!(r.is_err(), "{bad}: {r:?}"),
        }
    }
}

#[test]
fn image_name_worked_example() {
    // Reference §3.3: an image name in /hannes/.
    assert_eq!(
        ns("/hannes/")
            .to_aws_name("generic-ubuntu-trusty-box_2016-01-02_03-04-05")
            .unwrap(),
        "hannes_generic-ubuntu-trusty-box__2016-01-02__03-04-05"
    );
}

#[test]
fn base_names() {
    assert_eq!(names::base_name(""), "");
    assert_eq!(names::base_name("/"), "");
    assert_eq!(names::base_name("/a"), "a");
    assert_eq!(names::base_name("/a/"), "");
    assert_eq!(names::base_name("/a/b"), "b");
    assert_eq!(names::base_name("/a/b/"), "");
    assert_eq!(names::base_name("a"), "a");
}

#[test]
fn containment() {
    let foo = ns("/foo/");
    let root = Namespace::root();
    assert!(!foo.contains_aws_name("bar_x").unwrap());
    assert!(foo.contains_aws_name("foo_x").unwrap());
    assert!(
        foo.contains_aws_name("foo_bar_x").unwrap(),
        "child namespaces are contained"
    );
    assert!(!foo.contains_aws_name("bar_foo_x").unwrap());
    for aws in ["bar_x", "foo_x", "foo_bar_x", "bar_foo_x"] {
        assert!(root.contains_aws_name(aws).unwrap(), "root contains {aws}");
    }
    assert!(
        foo.contains_name("anything"),
        "relative names are contained"
    );
    assert!(foo.contains_name("/foo/x"));
    assert!(foo.contains_name("/foo/bar/x"));
    assert!(!foo.contains_name("/foobar/x"));
    assert!(!foo.contains_name("/foo"));
    assert!(root.contains_name("/x/y"));
    // Undecodable names are an error, or `false` from the `try_` form.
    assert!(foo.contains_aws_name("Foo_x").is_err());
    assert!(!foo.try_contains_aws_name("Foo_x"));
    assert!(!root.try_contains_aws_name("___"));
    assert!(foo.try_contains_aws_name("foo_x"));
}

// ---------------------------------------------------------------------------------------------
// __me__ (reference §3.2, §9.1 item 2)

#[test]
fn me_substitution() {
    assert_eq!(names::substitute_me("/__me__/", "alice", true), "/alice/");
    assert_eq!(names::substitute_me("/__me__/", "Alice", true), "/alice/");
    assert_eq!(
        names::substitute_me("/__me__/", "alice@example.org", true),
        "/alice/"
    );
    assert_eq!(
        names::substitute_me("__me__", "Alice@Example.org", false),
        "alice@example.org",
        "keypairs keep the host part, lower-cased"
    );
    assert_eq!(
        names::substitute_me("/__me__/x/__me__/", "bob", true),
        "/bob/x/bob/"
    );
    assert_eq!(names::substitute_me("/__me__/", "@", true), "//");
    assert_eq!(names::substitute_me("/fixed/", "ALICE", true), "/fixed/");
    // The substituted namespace is validated, not repaired.
    assert!(Namespace::parse(&names::substitute_me("/__me__/", "a+b", true)).is_err());
    assert!(Namespace::parse(&names::substitute_me("/__me__/", "", true)).is_err());
    assert_eq!(
        Namespace::parse(&names::substitute_me(
            "/__me__/",
            "Hannes@soe.ucsc.edu",
            true
        ))
        .unwrap()
        .as_str(),
        "/hannes/"
    );
}

#[test]
fn me_from_arns() {
    let cases = [
        ("arn:aws:iam::123456789012:user/alice", Some("alice")),
        ("arn:aws:iam::123456789012:user/Alice", Some("Alice")),
        (
            "arn:aws:iam::123456789012:user/division/team/bob",
            Some("bob"),
        ),
        (
            "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Admin_0123/alice@example.org",
            Some("alice@example.org"),
        ),
        (
            "arn:aws:sts::123456789012:assumed-role/ci-role/build-42",
            Some("build-42"),
        ),
        (
            "arn:aws:sts::123456789012:federated-user/carol",
            Some("carol"),
        ),
        ("arn:aws-cn:iam::123456789012:user/dave", Some("dave")),
        (
            "arn:aws-us-gov:sts::123456789012:assumed-role/r/erin",
            Some("erin"),
        ),
        ("arn:aws-iso-b:iam::123456789012:user/frank", Some("frank")),
        ("arn:aws:iam::123456789012:root", None),
        ("arn:aws:iam::123456789012:role/some-role", None),
        ("arn:aws:sts::123456789012:assumed-role/only-role", None),
        ("arn:aws:sts::123456789012:assumed-role//session", None),
        ("arn:aws:iam::123456789012:user/", None),
        ("arn:aws:s3:::bucket", None),
        ("not an arn", None),
        ("", None),
    ];
    for (arn, me) in cases {
        assert_eq!(names::me_from_caller_arn(arn).as_deref(), me, "{arn}");
    }
}

// ---------------------------------------------------------------------------------------------
// Zones and partitions (reference §9.2 item 12)

#[test]
fn zones() {
    let cases = [
        ("us-east-1a", "us-east-1"),
        ("us-west-1b", "us-west-1"),
        ("ap-northeast-1d", "ap-northeast-1"),
        ("eu-central-2c", "eu-central-2"),
        ("il-central-1a", "il-central-1"),
        ("us-gov-west-1a", "us-gov-west-1"),
        ("cn-north-1a", "cn-north-1"),
        ("cn-northwest-1b", "cn-northwest-1"),
        ("us-iso-east-1a", "us-iso-east-1"),
        ("us-isob-east-1a", "us-isob-east-1"),
        ("eu-isoe-west-1a", "eu-isoe-west-1"),
        ("us-isof-south-1a", "us-isof-south-1"),
        ("eusc-de-east-1a", "eusc-de-east-1"),
        ("us-west-2-lax-1a", "us-west-2"),
        ("us-west-2-lax-1b", "us-west-2"),
        ("us-east-1-bos-1a", "us-east-1"),
        ("ap-northeast-1-tpe-1a", "ap-northeast-1"),
        ("us-east-1-wl1-bos-wlz-1", "us-east-1"),
        ("ap-northeast-1-wl1-nrt-wlz-1", "ap-northeast-1"),
        ("eu-west-2-wl2-man-wlz-1", "eu-west-2"),
        ("ap-southeast-10a", "ap-southeast-10"),
    ];
    for (z, region) in cases {
        assert_eq!(zone::region_of_zone(z).as_deref(), Ok(region), "{z}");
        assert!(zone::is_region(region), "{region}");
    }
    assert_eq!(
        zone::region_of_zone("us-east-1"),
        Err(ZoneError::Region("us-east-1".into()))
    );
    assert_eq!(
        zone::region_of_zone("use1-az1"),
        Err(ZoneError::ZoneId("use1-az1".into()))
    );
    assert_eq!(
        zone::region_of_zone("usw2-lax1-az1"),
        Err(ZoneError::ZoneId("usw2-lax1-az1".into()))
    );
    for bad in [
        "",
        "us-east-1A",
        "US-EAST-1a",
        "us-east-0a",
        "us-east-1ab",
        "useast1a",
        "us-east-1a\n",
        "us-east-1-",
        "us-east-1-lax-1",
        "xx",
    ] {
        assert!(
            matches!(zone::region_of_zone(bad), Err(ZoneError::Invalid(_))),
            "{bad:?}: {:?}",
            zone::region_of_zone(bad)
        );
    }
    let message = zone::region_of_zone("bogus").unwrap_err().to_string();
    assert!(
        message.starts_with("invalid availability zone `bogus`: "),
        "{message}"
    );
    assert!(!zone::region_of_zone("a\nb")
        .unwrap_err()
        .to_string()
        .contains('\n'));
}

#[test]
fn partitions() {
    let cases = [
        ("us-east-1", "aws"),
        ("eu-west-1", "aws"),
        ("ap-southeast-2", "aws"),
        ("cn-north-1", "aws-cn"),
        ("cn-northwest-1", "aws-cn"),
        ("us-gov-west-1", "aws-us-gov"),
        ("us-gov-east-1", "aws-us-gov"),
        ("us-iso-east-1", "aws-iso"),
        ("us-isob-east-1", "aws-iso-b"),
        ("eu-isoe-west-1", "aws-iso-e"),
        ("us-isof-south-1", "aws-iso-f"),
        ("eusc-de-east-1", "aws-eusc"),
    ];
    for (region, partition) in cases {
        assert_eq!(arn::partition_for_region(region), partition, "{region}");
    }
    assert_eq!(
        arn::account_of_arn("arn:aws:iam::123456789012:user/alice"),
        Some("123456789012")
    );
    assert_eq!(
        arn::account_of_arn("arn:aws:iam::123456789012:instance-profile/x"),
        Some("123456789012")
    );
    assert_eq!(arn::account_of_arn("arn:aws:s3:::bucket"), None);
    assert_eq!(arn::account_of_arn("arn:aws:iam::123"), None);
    assert_eq!(
        arn::partition_of_arn("arn:aws-cn:iam::123456789012:user/a"),
        Some("aws-cn")
    );
    assert_eq!(arn::partition_of_arn("nope"), None);
}

// ---------------------------------------------------------------------------------------------
// Keys and fingerprints (reference §4.1)

/// The key of the doctest of the original's `ec2_keypair_fingerprint` (`util.py`), verbatim.
const DOCTEST_RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCvdDMvcwC1/5ByUhO1wh1sG6ficwgGHRab/pm6LN60rgxv+u2eJRao2esGB9Oyt863+HnjKj/NBdaiHTHcAHNq/TapbvEjgHaKgrVdfeMdQbJhWjJ97rql9Yn8kTNsXOeSyTW7rIKE0zeQkrwhsztmATumbQmJUMR7uuI31BxhQUfD/CoGZQrxFalWLDZcrcYY13ynplaNA/Hd/vP6qWO5WC0dTvzROEp7VwzJ7qeN2kP1JTh+kgVRoYd9mSm6x9UVjY6jQtZHa01Eg05sFraWgvNAvKhk9LS9Kiwhq8DxHdWdTamnGLtwXYQbn7RjG3UADAiTOWk+QSmU2igZvQ2F hannes@soe.ucsc.edu\n";

/// The public key of the doctest of the original's `private_to_public_key`. Its fingerprint was
/// computed with `ssh-keygen -e -m PKCS8 -f key.pub | openssl pkey -pubin -outform DER |
/// openssl md5 -c`.
const DOCTEST_RSA_2: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCLeyE8rTT7/p3Bby76IORRiLAgqX+W/QDLkiy0uzPBvcIDiZVGXKrvr0fMTx9yfNBRf80jzL0xM7RQ23YkMwlZbkvj2Oa/FXROPFCMqDwpw3Ni4ewSfLeTwvF7NYyybCWusLz07p6ijpuhzwWitJ2NV0iUlu9a7/zZ1OHIWBONZ3kH7U73fHDz96Opj099kTEF6qkqObnw5QHJOlWG9Z6OZtn0EvrRcmHDP1sNOuUqmNwawxnvgbpd9ACHLKpdh4P9c56twJImBD9CNgpw8T3IxHK5wfK5hnwcrOYb67inl9+cVvje0rNYIjffQlBySWEZOV3KpAcNYDjWZPVAyhZ/";

/// Made with `ssh-keygen -t ed25519 -C alice@example.org`. Expected values:
/// `ssh-keygen -lf key.pub` → `SHA256:DteADsuZftqkCg2OuIWLU5eLZHUEpJZikPiM5BeMPuo`; moto 5.2.1's
/// `public_key_fingerprint(public_key_parse(key))` →
/// `d8:bc:6e:8a:…:f2:58` (SHA-256 of the DER SubjectPublicKeyInfo).
const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDw4dUmW7ItV8qEdk6a3jGINf+ZF7WueSATHEcZI9aPk alice@example.org\n";
const ED25519_EC2: &str = "DteADsuZftqkCg2OuIWLU5eLZHUEpJZikPiM5BeMPuo=";
const ED25519_MOTO: &str = "d8:bc:6e:8a:66:5c:b1:a7:79:39:7f:6a:c5:cb:6b:42:b3:47:a5:09:58:39:4b:05:28:b4:a9:cb:15:b2:f2:58";

/// The same key as `ED25519`, exported with `ssh-keygen -e` (RFC 4716).
const ED25519_RFC4716: &str = "---- BEGIN SSH2 PUBLIC KEY ----\n\
Comment: \"256-bit ED25519, converted by root@vm from OpenSSH\"\n\
AAAAC3NzaC1lZDI1NTE5AAAAIDw4dUmW7ItV8qEdk6a3jGINf+ZF7WueSATHEcZI9aPk\n\
---- END SSH2 PUBLIC KEY ----\n";

const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBGPUxlKL2w1/bS0QUBzcZ+VavA+Tv4lEJrybQ83hWkqDudApGwbsxQhSWXwjBPE5WZabbuKgJwVjsER//FbDRFM=";

#[test]
fn rsa_fingerprint_doctest_vector() {
    let key = keys::parse_public_key(DOCTEST_RSA).unwrap();
    assert_eq!(key.kind, KeyKind::Rsa);
    assert_eq!(key.text, DOCTEST_RSA, "the text is kept verbatim");
    assert_eq!(key.ssh_type(), "ssh-rsa");
    let fp = keys::ec2_import_fingerprint(&key);
    assert_eq!(fp, "a5:5a:64:8a:1e:3f:4e:46:cd:1f:e9:b3:fc:cf:c5:19");
    assert!(keys::key_matches_ec2_fingerprint(&key, &fp));
    assert!(keys::key_matches_ec2_fingerprint(
        &key,
        "A5:5A:64:8A:1E:3F:4E:46:CD:1F:E9:B3:FC:CF:C5:19"
    ));

    let key2 = keys::parse_public_key(DOCTEST_RSA_2).unwrap();
    assert_eq!(
        keys::ec2_import_fingerprint(&key2),
        "a1:5b:c5:f8:e9:ee:75:de:ad:c7:ce:86:c6:71:e0:b6"
    );
    assert!(!keys::key_matches_ec2_fingerprint(&key2, &fp));
    assert_eq!(
        keys::openssh_fingerprint(&key),
        "SHA256:x26nR4lCqgd9uBlwdnkaW7yRKcGayQq6+roJY+2KiS4"
    );
}

#[test]
fn rsa_subject_public_key_info_is_der() {
    let key = keys::parse_public_key(DOCTEST_RSA).unwrap();
    let spki = keys::rsa_subject_public_key_info(&key).unwrap();
    // 2048-bit modulus: SEQUENCE(290) { AlgorithmIdentifier, BIT STRING(271) { 0, SEQUENCE } }.
    assert_eq!(&spki[..4], &[0x30, 0x82, 0x01, 0x22]);
    assert_eq!(spki.len(), 4 + 0x122);
    assert_eq!(&spki[19..24], &[0x03, 0x82, 0x01, 0x0f, 0x00]);
}

#[test]
fn ed25519_fingerprints() {
    let key = keys::parse_public_key(ED25519).unwrap();
    assert_eq!(key.kind, KeyKind::Ed25519);
    assert_eq!(keys::ec2_import_fingerprint(&key), ED25519_EC2);
    assert_eq!(
        keys::openssh_fingerprint(&key),
        "SHA256:DteADsuZftqkCg2OuIWLU5eLZHUEpJZikPiM5BeMPuo"
    );
    for reported in [
        ED25519_EC2,
        "DteADsuZftqkCg2OuIWLU5eLZHUEpJZikPiM5BeMPuo",
        "SHA256:DteADsuZftqkCg2OuIWLU5eLZHUEpJZikPiM5BeMPuo",
        ED25519_MOTO,
    ] {
        assert!(
            keys::key_matches_ec2_fingerprint(&key, reported),
            "{reported}"
        );
    }
    // moto's digest is a different digest: the plain comparison keeps them apart.
    assert!(!keys::fingerprints_match(ED25519_EC2, ED25519_MOTO));
    let other = keys::parse_public_key(ECDSA).unwrap();
    assert!(!keys::key_matches_ec2_fingerprint(&other, ED25519_EC2));
}

#[test]
fn rfc4716_is_the_same_key() {
    let key = keys::parse_public_key(ED25519_RFC4716).unwrap();
    assert_eq!(key.kind, KeyKind::Ed25519);
    assert_eq!(key.text, ED25519_RFC4716);
    assert_eq!(keys::ec2_import_fingerprint(&key), ED25519_EC2);
    assert_eq!(key.blob, keys::parse_public_key(ED25519).unwrap().blob);
}

#[test]
fn other_key_kinds_parse_but_are_not_importable() {
    let key = keys::parse_public_key(ECDSA).unwrap();
    assert_eq!(key.kind, KeyKind::Ecdsa);
    assert_eq!(key.kind.ec2_key_type(), None);
    assert_eq!(KeyKind::Rsa.ec2_key_type(), Some("rsa"));
    assert_eq!(KeyKind::Ed25519.ec2_key_type(), Some("ed25519"));
}

#[test]
fn fingerprint_renderings() {
    let md5 = "a5:5a:64:8a:1e:3f:4e:46:cd:1f:e9:b3:fc:cf:c5:19";
    assert!(keys::fingerprints_match(md5, md5));
    assert!(keys::fingerprints_match(md5, &md5.to_uppercase()));
    assert!(keys::fingerprints_match(md5, &format!(" {md5}\n")));
    assert!(keys::fingerprints_match(md5, &format!("MD5:{md5}")));
    assert!(!keys::fingerprints_match(
        md5,
        "a5:5a:64:8a:1e:3f:4e:46:cd:1f:e9:b3:fc:cf:c5:18"
    ));
    assert!(!keys::fingerprints_match(
        md5,
        "a5:5a:64:8a:1e:3f:4e:46:cd:1f:e9:b3:fc:cf:c5"
    ));
    assert!(!keys::fingerprints_match(
        md5,
        "a55a648a1e3f4e46cd1fe9b3fccfc519"
    ));
    assert!(!keys::fingerprints_match(md5, ""));
    assert!(
        !keys::fingerprints_match("", ""),
        "nothing is not a fingerprint"
    );
    assert!(!keys::fingerprints_match("garbage", "garbage"));
    // The same SHA-256 as colon hex and as base64 is the same digest.
    let hex = "0e:d7:80:0e:cb:99:7e:da:a4:0a:0d:8e:b8:85:8b:53:97:8b:64:75:04:a4:96:62:90:f8:8c:e4:17:8c:3e:ea";
    assert!(keys::fingerprints_match(ED25519_EC2, hex));
    // A flipped padding bit is a different rendering no encoder makes.
    assert!(!keys::fingerprints_match(
        ED25519_EC2,
        "DteADsuZftqkCg2OuIWLU5eLZHUEpJZikPiM5BeMPup="
    ));
    use keys::FingerprintDigest::*;
    assert_eq!(keys::fingerprint_digest_kind(md5), Some(Md5));
    assert_eq!(
        keys::fingerprint_digest_kind(
            "ac:23:ae:c3:9a:a3:78:b1:0f:8a:31:dd:13:cc:b1:8e:fb:51:42:f8"
        ),
        Some(Sha1)
    );
    assert_eq!(keys::fingerprint_digest_kind(ED25519_EC2), Some(Sha256));
    assert_eq!(keys::fingerprint_digest_kind("nope"), None);
}

#[test]
fn private_keys_are_refused() {
    let private = [
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpQIBAAKCAQEAi3shPK00\n-----END RSA PRIVATE KEY-----\n",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----\n",
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI\n-----END PRIVATE KEY-----\n",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
        "-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----\n",
        "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n",
        "---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----\nP2/56wAAAi4\n---- END SSH2 ENCRYPTED PRIVATE KEY ----\n",
        "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAAB",
    ];
    for text in private {
        assert_eq!(
            keys::parse_public_key(text),
            Err(KeyError::PrivateKey),
            "{text}"
        );
    }
    assert_eq!(
        KeyError::PrivateKey.to_string(),
        "private keys are refused: give the public key, e.g. `~/.ssh/id_rsa.pub`"
    );
}

#[test]
fn garbage_keys_give_clear_errors() {
    use keys::parse_public_key as parse;
    assert_eq!(parse(""), Err(KeyError::Empty));
    assert_eq!(parse("\n  \n# just a comment\n"), Err(KeyError::Empty));
    assert_eq!(parse("hello world"), Err(KeyError::NotAPublicKey));
    assert_eq!(parse("ssh-rsa"), Err(KeyError::NotAPublicKey));
    assert_eq!(
        parse("ssh-rsa not!base64 c"),
        Err(KeyError::BadBase64("ssh-rsa".into()))
    );
    assert_eq!(
        parse("ssh-foo AAAA"),
        Err(KeyError::UnsupportedType("ssh-foo".into()))
    );
    assert_eq!(
        parse("ssh-rsa-cert-v01@openssh.com AAAA"),
        Err(KeyError::UnsupportedType(
            "ssh-rsa-cert-v01@openssh.com".into()
        ))
    );
    // The line says RSA, the data holds ED25519.
    let ed_data = ED25519.split(' ').nth(1).unwrap();
    assert_eq!(
        parse(&format!("ssh-rsa {ed_data}")),
        Err(KeyError::TypeMismatch {
            outer: "ssh-rsa".into(),
            inner: "ssh-ed25519".into()
        })
    );
    // Truncated data.
    let rsa_data = DOCTEST_RSA.split(' ').nth(1).unwrap();
    let truncated = &rsa_data[..rsa_data.len() - 8];
    assert!(matches!(
        parse(&format!("ssh-rsa {truncated}")),
        Err(KeyError::Malformed { .. })
    ));
    assert_eq!(
        parse(&format!("{DOCTEST_RSA}{ED25519}")),
        Err(KeyError::MultipleKeys(2))
    );
    // Leading blank lines, comment lines and surrounding white space are fine.
    let padded = format!("\n# my key\n  {ED25519}  \n");
    assert_eq!(parse(&padded).unwrap().kind, KeyKind::Ed25519);
    for err in [
        parse("").unwrap_err(),
        parse("x").unwrap_err(),
        parse("ssh-foo AAAA").unwrap_err(),
        parse(&format!("ssh-rsa {truncated}")).unwrap_err(),
    ] {
        let message = err.to_string();
        assert!(!message.contains('\n') && !message.is_empty(), "{message}");
    }
}

// ---------------------------------------------------------------------------------------------
// Keypair globs (reference §3.5, §9.2 item 13)

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn parse_globs() {
    use KeypairGlob::*;
    assert_eq!(keypairs::parse_glob("hannes"), Ok(Pattern("hannes".into())));
    assert_eq!(keypairs::parse_glob("han*"), Ok(Pattern("han*".into())));
    assert_eq!(
        keypairs::parse_glob("jenkins@hannes_jenkins-master"),
        Ok(Pattern("jenkins@hannes_jenkins-master".into()))
    );
    assert_eq!(keypairs::parse_glob("@alice"), Ok(User("alice".into())));
    assert_eq!(
        keypairs::parse_glob("@alice@example.org"),
        Ok(User("alice@example.org".into()))
    );
    assert_eq!(
        keypairs::parse_glob("@@developers"),
        Ok(Group("developers".into()))
    );
    assert_eq!(
        keypairs::parse_glob("@@ops+dev"),
        Ok(Group("ops+dev".into()))
    );
    for bad in [
        "", "@", "@@", "@ali*", "@@dev?", "@[ab]", "@a/b", "@a b", "a b", "a\tb", "[z-a]",
        "x[!9-0]",
    ] {
        let err = keypairs::parse_glob(bad).expect_err(bad);
        assert!(!err.to_string().contains('\n'), "{err}");
    }
}

#[test]
fn glob_semantics_as_bd2k_fnmatch() {
    use keypairs::glob_matches as m;
    // bd2k's own doctests.
    assert!(m("*", "bar"));
    assert!(!m("*", "foo/bar"));
    assert!(m("**", "foo/bar"));
    assert!(m("*/*", "foo/bar"));
    assert!(m("**/*", "foo/bar"));
    assert!(m("**/*", "/bar"));
    assert!(m("**", "/"));
    assert!(!m("*", "/"));
    // Whole-name, case-sensitive.
    assert!(m("hannes", "hannes"));
    assert!(!m("hannes", "hannes2"));
    assert!(!m("hannes", "Hannes"));
    assert!(m("han*", "hannes"));
    assert!(m("*nes", "hannes"));
    assert!(m("h?nnes", "hannes"));
    assert!(!m("h?nnes", "hnnes"));
    assert!(m("?", "/"), "`?` is any character");
    // Classes.
    assert!(m("[abc]x", "bx"));
    assert!(!m("[abc]x", "dx"));
    assert!(m("[!abc]x", "dx"));
    assert!(!m("[!abc]x", "ax"));
    assert!(m("[a-c]", "b"));
    assert!(!m("[a-c]", "d"));
    assert!(m("[]]", "]"));
    assert!(m("[!]]", "a"));
    assert!(!m("[!]]", "]"));
    assert!(m("[a-]", "-"));
    assert!(m("[-a]", "-"));
    assert!(m("[^a]", "^"), "`^` is literal, unlike in regexes");
    assert!(!m("[^a]", "b"));
    assert!(m("[\\]", "\\"), "no escape character");
    assert!(m("a[", "a["), "an unclosed `[` is literal");
    assert!(m("[!]", "[!]"));
    assert!(m("[a-c-e]", "-"));
    assert!(m("[a-c-e]", "e"));
    assert!(!m("[a-c-e]", "d"));
    assert!(!m("[z-a]", "z"), "a backwards range matches nothing");
    // Special regex characters are literal.
    assert!(m("a.b", "a.b"));
    assert!(!m("a.b", "axb"));
    assert!(m("a+(b)|c$", "a+(b)|c$"));
    // Many stars stay fast.
    assert!(!m(&"*a".repeat(30), &"a".repeat(29)));
    assert!(m(&"*a".repeat(30), &"a".repeat(60)));
}

#[test]
fn expansion_order_and_deduplication() {
    let existing = strings(&[
        "carol",
        "alice",
        "bob",
        "alice2",
        "jenkins@hannes_jenkins-master",
    ]);
    let globs = [
        KeypairGlob::Pattern("alice".into()),
        KeypairGlob::Pattern("*".into()),
        KeypairGlob::Pattern("alice*".into()),
    ];
    let result = keypairs::expand(&globs, &existing, &BTreeSet::new(), &BTreeMap::new());
    assert_eq!(
        result,
        strings(&[
            "alice",
            "carol",
            "bob",
            "alice2",
            "jenkins@hannes_jenkins-master"
        ]),
        "glob order first, then the order of `existing`; each name once"
    );
    // A literal that does not exist yields nothing.
    let result = keypairs::expand(
        &[KeypairGlob::Pattern("dave".into())],
        &existing,
        &BTreeSet::new(),
        &BTreeMap::new(),
    );
    assert!(result.is_empty());
}

#[test]
fn users_and_groups() {
    let existing = strings(&["alice", "bob", "carol", "dave", "erin"]);
    let users: BTreeSet<String> = ["bob", "zed"].iter().map(|s| s.to_string()).collect();
    let mut members = BTreeMap::new();
    members.insert(
        "developers".to_string(),
        strings(&["dave", "alice", "ghost"]),
    );
    members.insert("ops".to_string(), strings(&["erin", "carol", "erin"]));
    let globs = [
        KeypairGlob::User("bob".into()),
        KeypairGlob::User("zed".into()), // user exists, keypair does not
        KeypairGlob::User("carol".into()), // keypair exists, user not confirmed
        KeypairGlob::Group("ops".into()),
        KeypairGlob::Group("developers".into()),
        KeypairGlob::Pattern("*".into()),
    ];
    let result = keypairs::expand(&globs, &existing, &users, &members);
    assert_eq!(
        result,
        strings(&["bob", "erin", "carol", "dave", "alice"]),
        "`@@ops` yields ops members only, in member order, and `@@developers` its own"
    );
    // The requested group, not `developers` (the original's bug).
    let result = keypairs::expand(
        &[KeypairGlob::Group("ops".into())],
        &existing,
        &users,
        &members,
    );
    assert_eq!(result, strings(&["erin", "carol"]));
    // An unknown group yields nothing.
    let result = keypairs::expand(
        &[KeypairGlob::Group("nobody".into())],
        &existing,
        &users,
        &members,
    );
    assert!(result.is_empty());
}

#[test]
fn me_then_globs() {
    // `-k __me__` with IAM user `Alice@Example.org` means keypair `alice@example.org`.
    let glob = names::substitute_me("__me__", "Alice@Example.org", false);
    let parsed = keypairs::parse_glob(&glob).unwrap();
    let existing = strings(&["alice", "alice@example.org"]);
    assert_eq!(
        keypairs::expand(&[parsed], &existing, &BTreeSet::new(), &BTreeMap::new()),
        strings(&["alice@example.org"])
    );
}
