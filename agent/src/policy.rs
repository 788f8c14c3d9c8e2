//! The IAM policy the agent's instance role needs: exactly the calls the agent makes.

use cgcloud_common::Namespace;
use serde_json::{json, Value};

use crate::ack::{TAG_KEYS_APPLIED, TAG_KEYS_HASH};
use crate::names;

/// The policy document for boxes of namespace `ns` in partition `partition` (`aws`,
/// `aws-cn`, `aws-us-gov`; see `cgcloud_common::partition_for_region`).
///
/// | Call | Why | Resource |
/// |---|---|---|
/// | `ec2:DescribeKeyPairs` | expand the globs, read public keys | `*` (no resource-level permissions) |
/// | `ec2:CreateTags` | acknowledge the applied key set | instances; only the two `cgcloud:keys-*` tag keys |
/// | `iam:GetUser`, `iam:GetGroup` | `@user`, `@@group` | users, groups |
/// | `sns:CreateTopic`, `sns:Subscribe` | wire the queue to the namespace's topic | that topic |
/// | `sqs:CreateQueue`, `sqs:GetQueueUrl`, `sqs:GetQueueAttributes`, `sqs:SetQueueAttributes`, `sqs:ReceiveMessage`, `sqs:DeleteMessage` | own queue | the namespace's agent queues |
///
/// Region and account are `*` because an instance profile serves the namespace in every
/// region of the account. The agent never deletes queues or subscriptions; the host does.
pub fn iam_policy(ns: &Namespace, partition: &str) -> Value {
    let topic = names::topic_name(ns);
    let queues = format!("{}*", names::queue_prefix(ns));
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ExpandKeypairGlobs",
                "Effect": "Allow",
                "Action": ["ec2:DescribeKeyPairs"],
                "Resource": "*"
            },
            {
                "Sid": "AcknowledgeAppliedKeys",
                "Effect": "Allow",
                "Action": ["ec2:CreateTags"],
                "Resource": format!("arn:{partition}:ec2:*:*:instance/*"),
                "Condition": {
                    "ForAllValues:StringEquals": {"aws:TagKeys": [TAG_KEYS_HASH, TAG_KEYS_APPLIED]}
                }
            },
            {
                "Sid": "ExpandIamPrincipals",
                "Effect": "Allow",
                "Action": ["iam:GetUser", "iam:GetGroup"],
                "Resource": [
                    format!("arn:{partition}:iam::*:user/*"),
                    format!("arn:{partition}:iam::*:group/*")
                ]
            },
            {
                "Sid": "NamespaceTopic",
                "Effect": "Allow",
                "Action": ["sns:CreateTopic", "sns:Subscribe"],
                "Resource": format!("arn:{partition}:sns:*:*:{topic}")
            },
            {
                "Sid": "OwnQueue",
                "Effect": "Allow",
                "Action": [
                    "sqs:CreateQueue",
                    "sqs:GetQueueUrl",
                    "sqs:GetQueueAttributes",
                    "sqs:SetQueueAttributes",
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage"
                ],
                "Resource": format!("arn:{partition}:sqs:*:*:{queues}")
            }
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_only_the_namespace_resources() {
        let ns = Namespace::parse("/alice/").unwrap();
        let p = iam_policy(&ns, "aws");
        let text = p.to_string();
        let topic = names::topic_name(&ns);
        assert!(
            text.contains(&format!("\"arn:aws:sns:*:*:{topic}\"")),
            "{text}"
        );
        assert!(
            text.contains(&format!("\"arn:aws:sqs:*:*:{topic}_*\"")),
            "{text}"
        );
        let actions: Vec<&str> = p["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["Action"].as_array().unwrap())
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(
            actions,
            [
                "ec2:DescribeKeyPairs",
                "ec2:CreateTags",
                "iam:GetUser",
                "iam:GetGroup",
                "sns:CreateTopic",
                "sns:Subscribe",
                "sqs:CreateQueue",
                "sqs:GetQueueUrl",
                "sqs:GetQueueAttributes",
                "sqs:SetQueueAttributes",
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage"
            ]
        );
        assert!(
            actions.iter().all(|a| !a.contains('*')),
            "no wildcard actions"
        );
        assert!(iam_policy(&ns, "aws-cn")
            .to_string()
            .contains("arn:aws-cn:sqs:"));
    }
}
