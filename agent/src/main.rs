//! `cgcloud-agent`: glue between the command line and the library. See the library's crate
//! documentation for what the agent does and where it writes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use cgcloud_agent::{log, AccountSource, Agent, Config, RunOptions};
use cgcloud_common::{partition_for_region, region_of_zone, Namespace};
use clap::{Parser, Subcommand};

/// How long asking the instance metadata service for the instance ID may take.
const IMDS_TIMEOUT: Duration = Duration::from_secs(60);

/// Keeps this box's SSH keys in sync with its cgcloud namespace's key pairs.
#[derive(Parser, Debug)]
#[command(name = "cgcloud-agent", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the agent until SIGTERM or SIGINT.
    Run(RunOptions),
    /// Refresh the keys once and exit (0 on success).
    Once(RunOptions),
    /// Print the systemd unit that runs the agent with these options.
    Unit {
        #[command(flatten)]
        options: RunOptions,
        /// Where the binary is installed.
        #[arg(long, default_value = cgcloud_agent::BINARY_PATH)]
        binary: PathBuf,
        /// Extra directories the agent may write; the homes of the accounts that exist already
        /// are added.
        #[arg(long = "writable")]
        writable: Vec<PathBuf>,
    },
    /// Find this node's cluster leader from tags and write it into /etc/hosts and
    /// /etc/ssh/ssh_known_hosts (run at every boot by a oneshot unit); nothing for a box that is
    /// not a cluster node.
    Discover {
        /// The availability zone (its region is where the instance is).
        #[arg(long, short = 'z', env = "CGCLOUD_ZONE")]
        zone: String,
        /// The instance (default: from the instance metadata).
        #[arg(long)]
        instance_id: Option<String>,
        /// How long to retry while tags lag behind (a new leader's own tag, a leader address).
        #[arg(long, default_value_t = 120, value_name = "SECONDS")]
        wait: u64,
    },
    /// Print the oneshot unit that runs `discover` at every boot.
    DiscoverUnit {
        #[arg(long, short = 'z', env = "CGCLOUD_ZONE")]
        zone: String,
        /// Where the binary is installed.
        #[arg(long, default_value = cgcloud_agent::BINARY_PATH)]
        binary: PathBuf,
    },
    /// Print the sshd drop-in that makes sshd read the agent's file.
    SshdConfig,
    /// Print the IAM policy the agent's instance role needs.
    Policy {
        #[arg(long, short = 'n', env = "CGCLOUD_NAMESPACE")]
        namespace: String,
        /// The region whose partition (`aws`, `aws-cn`, `aws-us-gov`) to use.
        #[arg(long, default_value = "us-east-1")]
        region: String,
    },
    /// Print the topic and queue names of a namespace and instance.
    Names {
        #[arg(long, short = 'n', env = "CGCLOUD_NAMESPACE")]
        namespace: String,
        #[arg(long)]
        instance_id: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(anyhow!("failed to start the async runtime: {e}")),
    };
    match runtime.block_on(exec(cli.command)) {
        Ok(code) => code,
        Err(e) => fail(e),
    }
}

fn fail(e: anyhow::Error) -> ExitCode {
    cgcloud_agent::log::error(format!("{e:#}"));
    ExitCode::from(255)
}

