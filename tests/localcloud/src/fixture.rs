//! The end-to-end test fixture: one [`LocalCloud`] per test, with its own moto_server, its own
//! moto account (an IAM user whose access key lands every call in that account), its own hub and
//! box numbers. At most [`max_clouds`] run at once on the machine (2 cores); the rest wait.
//! Dropping it (also while a test panics) tears everything down; if the test process dies
//! instead, the daemon notices its parent is gone and tears down by itself.
//!
//! ```no_run
//! let cloud = cgcloud_localcloud::LocalCloud::start().expect("local cloud");
//! let status = std::process::Command::new("cgcloud").envs(cloud.env()).arg("list").status();
//! ```

use crate::boxes::Layout;
use crate::{cleanup, host, rootfs};
use anyhow::{bail, Context, Result};
use cgcloud_moto::{Account, Moto};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The region every local cloud uses.
pub const REGION: &str = "us-west-2";
/// The availability zone cgcloud is pointed at.
pub const ZONE: &str = "us-west-2a";
/// How long the daemon may take to come up.
const UP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a test may wait for a free cloud slot.
const SLOT_TIMEOUT: Duration = Duration::from_secs(900);

/// moto AMI fixtures: real names and owners of the base images roles look up.
pub fn amis_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("amis.json")
}

