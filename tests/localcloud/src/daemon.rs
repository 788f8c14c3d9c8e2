//! The local cloud's daemon (`cgcloud-localcloud up`): owns the hub, every box and image of one
//! cloud, and makes them follow moto's EC2 state.
//!
//! - A control socket answers the ssh ProxyCommand (`connect HOST`: boots the instance's box
//!   lazily and names its address), `sync`, `status` and `shutdown`.
//! - A watcher polls moto's `/moto-api/data.json`: CreateImage snapshots a box's disk, stop powers
//!   a box off keeping its disk (a stop+start between two polls is seen as a new public IP),
//!   start powers it on again, terminate destroys box and disk.
//! - Relays carry the boxes' apt to the host's Debian mirror, their metadata requests to
//!   [`crate::imds`], and `http://10.250.0.1:4566` to moto (the emulated AWS, for software in
//!   boxes that uses instance-profile credentials). Nothing else crosses out of the hub.

use crate::boxes::{self, BootSpec, Layout, Running};
use crate::host::Mirror;
use crate::moto::{Image, Instance, MotoApi, Snapshot};
use crate::{host, imds, pipe, rootfs, util};
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Debian's AWS account, which publishes the official Debian AMIs.
pub const DEBIAN_OWNER: &str = "136693071363";
/// How often the watcher reads moto's state.
const POLL: Duration = Duration::from_millis(300);
/// How often moto is read while nothing moves (no box booting, no instance between states, no
/// connection lately): a snapshot is moto's whole state and costs it a fifth of a second of CPU.
const IDLE_POLL: Duration = Duration::from_secs(2);
/// How often the volumes' files are checked against moto (deleted ones are let go).
const VOLUME_SWEEP: Duration = Duration::from_secs(20);
/// How long after a connection or a change the cloud counts as busy.
const BUSY_FOR: Duration = Duration::from_secs(10);

/// How many boxes may boot at once on this machine, across all clouds (2 cores).
const BOOT_SLOTS: usize = 2;
/// How long a boot may wait for a free slot.
const SLOT_TIMEOUT: Duration = Duration::from_secs(120);

/// What `up` was asked for.
#[derive(Debug, Clone)]
pub struct Config {
    pub cid: Option<String>,
    pub endpoint: String,
    /// Only instances of these accounts get boxes; empty: every account.
    pub accounts: Vec<String>,
    /// Tear down when the process that started the daemon goes away.
    pub exit_with_parent: bool,
    /// Processes to kill at teardown (e.g. the moto_server a test fixture started).
    pub kill_on_exit: Vec<u32>,
}

/// One box's record; `running` is `None` while its instance is stopped.
struct BoxRec {
    n: u32,
    layers: Vec<PathBuf>,
    running: Option<Running>,
    /// The public IP moto gave the instance when the box booted.
    public_ip: Option<String>,
    boot_ms: u128,
    /// A `connect` boots the box now, without the state lock; the box is left alone until then.
    booting: bool,
}

/// An image made by CreateImage: the source disk's layers over its base.
#[derive(Clone)]
struct ImageRec {
    layers: Vec<PathBuf>,
}

#[derive(Default)]
struct State {
    boxes: HashMap<String, BoxRec>,
    images: HashMap<String, ImageRec>,
    used: Vec<u32>,
    instances: Vec<Instance>,
    /// The security groups of instances with a running box, looked up when it boots.
    groups: HashMap<String, Vec<String>>,
    /// The security-group ruleset the hub has now.
    firewall: String,
    /// The number of the newest moto snapshot reconciled (snapshots are numbered when taken).
    applied: u64,
    /// The images of that snapshot.
    known_images: Vec<Image>,
    /// When that snapshot was taken.
    synced: Option<Instant>,
    /// The volumes (and their states) of the last snapshot whose attachments the boxes follow.
    volumes_seen: Vec<crate::moto::VolumeRec>,
    /// The volumes plugged into each running box after its boot.
    plugged: HashMap<String, Vec<crate::ebs::Attachment>>,
    /// The last connection, boot, or change seen in moto: the watcher polls fast until
    /// [`BUSY_FOR`] after it.
    active: Option<Instant>,
}

impl State {
    /// Whether something moves: the watcher then polls every [`POLL`], else every [`IDLE_POLL`].
    fn busy(&self) -> bool {
        self.active.is_some_and(|t| t.elapsed() < BUSY_FOR)
            || self.boxes.values().any(|b| b.booting)
            || self
                .instances
                .iter()
                .any(|i| matches!(i.state.as_str(), "pending" | "stopping" | "shutting-down"))
    }
}

