//! Boxes: a systemd-nspawn container (systemd as PID 1, sshd, cloud-init) on a copy-on-write
//! overlay, in its own network namespace on the hub bridge and in its own host cgroup.
//!
//! A box's disk is its overlay upper folder: it outlives the box (stop/start) and is copied to
//! make an image. [`Layout`] names every host object of one cloud, so clean-up can find them.

use crate::util::{self, run, run_quiet};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The hub's address on its bridge; boxes reach the apt relay here.
pub const HUB_IP: &str = "10.250.0.1";
/// The hub bridge's network (an instance whose EC2 private address falls in it, one in 65,536
/// of moto's random ones, keeps only its bridge address).
pub const BRIDGE_NET: &str = "10.250.0.0/24";
/// Where boxes find instance metadata (answered in the hub).
pub const IMDS_IP: &str = "169.254.169.254";
/// The most boxes one cloud runs (addresses 10.250.0.11 ..= 10.250.0.210).
pub const MAX_BOXES: u32 = 200;
/// How long a box may take from launch to an SSH banner.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an orderly poweroff may take before the box is killed.
pub const POWEROFF_TIMEOUT: Duration = Duration::from_secs(10);

/// Where clouds keep their state unless `CGCLOUD_LOCALCLOUD_STATE` says otherwise: a folder
/// only root may enter (never a world-writable place such as `/var/tmp`, where another user
/// could plant links for the root daemon to follow).
pub fn state_root() -> PathBuf {
    std::env::var_os("CGCLOUD_LOCALCLOUD_STATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/cgcloud-localcloud"))
}

/// Makes [`state_root`] (root-owned, mode 0700) or checks that it is so.
pub fn ensure_state_root() -> Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let root = state_root();
    match std::fs::symlink_metadata(&root) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = root.parent() {
                std::fs::create_dir_all(parent).with_context(|| format!("failed to create `{}`", parent.display()))?;
            }
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&root)
                .with_context(|| format!("failed to create `{}`", root.display()))?;
        }
        Err(e) => return Err(e).with_context(|| format!("failed to inspect `{}`", root.display())),
        Ok(m) if !m.file_type().is_dir() || m.uid() != 0 => anyhow::bail!(
            "`{}` is not a folder owned by root (uid {}); remove it or set CGCLOUD_LOCALCLOUD_STATE",
            root.display(),
            m.uid()
        ),
        Ok(m) if m.mode() & 0o077 != 0 => std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("failed to make `{}` private", root.display()))?,
        Ok(_) => {}
    }
    Ok(root)
}

/// The names and paths of one cloud's host objects.
#[derive(Debug, Clone)]
pub struct Layout {
    pub cid: String,
    pub dir: PathBuf,
}

impl Layout {
    pub fn new(cid: &str) -> Layout {
        Layout {
            cid: cid.to_string(),
            dir: state_root().join(cid),
        }
    }
    pub fn hub_ns(&self) -> String {
        format!("cglc-{}", self.cid)
    }
    pub fn box_ns(&self, n: u32) -> String {
        format!("cglc-{}-{n}", self.cid)
    }
    pub fn control_sock(&self) -> PathBuf {
        self.dir.join("control.sock")
    }
    pub fn relay_sock(&self) -> PathBuf {
        self.dir.join("relay.sock")
    }
    pub fn aws_sock(&self) -> PathBuf {
        self.dir.join("aws.sock")
    }

    /// A loopback port that boxes' AWS calls go to instead of moto, while the file exists.
    pub fn aws_upstream_file(&self) -> PathBuf {
        self.dir.join("aws-upstream")
    }
    pub fn imds_sock(&self) -> PathBuf {
        self.dir.join("imds.sock")
    }
    pub fn disk(&self, iid: &str) -> PathBuf {
        self.dir.join("disks").join(iid)
    }
    pub fn image_dir(&self, ami: &str) -> PathBuf {
        self.dir.join("images").join(ami)
    }
    pub fn box_dir(&self, n: u32) -> PathBuf {
        self.dir.join("boxes").join(n.to_string())
    }
    pub fn merged(&self, n: u32) -> PathBuf {
        self.box_dir(n).join("merged")
    }
    pub fn console_log(&self, n: u32) -> PathBuf {
        self.box_dir(n).join("console.log")
    }
    /// Every cgroup folder of box `n`, one per writable hierarchy.
    pub fn cgroups(&self, n: u32) -> Vec<PathBuf> {
        cgroup_roots()
            .into_iter()
            .map(|r| r.join(self.box_ns(n)))
            .collect()
    }
}

