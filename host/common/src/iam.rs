//! IAM names derived from role data.
//!
//! The original names a role's IAM role after the chain of classes that contributed policies
//! (`cgcloud--agent-box--spark-box`, ...) and hashes it to stay under IAM's 64-character limit
//! (original issue #204). Roles with the same chain share one IAM role.

use sha1::{Digest, Sha1};

use crate::d32;

/// `'cgcloud-' + d32(sha1(chain)[0:8])`, not yet namespaced (callers apply `to_aws_name`).
///
/// `cgcloud--agent-box` → `cgcloud-drlqaw4bbigxu`; in `/hannes/` its AWS name is
/// `hannes_cgcloud-drlqaw4bbigxu`. The namespace prefix is not hashed.
pub fn role_name_for_chain(chain: &str) -> String {
    let digest = Sha1::digest(chain.as_bytes());
    format!("cgcloud-{}", d32::encode(&digest[..8]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_to_13_d32_characters() {
        let name = role_name_for_chain("cgcloud");
        assert_eq!(name, "cgcloud-qjcdp7lv4sqlu");
        assert_eq!(name.len(), "cgcloud-".len() + 13);
    }
}