/// A running cloud.
pub struct Cloud {
    pub layout: Layout,
    moto: MotoApi,
    accounts: Vec<String>,
    mirror: Mirror,
    exe: PathBuf,
    state: Mutex<State>,
    helpers: Mutex<Vec<Child>>,
    kill_on_exit: Vec<u32>,
    /// Instances whose box is being powered on again after a start (`power_on_started`).
    powering: Mutex<std::collections::HashSet<String>>,
    /// How many moto snapshots were started: the next one gets this number plus one.
    snapshots: std::sync::atomic::AtomicU64,
    /// Held while a snapshot is taken for `fresh_state`: callers that arrive meanwhile share
    /// the next one instead of each taking their own.
    snapshotting: Mutex<()>,
}

/// Runs a cloud until `shutdown`, parent exit (if asked) or a fatal error; tears it down.
pub fn up(cfg: Config) -> Result<()> {
    host::preflight(false)?;
    for (suite, _) in rootfs::SUITES {
        if !rootfs::recipe(suite)?.is_built() {
            bail!("the {suite} rootfs is not built; run `cgcloud-localcloud setup` first (about a minute per suite, cached)");
        }
    }
    crate::cleanup::reap_stale();
    let moto = MotoApi::new(&cfg.endpoint)?;
    moto.snapshot()
        .context("moto does not answer; start moto_server first")?;
    let mirror = host::mirror()?;
    let layout = crate::cleanup::claim(cfg.cid.as_deref())?;
    let exe = std::env::current_exe().context("failed to find this program's path")?;
    let cloud = Arc::new(Cloud {
        layout,
        moto,
        accounts: cfg.accounts.clone(),
        mirror,
        exe,
        state: Mutex::new(State::default()),
        helpers: Mutex::new(Vec::new()),
        kill_on_exit: cfg.kill_on_exit.clone(),
        powering: Mutex::new(Default::default()),
        snapshots: Default::default(),
        snapshotting: Mutex::new(()),
    });
    if let Err(e) = cloud.start(cfg.exit_with_parent) {
        cloud.teardown();
        return Err(e);
    }
    Ok(())
}

impl Cloud {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn start(self: &Arc<Self>, exit_with_parent: bool) -> Result<()> {
        let l = &self.layout;
        let info = serde_json::json!({
            "cid": l.cid, "pid": std::process::id(), "endpoint": self.moto.endpoint(),
            "hub": l.hub_ns(), "accounts": self.accounts,
        });
        util::write_atomic(&l.dir.join("cloud.json"), info.to_string().as_bytes())?;
        boxes::hub_up(l)?;
        crate::vpc::hub_up(l)?;
        let control = bind(&l.control_sock())?;
        let relay = bind(&l.relay_sock())?;
        let imds_l = bind(&l.imds_sock())?;
        let aws = bind(&l.aws_sock())?;
        self.spawn_hub_listener(
            &format!("{}:{}", boxes::HUB_IP, imds::AWS_RELAY_PORT),
            &l.aws_sock(),
            false,
        )?;
        self.spawn_hub_listener(
            &format!("{}:{}", boxes::HUB_IP, self.mirror.port),
            &l.relay_sock(),
            false,
        )?;
        self.spawn_hub_listener(&format!("{}:80", boxes::IMDS_IP), &l.imds_sock(), true)?;
        self.spawn_in_hub(&["_dns", "--bind", &format!("{}:53", crate::dns::DNS_IP)])?;
        let ssh_config = format!(
            "# Written by cgcloud-localcloud for cloud `{cid}`: every host goes through the local\n\
             # cloud, which connects to the box that plays the instance and refuses any other address.\n\
             Host *\n  ProxyCommand {exe} proxy --cloud {cid} %h %p\n",
            cid = l.cid,
            exe = self.exe.display()
        );
        util::write_atomic(&l.dir.join("ssh_config"), ssh_config.as_bytes())?;