fn out(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

async fn exec(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run(o) => {
            let agent = build(&o).await?;
            log::info(format!(
                "starting for `{}` in {}: globs {}, accounts {}, refresh every {} s",
                agent.config().namespace.as_str(),
                o.zone,
                o.keypairs.join(" "),
                o.accounts.join(" "),
                o.interval
            ));
            agent.run(shutdown_signal()?).await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Once(o) => {
            let mut agent = build(&o).await?;
            let r = agent.reconcile().await?;
            log::info(format!(
                "{} keys ({}); rewrote: {}",
                r.keys,
                r.hash,
                if r.written.is_empty() {
                    "none".to_string()
                } else {
                    r.written.join(", ")
                }
            ));
            Ok(ExitCode::SUCCESS)
        }
        Command::Unit {
            options,
            binary,
            writable,
        } => {
            region_of_zone(&options.zone)?;
            // Run on the box, this finds homes outside /home and /root (e.g. /var/lib/jenkins).
            let mut writable = writable;
            for name in &options.accounts {
                if let Some(a) = AccountSource::System.lookup(name).await? {
                    writable.push(cgcloud_agent::writable_dir(&a.home));
                }
            }
            let writable: Vec<&std::path::Path> = writable.iter().map(PathBuf::as_path).collect();
            out(&cgcloud_agent::unit(&binary, &options, &writable));
            Ok(ExitCode::SUCCESS)
        }
        Command::Discover {
            zone,
            instance_id,
            wait,
        } => {
            let region = region_of_zone(&zone)?;
            let deadline = std::time::Instant::now() + Duration::from_secs(wait.min(3600));
            // A busy metadata service (many boxes booting at once) answers late: ask again.
            let instance_id = match instance_id {
                Some(id) => id,
                None => loop {
                    match instance_id_from_imds().await {
                        Ok(id) => break id,
                        Err(e) if std::time::Instant::now() < deadline => {
                            log::warn(format!("{e:#}; retrying"));
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                        Err(e) => return Err(e),
                    }
                },
            };
            let clients = cgcloud_agent::Clients::load(&region).await;
            loop {
                match cgcloud_agent::discover::discover(&clients.ec2, &instance_id).await {
                    Ok(None) => {
                        log::info(format!("`{instance_id}` is not a cluster node"));
                        return Ok(ExitCode::SUCCESS);
                    }
                    Ok(Some(d)) => {
                        cgcloud_agent::discover::apply(std::path::Path::new("/"), &d)?;
                        log::info(format!(
                            "the cluster's leader `{}` is {} ({})",
                            d.leader_id,
                            d.leader_ip,
                            cgcloud_agent::discover::LEADER_HOST
                        ));
                        return Ok(ExitCode::SUCCESS);
                    }
                    Err(e) if std::time::Instant::now() < deadline => {
                        log::warn(format!("{e:#}; retrying"));
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Command::DiscoverUnit { zone, binary } => {
            region_of_zone(&zone)?;
            out(&cgcloud_agent::discover::discover_unit(&binary, &zone));
            Ok(ExitCode::SUCCESS)
        }
        Command::SshdConfig => {
            out(cgcloud_agent::SSHD_DROP_IN);
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy { namespace, region } => {
            let ns = Namespace::parse(&namespace)?;
            let policy = cgcloud_agent::iam_policy(&ns, partition_for_region(&region));
            out(&format!("{}\n", serde_json::to_string_pretty(&policy)?));
            Ok(ExitCode::SUCCESS)
        }
        Command::Names {
            namespace,
            instance_id,
        } => {
            let ns = Namespace::parse(&namespace)?;
            out(&format!("topic {}\n", cgcloud_agent::topic_name(&ns)));
            if let Some(id) = instance_id {
                let q = cgcloud_agent::queue_name(&ns, &id)
                    .ok_or_else(|| anyhow!("`{id}` is not an EC2 instance ID"))?;
                out(&format!("queue {q}\n"));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn build(o: &RunOptions) -> anyhow::Result<Agent> {
    let region = region_of_zone(&o.zone)?;
    let instance_id = match &o.instance_id {
        Some(id) => id.clone(),
        None => instance_id_from_imds().await?,
    };
    let config = Config::from_options(o, &instance_id)?;
    Ok(Agent::try_new(config, &region).await)
}

async fn instance_id_from_imds() -> anyhow::Result<String> {
    let imds = aws_config::imds::Client::builder().build();
    let id = tokio::time::timeout(IMDS_TIMEOUT, imds.get("/latest/meta-data/instance-id"))
        .await
        .map_err(|_| {
            anyhow!("the instance metadata service did not answer within {IMDS_TIMEOUT:?}")
        })?
        .context(
            "failed to ask the instance metadata service for the instance ID; pass --instance-id",
        )?;
    Ok(String::from(id).trim().to_string())
}

/// Completes on SIGTERM or SIGINT.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("failed to listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("failed to listen for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => log::info("SIGTERM received"),
            _ = int.recv() => log::info("SIGINT received"),
        }
    })
}
