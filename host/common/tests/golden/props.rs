//! Property tests: the AWS spelling round-trips for every valid name, invalid text is always
//! refused and never repaired, d32 round-trips and keeps byte order.

use cgcloud_common::d32;
use cgcloud_common::keypairs;
use cgcloud_common::names::Namespace;
use proptest::prelude::*;
use regex::Regex;

/// The original's grammar (`context.py:38`), anchored properly: the oracle for validity.
fn namespace_oracle() -> Regex {
    Regex::new(r"\A(/([0-9a-z][0-9a-z._-]*))*/\z").unwrap()
}

fn name_oracle() -> Regex {
    Regex::new(r"\A(/([0-9a-z][0-9a-z._-]*))*/?\z").unwrap()
}

fn component() -> impl Strategy<Value = String> {
    // Small alphabet with every special character, so `_`, `__`, `_.`, `-_` sequences are common.
    "[0-9a-z][0-9a-z._-]{0,6}|[a_][a_]{0,6}|[0-9a-z]_+|[0-9a-z][._-]+"
        .prop_filter("component start", |c| {
            c.starts_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit())
        })
}

fn namespace() -> impl Strategy<Value = Namespace> {
    prop::collection::vec(component(), 0..4).prop_map(|components| {
        let text = if components.is_empty() {
            "/".to_owned()
        } else {
            format!("/{}/", components.join("/"))
        };
        Namespace::parse(&text).unwrap()
    })
}

/// Valid names: relative or absolute, with or without a trailing `/`, possibly empty.
fn name() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(component(), 0..4),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(components, absolute, trailing)| {
            let mut s = components.join("/");
            if trailing && !components.is_empty() {
                s.push('/');
            }
            if absolute {
                s.insert(0, '/');
            }
            s
        })
}

/// Text over an alphabet dense in near-misses: upper case, leading `_`, `//`, white space,
/// non-ASCII, `__me__`.
fn near_miss() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("/".to_owned()),
            Just("_".to_owned()),
            Just("__".to_owned()),
            Just("a".to_owned()),
            Just("0".to_owned()),
            Just(".".to_owned()),
            Just("-".to_owned()),
            Just("A".to_owned()),
            Just(" ".to_owned()),
            Just("\n".to_owned()),
            Just("ö".to_owned()),
            Just("+".to_owned()),
            Just("__me__".to_owned()),
        ],
        0..10,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// `from_aws_name(to_aws_name(n))` is `n` made absolute, then made relative again if it lies
    /// in the namespace: exactly what the original returns.
    #[test]
    fn aws_names_round_trip(namespace in namespace(), name in name()) {
        let absolute = namespace.absolute_name(&name).unwrap();
        let aws = namespace.to_aws_name(&name).unwrap();
        let back = namespace.from_aws_name(&aws).unwrap();
        let expected = match absolute.strip_prefix(namespace.as_str()) {
            Some(relative) => relative.to_owned(),
            None => absolute.clone(),
        };
        prop_assert_eq!(&back, &expected);
        if !name.starts_with('/') {
            prop_assert_eq!(&back, &name, "relative names come back unchanged");
        }
        prop_assert_eq!(namespace.absolute_name(&back).unwrap(), absolute);
        prop_assert!(namespace.contains_aws_name(&aws).unwrap() == namespace.contains_name(&back));
        // The AWS name of a name is the same from every namespace once it is absolute.
        prop_assert_eq!(Namespace::root().to_aws_name(&namespace.absolute_name(&name).unwrap()).unwrap(), aws);
    }

    /// Every AWS name that decodes at all decodes to the one name that encodes back to it.
    #[test]
    fn decodable_aws_names_are_canonical(namespace in namespace(), aws in "[a_./-]{0,12}") {
        if let Ok(name) = namespace.from_aws_name(&aws) {
            prop_assert_eq!(namespace.to_aws_name(&name).unwrap(), aws);
        }
    }

    /// Parsing agrees with the original grammar (less leftover `__me__`, which is always a
    /// mistake), and what it accepts is kept verbatim.
    #[test]
    fn namespaces_follow_the_grammar(s in near_miss()) {
        let accepted = Namespace::parse(&s);
        let valid = namespace_oracle().is_match(&s) && !s.contains("__me__");
        prop_assert_eq!(accepted.is_ok(), valid, "{:?}", s);
        if let Ok(namespace) = accepted {
            prop_assert_eq!(namespace.as_str(), s.as_str());
        }
    }

    #[test]
    fn names_follow_the_grammar(namespace in namespace(), s in near_miss()) {
        let absolute = if s.starts_with('/') { s.clone() } else { format!("{namespace}{s}") };
        match namespace.absolute_name(&s) {
            Ok(result) => {
                prop_assert!(name_oracle().is_match(&absolute), "{:?}", s);
                prop_assert_eq!(&result, &absolute);
            }
            Err(_) => prop_assert!(!name_oracle().is_match(&absolute), "{:?}", s),
        }
        prop_assert_eq!(namespace.to_aws_name(&s).is_ok(), name_oracle().is_match(&absolute));
    }

    /// Breaking a valid namespace anywhere is caught.
    #[test]
    fn corrupted_namespaces_are_rejected(
        namespace in namespace(),
        position in any::<prop::sample::Index>(),
        bad in prop::sample::select(vec!["A", "Z", " ", "\t", "\n", "\u{e9}", "+", "@", "=", ",", "*", "\\", "\0"]),
    ) {
        let mut s = namespace.as_str().to_owned();
        let at = position.index(s.len() + 1);
        s.insert_str(at, bad);
        prop_assert!(Namespace::parse(&s).is_err(), "{:?}", s);
    }

    #[test]
    fn d32_round_trips(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
        let text = d32::encode(&bytes);
        prop_assert_eq!(text.len(), (bytes.len() * 8).div_ceil(5));
        prop_assert_eq!(d32::decode(&text), Some(bytes));
    }

    #[test]
    fn d32_keeps_order(pair in (1usize..20).prop_flat_map(|n| (
        prop::collection::vec(any::<u8>(), n),
        prop::collection::vec(any::<u8>(), n),
    ))) {
        let (a, b) = pair;
        prop_assert_eq!(a.cmp(&b), d32::encode(&a).cmp(&d32::encode(&b)));
    }

    /// Decoding is strict: whatever decodes encodes back to the same text.
    #[test]
    fn d32_decode_is_canonical(text in "[2-7a-z]{0,20}") {
        if let Some(bytes) = d32::decode(&text) {
            prop_assert_eq!(d32::encode(&bytes), text);
        }
    }

    /// A literal pattern (no glob characters) matches exactly itself.
    #[test]
    fn literal_globs_match_only_themselves(a in "[a-z@._/-]{0,10}", b in "[a-z@._/-]{0,10}") {
        prop_assert!(keypairs::glob_matches(&a, &a));
        prop_assert_eq!(keypairs::glob_matches(&a, &b), a == b);
    }

    /// `**` matches everything; `*` everything without `/`.
    #[test]
    fn stars(name in "[a-z/]{0,12}") {
        prop_assert!(keypairs::glob_matches("**", &name));
        prop_assert_eq!(keypairs::glob_matches("*", &name), !name.contains('/'));
    }
}