        let me = self.clone();
        std::thread::spawn(move || me.serve_relay(relay));
        let moto = self.moto.addr();
        let upstream_file = l.aws_upstream_file();
        std::thread::spawn(move || {
            for c in aws.incoming().flatten() {
                let to = aws_upstream(&upstream_file).unwrap_or(moto);
                std::thread::spawn(move || {
                    if let Ok(t) = std::net::TcpStream::connect_timeout(&to, pipe::CONNECT_TIMEOUT)
                    {
                        let _ = pipe::splice_tcp_unix(t, c);
                    }
                });
            }
        });
        let me = self.clone();
        std::thread::spawn(move || {
            for c in imds_l.incoming().flatten() {
                let me = me.clone();
                std::thread::spawn(move || imds::serve(&me, c));
            }
        });
        let me = self.clone();
        let parent = std::os::unix::process::parent_id();
        let mut swept = Instant::now();
        std::thread::spawn(move || loop {
            std::thread::sleep(POLL);
            if swept.elapsed() > VOLUME_SWEEP {
                swept = Instant::now();
                let gone = crate::ebs::sweep(&me.layout, &me.moto);
                if gone > 0 {
                    eprintln!(
                        "localcloud {}: {gone} deleted volume(s) let go",
                        me.layout.cid
                    );
                }
            }
            {
                let st = me.lock();
                if !st.busy() && st.synced.is_some_and(|t| t.elapsed() < IDLE_POLL) {
                    continue;
                }
            }
            if exit_with_parent && std::os::unix::process::parent_id() != parent {
                eprintln!("localcloud {}: parent exited; tearing down", me.layout.cid);
                me.teardown();
                std::process::exit(0);
            }
            if let Err(e) = me.sync() {
                eprintln!("localcloud {}: watcher: {e:#}", me.layout.cid);
            }
            me.power_on_started();
        });
        // The line a launcher waits for.
        println!("READY {} {}", l.cid, l.dir.join("ssh_config").display());
        let _ = std::io::stdout().flush();
        for c in control.incoming().flatten() {
            let me = self.clone();
            std::thread::spawn(move || me.handle_control(c));
        }
        Ok(())
    }

    fn spawn_hub_listener(&self, bind: &str, sock: &std::path::Path, peer: bool) -> Result<()> {
        let sock = sock.display().to_string();
        let mut args = vec!["_listen", "--bind", bind, "--unix", &sock];
        if peer {
            args.push("--peer");
        }
        self.spawn_in_hub(&args)
    }

