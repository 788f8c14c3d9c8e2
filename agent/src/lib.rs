//! `cgcloud-agent`: the on-box agent that keeps the SSH keys of a box's accounts equal to the
//! key pairs its keypair globs match, and the pieces of it the `cgcloud` host needs.
//!
//! | Module | What it owns | Entry points |
//! |---|---|---|
//! | `names` | topic and queue names (`cgcloud-agent_<ns>_<hash>[_<instance>]`) | [`topic_name`], [`queue_name`], [`instance_of_queue`] |
//! | `message` | the versioned notification and how queue bodies are read | [`register_key_notification`], [`encode_update`], [`parse_body`] |
//! | `ack` | the `cgcloud:keys-hash` / `cgcloud:keys-applied` tags, and `cgcloud:agent-problem` | [`keys_hash`], [`ack_from_tags`], [`problem_from_tags`] |
//! | `keys` | expanding globs against EC2 and IAM | [`expand`], [`select_keys`] |
//! | `authorized` | the file the agent owns, written atomically; the sshd drop-in | [`sync_account`], [`write_atomic`], [`SSHD_DROP_IN`] |
//! | `wiring` | creating, subscribing and deleting topic and queues | [`ensure_instance_wiring`], [`delete_instance_wiring`], [`sweep_namespace`], [`publish_update`] |
//! | `policy` | the instance role's IAM policy | [`iam_policy`] |
//! | `systemd` | the unit file | [`unit`] |
//! | `options` | the command line | [`RunOptions`] |
//! | `agent` | the loop | [`Agent`], [`Config`] |
//!
//! **Where keys go.** Each managed account's `~/.ssh/authorized_keys.cgcloud`, a file only
//! the agent writes (atomically, mode 0600, owned by the account). sshd reads it through the
//! drop-in [`SSHD_DROP_IN`] at [`SSHD_DROP_IN_PATH`]
//! (`AuthorizedKeysFile .ssh/authorized_keys .ssh/authorized_keys2 .ssh/authorized_keys.cgcloud`).
//! `~/.ssh/authorized_keys`, where cloud-init puts the launch key and people add their own,
//! is never touched; hence the launch key pair stays authorised even if deleted from EC2.
//!
//! **Notifications.** One SNS topic per namespace and region, one SQS queue per instance
//! subscribed to it. The agent creates its own queue and subscription at start
//! ([`ensure_instance_wiring`]); the host deletes them when the instance is terminated
//! ([`delete_instance_wiring`], [`sweep_namespace`] for `cleanup`) and publishes
//! [`register_key_notification`] after `register-key`.
//!
//! **Acknowledgement.** After applying a key set the agent tags its instance with
//! [`TAG_KEYS_HASH`] = [`keys_hash`] of the keys and [`TAG_KEYS_APPLIED`] = the time. The host
//! expands the same globs ([`expand`]), hashes ([`Expansion::hash`]) and compares
//! ([`ack_from_tags`]).
//!
//! ```
//! use cgcloud_agent::{parse_body, queue_name, register_key_notification, Message, Received};
//! use cgcloud_common::Namespace;
//!
//! let ns = Namespace::parse("/a.b/").unwrap();
//! assert_eq!(
//!     queue_name(&ns, "i-0123456789abcdef0").unwrap(),
//!     "cgcloud-agent_a-b_6cglkjl6_i-0123456789abcdef0"
//! );
//! let text = register_key_notification("/a.b/", "alice");
//! assert!(matches!(parse_body(&text), Received::Message(Message::UpdateSshKeys(_))));
//! ```

mod ack;
mod agent;
mod authorized;
mod aws;
pub mod discover;
mod keys;
pub mod log;
mod message;
mod names;
mod options;
mod policy;
mod systemd;
#[cfg(test)]
mod testkeys;
mod wiring;

pub use ack::{
    ack_from_tags, keys_hash, problem_from_tags, problem_tag_value, Ack, PROBLEM_TAG_CHARS,
    TAG_KEYS_APPLIED, TAG_KEYS_HASH, TAG_PROBLEM,
};
pub use agent::{Agent, Batch, Config, Reconciled};
pub use authorized::{
    parse_passwd_line, render, sync_account, write_atomic, Account, AccountSource, Change,
    ManagedKey, MANAGED_FILE, MANAGED_FILE_MODE, SSHD_DROP_IN, SSHD_DROP_IN_PATH,
};
pub use aws::{describe, sdk_config, Clients};
pub use keys::{
    describe_key_pairs, expand, principals, select_keys, Expansion, KeyPair, Principals,
};
pub use message::{
    encode_update, parse_body, register_key_notification, Message, Received, UpdateSshKeys,
    VERSION as MESSAGE_VERSION,
};
pub use names::{
    instance_of_queue, is_instance_id, is_legal_queue_name, namespace_key, queue_name,
    queue_prefix, topic_name,
};
pub use options::{RunOptions, DEFAULT_INTERVAL_SECONDS};
pub use policy::iam_policy;
pub use systemd::{unit, writable_dir, BINARY_PATH, UNIT_NAME, UNIT_PATH};
pub use wiring::{
    delete_instance_wiring, ensure_instance_wiring, ensure_topic, find_instance_queue, find_topic,
    namespace_queues, publish, publish_update, sweep_namespace, InstanceQueue, Removed, Wiring,
    QUEUE_INSTANCE_TAG, QUEUE_SUBSCRIPTION_TAG, VISIBILITY_TIMEOUT_SECONDS,
};