/// How many clouds may run at once (`CGCLOUD_LOCALCLOUD_MAX_CLOUDS`, default 2).
pub fn max_clouds() -> usize {
    std::env::var("CGCLOUD_LOCALCLOUD_MAX_CLOUDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(2)
}

/// The `cgcloud-localcloud` program: `CGCLOUD_LOCALCLOUD_BIN`, else next to the running test
/// binary in cargo's target folder (build it with `cargo build -p cgcloud-localcloud`).
pub fn locate_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("CGCLOUD_LOCALCLOUD_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("failed to find the test binary's path")?;
    for dir in exe.ancestors().skip(1).take(3) {
        let p = dir.join("cgcloud-localcloud");
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!("found no `cgcloud-localcloud` program next to `{}`; run `cargo build -p cgcloud-localcloud` or set CGCLOUD_LOCALCLOUD_BIN", exe.display())
}

/// A running local cloud for one test.
pub struct LocalCloud {
    daemon: Option<Child>,
    cid: String,
    ssh_config: PathBuf,
    log: PathBuf,
    account: Account,
    // Dropped after the daemon is down: the daemon may still read moto while tearing down.
    moto: Moto,
    _slot: std::fs::File,
}

impl LocalCloud {
    /// Starts moto (AMI fixtures, AMI and key-pair validation on), a fresh account, and a cloud
    /// whose boxes play that account's instances.
    pub fn start() -> Result<LocalCloud> {
        host::preflight(false)?;
        for (suite, _) in rootfs::SUITES {
            if !rootfs::recipe(suite)?.is_built() {
                bail!("the {suite} rootfs is not built; run `cgcloud-localcloud setup` first");
            }
        }
        let bin = locate_binary()?;
        let slot = cloud_slot()?;
        let amis = amis_path();
        let amis = amis.to_string_lossy();
        let moto = Moto::start_with(&[
            ("MOTO_ENABLE_KEYPAIR_VALIDATION", "true"),
            ("MOTO_ENABLE_AMI_VALIDATION", "true"),
            ("MOTO_AMIS_PATH", &amis),
        ])
        .map_err(|e| anyhow::anyhow!("failed to start moto_server: {e}"))?;
        let account = moto
            .new_account("tester")
            .map_err(|e| anyhow::anyhow!("failed to make a moto account: {e}"))?;
        let log = std::env::temp_dir().join(format!(
            "cgcloud-localcloud-{}-{}.log",
            std::process::id(),
            moto.port()
        ));
        let log_file = std::fs::File::create(&log)
            .with_context(|| format!("failed to create `{}`", log.display()))?;
        let mut daemon = Command::new(&bin)
            .args([
                "up",
                "--endpoint",
                &moto.endpoint(),
                "--account",
                &account.id,
                "--exit-with-parent",
            ])
            .args(["--kill-on-exit", &moto_pid(&moto)])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("failed to run `{}`", bin.display()))?;
        let Some(out) = daemon.stdout.take() else {
            bail!("the daemon's stdout is not piped")
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(UP_TIMEOUT) {
            Ok(l) if l.starts_with("READY ") => l,
            other => {
                let _ = daemon.kill();
                let _ = daemon.wait();
                bail!(
                    "the local cloud did not come up ({}); its log:\n{}",
                    match other {
                        Ok(l) if l.is_empty() => "it exited".to_string(),
                        Ok(l) => format!("it said `{}`", l.trim()),
                        Err(_) => format!("no answer within {UP_TIMEOUT:?}"),
                    },
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        let mut words = line.split_whitespace().skip(1);
        let cid = words.next().unwrap_or_default().to_string();
        let ssh_config = PathBuf::from(words.next().unwrap_or_default());
        Ok(LocalCloud {
            daemon: Some(daemon),
            cid,
            ssh_config,
            log,
            account,
            moto,
            _slot: slot,
        })
    }

    /// Sends the AWS calls of software in boxes (the agent) to `127.0.0.1:port` instead of
    /// moto from the next connection on (`None`: to moto again): a fault proxy in front of
    /// moto, for tests of bad days.
    pub fn route_box_aws(&self, port: Option<u16>) -> Result<()> {
        let file = self
            .ssh_config
            .parent()
            .context("the cloud's folder")?
            .join("aws-upstream");
        match port {
            Some(p) => std::fs::write(&file, p.to_string())
                .with_context(|| format!("failed to write `{}`", file.display())),
            None => match std::fs::remove_file(&file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(e).with_context(|| format!("failed to remove `{}`", file.display()))
                }
                _ => Ok(()),
            },
        }
    }

    /// The environment a cgcloud process needs to use this cloud exactly as it would use AWS.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.moto.endpoint()),
            ("AWS_ACCESS_KEY_ID", self.account.access_key_id.clone()),
            (
                "AWS_SECRET_ACCESS_KEY",
                self.account.secret_access_key.clone(),
            ),
            ("AWS_REGION", REGION.to_string()),
            ("AWS_DEFAULT_REGION", REGION.to_string()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
            ("CGCLOUD_ZONE", ZONE.to_string()),
            ("CGCLOUD_SSH_CONFIG", self.ssh_config.display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The ssh_config file whose ProxyCommand reaches this cloud's boxes.
    pub fn ssh_config(&self) -> &Path {
        &self.ssh_config
    }

    pub fn cid(&self) -> &str {
        &self.cid
    }

    pub fn account(&self) -> &Account {
        &self.account
    }

    pub fn moto(&self) -> &Moto {
        &self.moto
    }

    /// One EC2 query call in this cloud's account and region; returns the XML body.
    pub fn ec2(&self, form: &str) -> Result<String> {
        let api = crate::moto::MotoApi::new(&self.moto.endpoint())?;
        api.ec2(
            &self.account.id,
            REGION,
            &format!("{form}&Version=2016-11-15"),
        )
    }

    /// Makes the cloud follow moto now instead of at its next poll.
    pub fn sync(&self) -> Result<()> {
        let a = cleanup::request(&self.cid, "sync", Duration::from_secs(60))?;
        if a != "ok" {
            bail!("sync failed: {a}");
        }
        Ok(())
    }

    /// The cloud's boxes, as the daemon reports them.
    pub fn status(&self) -> Result<serde_json::Value> {
        let a = cleanup::request(&self.cid, "status", Duration::from_secs(10))?;
        let json = a
            .strip_prefix("ok ")
            .with_context(|| format!("status failed: {a}"))?;
        serde_json::from_str(json).context("bad status JSON")
    }

    /// The daemon's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Host objects of this cloud still present: namespaces, mounts, cgroups, state folder.
    pub fn leftovers(cid: &str) -> Vec<String> {
        let l = Layout::new(cid);
        let mut out = Vec::new();
        let ns_prefix = l.hub_ns();
        if let Ok(rd) = std::fs::read_dir("/run/netns") {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n == ns_prefix || n.starts_with(&format!("{ns_prefix}-")) {
                    out.push(format!("netns {n}"));
                }
            }
        }
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let dir = l.dir.to_string_lossy().into_owned();
        out.extend(
            mounts
                .lines()
                .filter(|m| m.contains(&dir))
                .map(|m| format!("mount {m}")),
        );
        for root in crate::boxes::cgroup_roots() {
            if let Ok(rd) = std::fs::read_dir(&root) {
                for e in rd.flatten() {
                    if e.file_name()
                        .to_string_lossy()
                        .starts_with(&format!("{ns_prefix}-"))
                    {
                        out.push(format!("cgroup {}", e.path().display()));
                    }
                }
            }
        }
        if l.dir.exists() {
            out.push(format!("state {}", l.dir.display()));
        }
        out
    }
}

impl Drop for LocalCloud {
    fn drop(&mut self) {
        let t0 = Instant::now();
        let asked = cleanup::request(&self.cid, "shutdown", Duration::from_secs(30)).is_ok();
        if let Some(mut d) = self.daemon.take() {
            while asked && t0.elapsed() < Duration::from_secs(30) {
                if let Ok(Some(_)) = d.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = d.kill();
            let _ = d.wait();
        }
        // Whatever the daemon could not remove (it was killed, or it crashed).
        cleanup::remove_cloud(&Layout::new(&self.cid));
        let _ = std::fs::remove_file(&self.log);
    }
}

fn moto_pid(moto: &Moto) -> String {
    // NOTE: cgcloud-moto keeps its child private; find the server by the port it listens on.
    let port = format!(":{:04X} ", moto.port());
    let inode = std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .find(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|a| format!("{a} ").ends_with(&port))
                && l.split_whitespace().nth(3) == Some("0A")
        })
        .and_then(|l| l.split_whitespace().nth(9).map(str::to_string));
    let Some(inode) = inode else {
        return "0".into();
    };
    let target = format!("socket:[{inode}]");
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return "0".into();
    };
    for p in procs.flatten() {
        let pid = p.file_name().to_string_lossy().into_owned();
        if !pid.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        if let Ok(fds) = std::fs::read_dir(p.path().join("fd")) {
            if fds
                .flatten()
                .any(|f| std::fs::read_link(f.path()).is_ok_and(|l| l.to_string_lossy() == target))
            {
                return pid;
            }
        }
    }
    "0".into()
}

/// A machine-wide slot for one cloud, held until dropped.
fn cloud_slot() -> Result<std::fs::File> {
    crate::util::take_slot(
        "cloud",
        max_clouds(),
        SLOT_TIMEOUT,
        Duration::from_millis(100),
        "",
    )
}