    /// Runs this program with `args` in the hub's network namespace, until the cloud ends.
    fn spawn_in_hub(&self, args: &[&str]) -> Result<()> {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.layout.hub_ns()))
            .arg(&self.exe)
            .args(args)
            .stdin(Stdio::null());
        let child = cmd
            .spawn()
            .with_context(|| format!("failed to run `{}`", util::show(&cmd)))?;
        self.helpers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(child);
        Ok(())
    }

    /// The apt relay: each connection from the hub goes to the host's Debian mirror.
    fn serve_relay(&self, l: UnixListener) {
        for c in l.incoming().flatten() {
            let (host, port) = (self.mirror.host.clone(), self.mirror.port);
            std::thread::spawn(move || {
                let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
                    .ok()
                    .and_then(|mut a| a.next());
                let Some(addr) = addr else { return };
                if let Ok(t) = std::net::TcpStream::connect_timeout(&addr, pipe::CONNECT_TIMEOUT) {
                    let _ = pipe::splice_tcp_unix(t, c);
                }
            });
        }
    }

    fn handle_control(self: Arc<Self>, c: UnixStream) {
        let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
        let mut line = String::new();
        let Ok(mut w) = c.try_clone() else { return };
        if BufReader::new(c).read_line(&mut line).is_err() {
            return;
        }
        let mut words = line.split_whitespace();
        let reply = match (words.next(), words.next()) {
            (Some("connect"), Some(host)) => match self.connect(host) {
                Ok(ip) => format!("ok {ip}\n"),
                Err(e) => format!("err {e:#}\n"),
            },
            (Some("sync"), _) => match self.sync() {
                Ok(()) => "ok\n".to_string(),
                Err(e) => format!("err {e:#}\n"),
            },
            (Some("status"), _) => format!("ok {}\n", self.status()),
            (Some("shutdown"), _) => {
                self.teardown();
                let _ = w.write_all(b"ok\n");
                std::process::exit(0);
            }
            _ => format!("err unknown request `{}`\n", line.trim()),
        };
        let _ = w.write_all(reply.as_bytes());
    }

    fn watched(&self, i: &Instance) -> bool {
        self.accounts.is_empty() || self.accounts.contains(&i.owner_id)
    }

    /// Reads moto and makes the boxes and the security groups between them follow it.
    pub fn sync(&self) -> Result<()> {
        let mut st = self.snapshot_and_lock()?;
        self.refresh_vpc(&mut st)
    }

    /// Makes the running boxes' devices follow their instances' volume attachments, and lets go
    /// of volumes moto no longer has. A failure is logged and tried again at the next change.
    fn follow_volumes(&self, st: &mut State, snap: &crate::moto::Snapshot) {
        let mut all_done = true;
        let running: Vec<(String, u32)> = st
            .boxes
            .iter()
            .filter(|(_, rec)| !rec.booting)
            .filter_map(|(iid, rec)| Some((iid.clone(), boxes::init_pid(rec.running.as_ref()?)?)))
            .collect();
        for (iid, init) in running {
            let Some(inst) = st.instances.iter().find(|i| i.id == iid).cloned() else {
                continue;
            };
            let now = match crate::ebs::attachments(&self.moto, &inst) {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("localcloud {}: volumes of {iid}: {e:#}", self.layout.cid);
                    all_done = false;
                    continue;
                }
            };
            let before = st.plugged.remove(&iid).unwrap_or_default();
            for gone in before.iter().filter(|b| !now.contains(b)) {
                crate::ebs::unplug(init, &gone.device);
            }
            for a in &now {
                if let Err(e) = crate::ebs::plug(&self.layout, &inst, init, a) {
                    eprintln!("localcloud {}: {iid}: {e:#}", self.layout.cid);
                    all_done = false;
                }
            }
            st.plugged.insert(iid, now);
        }
        st.volumes_seen = if all_done {
            snap.volumes.clone()
        } else {
            Vec::new()
        };
    }

    /// Takes a moto snapshot without the state lock (it is an HTTP call), then locks the state
    /// and reconciles it, unless a newer snapshot was reconciled meanwhile: the state never goes
    /// back in time, and callers do not wait for each other's calls to moto.
    fn snapshot_and_lock(&self) -> Result<MutexGuard<'_, State>> {
        let number = self
            .snapshots
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        let taken = Instant::now();
        let snap = self.moto.snapshot()?;
        let mut st = self.lock();
        if number > st.applied {
            let before: Vec<(String, String)> = st
                .instances
                .iter()
                .map(|i| (i.id.clone(), i.state.clone()))
                .collect();
            self.reconcile(&mut st, &snap)?;
            if st.volumes_seen != snap.volumes {
                self.follow_volumes(&mut st, &snap);
            }
            st.applied = number;
            st.synced = Some(taken);
            let changed = st.instances.len() != before.len()
                || st
                    .instances
                    .iter()
                    .zip(&before)
                    .any(|(i, (id, state))| &i.id != id || &i.state != state);
            if changed {
                st.active = Some(Instant::now());
            }
        }
        Ok(st)
    }

    /// The state locked, reconciled with a moto snapshot taken after this call began. Callers
    /// that arrive together share one snapshot: nine connections at once cost two, not nine.
    fn fresh_state(&self) -> Result<MutexGuard<'_, State>> {
        let arrived = self.snapshots.load(std::sync::atomic::Ordering::SeqCst);
        self.lock().active = Some(Instant::now());
        let _one_at_a_time = self.snapshotting.lock().unwrap_or_else(|p| p.into_inner());
        {
            let st = self.lock();
            if st.applied > arrived {
                return Ok(st);
            }
        }
        self.snapshot_and_lock()
    }

    /// Powers on, each in a thread of its own, the boxes of instances that were stopped and are
    /// running again: an instance started through the EC2 API boots by itself, as on EC2 (a box
    /// that fails to boot is tried again). A box's first boot waits for the first connection.
    fn power_on_started(self: &Arc<Self>) {
        let started: Vec<String> = {
            let st = self.lock();
            st.boxes
                .iter()
                .filter(|(iid, rec)| {
                    rec.running.is_none()
                        && !rec.booting
                        && st
                            .instances
                            .iter()
                            .any(|i| &i.id == *iid && i.state == "running")
                })
                .map(|(iid, _)| iid.clone())
                .collect()
        };
        for iid in started {
            let fresh = self
                .powering
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(iid.clone());
            if !fresh {
                continue;
            }
            let me = self.clone();
            std::thread::spawn(move || {
                if let Err(e) = me.connect(&iid) {
                    // Tried again after a pause (other boxes may hold the boot slots).
                    eprintln!(
                        "localcloud {}: {iid} was started but its box did not boot ({e:#}); trying again",
                        me.layout.cid
                    );
                    std::thread::sleep(Duration::from_secs(10));
                }
                me.powering
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&iid);
            });
        }
    }

    /// Rebuilds the hub's security-group ruleset from the running boxes and moto's rules, when
    /// either changed.
    fn refresh_vpc(&self, st: &mut State) -> Result<()> {
        let mut members = Vec::new();
        for (iid, rec) in &st.boxes {
            if rec.running.is_none() {
                continue;
            }
            let Some(inst) = st.instances.iter().find(|i| &i.id == iid) else {
                continue;
            };
            let (Some(ip), Some(vpc)) = (&inst.private_ip, &inst.vpc_id) else {
                continue;
            };
            members.push(crate::vpc::Member {
                instance: iid.clone(),
                private_ip: ip.clone(),
                vpc: vpc.clone(),
                groups: st.groups.get(iid).cloned().unwrap_or_default(),
            });
        }
        members.sort_by(|a, b| a.instance.cmp(&b.instance));
        // The rules of every account and region that runs a box.
        let mut places: Vec<(String, String)> = members
            .iter()
            .filter_map(|m| st.instances.iter().find(|i| i.id == m.instance))
            .map(|i| (i.owner_id.clone(), i.region_name.clone()))
            .collect();
        places.sort();
        places.dedup();
        let mut rules = Vec::new();
        for (account, region) in &places {
            rules.extend(self.moto.ingress_rules(account, region)?);
        }
        let text = crate::vpc::ruleset(&members, &rules);
        if text != st.firewall {
            crate::vpc::apply(&self.layout, &text)?;
            st.firewall = text;
        }
        Ok(())
    }

    fn reconcile(&self, st: &mut State, snap: &Snapshot) -> Result<()> {
        st.known_images = snap.images.clone();
        st.instances = snap
            .instances
            .iter()
            .filter(|i| self.watched(i))
            .cloned()
            .collect();
        // Images first: a CreateImage followed at once by a terminate still sees the disk.
        for img in &snap.images {
            let Some(src) = img.from_instance() else {
                continue;
            };
            if st.images.contains_key(&img.id) {
                continue;
            }
            let Some(inst) = st.instances.iter().find(|i| i.id == src).cloned() else {
                continue;
            };
            let base = match st.boxes.get(&inst.id) {
                Some(b) => b.layers.clone(),
                None => match self.image_layers(st, &inst.image_id) {
                    Ok(l) => l,
                    Err(_) => continue, // made from an instance that cannot boot here
                },
            };
            let disk = self.layout.disk(&inst.id);
            let mut layers = base;
            if disk.join("upper").exists() {
                let layer = self.layout.image_dir(&img.id).join("layer");
                boxes::snapshot_disk(&disk, &layer).with_context(|| {
                    format!("failed to snapshot `{}` for image `{}`", inst.id, img.id)
                })?;
                layers.insert(0, layer);
            }
            eprintln!(
                "localcloud {}: image {} made from {}",
                self.layout.cid, img.id, inst.id
            );
            st.images.insert(img.id.clone(), ImageRec { layers });
        }
        let ids: Vec<String> = st.boxes.keys().cloned().collect();
        for iid in ids {
            let inst = st.instances.iter().find(|i| i.id == iid).cloned();
            let (state, ip) = match &inst {
                Some(i) => (i.state.as_str(), i.public_ip.clone()),
                None => ("terminated", None),
            };
            let Some(rec) = st.boxes.get_mut(&iid) else {
                continue;
            };
            if rec.booting {
                // Seen again by the first poll after its boot ends.
                continue;
            }
            match state {
                "running" | "pending" => {
                    if rec.running.is_some() && rec.public_ip != ip {
                        // Stopped and started again between two polls: that was a power cycle.
                        if let Some(r) = rec.running.take() {
                            boxes::poweroff(&self.layout, r);
                        }
                    }
                }
                "stopping" | "stopped" => {
                    if let Some(r) = rec.running.take() {
                        eprintln!(
                            "localcloud {}: {iid} stopped; powering box {} off",
                            self.layout.cid, rec.n
                        );
                        boxes::poweroff(&self.layout, r);
                    }
                }
                _ => {
                    let n = rec.n;
                    if let Some(mut r) = rec.running.take() {
                        boxes::kill_box(&self.layout, n, Some(&mut r.child));
                    }
                    eprintln!(
                        "localcloud {}: {iid} terminated; box {n} destroyed",
                        self.layout.cid
                    );
                    st.boxes.remove(&iid);
                    st.groups.remove(&iid);
                    st.used.retain(|x| *x != n);
                    let _ = std::fs::remove_dir_all(self.layout.disk(&iid));
                }
            }
        }
        Ok(())
    }

    /// The layers an instance of `ami` boots from, or why it cannot boot here.
    fn image_layers(&self, st: &State, ami: &str) -> Result<Vec<PathBuf>> {
        if let Some(rec) = st.images.get(ami) {
            return Ok(rec.layers.clone());
        }
        let img: Option<&Image> = st.known_images.iter().find(|i| i.id == ami);
        let Some(img) = img else {
            bail!("its image `{ami}` is unknown to moto");
        };
        let name = img.name.clone().unwrap_or_default();
        match debian_suite(img) {
            Some(suite) => {
                let r = rootfs::recipe(suite)?;
                if !r.is_built() {
                    bail!("the {suite} rootfs is not built; run `cgcloud-localcloud setup`");
                }
                Ok(vec![r.dir()])
            }
            None => bail!(
                "its image `{ami}` (`{name}`, owner {}) cannot boot in the local cloud: only Debian 12 and 13 \
                 images from Debian's account ({DEBIAN_OWNER}) and images made from boxes have a box here",
                img.owner_id
            ),
        }
    }

    /// Finds the instance `host` names, boots its box if needed, and returns the box's address.
    /// A boot runs without the state lock, so boxes boot side by side (up to the boot slots)
    /// and connections to running boxes are answered meanwhile; a second connection to a box
    /// that is booting waits for that boot.
    pub fn connect(&self, host: &str) -> Result<String> {
        // Always moto's view from after the request: a box started or stopped through the EC2
        // API a moment ago must not be answered from an older view.
        let mut st = self.fresh_state()?;
        let deadline = Instant::now() + SLOT_TIMEOUT + boxes::BOOT_TIMEOUT;
        let (inst, n, layers) = loop {
            let inst = self.instance_named(&st, host)?;
            if let Some(rec) = st.boxes.get(&inst.id) {
                if rec.running.is_some() {
                    return Ok(boxes::box_ip(rec.n));
                }
                if rec.booting {
                    if Instant::now() > deadline {
                        bail!("instance `{}` is still booting; try again", inst.id);
                    }
                    drop(st);
                    std::thread::sleep(Duration::from_millis(100));
                    st = self.lock();
                    continue;
                }
            }
            let (n, layers) = match st.boxes.get(&inst.id) {
                Some(rec) => (rec.n, rec.layers.clone()),
                None => {
                    let layers = self
                        .image_layers(&st, &inst.image_id)
                        .with_context(|| format!("instance `{}` cannot get a box", inst.id))?;
                    let n = (1..=boxes::MAX_BOXES)
                        .find(|n| !st.used.contains(n))
                        .context("this cloud already runs the most boxes it can (200)")?;
                    st.used.push(n);
                    st.boxes.insert(
                        inst.id.clone(),
                        BoxRec {
                            n,
                            layers: layers.clone(),
                            running: None,
                            public_ip: None,
                            boot_ms: 0,
                            booting: false,
                        },
                    );
                    (n, layers)
                }
            };
            if let Some(rec) = st.boxes.get_mut(&inst.id) {
                rec.booting = true;
            }
            break (inst, n, layers);
        };
        drop(st);
        let t0 = Instant::now();
        let booted = self.boot_box(&inst, n, layers);
        let groups = booted
            .as_ref()
            .ok()
            .map(|_| self.moto.security_groups(&inst));
        let mut st = self.lock();
        let Some(rec) = st.boxes.get_mut(&inst.id) else {
            // Only teardown drops a record that is booting.
            bail!("instance `{}`: the local cloud is going down", inst.id);
        };
        rec.booting = false;
        let running = booted?;
        let ms = util::ms(t0);
        eprintln!(
            "localcloud {}: {} booted as box {n} in {ms} ms",
            self.layout.cid, inst.id
        );
        rec.running = Some(running);
        rec.public_ip = inst.public_ip.clone();
        rec.boot_ms = ms;
        // Its volumes were bound in at boot; the next snapshot checks them against moto's.
        st.plugged.remove(&inst.id);
        st.volumes_seen.clear();
        // Its security groups, for the ruleset between boxes (moto's dump leaves them out).
        match groups {
            Some(Ok(groups)) => {
                st.groups.insert(inst.id.clone(), groups);
            }
            Some(Err(e)) => eprintln!(
                "localcloud {}: the security groups of {} are unknown ({e:#}); nothing reaches it from other boxes",
                self.layout.cid, inst.id
            ),
            None => {}
        }
        if let Err(e) = self.refresh_vpc(&mut st) {
            eprintln!("localcloud {}: security groups: {e:#}", self.layout.cid);
        }
        Ok(boxes::box_ip(n))
    }

    /// The instance `host` names (its ID, a private or public address or DNS name) that can
    /// have a box: a running one first.
    fn instance_named(&self, st: &State, host: &str) -> Result<Instance> {
        let mut matches: Vec<&Instance> =
            st.instances.iter().filter(|i| i.answers_to(host)).collect();
        matches.sort_by_key(|i| i.state != "running");
        let Some(inst) = matches.into_iter().next() else {
            bail!("no instance of the local cloud has the address `{host}`; refusing to connect (no box plays it)");
        };
        if inst.state != "running" && inst.state != "pending" {
            bail!(
                "instance `{}` (`{host}`) is {}; no box plays it",
                inst.id,
                inst.state
            );
        }
        Ok(inst.clone())
    }

    /// Boots box `n` for `inst` from `layers` once a boot slot is free; no state lock held.
    fn boot_box(&self, inst: &Instance, n: u32, layers: Vec<PathBuf>) -> Result<Running> {
        let spec = self.boot_spec(inst, n, layers)?;
        let _slot = boot_slot()?;
        let exe = self.exe.clone();
        let hub = self.layout.hub_ns();
        let probe = move |addr: &str, t: Duration| -> bool {
            util::succeeds(
                Command::new("nsenter")
                    .arg(format!("--net=/run/netns/{hub}"))
                    .arg(&exe)
                    .args(["_probe", addr, "--timeout-ms", &t.as_millis().to_string()]),
            )
        };
        boxes::boot(&self.layout, &spec, &probe)
            .with_context(|| format!("instance `{}` could not start", inst.id))
    }

    /// The files a box gets before every boot: the NoCloud seed, apt's mirror and the relay.
    fn boot_spec(&self, inst: &Instance, n: u32, layers: Vec<PathBuf>) -> Result<BootSpec> {
        let user_data = self.moto.user_data(inst)?;
        let key = self.moto.key_pair_public_key(inst)?;
        let suite = layers
            .last()
            .and_then(|p| p.file_name())
            .map(|f| {
                f.to_string_lossy()
                    .split('-')
                    .nth(1)
                    .unwrap_or("bookworm")
                    .to_string()
            })
            .unwrap_or_else(|| "bookworm".into());
        let hostname = inst
            .private_dns_name
            .as_deref()
            .and_then(|d| d.split('.').next())
            .filter(|h| !h.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| inst.id.clone());
        let meta = serde_json::json!({
            "instance-id": inst.id,
            "local-hostname": hostname,
            "public-keys": key.into_iter().collect::<Vec<_>>(),
        });
        let mut sources = format!(
            "Types: deb\nURIs: {}\nSuites: {suite} {suite}-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
            self.mirror.archive
        );
        if let Some(sec) = &self.mirror.security {
            sources.push_str(&format!(
                "\nTypes: deb\nURIs: {sec}\nSuites: {suite}-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
            ));
        }
        let seed = "/var/lib/cloud/seed/nocloud";
        // Volumes attached while the instance was stopped (or before its first boot) are
        // there when it boots, for /etc/fstab.
        let attached = crate::ebs::attachments(&self.moto, inst)?;
        let binds = crate::ebs::bind_args(&self.layout, inst, &attached)?;
        Ok(BootSpec {
            binds,
            n,
            name: inst.id.clone(),
            layers,
            disk: self.layout.disk(&inst.id),
            hosts_entry: (boxes::HUB_IP.to_string(), self.mirror.host.clone()),
            private_ip: inst
                .private_ip
                .clone()
                .filter(|ip| !ip.is_empty() && !crate::vpc::in_cidr(ip, boxes::BRIDGE_NET)),
            files: vec![
                (
                    format!("{seed}/meta-data"),
                    0o600,
                    meta.to_string().into_bytes(),
                ),
                (format!("{seed}/user-data"), 0o600, user_data),
                (format!("{seed}/vendor-data"), 0o600, Vec::new()),
                (
                    "/etc/resolv.conf".into(),
                    0o644,
                    crate::dns::resolv_conf().into_bytes(),
                ),
                (
                    "/etc/apt/sources.list.d/debian.sources".into(),
                    0o644,
                    sources.into_bytes(),
                ),
                // The emulated region's endpoint: AWS software on the box (cgcloud's agent)
                // reaches moto through the hub relay, with the instance-profile credentials
                // the metadata stand-in serves, exactly as it would reach AWS.
                (
                    "/etc/systemd/system.conf.d/50-localcloud-aws.conf".into(),
                    0o644,
                    format!("[Manager]\nDefaultEnvironment=AWS_ENDPOINT_URL={AWS_ENDPOINT}\n")
                        .into_bytes(),
                ),
                (
                    "/etc/profile.d/localcloud-aws.sh".into(),
                    0o644,
                    format!("export AWS_ENDPOINT_URL={AWS_ENDPOINT}\n").into_bytes(),
                ),
            ],
        })
    }

    /// The instance a box address belongs to (for the metadata stand-in).
    pub fn instance_at(&self, ip: &str) -> Option<Instance> {
        let st = self.lock();
        let iid = st
            .boxes
            .iter()
            .find(|(_, b)| boxes::box_ip(b.n) == ip)
            .map(|(k, _)| k.clone())?;
        st.instances.iter().find(|i| i.id == iid).cloned()
    }

    pub fn moto(&self) -> &MotoApi {
        &self.moto
    }

    fn status(&self) -> String {
        let st = self.lock();
        let boxes: Vec<_> = st
            .boxes
            .iter()
            .map(|(iid, b)| {
                serde_json::json!({"instance": iid, "box": b.n, "ip": boxes::box_ip(b.n),
                    "running": b.running.is_some(), "booting": b.booting, "boot_ms": b.boot_ms, "layers": b.layers.len()})
            })
            .collect();
        serde_json::json!({"cid": self.layout.cid, "boxes": boxes, "images": st.images.keys().collect::<Vec<_>>()})
            .to_string()
    }

    /// Kills every box and helper and removes every host object of this cloud.
    pub fn teardown(&self) {
        let mut st = self.lock();
        let t0 = Instant::now();
        let count = st.boxes.len();
        for (_, mut rec) in st.boxes.drain() {
            let mut child = rec.running.take().map(|r| r.child);
            boxes::kill_box(&self.layout, rec.n, child.as_mut());
        }
        for mut h in self
            .helpers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            let _ = h.kill();
            let _ = h.wait();
        }
        for pid in self.kill_on_exit.iter().filter(|p| **p > 1) {
            util::run_quiet(Command::new("kill").args(["-KILL", &pid.to_string()]));
        }
        crate::cleanup::remove_cloud(&self.layout);
        eprintln!(
            "localcloud {}: torn down ({count} boxes) in {} ms",
            self.layout.cid,
            util::ms(t0)
        );
    }
}

