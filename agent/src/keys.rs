//! Expanding the keypair globs into the keys to write: EC2 `DescribeKeyPairs` with
//! `IncludePublicKey` (no S3 key store), IAM `GetUser` for `@user` and `GetGroup`, paged, for
//! `@@group`. Glob syntax and order are `cgcloud_common::keypairs`.
//!
//! An IAM principal that does not exist contributes no keys (a definite answer); any other
//! failure fails the whole expansion, and the caller keeps the keys it wrote last.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context as _;
use aws_sdk_ec2::error::{ProvideErrorMetadata as _, SdkError};
use cgcloud_common::keypairs::{self, KeypairGlob};
use cgcloud_common::parse_public_key;

use crate::authorized::ManagedKey;
use crate::aws::describe;

/// A key pair as EC2 reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPair {
    pub name: String,
    /// The public key material; `None` if EC2 returned none.
    pub public_key: Option<String>,
}

/// The result of an expansion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expansion {
    /// The keys, in glob order, each once.
    pub keys: Vec<ManagedKey>,
    /// Things worth a warning in the log (a missing IAM user, a key EC2 returned no text for).
    pub warnings: Vec<String>,
}

impl Expansion {
    /// The hash the agent reports for these keys (see [`crate::keys_hash`]).
    pub fn hash(&self) -> String {
        crate::ack::keys_hash(self.keys.iter().map(|k| k.line.as_str()))
    }
}

/// Combines the answers: expands `globs` over `pairs` and turns each match into the line to
/// write. Pure, so the host can reuse it for `cgcloud keys status`.
pub fn select_keys(
    globs: &[KeypairGlob],
    pairs: &[KeyPair],
    users: &BTreeSet<String>,
    members: &BTreeMap<String, Vec<String>>,
) -> Expansion {
    let names: Vec<String> = pairs.iter().map(|p| p.name.clone()).collect();
    let mut out = Expansion::default();
    for name in keypairs::expand(globs, &names, users, members) {
        let Some(pair) = pairs.iter().find(|p| p.name == name) else {
            continue;
        };
        match pair.public_key.as_deref().map(parse_public_key) {
            Some(Ok(key)) => out.keys.push(ManagedKey {
                keypair: name,
                line: key.openssh_line(),
            }),
            Some(Err(e)) => out.warnings.push(format!(
                "skipping key pair `{name}`: its public key is unusable: {e}"
            )),
            None => out.warnings.push(format!(
                "skipping key pair `{name}`: EC2 returned no public key for it"
            )),
        }
    }
    out
}

/// Every key pair of the region with its public key.
pub async fn describe_key_pairs(ec2: &aws_sdk_ec2::Client) -> anyhow::Result<Vec<KeyPair>> {
    let out = ec2
        .describe_key_pairs()
        .include_public_key(true)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("failed to list key pairs: {}", describe(&e)))?;
    Ok(out
        .key_pairs()
        .iter()
        .filter_map(|k| {
            Some(KeyPair {
                name: k.key_name()?.to_string(),
                public_key: k.public_key().map(str::to_string),
            })
        })
        .collect())
}

fn is_no_such_entity<E: aws_sdk_iam::error::ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.code() == Some("NoSuchEntity")
}

/// The IAM principals a set of globs names: the `@user`s that exist, the members of each
/// `@@group`, and what does not exist (one line each, naming the glob).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Principals {
    pub users: BTreeSet<String>,
    pub members: BTreeMap<String, Vec<String>>,
    pub missing: Vec<String>,
}