/// Writable cgroup hierarchies that processes can be moved in: the named `systemd` one and the
/// unified one on hybrid hosts, or the root on pure cgroup2 hosts.
pub fn cgroup_roots() -> Vec<PathBuf> {
    [
        "/sys/fs/cgroup/systemd",
        "/sys/fs/cgroup/unified",
        "/sys/fs/cgroup",
    ]
    .iter()
    .map(PathBuf::from)
    .filter(|p| p.join("cgroup.procs").exists())
    .collect()
}

/// A box's address on the hub bridge.
pub fn box_ip(n: u32) -> String {
    format!("10.250.0.{}", 10 + n)
}

/// A fixed MAC per box number: a reused address with a new MAC stalls connects for 20+ s while
/// the hub's neighbour cache holds the old one.
fn box_mac(n: u32) -> String {
    format!("02:00:0a:fa:00:{:02x}", 10 + n)
}

/// Creates the hub namespace with its bridge. Nothing in it routes anywhere else.
pub fn hub_up(l: &Layout) -> Result<()> {
    let ns = l.hub_ns();
    run(Command::new("ip").args(["netns", "add", &ns]))?;
    run(Command::new("ip").args(["-n", &ns, "link", "set", "lo", "up"]))?;
    run(Command::new("ip").args(["-n", &ns, "link", "add", "cgbr0", "type", "bridge"]))?;
    run(Command::new("ip").args([
        "-n",
        &ns,
        "addr",
        "add",
        &format!("{HUB_IP}/24"),
        "dev",
        "cgbr0",
    ]))?;
    run(Command::new("ip").args([
        "-n",
        &ns,
        "addr",
        "add",
        &format!("{IMDS_IP}/32"),
        "dev",
        "cgbr0",
    ]))?;
    run(Command::new("ip").args([
        "-n",
        &ns,
        "addr",
        "add",
        &format!("{}/32", crate::dns::DNS_IP),
        "dev",
        "cgbr0",
    ]))?;
    run(Command::new("ip").args(["-n", &ns, "link", "set", "cgbr0", "up"]))?;
    Ok(())
}

/// What a box boots from.
#[derive(Debug, Clone)]
pub struct BootSpec {
    pub n: u32,
    pub name: String,
    /// Read-only layers, top first; the last is a cached rootfs.
    pub layers: Vec<PathBuf>,
    /// The instance's disk (overlay upper and work folders live in it).
    pub disk: PathBuf,
    /// An `/etc/hosts` entry (address, name) set before every boot: apt's mirror name -> the relay.
    pub hosts_entry: (String, String),
    /// Files written into the box before every boot: (path inside the box, mode, content).
    pub files: Vec<(String, u32, Vec<u8>)>,
    /// The instance's EC2 private address, which the box's interface carries too (`vpc`).
    pub private_ip: Option<String>,
    /// Extra nspawn arguments: the `--bind`s of attached volumes' devices (`ebs`).
    pub binds: Vec<String>,
}

/// A running box: the nspawn process the daemon launched.
#[derive(Debug)]
pub struct Running {
    pub n: u32,
    pub child: Child,
    pub started: Instant,
}

/// Launches box `spec.n` and waits for its sshd banner. On any failure the box is torn down
/// completely (its disk is kept) and the error carries the box's console tail.
pub fn boot(
    l: &Layout,
    spec: &BootSpec,
    probe: &dyn Fn(&str, Duration) -> bool,
) -> Result<Running> {
    match boot_inner(l, spec, probe) {
        Ok(r) => Ok(r),
        Err(e) => {
            let console = util::tail(&l.console_log(spec.n), 25);
            kill_box(l, spec.n, None);
            Err(e.context(format!(
                "box {} ({}) failed to boot; its console ends with:\n{console}",
                spec.n, spec.name
            )))
        }
    }
}

