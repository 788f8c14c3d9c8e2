//! What a command works with, built after parsing: the namespace, the zone and region, lazily
//! built AWS clients, `__me__`, the configuration file and the role registry.

use std::path::PathBuf;

use anyhow::Context as _;
use cgcloud_common::names::{self, Namespace};
use tokio::sync::OnceCell;

use crate::aws::{self, Aws, CallerIdentity};
use crate::cli::args::ContextArgs;
use crate::config::Config;
use crate::errors::Result;
use crate::shell::Shell;
use crate::{bail_user, user_error};

/// The explanation shown with every invalid namespace.
pub const NAMESPACE_RULE: &str = "a namespace starts and ends with `/`, and each component between \
    starts with a lower-case letter or digit followed by lower-case letters, digits, `.`, `_` or `-` \
    (e.g. `/`, `/alice/`, `/test/ci/`)";

/// What every command has, whether or not it talks to AWS.
pub struct Globals {
    pub shell: Shell,
    /// `--plugin` (and `--script`) paths, in the order given.
    pub plugin_paths: Vec<PathBuf>,
}

impl Globals {
    pub fn config(&self) -> Result<Config> {
        Config::load()
    }
}

/// Checks the namespace's syntax before anything else happens, `__me__` standing in for any
/// valid name: `-n /Bad/` or `-n foo` is refused before credentials or other arguments matter.
pub fn prevalidate_namespace(template: &str) -> Result<()> {
    let probe = names::substitute_me(template, "me", true);
    Namespace::parse(&probe)
        .map_err(|_| user_error!("invalid namespace `{template}`: {NAMESPACE_RULE}"))?;
    Ok(())
}

/// The longest namespace whose derived AWS names all fit AWS's limits: an IAM role is named
/// `<namespace with `_` for `/`, less the first>cgcloud-<13 characters>`, and IAM allows 64.
pub const MAX_NAMESPACE_LEN: usize = 64 - "cgcloud-".len() - 13 + 1;

/// Refuses a namespace too long for the AWS names made from it, before anything is made.
pub fn check_namespace_length(namespace: &str) -> Result<()> {
    if namespace.len() > MAX_NAMESPACE_LEN {
        bail_user!(
            "namespace `{namespace}` has {} characters; the IAM role names made from it would be \
             longer than IAM allows: use a namespace of at most {MAX_NAMESPACE_LEN} characters",
            namespace.len()
        );
    }
    Ok(())
}

/// A command's view of AWS: one zone, one namespace.
pub struct Context {
    pub shell: Shell,
    pub namespace: Namespace,
    pub zone: String,
    pub region: String,
    pub aws: Aws,
    identity: OnceCell<CallerIdentity>,
    me: OnceCell<String>,
}

impl Context {
    /// Validates the zone and namespace and loads the AWS configuration; resolves `__me__` in
    /// the namespace (which may call STS).
    pub async fn new(args: &ContextArgs, globals: &Globals) -> Result<Context> {
        prevalidate_namespace(&args.namespace)?;
        let zone = match args.zone.as_deref() {
            Some(z) if !z.trim().is_empty() => z.trim().to_string(),
            _ => bail_user!("no availability zone given: pass --zone (e.g. `--zone us-west-2a`) or set CGCLOUD_ZONE"),
        };
        let region = cgcloud_common::zone::region_of_zone(&zone).map_err(|e| user_error!("{e}"))?;
        let aws = Aws::load(&region).await;
        let mut ctx = Context {
            shell: globals.shell.clone(),
            namespace: Namespace::root(),
            zone,
            region,
            aws,
            identity: OnceCell::new(),
            me: OnceCell::new(),
        };
        let namespace = if args.namespace.contains("__me__") {
            let me = ctx.me().await?;
            names::substitute_me(&args.namespace, &me, true)
        } else {
            args.namespace.clone()
        };
        ctx.namespace = Namespace::parse(&namespace).map_err(|_| {
            user_error!(
                "invalid namespace `{namespace}` (from `{}`): {NAMESPACE_RULE}; set CGCLOUD_ME to a simple \
                 lower-case name or pass --namespace",
                args.namespace
            )
        })?;
        check_namespace_length(&namespace)?;
        ctx.shell.debug(format!(
            "namespace {}, zone {}, region {}",
            ctx.namespace, ctx.zone, ctx.region
        ));
        Ok(ctx)
    }

    /// A context on given clients, for tests.
    #[cfg(test)]
    pub fn with_aws(aws: Aws, namespace: Namespace, zone: &str) -> Context {
        let region = cgcloud_common::zone::region_of_zone(zone).expect("tests use valid zones");
        Context {
            shell: Shell::default(),
            namespace,
            zone: zone.to_string(),
            region,
            aws,
            identity: OnceCell::new(),
            me: OnceCell::new(),
        }
    }

    /// A context on a moto server, signing with `account`'s key, in `namespace` and us-east-1a.
    #[cfg(test)]
    pub async fn for_moto(
        moto: &cgcloud_moto::Moto,
        account: &cgcloud_moto::Account,
        namespace: &str,
    ) -> Context {
        let creds = aws_sdk_ec2::config::Credentials::new(
            &account.access_key_id,
            &account.secret_access_key,
            None,
            None,
            "test",
        );
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::v2026_01_12())
            .endpoint_url(moto.endpoint())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(creds)
            .load()
            .await;
        Context::with_aws(
            Aws::from_sdk_config(sdk),
            Namespace::parse(namespace).expect("a valid test namespace"),
            "us-east-1a",
        )
    }

    /// Who "me" is: `CGCLOUD_ME`, else the IAM user or assumed-role session behind the
    /// credentials, as STS reports it. Not yet lower-cased or cut at `@`.
    pub async fn me(&self) -> Result<String> {
        self.me
            .get_or_try_init(|| async {
                if let Some(me) = std::env::var("CGCLOUD_ME").ok().filter(|m| !m.trim().is_empty()) {
                    return Ok(me.trim().to_string());
                }
                let id = self.identity().await.context("failed to resolve `__me__`")?;
                names::me_from_caller_arn(&id.arn).ok_or_else(|| {
                    user_error!(
                        "cannot derive a name for `__me__` from the caller `{}`; set CGCLOUD_ME to your user name",
                        id.arn
                    )
                })
            })
            .await
            .cloned()
    }

    /// `__me__` substituted in a key pair name: lower-cased, keeping anything after `@`.
    pub async fn resolve_keypair_name(&self, name: &str) -> Result<String> {
        if name.contains("__me__") {
            Ok(names::substitute_me(name, &self.me().await?, false))
        } else {
            Ok(name.to_string())
        }
    }

    /// The account and ARN behind the credentials in use.
    pub async fn identity(&self) -> Result<&CallerIdentity> {
        self.identity
            .get_or_try_init(|| aws::caller_identity(&self.aws))
            .await
    }

    /// The AWS name of `name` in this namespace (at most 255 characters: the limit of
    /// security group and image names).
    pub fn aws_name(&self, name: &str) -> Result<String> {
        let aws = self
            .namespace
            .to_aws_name(name)
            .map_err(|e| user_error!("{e}"))?;
        if aws.len() > 255 {
            bail_user!(
                "`{name}` in namespace `{}` makes an AWS name of {} characters; AWS allows 255",
                self.namespace,
                aws.len()
            );
        }
        Ok(aws)
    }
}
