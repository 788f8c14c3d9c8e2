//! AWS clients and one-line descriptions of failed calls.

use std::error::Error as StdError;
use std::fmt::Debug;
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};

/// How long to wait for a TCP connection to an AWS endpoint.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one attempt may take; more than the 20 s of an SQS long poll.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(40);
/// How long one operation may take, retries included.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(90);

/// The clients the agent (and the host, for the agent's resources) talks to.
#[derive(Clone, Debug)]
pub struct Clients {
    pub ec2: aws_sdk_ec2::Client,
    pub iam: aws_sdk_iam::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub sns: aws_sdk_sns::Client,
}

impl Clients {
    /// The standard credential chain (the instance profile through IMDS on a box; the
    /// environment, e.g. `AWS_ENDPOINT_URL`, is honoured) in `region`, with timeouts.
    pub async fn load(region: &str) -> Clients {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .operation_attempt_timeout(ATTEMPT_TIMEOUT)
            .operation_timeout(OPERATION_TIMEOUT)
            .build();
        Clients::from_sdk_config(&sdk_config(region, timeouts).await)
    }

    /// Clients from a given configuration (tests point it at moto).
    pub fn from_sdk_config(sdk: &SdkConfig) -> Clients {
        Clients {
            ec2: aws_sdk_ec2::Client::new(sdk),
            iam: aws_sdk_iam::Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
            sns: aws_sdk_sns::Client::new(sdk),
        }
    }
}

/// The SDK configuration of cgcloud and its agent: aws-config's standard chain (environment,
/// shared config and credentials files with profiles and SSO, IMDS on a box), so
/// `AWS_ENDPOINT_URL` and the per-service endpoint variables work, in `region`, with `timeouts`.
pub async fn sdk_config(region: &str, timeouts: TimeoutConfig) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::v2026_01_12())
        .region(Region::new(region.to_string()))
        .timeout_config(timeouts)
        .load()
        .await
}

/// A one-line description of a failed AWS call: code and message for service errors, the
/// cause (the error and its sources) for the others. cgcloud's and the agent's one describer.
pub fn describe<E, R>(err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + StdError + 'static,
    R: Debug,
{
    match err {
        SdkError::ServiceError(_) => {
            let code = err
                .code()
                .unwrap_or("the service failed without saying why");
            match err.message() {
                Some(m) if !m.is_empty() => format!("{code}: {}", one_line(m)),
                _ => code.to_string(),
            }
        }
        SdkError::TimeoutError(_) => "AWS did not answer in time".to_string(),
        _ => {
            let mut parts = vec![err.to_string()];
            let mut source = err.source();
            while let Some(s) = source {
                let text = s.to_string();
                if parts.last() != Some(&text) {
                    parts.push(text);
                }
                source = s.source();
            }
            one_line(&parts.join(": "))
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether an SQS error says the queue does not exist (the JSON and the query protocols name
/// it differently).
pub fn is_missing_queue<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    matches!(
        err.code(),
        Some("AWS.SimpleQueueService.NonExistentQueue" | "QueueDoesNotExist")
    )
}

/// Whether an SNS error says the topic or subscription does not exist.
pub fn is_not_found<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    matches!(err.code(), Some("NotFound" | "NotFoundException"))
}
