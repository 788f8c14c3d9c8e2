//! The command line: a validated struct of what was typed, and a short `run` per subcommand.

use crate::{cleanup, daemon, host, pipe, rootfs};
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    name = "cgcloud-localcloud",
    about = "An emulated EC2 whose instances are real Linux boxes"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Build (or find cached) the boxes' root file systems.
    Setup {
        /// Suites to build; default: all.
        #[arg(long = "suite")]
        suites: Vec<String>,
    },
    /// Run a cloud in the foreground until `down`: boxes follow the moto server at ENDPOINT.
    Up {
        /// moto's endpoint, e.g. `http://127.0.0.1:5000`.
        #[arg(long, env = "AWS_ENDPOINT_URL")]
        endpoint: String,
        /// The cloud's name (letters and digits); default: a fresh one.
        #[arg(long)]
        cloud: Option<String>,
        /// Only instances of this account get boxes (repeatable); default: every account.
        #[arg(long = "account")]
        accounts: Vec<String>,
        /// Tear down when the launching process exits.
        #[arg(long)]
        exit_with_parent: bool,
        /// A process to kill at teardown (repeatable).
        #[arg(long = "kill-on-exit")]
        kill_on_exit: Vec<u32>,
    },
    /// Stop a cloud (default: every cloud) and remove all it left behind, also after a crash.
    Down { cloud: Option<String> },
    /// Show a cloud's boxes as JSON.
    Status { cloud: String },
    /// Make a cloud read moto now (the watcher also does this every 300 ms).
    Sync { cloud: String },
    /// The ssh ProxyCommand: connect stdio to the box playing HOST, booting it if needed.
    Proxy {
        #[arg(long)]
        cloud: String,
        host: String,
        port: u16,
    },
    #[command(name = "_listen", hide = true)]
    Listen {
        #[arg(long)]
        bind: SocketAddr,
        #[arg(long)]
        unix: String,
        #[arg(long)]
        peer: bool,
    },
    #[command(name = "_dns", hide = true)]
    Dns {
        #[arg(long)]
        bind: SocketAddr,
    },
    #[command(name = "_connect", hide = true)]
    Connect { addr: SocketAddr },
    #[command(name = "_probe", hide = true)]
    Probe {
        addr: SocketAddr,
        #[arg(long, default_value_t = 400)]
        timeout_ms: u64,
    },
}

/// Runs the command line; returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ERROR: {e:#}");
            255
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Setup { suites } => {
            host::preflight(true)?;
            let t0 = Instant::now();
            let suites = if suites.is_empty() {
                rootfs::SUITES.iter().map(|(s, _)| s.to_string()).collect()
            } else {
                suites
            };
            for s in suites {
                let dir = rootfs::recipe(&s)?.ensure(&mut |m| eprintln!("{m}"))?;
                eprintln!("{s}: `{}`", dir.display());
            }
            eprintln!("setup done in {} ms", t0.elapsed().as_millis());
            Ok(())
        }
        Cmd::Up {
            endpoint,
            cloud,
            accounts,
            exit_with_parent,
            kill_on_exit,
        } => daemon::up(daemon::Config {
            cid: cloud,
            endpoint,
            accounts,
            exit_with_parent,
            kill_on_exit,
        }),
        Cmd::Down { cloud } => {
            host::preflight(false)?;
            let t0 = Instant::now();
            let n = cleanup::down(cloud.as_deref())?;
            eprintln!("{n} local cloud(s) down in {} ms", t0.elapsed().as_millis());
            Ok(())
        }
        Cmd::Status { cloud } => ok_line(&cleanup::request(
            &cloud,
            "status",
            Duration::from_secs(10),
        )?),
        Cmd::Sync { cloud } => ok_line(&cleanup::request(&cloud, "sync", Duration::from_secs(60))?),
        Cmd::Proxy { cloud, host, port } => proxy(&cloud, &host, port),
        Cmd::Listen { bind, unix, peer } => pipe::listen(bind, &unix, peer),
        Cmd::Dns { bind } => crate::dns::serve(bind),
        Cmd::Connect { addr } => pipe::connect_stdio(addr),
        Cmd::Probe { addr, timeout_ms } => {
            if pipe::probe_ssh(addr, Duration::from_millis(timeout_ms)) {
                Ok(())
            } else {
                bail!("no ssh banner from `{addr}`")
            }
        }
    }
}

fn ok_line(answer: &str) -> Result<()> {
    match answer.strip_prefix("ok") {
        Some(rest) => {
            let rest = rest.trim();
            if !rest.is_empty() {
                println!("{rest}");
            }
            Ok(())
        }
        None => bail!("{}", answer.strip_prefix("err ").unwrap_or(answer)),
    }
}

/// Asks the cloud for the box playing `host` (booting it lazily), then becomes a pipe to it.
fn proxy(cloud: &str, host: &str, port: u16) -> Result<()> {
    // A boot waits for a slot (up to 2 min) and then for sshd (up to 1 min).
    let answer = cleanup::request(cloud, &format!("connect {host}"), Duration::from_secs(200))?;
    let Some(ip) = answer.strip_prefix("ok ") else {
        bail!(
            "local cloud: {}",
            answer.strip_prefix("err ").unwrap_or(&answer)
        );
    };
    let addr: SocketAddr = format!("{ip}:{port}")
        .parse()
        .with_context(|| format!("bad box address `{ip}`"))?;
    let exe = std::env::current_exe().context("failed to find this program's path")?;
    let hub = crate::boxes::Layout::new(cloud).hub_ns();
    let err = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{hub}"))
        .arg(exe)
        .arg("_connect")
        .arg(addr.to_string())
        .exec();
    bail!("failed to run `nsenter` into the hub of cloud `{cloud}`: {err}")
}
