//! The notification that tells agents to re-read the key pairs, and how a queue body is read.
//!
//! Wire format, version 2 (the SNS `Message` text is this JSON, unencoded):
//!
//! ```json
//! {"version":2,"type":"update-ssh-keys","namespace":"/alice/","keypair":"alice","reason":"register-key"}
//! ```
//!
//! Only `version` and `type` are required; unknown fields are ignored. Compatibility rules,
//! pinned by the tests below:
//!
//! * version 1 of the original (`{"version":1,"type":1}`, standard base64 inside the SNS
//!   envelope's `Message`) is accepted as [`Message::UpdateSshKeys`];
//! * a version-2 message of a type this agent does not know is [`Message::Unknown`]: log it and
//!   delete it, a newer cgcloud sent it;
//! * any other version is [`Received::UnknownVersion`], anything unreadable
//!   [`Received::Poison`]: log and delete both, never stop the loop for them.
//!
//! The queue body is either the SNS envelope (`{"Type":"Notification","Message":…}`, the
//! default delivery) or, with raw delivery, the message itself; both are read.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The version this agent writes.
pub const VERSION: u64 = 2;
/// The version of the original cgcloud's messages.
pub const ORIGINAL_VERSION: u64 = 1;
/// The original's only message type, "update SSH keys".
const ORIGINAL_TYPE_UPDATE_SSH_KEYS: u64 = 1;
/// `type` of [`UpdateSshKeys`] in version 2.
pub const TYPE_UPDATE_SSH_KEYS: &str = "update-ssh-keys";

/// "The key pairs may have changed: expand the globs again."
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateSshKeys {
    /// The namespace the sender worked in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The key pair that changed, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keypair: Option<String>,
    /// Why it was sent, e.g. `register-key`, `delete-key`, `keys-set`; for the log only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A message this agent understood.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// Re-expand the globs and rewrite the keys.
    UpdateSshKeys(UpdateSshKeys),
    /// A known version but a type this agent does not know (a newer sender): log and delete.
    Unknown { kind: String },
}

/// What a queue body turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    Message(Message),
    /// A message of a version this agent cannot read: log and delete it.
    UnknownVersion {
        version: String,
    },
    /// Not a message at all: log and delete it.
    Poison {
        reason: String,
    },
}

#[derive(Serialize)]
struct Wire<'a> {
    version: u64,
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(flatten)]
    body: &'a UpdateSshKeys,
}

/// The SNS message text of an [`UpdateSshKeys`].
pub fn encode_update(update: &UpdateSshKeys) -> String {
    let wire = Wire {
        version: VERSION,
        kind: TYPE_UPDATE_SSH_KEYS,
        body: update,
    };
    // Serialising a struct of strings cannot fail.
    serde_json::to_string(&wire).unwrap_or_default()
}

/// The notification `cgcloud register-key` publishes after importing `keypair`.
pub fn register_key_notification(namespace: &str, keypair: &str) -> String {
    encode_update(&UpdateSshKeys {
        namespace: Some(namespace.to_string()),
        keypair: Some(keypair.to_string()),
        reason: Some("register-key".to_string()),
    })
}

/// Reads one SQS message body.
pub fn parse_body(body: &str) -> Received {
    let outer: Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(_) => return parse_payload(body),
    };
    match outer.get("Type").and_then(Value::as_str) {
        Some("Notification") => match outer.get("Message").and_then(Value::as_str) {
            Some(m) => parse_payload(m),
            None => poison("an SNS notification without a `Message` text"),
        },
        Some(other) => Received::Message(Message::Unknown {
            kind: format!("sns:{other}"),
        }),
        None => parse_value(&outer),
    }
}

/// Reads the SNS message text: JSON, or base64 of JSON (the original's encoding).
fn parse_payload(text: &str) -> Received {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return parse_value(&v);
    }
    let decoded = STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok());
    match decoded.and_then(|s| serde_json::from_str::<Value>(&s).ok()) {
        Some(v) => parse_value(&v),
        None => poison(&format!(
            "neither JSON nor base64 of JSON: `{}`",
            excerpt(text)
        )),
    }
}

