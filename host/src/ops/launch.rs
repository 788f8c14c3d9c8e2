//! Launching instances and waiting for them: RunInstances with every tag applied at launch,
//! the bounded waits of the box template (running, an address, SSH with the pinned host key,
//! cloud-init finished), and the phase timings `create` and `recreate` report.

use std::time::Instant;

use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, HttpTokensState, IamInstanceProfileSpecification, Image,
    Instance, InstanceMarketOptionsRequest, InstanceMetadataEndpointState,
    InstanceMetadataOptionsRequest, InstanceStateName, InstanceType, MarketType, Placement,
    ResourceType, SpotMarketOptions, Tag, TagSpecification, VolumeType,
};
use base64::Engine as _;
use serde::Serialize;

use crate::aws::{self, error_code, AwsResultExt};
use crate::config::timeouts;
use crate::ctx::Context;
use crate::errors::Result;
use crate::ssh::remote::Remote;
use crate::ssh::{SshSettings, Target};
use crate::{bail_user, user_error};

/// Phase timings, in seconds, in the order they happened.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Phases(pub Vec<(String, f64)>);

impl Phases {
    pub fn record(&mut self, name: &str, since: Instant) -> Instant {
        self.0
            .push((name.to_string(), since.elapsed().as_secs_f64()));
        Instant::now()
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::json!((v * 1000.0).round() / 1000.0)))
                .collect(),
        )
    }

    pub fn summary(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k} {v:.1}s"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Everything RunInstances needs.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub image: Image,
    pub instance_type: String,
    pub key_name: String,
    pub security_group_ids: Vec<String>,
    pub subnet_id: Option<String>,
    pub instance_profile_arn: Option<String>,
    pub user_data: String,
    pub root_volume_size: Option<u32>,
    pub root_volume_type: String,
    pub encrypt_root: bool,
    pub extra_devices: Vec<cgcloud_plugin_api::BlockDevice>,
    pub spot_max_price: Option<f64>,
    /// Tags of the instance and its volumes, applied at launch.
    pub tags: Vec<(String, String)>,
}

/// Tag key of instances and images: the token of the call (RunInstances, CreateImage) that made
/// them, so that a retried call whose first answer was lost finds what its first attempt made.
pub const LAUNCH_TAG: &str = "cgcloud:launch";

/// A new launch token: 32 random hex digits.
pub fn launch_token() -> Result<String> {
    Ok(hex::encode(crate::fsutil::random_bytes(16)?))
}

/// Terminates instances carrying launch token `token` that are not among `launched`: a retried
/// RunInstances whose first answer was lost after it took effect launched them, where the
/// endpoint did not honour the client token. A failure is a warning naming them: they are marked
/// `setting-up` with this run's first claim, so `cleanup` finds them once it runs out.
async fn terminate_duplicates(ctx: &Context, token: &str, launched: &[Instance]) {
    let ec2 = ctx.aws.ec2();
    let found = ec2
        .describe_instances()
        .filters(aws::filter(&format!("tag:{LAUNCH_TAG}"), &[token]))
        .filters(aws::filter(
            "instance-state-name",
            &["pending", "running", "stopping", "stopped"],
        ))
        .send()
        .await;
    let extra: Vec<String> = match found {
        Ok(out) => out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter_map(|i| i.instance_id())
            .filter(|id| !launched.iter().any(|l| l.instance_id() == Some(*id)))
            .map(str::to_string)
            .collect(),
        Err(e) => {
            ctx.shell.debug(format!(
                "could not look for instances launched twice: {}",
                aws::describe(&e)
            ));
            return;
        }
    };
    if extra.is_empty() {
        return;
    }
    let ids = extra.join("`, `");
    match ec2
        .terminate_instances()
        .set_instance_ids(Some(extra.clone()))
        .send()
        .await
    {
        Ok(_) => ctx.shell.warn(format!(
            "terminated `{ids}`: launched by a retry of RunInstances whose first answer was lost"
        )),
        Err(e) => ctx.shell.warn(format!(
            "`{ids}` were launched by a retry of RunInstances whose first answer was lost and could not be \
             terminated ({}); `cgcloud cleanup` terminates them once this run's claim runs out",
            aws::describe(&e)
        )),
    }
}

fn tags(spec: &LaunchSpec, kind: ResourceType) -> TagSpecification {
    let tags: Vec<Tag> = spec
        .tags
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(tags))
        .build()
}

