//! The notification wiring: the namespace's SNS topic, each instance's SQS queue and the
//! subscription between them. Names are in [`crate::names`].
//!
//! * `cgcloud create` calls [`ensure_instance_wiring`] once the instance exists: the host, not
//!   the box, creates the queue (tagged with the instance's ARN) and the subscription, so the
//!   box's IAM role needs no SNS or queue-creating permissions at all.
//! * The agent calls [`find_instance_queue`] at start (and again if its queue vanished); a box
//!   without a queue (booted outside cgcloud) refreshes periodically only.
//! * `cgcloud register-key` and friends call [`publish_update`].
//! * `cgcloud terminate` calls [`delete_instance_wiring`] once the instance is terminated;
//!   `cgcloud cleanup` calls [`sweep_namespace`] with the namespace's live instances.
//!
//! All of them are idempotent, and the deleting ones touch only queues and subscriptions whose
//! names are the namespace's agent queues ([`crate::names::instance_of_queue`]).
//! NOTE: the subscription is removed *before* the queue: on moto a subscription to a missing
//! queue makes every Publish to the topic fail (`AWS.SimpleQueueService.NonExistentQueue`);
//! AWS would drop the delivery silently.

use anyhow::anyhow;
use aws_sdk_sqs::error::ProvideErrorMetadata as _;
use aws_sdk_sqs::types::QueueAttributeName;
use cgcloud_common::Namespace;

use crate::aws::{describe, is_missing_queue, is_not_found};
use crate::names;

/// How long an SQS long poll waits (the SQS maximum).
pub const LONG_POLL_SECONDS: i32 = 20;
/// How long a received message stays invisible to other receivers. Short: the agent deletes
/// what it receives at once, and a long poll whose agent was stopped while it waited (a restart
/// by `keys set`, a reboot) can still be handed a message on the server's side, which then
/// comes back to the new agent only after this.
pub const VISIBILITY_TIMEOUT_SECONDS: i32 = 5;
/// How long an unread notification is kept: older ones are pointless, the agent reconciles at
/// start anyway.
pub const RETENTION_SECONDS: i32 = 3600;

/// The wiring of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wiring {
    pub topic_arn: String,
    pub queue_url: String,
    pub queue_arn: String,
    pub subscription_arn: String,
}

/// Tag on an instance's queue holding the instance's ARN: the agent's IAM policy lets a box
/// use only the queue whose tag equals its own `ec2:SourceInstanceARN`.
pub const QUEUE_INSTANCE_TAG: &str = "cgcloud:instance-arn";

/// Tag on an instance's queue holding the ARN of its subscription to the namespace's topic, so
/// that removing the wiring unsubscribes it directly instead of listing the topic's
/// subscriptions (one page per hundred boxes, for every box removed).
pub const QUEUE_SUBSCRIPTION_TAG: &str = "cgcloud:subscription";

/// An instance's queue, as its agent uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceQueue {
    pub queue_url: String,
    pub queue_arn: String,
}

/// What a deletion removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    /// Names of the queues deleted.
    pub queues: Vec<String>,
    /// ARNs of the subscriptions removed.
    pub subscriptions: Vec<String>,
}

/// Creates the namespace's topic if needed; returns its ARN.
pub async fn ensure_topic(sns: &aws_sdk_sns::Client, ns: &Namespace) -> anyhow::Result<String> {
    let name = names::topic_name(ns);
    let out = sns
        .create_topic()
        .name(&name)
        .send()
        .await
        .map_err(|e| anyhow!("failed to create SNS topic `{name}`: {}", describe(&e)))?;
    out.topic_arn()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("SNS CreateTopic `{name}` returned no ARN"))
}

/// The ARN of the namespace's topic, `None` if it does not exist. Creates nothing.
pub async fn find_topic(
    sns: &aws_sdk_sns::Client,
    ns: &Namespace,
) -> anyhow::Result<Option<String>> {
    let suffix = format!(":{}", names::topic_name(ns));
    let mut pages = sns.list_topics().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| anyhow!("failed to list SNS topics: {}", describe(&e)))?;
        if let Some(arn) = page
            .topics()
            .iter()
            .filter_map(|t| t.topic_arn())
            .find(|arn| arn.ends_with(&suffix))
        {
            return Ok(Some(arn.to_string()));
        }
    }
    Ok(None)
}

fn queue_name(ns: &Namespace, instance_id: &str) -> anyhow::Result<String> {
    names::queue_name(ns, instance_id).ok_or_else(|| {
        anyhow!("`{instance_id}` is not an EC2 instance ID (`i-` and 8 or 17 hex digits)")
    })
}