fn parse_value(v: &Value) -> Received {
    let Some(obj) = v.as_object() else {
        return poison(&format!(
            "expected a JSON object, got `{}`",
            excerpt(&v.to_string())
        ));
    };
    let Some(version) = obj.get("version") else {
        return poison("a JSON object without `version`");
    };
    match version.as_u64() {
        Some(ORIGINAL_VERSION) => match obj.get("type").and_then(Value::as_u64) {
            Some(ORIGINAL_TYPE_UPDATE_SSH_KEYS) => {
                Received::Message(Message::UpdateSshKeys(UpdateSshKeys::default()))
            }
            Some(other) => Received::Message(Message::Unknown {
                kind: format!("v1:{other}"),
            }),
            None => poison("a version-1 message without a numeric `type`"),
        },
        Some(VERSION) => match obj.get("type").and_then(Value::as_str) {
            Some(TYPE_UPDATE_SSH_KEYS) => match serde_json::from_value(v.clone()) {
                Ok(u) => Received::Message(Message::UpdateSshKeys(u)),
                Err(e) => poison(&format!(
                    "a malformed `{TYPE_UPDATE_SSH_KEYS}` message: {e}"
                )),
            },
            Some(other) => Received::Message(Message::Unknown {
                kind: other.to_string(),
            }),
            None => poison("a version-2 message without a `type` text"),
        },
        _ => Received::UnknownVersion {
            version: excerpt(&version.to_string()),
        },
    }
}

fn poison(reason: &str) -> Received {
    Received::Poison {
        reason: reason.to_string(),
    }
}

