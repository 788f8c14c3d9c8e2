//! The acknowledgement: after applying a key set, the agent tags its own instance with the
//! set's hash and the time, so the host can tell which boxes have converged
//! (`cgcloud keys status`) by computing [`keys_hash`] over the set it expects.

use cgcloud_common::parse_public_key;
use sha2::{Digest, Sha256};

/// Tag holding [`keys_hash`] of the keys the agent last applied.
pub const TAG_KEYS_HASH: &str = "cgcloud:keys-hash";
/// Tag holding when that happened, RFC 3339 in UTC with whole seconds.
pub const TAG_KEYS_APPLIED: &str = "cgcloud:keys-applied";
/// Tag holding the problem the agent has now, if any: when it was reported (RFC 3339, UTC) and
/// one line, at most [`PROBLEM_TAG_CHARS`] characters. The agent removes it once the problem
/// ended. Written where it can: a problem with EC2 itself may keep it from being written.
pub const TAG_PROBLEM: &str = "cgcloud:agent-problem";
/// EC2's limit on a tag value.
pub const PROBLEM_TAG_CHARS: usize = 256;

/// The value of [`TAG_PROBLEM`] for `problem` reported at `at`: control characters replaced,
/// cut to [`PROBLEM_TAG_CHARS`] characters.
pub fn problem_tag_value(at: &str, problem: &str) -> String {
    let line: String = format!("{at} {problem}")
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if line.chars().count() <= PROBLEM_TAG_CHARS {
        return line;
    }
    let mut cut: String = line.chars().take(PROBLEM_TAG_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// The hash of a key set: `sha256:` and the hex SHA-256 of the keys' `<type> <base64>` lines
/// (comments dropped), sorted, de-duplicated and joined with `\n`. Order, comments and
/// duplicates do not change it; text that is not a public key is left out, exactly as the agent
/// leaves it out of the file. Pass the `PublicKey` material of `DescribeKeyPairs`.
pub fn keys_hash<'a>(keys: impl IntoIterator<Item = &'a str>) -> String {
    let mut lines: Vec<String> = keys
        .into_iter()
        .filter_map(|k| parse_public_key(k).ok())
        .map(|k| k.openssh_line())
        .collect();
    lines.sort();
    lines.dedup();
    format!("sha256:{}", hex::encode(Sha256::digest(lines.join("\n"))))
}

/// What an instance's tags say of the agent's problem now, if any.
pub fn problem_from_tags<'a>(tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<String> {
    tags.into_iter()
        .find(|(k, _)| *k == TAG_PROBLEM)
        .map(|(_, v)| v.to_string())
}

/// What an instance's tags say the agent applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub hash: String,
    pub applied: String,
}

/// Reads the acknowledgement from an instance's tags; `None` if the agent never reported.
pub fn ack_from_tags<'a>(tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<Ack> {
    let (mut hash, mut applied) = (None, None);
    for (k, v) in tags {
        match k {
            TAG_KEYS_HASH => hash = Some(v.to_string()),
            TAG_KEYS_APPLIED => applied = Some(v.to_string()),
            _ => {}
        }
    }
    Some(Ack {
        hash: hash?,
        applied: applied.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testkeys::{K1, K2};

    #[test]
    fn hash_ignores_order_comments_duplicates_and_junk() {
        let h = keys_hash([K1, K2]);
        assert!(h.starts_with("sha256:") && h.len() == 7 + 64, "{h}");
        assert_eq!(keys_hash([K2, K1, K1]), h);
        let recommented = K1.replace(" k1", " another comment");
        assert_eq!(keys_hash([recommented.as_str(), K2]), h);
        assert_eq!(keys_hash([K1, "not a key", K2]), h);
        assert_ne!(keys_hash([K1]), h);
        assert_ne!(keys_hash(std::iter::empty()), keys_hash([K1]));
    }

    #[test]
    fn the_empty_set_has_a_fixed_hash() {
        // SHA-256 of the empty string: a change of the rule shows up here.
        assert_eq!(
            keys_hash(std::iter::empty()),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn ack_is_read_from_tags() {
        let tags = [
            ("Name", "x"),
            (TAG_KEYS_HASH, "sha256:ab"),
            (TAG_KEYS_APPLIED, "2026-01-01T00:00:00Z"),
        ];
        assert_eq!(
            ack_from_tags(tags),
            Some(Ack {
                hash: "sha256:ab".into(),
                applied: "2026-01-01T00:00:00Z".into()
            })
        );
        assert_eq!(ack_from_tags([("Name", "x")]), None);
    }

    #[test]
    fn the_problem_tag_is_one_line_of_at_most_256_characters() {
        let v = crate::ack::problem_tag_value("2026-12-04T00:00:00Z", "keys: a\nb\u{1b}[31m");
        assert_eq!(v, "2026-12-04T00:00:00Z keys: a b [31m");
        let long = "é".repeat(1000);
        let v = crate::ack::problem_tag_value("t", &long);
        assert_eq!(v.chars().count(), crate::ack::PROBLEM_TAG_CHARS);
        assert!(v.ends_with('…') && v.starts_with("t é"));
        let tags = [("a", "1"), (crate::ack::TAG_PROBLEM, "x")];
        assert_eq!(crate::ack::problem_from_tags(tags), Some("x".to_string()));
        assert_eq!(crate::ack::problem_from_tags([("a", "1")]), None);
    }
}
