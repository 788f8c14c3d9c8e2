//! Expanding key pair globs (`-k`, `CGCLOUD_KEYPAIRS`) against EC2 and IAM.
//!
//! The pure part (glob syntax, order, de-duplication) is `cgcloud_common::keypairs`; this module
//! asks EC2 for every key pair of the region and IAM for the users and groups named by `@user`
//! and `@@group` (the group that was asked for, paging through large groups).

use cgcloud_common::keypairs::{self, KeypairGlob};

use crate::aws::AwsResultExt;
use crate::ctx::Context;
use crate::errors::Result;
use crate::{bail_user, user_error};

/// The globs of a creation command: `-k`, else `CGCLOUD_KEYPAIRS` (whitespace-separated), else
/// `__me__`.
pub fn globs_from(args: &[String]) -> Vec<String> {
    if !args.is_empty() {
        return args.to_vec();
    }
    match std::env::var("CGCLOUD_KEYPAIRS") {
        Ok(v) if !v.trim().is_empty() => v.split_whitespace().map(str::to_string).collect(),
        _ => vec!["__me__".to_string()],
    }
}

/// Parses globs after substituting `__me__` (keeping anything after `@`).
pub async fn parse(ctx: &Context, globs: &[String]) -> Result<Vec<KeypairGlob>> {
    let mut out = Vec::new();
    for g in globs {
        let g = ctx.resolve_keypair_name(g).await?;
        out.push(keypairs::parse_glob(&g).map_err(|e| user_error!("{e}"))?);
    }
    Ok(out)
}

/// Every key pair name in the region.
pub async fn all_key_pair_names(ctx: &Context) -> Result<Vec<String>> {
    let out = ctx
        .aws
        .ec2()
        .describe_key_pairs()
        .send()
        .await
        .aws(|| "failed to list key pairs".to_string())?;
    let mut names: Vec<String> = out
        .key_pairs()
        .iter()
        .filter_map(|k| k.key_name().map(str::to_string))
        .collect();
    names.sort();
    Ok(names)
}

/// Expands globs into key pair names, in glob order, each once. An `@user` or `@@group` whose
/// IAM principal does not exist is an error; a pattern that matches nothing is not.
pub async fn expand(ctx: &Context, globs: &[KeypairGlob]) -> Result<Vec<String>> {
    let existing = all_key_pair_names(ctx).await?;
    let found = cgcloud_agent::principals(&ctx.aws.iam(), globs)
        .await
        .map_err(|e| user_error!("{e:#}"))?;
    if let Some(missing) = found.missing.first() {
        bail_user!("{missing}");
    }
    Ok(keypairs::expand(
        globs,
        &existing,
        &found.users,
        &found.members,
    ))
}