/// At most 80 characters of untrusted text, on one line (control characters escaped): what of a
/// message's text the agent's journal shows.
pub fn excerpt(s: &str) -> String {
    let one_line: String = s.chars().take(80).collect();
    one_line.escape_debug().to_string()
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    /// Bodies as SQS may deliver them: any text, SNS envelopes around any text, and base64 of
    /// JSON-ish text (the original's encoding).
    fn body() -> impl Strategy<Value = String> {
        // Objects with the fields the reader looks at, of right and wrong kinds.
        let value = prop_oneof![
            Just(serde_json::json!(null)),
            any::<u64>().prop_map(|n| serde_json::json!(n)),
            Just(serde_json::json!(ORIGINAL_VERSION)),
            Just(serde_json::json!(VERSION)),
            Just(serde_json::json!(TYPE_UPDATE_SSH_KEYS)),
            Just(serde_json::json!(ORIGINAL_TYPE_UPDATE_SSH_KEYS)),
            "[ -~]{0,20}".prop_map(|t| serde_json::json!(t)),
            proptest::collection::vec("[ -~]{0,12}", 0..4).prop_map(|v| serde_json::json!(v)),
        ];
        let object = (value.clone(), value.clone(), "[a-z_]{1,12}", value).prop_map(
            |(version, kind, key, extra)| {
                serde_json::json!({"version": version, "type": kind, key: extra}).to_string()
            },
        );
        let jsonish = prop_oneof![".{0,120}", object];
        prop_oneof![
            ".{0,300}",
            jsonish.clone(),
            jsonish.clone().prop_map(
                |m| serde_json::json!({"Type": "Notification", "Message": m}).to_string()
            ),
            jsonish.prop_map(|m| STANDARD.encode(m)),
            "\\{\"Type\": ?\"[A-Za-z]{0,12}\"\\}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Every body is a message, or poison with a reason: never a panic.
        #[test]
        fn any_body_is_read_without_panicking(b in body()) {
            let _ = parse_body(&b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(message: &str) -> String {
        serde_json::json!({
            "Type": "Notification",
            "MessageId": "792ca81f-cafb-4683-8c30-4ad8e552c255",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:t",
            "Message": message,
            "Timestamp": "2026-11-24T19:03:37.121Z",
            "SignatureVersion": "2",
        })
        .to_string()
    }

    fn update() -> Received {
        Received::Message(Message::UpdateSshKeys(UpdateSshKeys::default()))
    }

    #[test]
    fn the_wire_format_is_pinned() {
        assert_eq!(
            register_key_notification("/alice/", "alice"),
            r#"{"version":2,"type":"update-ssh-keys","namespace":"/alice/","keypair":"alice","reason":"register-key"}"#
        );
        assert_eq!(
            encode_update(&UpdateSshKeys::default()),
            r#"{"version":2,"type":"update-ssh-keys"}"#
        );
    }

    #[test]
    fn our_messages_round_trip_in_the_envelope_and_raw() {
        let text = register_key_notification("/alice/", "alice");
        let expected = Received::Message(Message::UpdateSshKeys(UpdateSshKeys {
            namespace: Some("/alice/".into()),
            keypair: Some("alice".into()),
            reason: Some("register-key".into()),
        }));
        assert_eq!(parse_body(&envelope(&text)), expected);
        assert_eq!(parse_body(&text), expected);
    }

    #[test]
    fn version_one_of_the_original_is_accepted() {
        // What the original's `Message.to_sns()` publishes: base64 of the JSON.
        let v1 = STANDARD.encode(r#"{"version": 1, "type": 1}"#);
        assert_eq!(v1, "eyJ2ZXJzaW9uIjogMSwgInR5cGUiOiAxfQ==");
        assert_eq!(parse_body(&envelope(&v1)), update());
        assert_eq!(parse_body(&envelope(r#"{"version":1,"type":1}"#)), update());
        assert_eq!(
            parse_body(&envelope(&STANDARD.encode(r#"{"version":1,"type":7}"#))),
            Received::Message(Message::Unknown {
                kind: "v1:7".into()
            })
        );
    }

    #[test]
    fn unknown_types_and_fields_are_tolerated() {
        assert_eq!(
            parse_body(&envelope(r#"{"version":2,"type":"reboot","extra":1}"#)),
            Received::Message(Message::Unknown {
                kind: "reboot".into()
            })
        );
        assert_eq!(
            parse_body(&envelope(
                r#"{"version":2,"type":"update-ssh-keys","future":[1,2]}"#
            )),
            update()
        );
        assert_eq!(
            parse_body(r#"{"Type":"SubscriptionConfirmation","Token":"x"}"#),
            Received::Message(Message::Unknown {
                kind: "sns:SubscriptionConfirmation".into()
            })
        );
    }

    #[test]
    fn unknown_versions_are_recognised() {
        assert_eq!(
            parse_body(&envelope(r#"{"version":3,"type":"update-ssh-keys"}"#)),
            Received::UnknownVersion {
                version: "3".into()
            }
        );
        assert_eq!(
            parse_body(&envelope(&STANDARD.encode(r#"{"version":"1","type":1}"#))),
            Received::UnknownVersion {
                version: "\\\"1\\\"".into()
            }
        );
    }

    #[test]
    fn oversized_messages_are_read_or_refused_and_say_at_most_a_short_line() {
        // SQS's largest message is 256 KiB.
        const MAX: usize = 256 * 1024;
        let deep = format!("{}{}", "[".repeat(MAX / 2), "]".repeat(MAX / 2));
        let junk = "x".repeat(MAX);
        let huge_reason = serde_json::json!({
            "version": VERSION, "type": TYPE_UPDATE_SSH_KEYS,
            "keypair": format!("k\n{}", "y".repeat(MAX / 2)), "reason": "\u{1b}[2J".repeat(MAX / 8),
        })
        .to_string();
        for body in [deep.clone(), envelope(&deep), junk.clone(), envelope(&junk)] {
            match parse_body(&body) {
                Received::Poison { reason } => assert!(reason.len() < 400, "{}", reason.len()),
                other => panic!("poison expected, got {other:?}"),
            }
        }
        match parse_body(&envelope(&huge_reason)) {
            Received::Message(Message::UpdateSshKeys(u)) => {
                let shown = excerpt(u.keypair.as_deref().unwrap_or_default());
                assert!(shown.len() <= 4 * 80 && !shown.contains('\n'), "{shown}");
                let shown = excerpt(u.reason.as_deref().unwrap_or_default());
                assert!(!shown.contains('\u{1b}'), "{shown}");
            }
            other => panic!("an update, got {other:?}"),
        }
    }

    #[test]
    fn poison_is_recognised_not_fatal() {
        for body in [
            "",
            "hi",
            "{",
            "[1,2]",
            "null",
            r#"{"Type":"Notification"}"#,
            &envelope("not json, not base64 !"),
            &envelope(&STANDARD.encode("still not json")),
            &envelope(r#"{"type":"update-ssh-keys"}"#),
            &envelope(r#"{"version":2}"#),
            &envelope(r#"{"version":2,"type":"update-ssh-keys","keypair":5}"#),
            &envelope(r#"{"version":1,"type":"x"}"#),
            "\u{0}\u{1}binary",
        ] {
            match parse_body(body) {
                Received::Poison { reason } => {
                    assert!(!reason.contains('\n'), "one line: {reason}");
                }
                other => panic!("{body:?} should be poison, got {other:?}"),
            }
        }
    }
}