fn boot_inner(
    l: &Layout,
    spec: &BootSpec,
    probe: &dyn Fn(&str, Duration) -> bool,
) -> Result<Running> {
    let n = spec.n;
    let upper = spec.disk.join("upper");
    let work = spec.disk.join("work");
    let merged = l.merged(n);
    for d in [&upper, &work, &merged] {
        std::fs::create_dir_all(d)
            .with_context(|| format!("failed to create `{}`", d.display()))?;
    }
    let lower: Vec<String> = spec
        .layers
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    run(Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.join(":"),
            upper.display(),
            work.display()
        ))
        .arg(&merged))?;
    // The upper layer is the box's own: root inside it may have planted links, so nothing
    // here follows one.
    for (path, mode, content) in &spec.files {
        util::write_in_tree(&merged, path, *mode, content)?;
    }
    let (ip, name) = &spec.hosts_entry;
    let hosts = util::read_in_tree(&merged, "/etc/hosts");
    let mut hosts: String = hosts
        .lines()
        .filter(|l| !l.split_whitespace().skip(1).any(|h| h == name))
        .map(|l| format!("{l}\n"))
        .collect();
    hosts.push_str(&format!("{ip}\t{name}\n"));
    util::write_in_tree(&merged, "/etc/hosts", 0o644, hosts.as_bytes())?;
    // Network: a veth pair from the hub bridge; no default route, so nothing leaves.
    let hub = l.hub_ns();
    let ns = l.box_ns(n);
    let veth = format!("vb{n}");
    // A veth left by a box that went down a moment ago (the kernel frees a deleted namespace,
    // and the veth in it, asynchronously) would make the new one fail with "File exists".
    if link_exists(&hub, &veth) {
        run_quiet(Command::new("ip").args(["-n", &hub, "link", "del", &veth]));
    }
    run(Command::new("ip").args(["netns", "add", &ns]))?;
    run(Command::new("ip")
        .args([
            "-n", &hub, "link", "add", &veth, "type", "veth", "peer", "name", "eth0",
        ])
        .args(["netns", &ns, "address", &box_mac(n)]))?;
    run(Command::new("ip").args(["-n", &hub, "link", "set", &veth, "master", "cgbr0", "up"]))?;
    run(Command::new("ip").args([
        "-n",
        &ns,
        "addr",
        "add",
        &format!("{}/24", box_ip(n)),
        "dev",
        "eth0",
    ]))?;
    run(Command::new("ip").args(["-n", &ns, "link", "set", "eth0", "up"]))?;
    run(Command::new("ip").args(["-n", &ns, "link", "set", "lo", "up"]))?;
    run(Command::new("ip").args([
        "-n",
        &ns,
        "route",
        "add",
        &format!("{IMDS_IP}/32"),
        "dev",
        "eth0",
    ]))?;
    run(Command::new("ip").args([
        "-n",
        &ns,
        "route",
        "add",
        &format!("{}/32", crate::dns::DNS_IP),
        "dev",
        "eth0",
    ]))?;
    if let Some(ip) = &spec.private_ip {
        crate::vpc::box_address(&ns, ip)?;
    }
    // Own cgroup per box: boxes sharing one break `systemctl stop` inside them.
    let cgs: Vec<String> = l
        .cgroups(n)
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    std::fs::create_dir_all("/run/systemd").context("failed to create `/run/systemd`")?;
    let log = std::fs::File::create(l.console_log(n))
        .with_context(|| format!("failed to create `{}`", l.console_log(n).display()))?;
    let log2 = log
        .try_clone()
        .context("failed to duplicate a log handle")?;
    // A private tmpfs on /run/systemd keeps nspawn's runtime files off the host.
    let script = format!(
        "for c in {cgs}; do mkdir -p $c && echo $$ > $c/cgroup.procs || exit 1; done; \
         mount -t tmpfs tmpfs /run/systemd && exec systemd-nspawn -b -q --register=no --keep-unit \
         --console=read-only --resolv-conf=off -D {merged} -M {name} \
         --network-namespace-path=/run/netns/{ns} {binds}",
        binds = spec.binds.join(" "),
        cgs = cgs.join(" "),
        merged = merged.display(),
        name = spec.name,
    );
    let mut child = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .context("failed to run `unshare … systemd-nspawn`")?;
    let started = Instant::now();
    let addr = format!("{}:22", box_ip(n));
    loop {
        if let Some(status) = child
            .try_wait()
            .context("failed to check on systemd-nspawn")?
        {
            bail!("systemd-nspawn exited with {status} before sshd answered");
        }
        if probe(&addr, Duration::from_millis(400)) {
            break;
        }
        if started.elapsed() > BOOT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            bail!("sshd did not answer within {BOOT_TIMEOUT:?}");
        }
    }
    Ok(Running { n, child, started })
}