/// Asks IAM about every `@user` and `@@group` of `globs` (the one place cgcloud and its agent
/// do). A principal that does not exist is listed in `missing`; any other failure is an error.
pub async fn principals(
    iam: &aws_sdk_iam::Client,
    globs: &[KeypairGlob],
) -> anyhow::Result<Principals> {
    let mut out = Principals::default();
    let mut missing_users = BTreeSet::new();
    for glob in globs {
        match glob {
            KeypairGlob::User(user)
                if !out.users.contains(user) && !missing_users.contains(user) =>
            {
                match iam.get_user().user_name(user).send().await {
                    Ok(_) => {
                        out.users.insert(user.clone());
                    }
                    Err(e) if is_no_such_entity(&e) => {
                        missing_users.insert(user.clone());
                        out.missing
                            .push(format!("there is no IAM user `{user}` (from `@{user}`)"));
                    }
                    Err(e) => {
                        return Err(anyhow::anyhow!("{}", describe(&e)))
                            .with_context(|| format!("failed to look up IAM user `{user}`"))
                    }
                }
            }
            KeypairGlob::Group(group) if !out.members.contains_key(group) => {
                let mut names = Vec::new();
                let mut pages = iam.get_group().group_name(group).into_paginator().send();
                while let Some(page) = pages.next().await {
                    match page {
                        Ok(p) => names.extend(p.users().iter().map(|u| u.user_name().to_string())),
                        Err(e) if is_no_such_entity(&e) => {
                            out.missing.push(format!(
                                "there is no IAM group `{group}` (from `@@{group}`)"
                            ));
                            break;
                        }
                        Err(e) => {
                            return Err(anyhow::anyhow!("{}", describe(&e))).with_context(|| {
                                format!("failed to list the members of IAM group `{group}`")
                            })
                        }
                    }
                }
                out.members.insert(group.clone(), names);
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Asks EC2 and IAM, then [`select_keys`]. A principal that does not exist is a warning: it
/// contributes no keys.
pub async fn expand(
    ec2: &aws_sdk_ec2::Client,
    iam: &aws_sdk_iam::Client,
    globs: &[KeypairGlob],
) -> anyhow::Result<Expansion> {
    let pairs = describe_key_pairs(ec2).await?;
    let found = principals(iam, globs).await?;
    let mut out = select_keys(globs, &pairs, &found.users, &found.members);
    let mut warnings = found.missing;
    warnings.append(&mut out.warnings);
    out.warnings = warnings;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkeys::{K1, K2, K3};
    use cgcloud_common::parse_glob;

    fn pair(name: &str, key: Option<&str>) -> KeyPair {
        KeyPair {
            name: name.into(),
            public_key: key.map(str::to_string),
        }
    }

    fn globs(g: &[&str]) -> Vec<KeypairGlob> {
        g.iter().map(|s| parse_glob(s).unwrap()).collect()
    }

    fn names(e: &Expansion) -> Vec<&str> {
        e.keys.iter().map(|k| k.keypair.as_str()).collect()
    }

    #[test]
    fn globs_expand_against_a_fake_key_list() {
        let pairs = [
            pair("alice", Some(K1)),
            pair("team-2", Some(K2)),
            pair("team-1", Some(K3)),
            pair("carol", Some(K2)),
            pair("other", Some(K3)),
        ];
        let users = BTreeSet::from(["carol".to_string()]);
        let members = BTreeMap::from([(
            "ops".to_string(),
            vec!["alice".to_string(), "nokey".to_string()],
        )]);
        let e = select_keys(
            &globs(&["team-*", "@carol", "@@ops", "alice"]),
            &pairs,
            &users,
            &members,
        );
        assert_eq!(names(&e), ["team-2", "team-1", "carol", "alice"]);
        // Comments are replaced by the key pair's name; the line is `<type> <base64>`.
        assert_eq!(e.keys[0].line, K2.trim_end_matches(" k2"));
        assert!(e.warnings.is_empty());
        // `@user` needs the IAM user to exist.
        let e = select_keys(&globs(&["@carol"]), &pairs, &BTreeSet::new(), &members);
        assert!(e.keys.is_empty());
        // Character classes and `?`.
        let e = select_keys(&globs(&["team-[!1]", "?lice"]), &pairs, &users, &members);
        assert_eq!(names(&e), ["team-2", "alice"]);
    }

    #[test]
    fn unusable_keys_are_skipped_with_a_warning() {
        let pairs = [
            pair("a", Some(K1)),
            pair("b", None),
            pair("c", Some("garbage")),
        ];
        let e = select_keys(&globs(&["*"]), &pairs, &BTreeSet::new(), &BTreeMap::new());
        assert_eq!(names(&e), ["a"]);
        assert_eq!(e.warnings.len(), 2, "{:?}", e.warnings);
        assert!(e.warnings[0].contains("`b`"));
        assert_eq!(e.hash(), crate::keys_hash([K1]));
    }
}