fn block_devices(spec: &LaunchSpec) -> Vec<BlockDeviceMapping> {
    let mut out = Vec::new();
    if let Some(root) = spec.image.root_device_name() {
        let size = spec.root_volume_size.or_else(|| {
            spec.image
                .block_device_mappings()
                .iter()
                .find(|b| b.device_name() == Some(root))
                .and_then(|b| b.ebs())
                .and_then(|e| e.volume_size())
                .map(|s| s as u32)
        });
        let mut ebs = EbsBlockDevice::builder()
            .delete_on_termination(true)
            .volume_type(VolumeType::from(spec.root_volume_type.as_str()));
        if let Some(size) = size {
            ebs = ebs.volume_size(size as i32);
        }
        if spec.encrypt_root {
            ebs = ebs.encrypted(true);
        }
        out.push(
            BlockDeviceMapping::builder()
                .device_name(root)
                .ebs(ebs.build())
                .build(),
        );
    }
    for d in &spec.extra_devices {
        let mut m = BlockDeviceMapping::builder().device_name(&d.device_name);
        if let Some(size) = d.size_gib {
            m = m.ebs(
                EbsBlockDevice::builder()
                    .volume_size(size as i32)
                    .delete_on_termination(true)
                    .build(),
            );
        } else if let Some(v) = &d.virtual_name {
            m = m.virtual_name(v);
        }
        out.push(m.build());
    }
    out
}

/// Launches `count` instances of `spec` in one RunInstances (all or none).
pub async fn run_instances(
    ctx: &Context,
    spec: &LaunchSpec,
    count: usize,
) -> Result<Vec<Instance>> {
    let count = i32::try_from(count.max(1))
        .map_err(|_| user_error!("cannot launch {count} instances at once"))?;
    let ec2 = ctx.aws.ec2();
    // One token for this launch, sent as the client token (EC2 launches once however often the
    // request is retried) and as a tag (so that instances of a retried request are found where
    // an endpoint ignores the client token).
    let token = launch_token()?;
    let mut spec = spec.clone();
    spec.tags.push((LAUNCH_TAG.to_string(), token.clone()));
    let spec = &spec;
    let deadline = Instant::now() + super::prepare::CONSISTENCY_TIMEOUT;
    loop {
        let mut req = ec2
            .run_instances()
            .image_id(spec.image.image_id().unwrap_or_default())
            .min_count(count)
            .max_count(count)
            .instance_type(InstanceType::from(spec.instance_type.as_str()))
            .key_name(&spec.key_name)
            .set_security_group_ids(Some(spec.security_group_ids.clone()))
            .user_data(base64::engine::general_purpose::STANDARD.encode(&spec.user_data))
            .set_block_device_mappings(Some(block_devices(spec)))
            .tag_specifications(tags(spec, ResourceType::Instance))
            .tag_specifications(tags(spec, ResourceType::Volume))
            // IMDSv2 only, one hop: user data and instance-profile credentials are not readable
            // with a plain GET (SSRF) nor from containers behind the box.
            .metadata_options(
                InstanceMetadataOptionsRequest::builder()
                    .http_tokens(HttpTokensState::Required)
                    .http_put_response_hop_limit(1)
                    .http_endpoint(InstanceMetadataEndpointState::Enabled)
                    .build(),
            )
            .client_token(&token);
        if let Some(subnet) = &spec.subnet_id {
            req = req.subnet_id(subnet);
        } else {
            req = req.placement(Placement::builder().availability_zone(&ctx.zone).build());
        }
        if let Some(arn) = &spec.instance_profile_arn {
            req = req
                .iam_instance_profile(IamInstanceProfileSpecification::builder().arn(arn).build());
        }
        if let Some(price) = spec.spot_max_price {
            req = req.instance_market_options(
                InstanceMarketOptionsRequest::builder()
                    .market_type(MarketType::Spot)
                    .spot_options(
                        SpotMarketOptions::builder()
                            .max_price(format!("{price}"))
                            .build(),
                    )
                    .build(),
            );
        }
        match req.send().await {
            Ok(out) => {
                if out.instances().len() != count as usize {
                    bail_user!(
                        "EC2 launched {} instances instead of {count}",
                        out.instances().len()
                    );
                }
                let launched = out.instances().to_vec();
                terminate_duplicates(ctx, &token, &launched).await;
                return Ok(launched);
            }
            Err(e) => {
                let code = error_code(&e).unwrap_or_default().to_string();
                let message = aws::describe(&e);
                let eventual = code == "InvalidGroup.NotFound"
                    || (code == "InvalidParameterValue"
                        && message.to_lowercase().contains("iam instance profile"))
                    || code == "NoSuchEntity";
                if eventual && Instant::now() < deadline {
                    ctx.shell
                        .debug(format!("RunInstances: {message}; retrying"));
                    tokio::time::sleep(aws::POLL_INTERVAL).await;
                    continue;
                }
                return Err(e).aws(|| "failed to launch the instance".to_string());
            }
        }
    }
}