/// Expands the globs of a creation command and checks the first: it becomes the instance's
/// launch key pair, so it must be a literal name of an existing key pair.
pub async fn expand_for_launch(ctx: &Context, globs: &[String]) -> Result<Vec<String>> {
    let parsed = parse(ctx, globs).await?;
    let Some(first) = parsed.first() else {
        bail_user!("no key pairs given; pass -k NAME or set CGCLOUD_KEYPAIRS")
    };
    let KeypairGlob::Pattern(first_name) = first else {
        bail_user!(
            "the first key pair must be a key pair name, not `{}`: it becomes the box's launch key",
            globs[0]
        )
    };
    if first_name.contains(['*', '?', '[']) {
        bail_user!("the first key pair must be a key pair name, not the glob `{first_name}`: it becomes the box's launch key");
    }
    let expanded = expand(ctx, &parsed).await?;
    if expanded.first() != Some(first_name) {
        bail_user!(
            "key pair `{first_name}` does not exist in region {}; register your public key with \
             `cgcloud register-key ~/.ssh/id_ed25519.pub -k {first_name}`",
            ctx.region
        );
    }
    Ok(expanded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cgcloud_moto::{form, Account, Moto};

    async fn context(moto: &Moto, account: &Account) -> Context {
        Context::for_moto(moto, account, "/alice/").await
    }

    fn import(moto: &Moto, account: &Account, name: &str) {
        // Any valid public key will do; moto validates the material.
        let key =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG0oQ0GXtZwCL9RVZTXt1bOIzB/3WxWk1w/GHhWP8g7S test";
        moto.call(
            &account.id,
            "ec2",
            &form(&[
                ("Action", "ImportKeyPair"),
                ("KeyName", name),
                ("PublicKeyMaterial", &b64(key)),
                ("Version", "2016-11-15"),
            ]),
        )
        .unwrap();
    }

    fn b64(s: &str) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn iam(moto: &Moto, account: &Account, pairs: &[(&str, &str)]) {
        let mut all = pairs.to_vec();
        all.push(("Version", "2010-05-08"));
        moto.iam(&account.id, &form(&all)).unwrap();
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn globs_users_and_the_asked_group_expand_in_order() {
        let moto = Moto::start().unwrap();
        let account = moto.new_account("alice").unwrap();
        for k in ["alice", "bob", "carol", "dave", "team-1", "team-2", "erin"] {
            import(&moto, &account, k);
        }
        iam(
            &moto,
            &account,
            &[("Action", "CreateUser"), ("UserName", "bob")],
        );
        iam(
            &moto,
            &account,
            &[("Action", "CreateGroup"), ("GroupName", "ops")],
        );
        iam(
            &moto,
            &account,
            &[("Action", "CreateGroup"), ("GroupName", "developers")],
        );
        for u in ["carol", "dave"] {
            iam(
                &moto,
                &account,
                &[("Action", "CreateUser"), ("UserName", u)],
            );
            iam(
                &moto,
                &account,
                &[
                    ("Action", "AddUserToGroup"),
                    ("GroupName", "ops"),
                    ("UserName", u),
                ],
            );
        }
        iam(
            &moto,
            &account,
            &[("Action", "CreateUser"), ("UserName", "erin")],
        );
        iam(
            &moto,
            &account,
            &[
                ("Action", "AddUserToGroup"),
                ("GroupName", "developers"),
                ("UserName", "erin"),
            ],
        );
        let ctx = context(&moto, &account).await;

        let got = expand_for_launch(
            &ctx,
            &strings(&["alice", "team-*", "@bob", "@@ops", "alice"]),
        )
        .await
        .unwrap();
        assert_eq!(
            got,
            strings(&["alice", "team-1", "team-2", "bob", "carol", "dave"])
        );
        // The group asked for, not `developers` as the original did.
        let got = expand_for_launch(&ctx, &strings(&["alice", "@@developers"]))
            .await
            .unwrap();
        assert_eq!(got, strings(&["alice", "erin"]));

        let e = expand_for_launch(&ctx, &strings(&["nobody"]))
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("key pair `nobody` does not exist in region us-east-1"),
            "{e}"
        );
        assert!(e.to_string().contains("cgcloud register-key"), "{e}");
        let e = expand_for_launch(&ctx, &strings(&["team-*"]))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("not the glob `team-*`"), "{e}");
        let e = expand_for_launch(&ctx, &strings(&["alice", "@zed"]))
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "there is no IAM user `zed` (from `@zed`)");
        let e = expand_for_launch(&ctx, &strings(&["alice", "@@nope"]))
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "there is no IAM group `nope` (from `@@nope`)"
        );
    }

    #[tokio::test]
    async fn large_groups_are_paged_through() {
        let moto = Moto::start().unwrap();
        let account = moto.new_account("alice").unwrap();
        iam(
            &moto,
            &account,
            &[("Action", "CreateGroup"), ("GroupName", "big")],
        );
        import(&moto, &account, "alice");
        for n in 0..130 {
            let u = format!("user{n:03}");
            iam(
                &moto,
                &account,
                &[("Action", "CreateUser"), ("UserName", &u)],
            );
            iam(
                &moto,
                &account,
                &[
                    ("Action", "AddUserToGroup"),
                    ("GroupName", "big"),
                    ("UserName", &u),
                ],
            );
        }
        import(&moto, &account, "user129");
        let ctx = context(&moto, &account).await;
        let got = expand_for_launch(&ctx, &strings(&["alice", "@@big"]))
            .await
            .unwrap();
        assert_eq!(
            got,
            strings(&["alice", "user129"]),
            "the 130th member is found past the first page"
        );
    }
}