/// The Debian suite of an official Debian AMI (`debian-12-…`, `debian-13-…` from Debian's account).
/// Where software in a box reaches the emulated AWS: the hub relay to moto.
pub const AWS_ENDPOINT: &str = "http://10.250.0.1:4566";

pub fn debian_suite(img: &Image) -> Option<&'static str> {
    if img.owner_id != DEBIAN_OWNER {
        return None;
    }
    let name = img.name.as_deref()?;
    let release = name.strip_prefix("debian-")?.split('-').next()?;
    rootfs::suite_of_release(release)
}

/// Where boxes' AWS calls go instead of moto, read for each connection: a loopback port in
/// `file` (a test's fault proxy in front of moto; see `LocalCloud::route_box_aws`), else moto.
fn aws_upstream(file: &std::path::Path) -> Option<std::net::SocketAddr> {
    let port: u16 = std::fs::read_to_string(file).ok()?.trim().parse().ok()?;
    Some(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
}

fn bind(p: &std::path::Path) -> Result<UnixListener> {
    let _ = std::fs::remove_file(p);
    UnixListener::bind(p).with_context(|| format!("failed to listen on `{}`", p.display()))
}

/// How many boxes may boot at once on this machine: `CGCLOUD_LOCALCLOUD_BOOT_SLOTS` (1-64) of
/// the daemon's environment, else [`BOOT_SLOTS`].
fn boot_slots() -> usize {
    std::env::var("CGCLOUD_LOCALCLOUD_BOOT_SLOTS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| (1..=64).contains(n))
        .unwrap_or(BOOT_SLOTS)
}

/// A machine-wide boot slot, held until dropped: at most [`BOOT_SLOTS`] boxes boot at once.
pub fn boot_slot() -> Result<std::fs::File> {
    util::take_slot(
        "boot",
        boot_slots(),
        SLOT_TIMEOUT,
        Duration::from_millis(50),
        " (other boxes are booting)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(name: &str, owner: &str) -> Image {
        Image {
            id: "ami-1".into(),
            name: Some(name.into()),
            owner_id: owner.into(),
            state: "available".into(),
            source_instance_id: None,
            instance_id: None,
        }
    }

    #[test]
    fn only_genuine_debian_images_boot() {
        assert_eq!(
            debian_suite(&img("debian-12-amd64-20250610-2140", DEBIAN_OWNER)),
            Some("bookworm")
        );
        assert_eq!(
            debian_suite(&img("debian-13-amd64-20250814-2204", DEBIAN_OWNER)),
            Some("trixie")
        );
        assert_eq!(
            debian_suite(&img("debian-12-amd64-20250610-2140", "999999999999")),
            None
        );
        assert_eq!(
            debian_suite(&img("debian-11-amd64-20250610-2140", DEBIAN_OWNER)),
            None
        );
        assert_eq!(
            debian_suite(&img("ubuntu/images/hvm-ssd", DEBIAN_OWNER)),
            None
        );
    }
}