/// The host PID of the box's init (the first child of its nspawn), while it runs.
pub fn init_pid(r: &Running) -> Option<u32> {
    let pid = r.child.id();
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Powers box `r` off in order (the guest's systemd shuts down), killing it after a timeout.
pub fn poweroff(l: &Layout, mut r: Running) {
    run_quiet(Command::new("kill").args(["-TERM", &r.child.id().to_string()]));
    let deadline = Instant::now() + POWEROFF_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = r.child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    kill_box(l, r.n, Some(&mut r.child));
}

/// Kills everything of box `n` at once and removes its mount, namespace and cgroups; its disk stays.
pub fn kill_box(l: &Layout, n: u32, child: Option<&mut Child>) {
    let cgs = l.cgroups(n);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids: Vec<String> = cgs.iter().flat_map(|c| cgroup_pids(c)).collect();
        if pids.is_empty() || Instant::now() > deadline {
            break;
        }
        run_quiet(Command::new("kill").arg("-KILL").args(&pids));
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Some(c) = child {
        let _ = c.kill();
        let _ = c.wait();
    }
    let merged = l.merged(n);
    if util::is_mounted(&merged) {
        run_quiet(Command::new("umount").arg(&merged));
        if util::is_mounted(&merged) {
            run_quiet(Command::new("umount").arg("-l").arg(&merged));
        }
    }
    // The hub's end of the veth first: deleting it takes the box's end at once, where deleting
    // the namespace alone leaves both to the kernel's asynchronous clean-up.
    run_quiet(Command::new("ip").args(["-n", &l.hub_ns(), "link", "del", &format!("vb{n}")]));
    run_quiet(Command::new("ip").args(["netns", "del", &l.box_ns(n)]));
    for c in &cgs {
        remove_cgroup(c);
    }
    let _ = std::fs::remove_dir_all(l.box_dir(n));
}

/// Whether network namespace `ns` has a link named `name`.
fn link_exists(ns: &str, name: &str) -> bool {
    util::succeeds(Command::new("ip").args(["-n", ns, "link", "show", "dev", name]))
}

/// Every process in cgroup `dir` and below.
pub fn cgroup_pids(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(s) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(s.lines().map(str::to_string).filter(|p| !p.is_empty()));
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                out.extend(cgroup_pids(&e.path()));
            }
        }
    }
    out
}

/// Removes an (empty) cgroup subtree depth-first; nspawn never removes its `payload` folders.
pub fn remove_cgroup(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while dir.exists() && Instant::now() < deadline {
        remove_cgroup_once(dir);
        if dir.exists() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn remove_cgroup_once(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup_once(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Copies a disk's upper folder into an image layer (`cp -a` keeps whiteouts and xattrs).
pub fn snapshot_disk(disk: &Path, layer: &Path) -> Result<()> {
    if let Some(p) = layer.parent() {
        std::fs::create_dir_all(p)
            .with_context(|| format!("failed to create `{}`", p.display()))?;
    }
    let tmp = layer.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    run(Command::new("cp")
        .arg("-a")
        .arg(disk.join("upper"))
        .arg(&tmp))?;
    // The seed holds the old instance's identity; the next boot writes a new one.
    let _ = std::fs::remove_dir_all(tmp.join("var/lib/cloud/seed"));
    std::fs::rename(&tmp, layer).with_context(|| {
        format!(
            "failed to move `{}` to `{}`",
            tmp.display(),
            layer.display()
        )
    })
}