/// The instance's queue, made by [`ensure_instance_wiring`]; an error if there is none.
pub async fn find_instance_queue(
    sqs: &aws_sdk_sqs::Client,
    ns: &Namespace,
    instance_id: &str,
) -> anyhow::Result<InstanceQueue> {
    let name = queue_name(ns, instance_id)?;
    let queue_url = queue_url(sqs, &name).await?.ok_or_else(|| {
        anyhow!("there is no notification queue `{name}` for this instance (cgcloud makes it when it creates the box)")
    })?;
    let queue_arn = queue_arn(sqs, &queue_url, &name).await?;
    Ok(InstanceQueue {
        queue_url,
        queue_arn,
    })
}

/// Creates the topic, the instance's queue (long poll 20 s, one hour retention, tagged
/// [`QUEUE_INSTANCE_TAG`] with `instance_arn`), the queue policy letting the topic deliver,
/// and the subscription. Safe to call again.
pub async fn ensure_instance_wiring(
    sqs: &aws_sdk_sqs::Client,
    sns: &aws_sdk_sns::Client,
    ns: &Namespace,
    instance_id: &str,
    instance_arn: &str,
) -> anyhow::Result<Wiring> {
    let name = queue_name(ns, instance_id)?;
    let topic_arn = ensure_topic(sns, ns).await?;
    let attributes = [
        (
            QueueAttributeName::ReceiveMessageWaitTimeSeconds,
            LONG_POLL_SECONDS.to_string(),
        ),
        (
            QueueAttributeName::VisibilityTimeout,
            VISIBILITY_TIMEOUT_SECONDS.to_string(),
        ),
        (
            QueueAttributeName::MessageRetentionPeriod,
            RETENTION_SECONDS.to_string(),
        ),
    ];
    let created = sqs
        .create_queue()
        .queue_name(&name)
        .set_attributes(Some(attributes.iter().cloned().collect()))
        .send()
        .await;
    let queue_url = match created {
        Ok(out) => out
            .queue_url()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("SQS CreateQueue `{name}` returned no URL"))?,
        // The queue exists with other attributes (made by another version): adopt it.
        Err(e) if matches!(e.code(), Some("QueueAlreadyExists" | "QueueNameExists")) => {
            let url = queue_url(sqs, &name)
                .await?
                .ok_or_else(|| anyhow!("SQS queue `{name}` vanished while being set up"))?;
            sqs.set_queue_attributes()
                .queue_url(&url)
                .set_attributes(Some(attributes.iter().cloned().collect()))
                .send()
                .await
                .map_err(|e| anyhow!("failed to update SQS queue `{name}`: {}", describe(&e)))?;
            url
        }
        Err(e) => {
            return Err(anyhow!(
                "failed to create SQS queue `{name}`: {}",
                describe(&e)
            ))
        }
    };
    sqs.tag_queue()
        .queue_url(&queue_url)
        .tags(QUEUE_INSTANCE_TAG, instance_arn)
        .send()
        .await
        .map_err(|e| anyhow!("failed to tag SQS queue `{name}`: {}", describe(&e)))?;
    let queue_arn = queue_arn(sqs, &queue_url, &name).await?;
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "cgcloud-agent-notifications",
            "Effect": "Allow",
            "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
        }],
    });
    sqs.set_queue_attributes()
        .queue_url(&queue_url)
        .attributes(QueueAttributeName::Policy, policy.to_string())
        .send()
        .await
        .map_err(|e| {
            anyhow!(
                "failed to set the policy of SQS queue `{name}`: {}",
                describe(&e)
            )
        })?;
    // Subscribe is idempotent: the same topic, protocol and endpoint give the same subscription.
    let sub = sns
        .subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .return_subscription_arn(true)
        .send()
        .await
        .map_err(|e| {
            anyhow!(
                "failed to subscribe SQS queue `{name}` to `{topic_arn}`: {}",
                describe(&e)
            )
        })?;
    let subscription_arn = sub.subscription_arn().unwrap_or_default().to_string();
    if !subscription_arn.is_empty() {
        sqs.tag_queue()
            .queue_url(&queue_url)
            .tags(QUEUE_SUBSCRIPTION_TAG, &subscription_arn)
            .send()
            .await
            .map_err(|e| anyhow!("failed to tag SQS queue `{name}`: {}", describe(&e)))?;
    }
    Ok(Wiring {
        subscription_arn,
        topic_arn,
        queue_url,
        queue_arn,
    })
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str, name: &str) -> anyhow::Result<String> {
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| {
            anyhow!(
                "failed to read the ARN of SQS queue `{name}`: {}",
                describe(&e)
            )
        })?;
    attrs
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| anyhow!("SQS queue `{name}` has no ARN"))
}

