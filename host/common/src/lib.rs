//! What the cgcloud CLI, its plugin host and its on-box agent share: pure data (no AWS SDK, no
//! async), and the one atomic file writer ([`fsutil`]).
//!
//! | Module | What it owns | Entry points |
//! |---|---|---|
//! | [`names`] | namespace grammar, absolute and relative names, the AWS spelling of names, `__me__` | [`Namespace`], [`substitute_me`], [`me_from_caller_arn`], [`test_namespace`] |
//! | [`console`] | the SSH host keys an instance printed to its console (cloud-init's key block) | [`console::host_keys`] |
//! | [`d32`] | the order-preserving base32 used in test namespaces and IAM role names | [`d32::encode`], [`d32::decode`] |
//! | [`iam`] | the hashed IAM role name of a role's feature chain | [`role_name_for_chain`] |
//! | [`arn`] | ARN partitions of regions | [`partition_for_region`] |
//! | [`fsutil`] | replacing a file atomically, with mode and owner | [`fsutil::write_atomic`] |
//! | [`elf`] | the machine, loader and newest glibc version of a Linux program | [`elf::inspect`], [`elf::Arch`] |
//! | [`zone`] | availability-zone names and their regions | [`region_of_zone`] |
//! | [`keys`] | OpenSSH public keys and the fingerprints EC2 reports | [`parse_public_key`], [`ec2_import_fingerprint`], [`fingerprints_match`], [`key_matches_ec2_fingerprint`] |
//! | [`keypairs`] | keypair globs (`name*`, `@user`, `@@group`) and their expansion | [`parse_glob`], [`expand`], [`glob_matches`] |
//!
//! Everything here matches the original cgcloud bit for bit where existing resources depend on
//! it (names, hashes, fingerprints); deliberate differences are marked `NOTE:` in the docs.
//! Error types render as one lower-case line naming the offending value and the rule.
//!
//! ```
//! use cgcloud_common::{substitute_me, Namespace};
//!
//! let ns = Namespace::parse(&substitute_me("/__me__/", "Hannes@soe.ucsc.edu", true))?;
//! assert_eq!(ns.as_str(), "/hannes/");
//! assert_eq!(ns.to_aws_name("spark-master")?, "hannes_spark-master");
//! assert_eq!(ns.from_aws_name("hannes_spark-master")?, "spark-master");
//! assert_eq!(Namespace::root().from_aws_name("hannes_spark-master")?, "hannes/spark-master");
//! assert!(Namespace::parse("/Hannes/").is_err());
//! # Ok::<(), cgcloud_common::NameError>(())
//! ```

pub mod arn;
pub mod console;
pub mod d32;
pub mod elf;
pub mod fsutil;
pub mod iam;
pub mod keypairs;
pub mod keys;
pub mod names;
pub mod zone;

pub use arn::partition_for_region;
pub use iam::role_name_for_chain;
pub use keypairs::{expand, glob_matches, parse_glob, GlobError, KeypairGlob};
pub use keys::{
    ec2_import_fingerprint, fingerprints_match, key_matches_ec2_fingerprint, parse_public_key,
    KeyError, KeyKind, PublicKey,
};
pub use names::{
    base_name, me_from_caller_arn, substitute_me, test_namespace, NameError, Namespace,
};
pub use zone::{region_of_zone, ZoneError};