/// A real ed25519 public key line.
const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIE9lU1p+WCDnbtWwnLTFoEdjaA/2kZAi2hUQOv6dSy3 fuzz";

/// Text shaped like a public key file: random text, key-type words with base64-ish noise, and
/// a real key with one character changed or cut short.
fn key_like() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,200}",
        (
            prop_oneof![
                Just("ssh-ed25519"),
                Just("ssh-rsa"),
                Just("ecdsa-sha2-nistp256"),
                Just("ssh-dss")
            ],
            "[A-Za-z0-9+/=]{0,300}",
            "( [ -~]{0,20})?"
        )
            .prop_map(|(t, b, c)| format!("{t} {b}{c}")),
        (0..ED25519.len(), any::<char>()).prop_map(|(i, c)| {
            let mut s: Vec<char> = ED25519.chars().collect();
            s[i] = c;
            s.into_iter().collect()
        }),
        (0..ED25519.len()).prop_map(|n| ED25519[..n].to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Whatever a key file holds, it is parsed or refused, never a panic; a key that parses
    /// prints back as a line that parses to the same key.
    #[test]
    fn public_key_text_is_parsed_or_refused(text in key_like()) {
        if let Ok(k) = cgcloud_common::keys::parse_public_key(&text) {
            let line = k.openssh_line();
            let again = cgcloud_common::keys::parse_public_key(&line).unwrap();
            prop_assert_eq!(again.openssh_line(), line);
        }
    }

    /// Console output, zones, ARNs and key pair globs from outside never make a parser panic.
    #[test]
    fn outside_text_never_panics(
        console in "(.{0,60}\n){0,8}",
        zone in "\\PC{0,30}",
        arn in "[a-z0-9:/_@.*-]{0,60}",
        glob in "\\PC{0,40}",
    ) {
        let with_keys = format!(
            "{console}-----BEGIN SSH HOST KEY KEYS-----\n{console}-----END SSH HOST KEY KEYS-----\n"
        );
        let _ = cgcloud_common::console::host_keys(&console);
        let _ = cgcloud_common::console::host_keys(&with_keys);
        let _ = cgcloud_common::zone::region_of_zone(&zone);
        let _ = cgcloud_common::arn::account_of_arn(&arn);
        let _ = cgcloud_common::arn::partition_of_arn(&arn);
        let _ = cgcloud_common::names::me_from_caller_arn(&arn);
        let _ = keypairs::parse_glob(&glob);
    }
}

#[test]
fn the_real_key_parses() {
    assert!(cgcloud_common::keys::parse_public_key(ED25519).is_ok());
}
