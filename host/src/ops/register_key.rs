//! `cgcloud register-key`: import a public key as an EC2 key pair.
//!
//! EC2 is the key registry: `DescribeKeyPairs` with `IncludePublicKey` returns the key, so there
//! is no S3 key store. cgcloud computes the fingerprint EC2 will report and insists that EC2
//! agrees; a key pair whose fingerprint disagrees is removed again rather than left behind.

use std::path::Path;

use anyhow::Context as _;
use aws_smithy_types::Blob;
use cgcloud_common::keys;

use crate::aws::{self, AwsResultExt};
use crate::ctx::Context;
use crate::errors::Result;
use crate::{bail_user, user_error};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Imported {
        name: String,
        fingerprint: String,
    },
    Replaced {
        name: String,
        fingerprint: String,
        old_fingerprint: String,
    },
    Unchanged {
        name: String,
        fingerprint: String,
    },
}

pub async fn register_key(
    ctx: &Context,
    key_file: &Path,
    keypair: &str,
    force: bool,
) -> Result<Outcome> {
    // A public key is a line: 64 KiB is plenty, and a device or FIFO is never read.
    let text = crate::fsutil::read_small_text(key_file, 64 << 10).with_context(|| {
        format!(
            "failed to read the public key file `{}`",
            key_file.display()
        )
    })?;
    let key =
        keys::parse_public_key(&text).map_err(|e| user_error!("`{}`: {e}", key_file.display()))?;
    let ours = keys::ec2_import_fingerprint(&key);
    let name = ctx.resolve_keypair_name(keypair).await?;
    if name.is_empty() {
        bail_user!("the key pair name is empty; pass --keypair NAME");
    }
    // EC2's rule: up to 255 ASCII characters.
    if name.len() > 255 || !name.is_ascii() || name.chars().any(|c| c.is_ascii_control()) {
        bail_user!(
            "`{}` cannot name a key pair: EC2 takes up to 255 printable ASCII characters",
            name.chars().take(80).collect::<String>()
        );
    }
    // Such names could never be matched literally by `-k` globs (`@bob` means IAM user bob).
    if name.starts_with('@')
        || name.contains(['*', '?', '[', ']'])
        || name.chars().any(char::is_whitespace)
    {
        bail_user!(
            "`{name}` cannot name a key pair: key pair names must not start with `@` or contain `*`, `?`,              `[`, `]` or white space"
        );
    }
    let ec2 = ctx.aws.ec2();
    let mut old_fingerprint = None;
    if let Some(existing) = aws::key_pair(&ec2, &name).await? {
        let theirs = existing.key_fingerprint().unwrap_or_default().to_string();
        if keys::key_matches_ec2_fingerprint(&key, &theirs) {
            ctx.shell.info(format!(
                "key pair `{name}` is already registered with this key ({ours})"
            ));
            return Ok(Outcome::Unchanged {
                name,
                fingerprint: ours,
            });
        }
        if !force {
            bail_user!(
                "key pair `{name}` already exists with a different key (fingerprint {theirs}, yours is {ours}); \
                 pass --force to replace it"
            );
        }
        ec2.delete_key_pair()
            .key_name(&name)
            .send()
            .await
            .aws(|| format!("failed to delete key pair `{name}` before replacing it"))?;
        old_fingerprint = Some(theirs);
    }
    // NOTE: EC2 keeps the material verbatim, comment included; DescribeKeyPairs returns it.
    let imported = ec2
        .import_key_pair()
        .key_name(&name)
        .public_key_material(Blob::new(key.text.trim_end().as_bytes().to_vec()))
        .send()
        .await;
    let theirs = match imported {
        Ok(out) => out.key_fingerprint().unwrap_or_default().to_string(),
        // An attempt whose answer was lost may have imported it: the SDK's retry then meets the
        // key pair that attempt made. It is ours if it holds this key; anyone else's is left
        // alone.
        Err(e)
            if aws_sdk_ec2::error::ProvideErrorMetadata::code(&e)
                == Some("InvalidKeyPair.Duplicate") =>
        {
            let found = aws::key_pair(&ec2, &name).await?;
            let theirs = found
                .as_ref()
                .and_then(|k| k.key_fingerprint())
                .unwrap_or_default()
                .to_string();
            if !keys::key_matches_ec2_fingerprint(&key, &theirs) {
                bail_user!(
                    "key pair `{name}` was created by someone else while cgcloud imported it (fingerprint {theirs}, \
                     yours is {ours}); it was left alone: pick another name or pass --force to replace it"
                );
            }
            theirs
        }
        Err(e) => {
            return Err(e).aws(|| format!("failed to import key pair `{name}`"));
        }
    };
    if !keys::key_matches_ec2_fingerprint(&key, &theirs) {
        let cleanup = ec2.delete_key_pair().key_name(&name).send().await;
        let fate = match cleanup {
            Ok(_) => "the key pair was deleted again".to_string(),
            Err(e) => format!(
                "deleting it again failed too ({}): delete it by hand",
                aws::describe(&e)
            ),
        };
        bail_user!("EC2 reports fingerprint {theirs} for key pair `{name}` but cgcloud computed {ours}; {fate}");
    }
    Ok(match old_fingerprint {
        Some(old) => Outcome::Replaced {
            name,
            fingerprint: ours,
            old_fingerprint: old,
        },
        None => Outcome::Imported {
            name,
            fingerprint: ours,
        },
    })
}
