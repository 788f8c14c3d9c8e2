//! The IAM policy the agent's instance role needs: exactly the calls the agent makes.

use cgcloud_common::Namespace;
use serde_json::{json, Value};

use crate::ack::{TAG_KEYS_APPLIED, TAG_KEYS_HASH, TAG_PROBLEM};
use crate::names;

/// The policy document for boxes of namespace `ns` in partition `partition` (`aws`,
/// `aws-cn`, `aws-us-gov`; see `cgcloud_common::partition_for_region`).
///
/// | Call | Why | Resource |
/// |---|---|---|
/// | `ec2:DescribeKeyPairs` | expand the globs, read public keys | `*` (no resource-level permissions) |
/// | `ec2:DescribeInstances` | a cluster node finds its leader's address and host key at boot (`discover`) | `*` (no resource-level permissions) |
/// | `ec2:CreateTags` | acknowledge the applied key set; report a problem | the box itself (`aws:ARN` = `ec2:SourceInstanceARN`); only the two `cgcloud:keys-*` tag keys and `cgcloud:agent-problem` |
/// | `ec2:DeleteTags` | clear the problem it reported once it ended | the box itself; only `cgcloud:agent-problem` |
/// | `iam:GetUser`, `iam:GetGroup` | `@user`, `@@group` | users, groups |
/// | `sqs:GetQueueUrl`, `sqs:GetQueueAttributes`, `sqs:ReceiveMessage`, `sqs:DeleteMessage` | own queue | the namespace's agent queues tagged with the box's own instance ARN |
///
/// Region and account are `*` because an instance profile serves the namespace in every
/// region of the account. The host creates, wires and deletes queues and subscriptions; the
/// agent has no SNS permission and creates nothing.
/// NOTE: moto does not evaluate IAM conditions; the conditions follow AWS's documented keys
/// (`aws:ARN` with the `ec2:SourceInstanceARN` variable, SQS's `aws:ResourceTag`).
pub fn iam_policy(ns: &Namespace, partition: &str) -> Value {
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
                "Sid": "FindClusterLeader",
                "Effect": "Allow",
                "Action": ["ec2:DescribeInstances"],
                "Resource": "*"
            },
            {
                // Only the box itself (the instance whose role credentials sign the call), and
                // only the agent's three tags.
                "Sid": "AcknowledgeAppliedKeys",
                "Effect": "Allow",
                "Action": ["ec2:CreateTags"],
                "Resource": format!("arn:{partition}:ec2:*:*:instance/*"),
                "Condition": {
                    "StringEquals": {"aws:ARN": "${ec2:SourceInstanceARN}"},
                    "ForAllValues:StringEquals": {"aws:TagKeys": [TAG_KEYS_HASH, TAG_KEYS_APPLIED, TAG_PROBLEM]}
                }
            },
            {
                // The agent removes its problem tag once the problem ended; nothing else.
                "Sid": "ClearProblem",
                "Effect": "Allow",
                "Action": ["ec2:DeleteTags"],
                "Resource": format!("arn:{partition}:ec2:*:*:instance/*"),
                "Condition": {
                    "StringEquals": {"aws:ARN": "${ec2:SourceInstanceARN}"},
                    "ForAllValues:StringEquals": {"aws:TagKeys": [TAG_PROBLEM]}
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
                // cgcloud creates each box's queue and subscription and tags the queue with the
                // instance's ARN: a box reads and deletes messages of its own queue only.
                "Sid": "OwnQueue",
                "Effect": "Allow",
                "Action": [
                    "sqs:GetQueueUrl",
                    "sqs:GetQueueAttributes",
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage"
                ],
                "Resource": format!("arn:{partition}:sqs:*:*:{queues}"),
                "Condition": {
                    "StringEquals": {format!("aws:ResourceTag/{}", crate::wiring::QUEUE_INSTANCE_TAG): "${ec2:SourceInstanceARN}"}
                }
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
        assert!(!text.contains("arn:aws:sns:"), "no SNS permission: {text}");
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
                "ec2:DescribeInstances",
                "ec2:CreateTags",
                "ec2:DeleteTags",
                "iam:GetUser",
                "iam:GetGroup",
                "sqs:GetQueueUrl",
                "sqs:GetQueueAttributes",
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage"
            ]
        );
        assert!(
            actions.iter().all(|a| !a.contains('*')),
            "no wildcard actions"
        );
        // The box tags only itself and reads only the queue tagged with its own ARN.
        let st = p["Statement"].as_array().unwrap();
        let tags = st
            .iter()
            .find(|s| s["Sid"] == "AcknowledgeAppliedKeys")
            .unwrap();
        assert_eq!(
            tags["Condition"]["StringEquals"]["aws:ARN"],
            "${ec2:SourceInstanceARN}"
        );
        let queue = st.iter().find(|s| s["Sid"] == "OwnQueue").unwrap();
        assert_eq!(
            queue["Condition"]["StringEquals"]["aws:ResourceTag/cgcloud:instance-arn"],
            "${ec2:SourceInstanceARN}"
        );
        assert!(iam_policy(&ns, "aws-cn")
            .to_string()
            .contains("arn:aws-cn:sqs:"));
    }
}
