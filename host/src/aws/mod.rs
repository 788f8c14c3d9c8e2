//! The AWS SDK's configuration and clients, the one describer of failed calls, the waits, and
//! the EC2 calls several `ops` modules share. `ops` modules make the calls only they need
//! through these clients (see the crate's architecture map); `cli` never calls AWS.
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
use aws_config::SdkConfig;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};

/// How long to wait for a TCP connection to an AWS endpoint.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Lazily built AWS clients for one region.
#[derive(Clone, Debug)]
pub struct Aws {
    sdk: SdkConfig,
}

impl Aws {
    /// Loads the standard configuration for `region`.
    pub async fn load(region: &str) -> Aws {
        // An endpoint that accepts and never answers fails each attempt after the `api` wait
        // (`CGCLOUD_TIMEOUT_API`), and the whole operation, retries included, after 4 times it.
        let attempt = crate::config::timeouts().api;
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT.min(attempt))
            .operation_attempt_timeout(attempt)
            .operation_timeout(attempt.saturating_mul(4))
            .build();
        Aws {
            sdk: cgcloud_agent::sdk_config(region, timeouts).await,
        }
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

/// A one-line description of a failed AWS call (`cgcloud_agent::describe`), with the fix
/// where it is known: what to do about missing credentials, and that AWS was not reached.
pub fn describe<E, R>(err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + StdError + 'static,
    R: Debug,
{
    let text = cgcloud_agent::describe(err);
    match err {
        SdkError::ServiceError(_) | SdkError::TimeoutError(_) => text,
        _ if text.contains("credential") => format!(
            "no usable AWS credentials ({text}); set AWS_PROFILE, or AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY, or log in with `aws sso login`"
        ),
        _ => format!("could not reach AWS: {text}"),
    }
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