/// The URL of a queue, `None` if it does not exist.
async fn queue_url(sqs: &aws_sdk_sqs::Client, name: &str) -> anyhow::Result<Option<String>> {
    match sqs.get_queue_url().queue_name(name).send().await {
        Ok(out) => Ok(out.queue_url().map(str::to_string)),
        Err(e) if is_missing_queue(&e) => Ok(None),
        Err(e) => Err(anyhow!(
            "failed to look up SQS queue `{name}`: {}",
            describe(&e)
        )),
    }
}

/// The `(subscription ARN, endpoint)` of every SQS subscription of a topic.
async fn sqs_subscriptions(
    sns: &aws_sdk_sns::Client,
    topic_arn: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut pages = sns
        .list_subscriptions_by_topic()
        .topic_arn(topic_arn)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = match page {
            Ok(p) => p,
            Err(e) if is_not_found(&e) => break,
            Err(e) => {
                return Err(anyhow!(
                    "failed to list the subscriptions of `{topic_arn}`: {}",
                    describe(&e)
                ))
            }
        };
        for s in page.subscriptions() {
            if let (Some("sqs"), Some(arn), Some(endpoint)) =
                (s.protocol(), s.subscription_arn(), s.endpoint())
            {
                out.push((arn.to_string(), endpoint.to_string()));
            }
        }
    }
    Ok(out)
}

async fn unsubscribe(sns: &aws_sdk_sns::Client, arn: &str) -> anyhow::Result<()> {
    match sns.unsubscribe().subscription_arn(arn).send().await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(anyhow!(
            "failed to remove subscription `{arn}`: {}",
            describe(&e)
        )),
    }
}

async fn delete_queue(sqs: &aws_sdk_sqs::Client, url: &str, name: &str) -> anyhow::Result<bool> {
    match sqs.delete_queue().queue_url(url).send().await {
        Ok(_) => Ok(true),
        Err(e) if is_missing_queue(&e) => Ok(false),
        Err(e) => Err(anyhow!(
            "failed to delete SQS queue `{name}`: {}",
            describe(&e)
        )),
    }
}

/// The queue name at the end of an SQS ARN or URL.
fn last_segment(s: &str) -> &str {
    s.rsplit([':', '/']).next().unwrap_or(s)
}

/// Removes one instance's subscription and queue. Call it once the instance is terminated
/// (a running agent would create them again). Missing pieces are not an error.
pub async fn delete_instance_wiring(
    sqs: &aws_sdk_sqs::Client,
    sns: &aws_sdk_sns::Client,
    ns: &Namespace,
    instance_id: &str,
) -> anyhow::Result<Removed> {
    let name = queue_name(ns, instance_id)?;
    let mut removed = Removed::default();
    let url = queue_url(sqs, &name).await?;
    // The subscription the queue's tag names, if it is one of the namespace's topic: no listing.
    let tagged = match &url {
        Some(url) => tagged_subscription(sqs, url, &name, ns).await?,
        None => None,
    };
    if let Some(arn) = tagged {
        unsubscribe(sns, &arn).await?;
        removed.subscriptions.push(arn);
    } else if url.is_some() {
        // A queue made before the tag: find its subscription on the topic. (Without a queue
        // there is nothing to look for per instance: a box made without the agent, or wiring
        // removed already; `cgcloud cleanup` sweeps subscriptions whose queue is gone.)
        if let Some(topic_arn) = find_topic(sns, ns).await? {
            for (arn, endpoint) in sqs_subscriptions(sns, &topic_arn).await? {
                if endpoint.starts_with("arn:") && last_segment(&endpoint) == name {
                    unsubscribe(sns, &arn).await?;
                    removed.subscriptions.push(arn);
                }
            }
        }
    }
    if let Some(url) = url {
        if delete_queue(sqs, &url, &name).await? {
            removed.queues.push(name);
        }
    }
    Ok(removed)
}

/// The subscription ARN in a queue's [`QUEUE_SUBSCRIPTION_TAG`], if it is a subscription of
/// the namespace's topic (anything else is never unsubscribed on the tag's word).
async fn tagged_subscription(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    name: &str,
    ns: &Namespace,
) -> anyhow::Result<Option<String>> {
    let tags = match sqs.list_queue_tags().queue_url(url).send().await {
        Ok(out) => out,
        Err(e) if is_missing_queue(&e) => return Ok(None),
        Err(e) => {
            return Err(anyhow!(
                "failed to read the tags of SQS queue `{name}`: {}",
                describe(&e)
            ))
        }
    };
    let arn = tags
        .tags()
        .and_then(|t| t.get(QUEUE_SUBSCRIPTION_TAG))
        .cloned();
    Ok(arn.filter(|a| is_topic_subscription(a, &names::topic_name(ns))))
}

