//! The only module that links the AWS SDK.
//!
//! Configuration comes from aws-config's standard chain (environment, shared config and
//! credentials files with profiles and SSO, IMDS), so `AWS_ENDPOINT_URL` and the per-service
//! `AWS_ENDPOINT_URL_<SERVICE>` variables work through the SDK itself. The region is always the
//! one derived from cgcloud's zone, never the profile's, as in the original.

mod ec2;

pub use ec2::*;

use std::error::Error as StdError;
use std::fmt::Debug;
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};

/// How long to wait for a TCP connection to an AWS endpoint.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one API operation may take, retries included.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(120);

/// Lazily built AWS clients for one region.
#[derive(Clone, Debug)]
pub struct Aws {
    sdk: SdkConfig,
}

impl Aws {
    /// Loads the standard configuration for `region`.
    pub async fn load(region: &str) -> Aws {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .operation_timeout(OPERATION_TIMEOUT)
            .build();
        let sdk = aws_config::defaults(BehaviorVersion::v2026_01_12())
            .region(Region::new(region.to_string()))
            .timeout_config(timeouts)
            .load()
            .await;
        Aws { sdk }
    }

    /// Clients from a given configuration (tests point it at moto with an account's key).
    #[cfg(test)]
    pub fn from_sdk_config(sdk: SdkConfig) -> Aws {
        Aws { sdk }
    }

    /// The loaded configuration, for clients of other services.
    pub fn sdk(&self) -> &SdkConfig {
        &self.sdk
    }

    pub fn ec2(&self) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(&self.sdk)
    }

    pub fn iam(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.sdk)
    }

    pub fn sts(&self) -> aws_sdk_sts::Client {
        aws_sdk_sts::Client::new(&self.sdk)
    }
}

/// The identity behind the credentials in use.
#[derive(Debug, Clone)]
pub struct CallerIdentity {
    pub account: String,
    pub arn: String,
}

/// STS GetCallerIdentity.
pub async fn caller_identity(aws: &Aws) -> anyhow::Result<CallerIdentity> {
    let out = aws
        .sts()
        .get_caller_identity()
        .send()
        .await
        .aws(|| "failed to determine who you are (STS GetCallerIdentity)".to_string())?;
    Ok(CallerIdentity {
        account: out.account().unwrap_or_default().to_string(),
        arn: out.arn().unwrap_or_default().to_string(),
    })
}

/// The error code of a failed call, e.g. `InvalidKeyPair.NotFound`.
pub fn error_code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<&str> {
    err.code()
}

/// A one-line description of a failed AWS call: its code and message for service errors, the
/// cause for transport errors, with a hint where the fix is known.
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
                Some(m) if !m.is_empty() => format!("{code}: {m}"),
                _ => code.to_string(),
            }
        }
        SdkError::TimeoutError(_) => "AWS did not answer in time".to_string(),
        _ => {
            let chain = chain(err);
            if chain.contains("credential") {
                format!(
                    "no usable AWS credentials ({chain}); set AWS_PROFILE, or AWS_ACCESS_KEY_ID and \
                     AWS_SECRET_ACCESS_KEY, or log in with `aws sso login`"
                )
            } else {
                format!("could not reach AWS: {chain}")
            }
        }
    }
}

/// An error and its sources, joined by `: `.
fn chain(err: &dyn StdError) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// Context for failed AWS calls: `client.op().send().await.aws(|| format!("failed to …"))?`.
pub trait AwsResultExt<T> {
    fn aws(self, what: impl FnOnce() -> String) -> anyhow::Result<T>;
}

impl<T, E, R> AwsResultExt<T> for Result<T, SdkError<E, R>>
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    R: Debug + Send + Sync + 'static,
{
    fn aws(self, what: impl FnOnce() -> String) -> anyhow::Result<T> {
        self.map_err(|e| anyhow::anyhow!("{}: {}", what(), describe(&e)))
    }
}