/// Polls until the instance has the address cgcloud connects to; returns the instance.
pub async fn wait_for_address(
    ctx: &Context,
    id: &str,
    private: bool,
) -> Result<(Instance, String)> {
    let ec2 = ctx.aws.ec2();
    let deadline = Instant::now() + timeouts().address;
    loop {
        let i = aws::instance_by_id(&ec2, id)
            .await?
            .ok_or_else(|| user_error!("instance `{id}` has disappeared"))?;
        let address = if private {
            i.private_ip_address()
        } else {
            i.public_ip_address()
        };
        if let Some(a) = address.filter(|a| !a.is_empty()) {
            let a = a.to_string();
            return Ok((i, a));
        }
        if Instant::now() >= deadline {
            let which = if private { "a private" } else { "a public" };
            let hint = if private {
                ""
            } else {
                "; pass --private-ip to reach boxes by their private address"
            };
            bail_user!(
                "instance `{id}` had no {which} IP address after {}s{hint}",
                timeouts().address.as_secs()
            );
        }
        tokio::time::sleep(aws::POLL_INTERVAL).await;
    }
}

/// Waits for `running`, then for an address; returns the instance and the address.
pub async fn wait_running(ctx: &Context, id: &str, private: bool) -> Result<(Instance, String)> {
    aws::wait_for_state(
        &ctx.aws.ec2(),
        id,
        &[InstanceStateName::Pending],
        InstanceStateName::Running,
        timeouts().running,
    )
    .await?;
    wait_for_address(ctx, id, private).await
}

/// Connects over SSH (pinned host key) and waits until cloud-init has finished.
pub async fn wait_ready(
    ctx: &Context,
    ssh: &SshSettings,
    target: &Target,
    phases: &mut Phases,
    t: Instant,
) -> Result<(Remote, Instant)> {
    ctx.shell.status(
        &target.instance_id,
        &format!("waiting for SSH at {} as `{}`", target.address, target.user),
    );
    let remote = Remote::connect(ssh, target, timeouts().ssh, &ctx.shell).await?;
    let t = phases.record("boot-to-ssh", t);
    ctx.shell
        .status(&target.instance_id, "waiting for cloud-init to finish");
    let out = remote
        .run_waiting(
            "cloud-init status --wait --long || cloud-init status --wait",
            timeouts().cloud_init,
        )
        .await?;
    match out.status {
        0 => {}
        // NOTE: cloud-init 23.4 and later exit 2 for "done, with recoverable errors".
        2 => ctx.shell.warn(format!(
            "{}: cloud-init finished with recoverable errors: {}",
            target.instance_id,
            out.stdout.trim()
        )),
        _ => bail_user!(
            "{}",
            crate::ssh::remote::failure(&target.instance_id, "cloud-init status --wait", &out)
        ),
    }
    let t = phases.record("cloud-init", t);
    Ok((remote, t))
}

/// Stops the instance and waits for `stopped`.
pub async fn stop(ctx: &Context, id: &str) -> Result<()> {
    let ec2 = ctx.aws.ec2();
    ec2.stop_instances()
        .instance_ids(id)
        .send()
        .await
        .aws(|| format!("failed to stop `{id}`"))?;
    aws::wait_for_state(
        &ec2,
        id,
        &[
            InstanceStateName::Running,
            InstanceStateName::Stopping,
            InstanceStateName::Pending,
        ],
        InstanceStateName::Stopped,
        timeouts().stop,
    )
    .await?;
    Ok(())
}

/// Starts a stopped instance and waits until it runs and has an address.
pub async fn start(ctx: &Context, id: &str, private: bool) -> Result<(Instance, String)> {
    let ec2 = ctx.aws.ec2();
    ec2.start_instances()
        .instance_ids(id)
        .send()
        .await
        .aws(|| format!("failed to start `{id}`"))?;
    aws::wait_for_state(
        &ec2,
        id,
        &[InstanceStateName::Stopped, InstanceStateName::Pending],
        InstanceStateName::Running,
        timeouts().running,
    )
    .await?;
    wait_for_address(ctx, id, private).await
}