/// Whether `arn` is a subscription of the SNS topic named `topic`:
/// `arn:<partition>:sns:<region>:<account>:<topic>:<id>`.
fn is_topic_subscription(arn: &str, topic: &str) -> bool {
    let parts: Vec<&str> = arn.split(':').collect();
    parts.len() == 7
        && parts[0] == "arn"
        && parts[2] == "sns"
        && parts[5] == topic
        && !parts[6].is_empty()
}

/// The `(name, URL)` of every queue named like one of the namespace's agent queues, in this
/// region.
pub async fn namespace_queues(
    sqs: &aws_sdk_sqs::Client,
    ns: &Namespace,
) -> anyhow::Result<Vec<(String, String)>> {
    let prefix = names::queue_prefix(ns);
    let mut existing = Vec::new();
    let mut pages = sqs
        .list_queues()
        .queue_name_prefix(&prefix)
        .max_results(1000)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| anyhow!("failed to list SQS queues: {}", describe(&e)))?;
        for url in page.queue_urls() {
            existing.push((last_segment(url).to_string(), url.to_string()));
        }
    }
    Ok(existing)
}

/// `cleanup`: removes the wiring of every instance of the namespace for which `is_live`
/// says no, and subscriptions of the topic whose queue is gone. Queues and subscriptions not
/// named like the namespace's agent queues are left alone.
pub async fn sweep_namespace(
    sqs: &aws_sdk_sqs::Client,
    sns: &aws_sdk_sns::Client,
    ns: &Namespace,
    is_live: impl Fn(&str) -> bool,
) -> anyhow::Result<Removed> {
    let mut removed = Removed::default();
    let existing = namespace_queues(sqs, ns).await?;
    let gone = |queue: &str| names::instance_of_queue(ns, queue).is_some_and(|id| !is_live(id));
    if let Some(topic_arn) = find_topic(sns, ns).await? {
        for (arn, endpoint) in sqs_subscriptions(sns, &topic_arn).await? {
            let queue = last_segment(&endpoint);
            let ours = names::instance_of_queue(ns, queue).is_some();
            let dangling = !existing.iter().any(|(n, _)| n == queue);
            if ours && (gone(queue) || dangling) {
                unsubscribe(sns, &arn).await?;
                removed.subscriptions.push(arn);
            }
        }
    }
    for (name, url) in &existing {
        if gone(name) && delete_queue(sqs, url, name).await? {
            removed.queues.push(name.clone());
        }
    }
    Ok(removed)
}

/// Publishes a message to the namespace's topic. Returns `false` without publishing if the
/// topic does not exist (no agent has started in this namespace and region yet).
pub async fn publish(
    sns: &aws_sdk_sns::Client,
    ns: &Namespace,
    message: &str,
) -> anyhow::Result<bool> {
    let Some(topic_arn) = find_topic(sns, ns).await? else {
        return Ok(false);
    };
    sns.publish()
        .topic_arn(&topic_arn)
        .message(message)
        .send()
        .await
        .map_err(|e| {
            anyhow!(
                "failed to notify the agents through `{topic_arn}`: {}; the boxes still pick up \
                 the change at their next periodic refresh",
                describe(&e)
            )
        })?;
    Ok(true)
}

/// Tells the namespace's agents to re-read the key pairs now (after `register-key`, after a
/// key pair was deleted, after the globs of a box changed).
pub async fn publish_update(
    sns: &aws_sdk_sns::Client,
    ns: &Namespace,
    update: &crate::message::UpdateSshKeys,
) -> anyhow::Result<bool> {
    publish(sns, ns, &crate::message::encode_update(update)).await
}

#[cfg(test)]
mod tests {
    use super::{is_topic_subscription, last_segment};

    #[test]
    fn only_subscriptions_of_the_topic_are_taken_from_a_tag() {
        let topic = "cgcloud-agents_alice";
        assert!(is_topic_subscription(
            "arn:aws:sns:us-west-2:123456789012:cgcloud-agents_alice:5e3f",
            topic
        ));
        for bad in [
            "arn:aws:sns:us-west-2:123456789012:cgcloud-agents_bob:5e3f",
            "arn:aws:sns:us-west-2:123456789012:cgcloud-agents_alice",
            "arn:aws:sns:us-west-2:123456789012:cgcloud-agents_alice:",
            "arn:aws:sqs:us-west-2:123456789012:cgcloud-agents_alice:5e3f",
            "arn:aws:sns:us-west-2:123456789012:cgcloud-agents_alice:5e3f:x",
            "",
        ] {
            assert!(!is_topic_subscription(bad, topic), "{bad}");
        }
    }

    #[test]
    fn queue_names_from_arns_and_urls() {
        assert_eq!(
            last_segment("arn:aws:sqs:us-east-1:123456789012:q_i-1"),
            "q_i-1"
        );
        assert_eq!(
            last_segment("http://127.0.0.1:5000/123456789012/q_i-1"),
            "q_i-1"
        );
    }
}
