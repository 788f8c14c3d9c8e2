//! Names of the per-namespace SNS topic and the per-instance SQS queues.
//!
//! Scheme (every character in `[A-Za-z0-9_-]`, so the names are legal for SNS and SQS):
//!
//! * **namespace key** = `<readable>_<hash>`, where `<readable>` is the namespace without its
//!   outer `/`, with `_` doubled, `/` turned into `_` and `.` into `-` (the root namespace reads
//!   `root`), cut to [`READABLE_MAX`] characters; and `<hash>` is the d32 encoding of the first
//!   five bytes of the SHA-256 of the namespace text (8 characters). The readable part is for
//!   people; the hash keeps `/a.b/` and `/a-b/`, or two long namespaces that share their first
//!   32 characters, apart.
//! * **topic** = `cgcloud-agent_<namespace key>` (at most 55 characters), e.g.
//!   `cgcloud-agent_hannes_3x5k2mab` for `/hannes/`.
//! * **queue** = `<topic>_<instance id>` (at most 75 characters, SQS allows 80), e.g.
//!   `cgcloud-agent_hannes_3x5k2mab_i-0123456789abcdef0`.
//!
//! A queue belongs to cgcloud's namespace `ns` exactly when its name is `<topic of ns>_` followed
//! by a well-formed instance ID; [`instance_of_queue`] is the only test used before deleting.
//! NOTE: the original used one global topic `cgcloud-agent-notifications` and queues named after
//! host names, which broke for namespaces containing `.`; these names never collide with those.

use cgcloud_common::{d32, Namespace};
use sha2::{Digest, Sha256};

/// What every topic name starts with.
pub const TOPIC_PREFIX: &str = "cgcloud-agent_";
/// The longest readable namespace part kept in a name.
pub const READABLE_MAX: usize = 32;
/// The longest queue name SQS accepts.
pub const SQS_NAME_MAX: usize = 80;

/// The namespace part of the topic and queue names: `<readable>_<hash>`.
pub fn namespace_key(ns: &Namespace) -> String {
    let inner = ns.as_str().trim_matches('/');
    let mut readable = if inner.is_empty() {
        "root".to_string()
    } else {
        inner.replace('_', "__").replace('/', "_").replace('.', "-")
    };
    // Namespaces are ASCII, so cutting at a byte index is cutting at a character.
    readable.truncate(READABLE_MAX);
    let digest = Sha256::digest(ns.as_str().as_bytes());
    format!("{readable}_{}", d32::encode(&digest[..5]))
}

/// The SNS topic of a namespace.
pub fn topic_name(ns: &Namespace) -> String {
    format!("{TOPIC_PREFIX}{}", namespace_key(ns))
}

/// The prefix shared by every queue of the namespace (for `ListQueues`).
pub fn queue_prefix(ns: &Namespace) -> String {
    format!("{}_", topic_name(ns))
}

/// The SQS queue of one instance, or `None` if `instance_id` is not an EC2 instance ID.
pub fn queue_name(ns: &Namespace, instance_id: &str) -> Option<String> {
    is_instance_id(instance_id).then(|| format!("{}{instance_id}", queue_prefix(ns)))
}

/// The instance whose queue this is, if the queue is one of the namespace's agent queues.
pub fn instance_of_queue<'a>(ns: &Namespace, queue: &'a str) -> Option<&'a str> {
    let id = queue.strip_prefix(&queue_prefix(ns))?;
    is_instance_id(id).then_some(id)
}

/// `i-` followed by 8 or 17 lower-case hex digits.
pub fn is_instance_id(s: &str) -> bool {
    s.strip_prefix("i-").is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17)
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Whether a name is legal for SQS: `[A-Za-z0-9_-]`, 1 to 80 characters.
pub fn is_legal_queue_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= SQS_NAME_MAX
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(s: &str) -> Namespace {
        Namespace::parse(s).unwrap()
    }

    const ID: &str = "i-0123456789abcdef0";

    #[test]
    fn names_are_readable_and_hashed() {
        let key = namespace_key(&ns("/hannes/"));
        assert!(key.starts_with("hannes_"), "{key}");
        assert_eq!(key.len(), "hannes_".len() + 8);
        assert!(namespace_key(&Namespace::root()).starts_with("root_"));
        assert!(namespace_key(&ns("/test/a_b/")).starts_with("test_a__b_"));
        let q = queue_name(&ns("/hannes/"), ID).unwrap();
        assert_eq!(q, format!("cgcloud-agent_{key}_{ID}"));
        assert!(is_legal_queue_name(&q));
        assert_eq!(topic_name(&ns("/hannes/")), format!("cgcloud-agent_{key}"));
    }

    #[test]
    fn names_are_pinned() {
        // Agents on running boxes and the host that cleans up after them must agree: a change
        // here strands every deployed queue.
        assert_eq!(topic_name(&ns("/alice/")), "cgcloud-agent_alice_6gazouc5");
        assert_eq!(
            topic_name(&Namespace::root()),
            "cgcloud-agent_root_ldjhpgo4"
        );
        assert_eq!(
            queue_name(&ns("/a.b/"), ID).unwrap(),
            "cgcloud-agent_a-b_6cglkjl6_i-0123456789abcdef0"
        );
    }

    #[test]
    fn dotted_and_long_namespaces_give_legal_distinct_names() {
        let long = format!("/{}/{}/", "a".repeat(60), "b.c".repeat(30));
        let long2 = format!("/{}/{}/", "a".repeat(60), "b-c".repeat(30));
        let cases = [
            "/", "/a.b/", "/a-b/", "/a/b/", "/a_b/", "/a__b/", &long, &long2,
        ];
        let mut seen = std::collections::HashSet::new();
        for c in cases {
            let q = queue_name(&ns(c), ID).unwrap();
            assert!(is_legal_queue_name(&q), "{c} -> {q}");
            assert!(q.len() <= 75, "{c} -> {q} ({} chars)", q.len());
            assert!(seen.insert(topic_name(&ns(c))), "{c} collides");
            assert_eq!(instance_of_queue(&ns(c), &q), Some(ID));
        }
        // The readable parts of `/a.b/` and `/a-b/` are equal; only the hash tells them apart.
        assert!(namespace_key(&ns("/a.b/")).starts_with("a-b_"));
        assert!(namespace_key(&ns("/a-b/")).starts_with("a-b_"));
    }

    #[test]
    fn only_own_queues_are_recognised() {
        let n = ns("/alice/");
        let q = queue_name(&n, ID).unwrap();
        assert_eq!(instance_of_queue(&n, &q), Some(ID));
        assert_eq!(instance_of_queue(&ns("/bob/"), &q), None);
        assert_eq!(
            instance_of_queue(&n, &format!("{}i-xyz", queue_prefix(&n))),
            None
        );
        assert_eq!(instance_of_queue(&n, &format!("{q}-copy")), None);
        assert_eq!(
            instance_of_queue(&n, "cgcloud-agent-notifications_ip-10-0-0-5"),
            None
        );
        // A child namespace's queues are not the parent's.
        let child = queue_name(&ns("/alice/x/"), ID).unwrap();
        assert_eq!(instance_of_queue(&n, &child), None);
    }

    #[test]
    fn instance_ids() {
        assert!(is_instance_id("i-12345678"));
        assert!(is_instance_id(ID));
        assert!(!is_instance_id("i-123"));
        assert!(!is_instance_id("i-0123456789ABCDEF0"));
        assert!(!is_instance_id("ip-10-0-0-5"));
        assert_eq!(queue_name(&ns("/a/"), "../x"), None);
    }
}
