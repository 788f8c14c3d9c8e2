//! EC2 calls cgcloud makes in more than one place.

use std::time::{Duration, Instant};

use aws_sdk_ec2::types::{Filter, Image, Instance, InstanceStateName, KeyPairInfo};

use super::{error_code, AwsResultExt};
use crate::errors::Result;
use crate::{bail_user, user_error};

/// How often state is polled while waiting.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

pub fn filter(name: &str, values: &[&str]) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.iter().map(|v| v.to_string()).collect()))
        .build()
}

/// Every instance that is not terminated and whose `Name` tag is exactly `aws_name` (so child
/// namespaces are excluded), carrying every tag of `tags` (key, value), sorted as the original
/// sorts them: by launch time, private IP address, then instance ID.
pub async fn instances_named(
    ec2: &aws_sdk_ec2::Client,
    aws_name: &str,
    tags: &[(&str, &str)],
) -> Result<Vec<Instance>> {
    let mut filters = vec![
        filter("tag:Name", &[aws_name]),
        filter(
            "instance-state-name",
            &["pending", "running", "shutting-down", "stopping", "stopped"],
        ),
    ];
    for (key, value) in tags {
        filters.push(filter(&format!("tag:{key}"), &[value]));
    }
    let mut pages = ec2
        .describe_instances()
        .set_filters(Some(filters))
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.aws(|| format!("failed to list instances named `{aws_name}`"))?;
        for r in page.reservations() {
            out.extend(r.instances().iter().cloned());
        }
    }
    out.sort_by_key(sort_key);
    Ok(out)
}

fn sort_key(i: &Instance) -> (i64, i64, String, String) {
    let t = i
        .launch_time()
        .map(|t| (t.secs(), t.subsec_nanos() as i64))
        .unwrap_or((0, 0));
    (
        t.0,
        t.1,
        i.private_ip_address().unwrap_or_default().to_string(),
        i.instance_id().unwrap_or_default().to_string(),
    )
}

/// One instance by ID, whatever its state; `None` if EC2 does not know it.
pub async fn instance_by_id(ec2: &aws_sdk_ec2::Client, id: &str) -> Result<Option<Instance>> {
    let res = ec2.describe_instances().instance_ids(id).send().await;
    match res {
        Ok(out) => Ok(out
            .reservations()
            .iter()
            .flat_map(|r| r.instances().iter().cloned())
            .next()),
        Err(e)
            if matches!(
                error_code(&e),
                Some("InvalidInstanceID.NotFound" | "InvalidInstanceID.Malformed")
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e).aws(|| format!("failed to describe instance `{id}`")),
    }
}

pub fn tag<'a>(tags: &'a [aws_sdk_ec2::types::Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

pub fn state_of(i: &Instance) -> Option<InstanceStateName> {
    i.state().and_then(|s| s.name()).cloned()
}

/// Polls until the instance is in `target`, failing at once if it reaches a state outside
/// `passing` and after `timeout` in any case.
pub async fn wait_for_state(
    ec2: &aws_sdk_ec2::Client,
    id: &str,
    passing: &[InstanceStateName],
    target: InstanceStateName,
    timeout: Duration,
) -> Result<Instance> {
    let deadline = Instant::now() + timeout;
    loop {
        let i = instance_by_id(ec2, id)
            .await?
            .ok_or_else(|| user_error!("instance `{id}` has disappeared"))?;
        let state = state_of(&i);
        if state.as_ref() == Some(&target) {
            return Ok(i);
        }
        let state_text = state
            .as_ref()
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| "unknown".into());
        if !state.as_ref().is_some_and(|s| passing.contains(s)) {
            bail_user!(
                "instance `{id}` is `{state_text}` while waiting for it to be `{}`",
                target.as_str()
            );
        }
        if Instant::now() >= deadline {
            bail_user!(
                "instance `{id}` was still `{state_text}` after {}s of waiting for it to be `{}`",
                timeout.as_secs(),
                target.as_str()
            );
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Images owned by `account` (`Owners=self`, never a name filter alone, and the owner checked
/// again on what comes back) whose name matches `name_pattern` (EC2 wildcards).
pub async fn own_images(
    ec2: &aws_sdk_ec2::Client,
    account: &str,
    name_pattern: &str,
) -> Result<Vec<Image>> {
    let out = ec2
        .describe_images()
        .owners("self")
        .filters(filter("name", &[name_pattern]))
        .send()
        .await
        .aws(|| format!("failed to list images named `{name_pattern}`"))?;
    Ok(out
        .images()
        .iter()
        .filter(|i| i.owner_id() == Some(account))
        .cloned()
        .collect())
}

/// One image owned by `account`, by ID.
pub async fn own_image_by_id(
    ec2: &aws_sdk_ec2::Client,
    account: &str,
    id: &str,
) -> Result<Option<Image>> {
    let res = ec2
        .describe_images()
        .owners("self")
        .image_ids(id)
        .send()
        .await;
    match res {
        // NOTE: moto ignores `Owners` when `ImageIds` are given; EC2 does not. Check the owner.
        Ok(out) => Ok(out
            .images()
            .iter()
            .find(|i| i.owner_id() == Some(account))
            .cloned()),
        Err(e)
            if matches!(
                error_code(&e),
                Some("InvalidAMIID.NotFound" | "InvalidAMIID.Malformed")
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e).aws(|| format!("failed to describe image `{id}`")),
    }
}

/// A key pair with its public key, or `None` if there is none of that name.
pub async fn key_pair(ec2: &aws_sdk_ec2::Client, name: &str) -> Result<Option<KeyPairInfo>> {
    let res = ec2
        .describe_key_pairs()
        .key_names(name)
        .include_public_key(true)
        .send()
        .await;
    match res {
        Ok(out) => Ok(out
            .key_pairs()
            .iter()
            .find(|k| k.key_name() == Some(name))
            .cloned()),
        Err(e) if error_code(&e) == Some("InvalidKeyPair.NotFound") => Ok(None),
        Err(e) => Err(e).aws(|| format!("failed to look up key pair `{name}`")),
    }
}

/// The CPU architectures (`x86_64`, `arm64`, …) an instance type runs, or `None` if EC2 does
/// not know the type in this region.
pub async fn instance_type_architectures(
    ec2: &aws_sdk_ec2::Client,
    instance_type: &str,
) -> Result<Option<Vec<String>>> {
    let res = ec2
        .describe_instance_types()
        .instance_types(instance_type.into())
        .send()
        .await;
    match res {
        Ok(out) => Ok(out.instance_types().first().map(|t| {
            t.processor_info()
                .map(|p| {
                    p.supported_architectures()
                        .iter()
                        .map(|a| a.as_str().to_string())
                        .collect()
                })
                .unwrap_or_default()
        })),
        Err(e)
            if matches!(
                error_code(&e),
                Some("InvalidInstanceType" | "InvalidParameterValue")
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e).aws(|| format!("failed to look up instance type `{instance_type}`")),
    }
}
