//! Finding and removing every host object of a cloud: its boxes' processes and cgroups, overlay
//! mounts, network namespaces and state folder. Used by a daemon's own teardown, by `down`, and
//! at `up` to reap clouds whose daemon died (an interrupted run).

use crate::boxes::{self, cgroup_roots, state_root, Layout};
use crate::util::{self, run_quiet};
use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

/// Creates the state folder of a new cloud (`cid` given, or a fresh one).
pub fn claim(cid: Option<&str>) -> Result<Layout> {
    let root = boxes::ensure_state_root()?;
    let pid = std::process::id();
    for attempt in 0..100u32 {
        let id = match cid {
            Some(c) => c.to_string(),
            None => format!(
                "{:x}{}",
                pid % 0xfffff,
                if attempt == 0 {
                    String::new()
                } else {
                    format!("x{attempt}")
                }
            ),
        };
        if id.is_empty() || id.len() > 12 || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
            bail!("cloud name `{id}` must be 1-12 letters or digits");
        }
        let l = Layout::new(&id);
        match std::fs::create_dir(&l.dir) {
            Ok(()) => return Ok(l),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if cid.is_some() {
                    bail!("a local cloud named `{id}` already runs (state `{}`); run `cgcloud-localcloud down {id}` first", l.dir.display());
                }
            }
            Err(e) => {
                return Err(e).with_context(|| format!("failed to create `{}`", l.dir.display()))
            }
        }
    }
    bail!(
        "could not find a free cloud name under `{}`",
        root.display()
    )
}

/// The daemon pid recorded for a cloud, if that process still runs this program.
pub fn daemon_pid(l: &Layout) -> Option<u32> {
    let info = std::fs::read_to_string(l.dir.join("cloud.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&info).ok()?;
    let pid = v.get("pid")?.as_u64()? as u32;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let zombie = stat
        .rsplit(')')
        .next()
        .is_some_and(|r| r.trim_start().starts_with('Z'));
    (!zombie && String::from_utf8_lossy(&cmdline).contains("cgcloud-localcloud")).then_some(pid)
}

/// Every cloud with a state folder.
pub fn clouds() -> Vec<Layout> {
    let Ok(rd) = std::fs::read_dir(state_root()) else {
        return Vec::new();
    };
    let mut out: Vec<Layout> = rd
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| Layout::new(&e.file_name().to_string_lossy()))
        .collect();
    out.sort_by(|a, b| a.cid.cmp(&b.cid));
    out
}

/// Removes clouds whose daemon is gone, and namespaces or cgroups no cloud owns.
pub fn reap_stale() {
    for l in clouds() {
        if daemon_pid(&l).is_none() {
            // A folder claimed a moment ago has no cloud.json yet: leave it to its owner.
            let fresh = std::fs::metadata(&l.dir)
                .and_then(|m| m.modified())
                .map(|t| t.elapsed().unwrap_or_default() < Duration::from_secs(30))
                .unwrap_or(false);
            if fresh && !l.dir.join("cloud.json").exists() {
                continue;
            }
            eprintln!(
                "removing the leftovers of local cloud `{}` (its daemon is gone)",
                l.cid
            );
            remove_cloud(&l);
        }
    }
    let live: Vec<String> = clouds().iter().map(|l| l.cid.clone()).collect();
    for ns in netns_names() {
        if let Some(cid) = ns
            .strip_prefix("cglc-")
            .map(|r| r.split('-').next().unwrap_or(""))
        {
            if !live.iter().any(|c| c == cid) {
                remove_cloud(&Layout::new(cid));
            }
        }
    }
}

fn netns_names() -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Removes every host object of cloud `l`, whether or not its daemon still runs.
pub fn remove_cloud(l: &Layout) {
    let prefix = format!("cglc-{}-", l.cid);
    // Box numbers from cgroups, namespaces and box folders alike: any of them may be left.
    let mut ns: Vec<u32> = Vec::new();
    for root in cgroup_roots() {
        if let Ok(rd) = std::fs::read_dir(&root) {
            ns.extend(rd.flatten().filter_map(|e| {
                e.file_name()
                    .to_string_lossy()
                    .strip_prefix(&prefix)?
                    .parse::<u32>()
                    .ok()
            }));
        }
    }
    ns.extend(
        netns_names()
            .iter()
            .filter_map(|n| n.strip_prefix(&prefix)?.parse::<u32>().ok()),
    );
    if let Ok(rd) = std::fs::read_dir(l.dir.join("boxes")) {
        ns.extend(
            rd.flatten()
                .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok()),
        );
    }
    ns.sort();
    ns.dedup();
    for n in ns {
        boxes::kill_box(l, n, None);
    }
    // The loop devices of its volumes (their files go with the folder).
    crate::ebs::release_all(l);
    // Helpers (listeners) and the daemon run in or for the hub: kill what is in its namespace.
    let hub = l.hub_ns();
    if let Ok(pids) = util::output(Command::new("ip").args(["netns", "pids", &hub])) {
        let pids: Vec<&str> = pids.split_whitespace().collect();
        if !pids.is_empty() {
            run_quiet(Command::new("kill").arg("-KILL").args(&pids));
        }
    }
    run_quiet(Command::new("ip").args(["netns", "del", &hub]));
    // Any mount left under the state folder (an overlay of a box whose number was lost).
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    for m in mounts_under(&mounts, &l.dir) {
        run_quiet(Command::new("umount").arg("-l").arg(m));
    }
    let _ = std::fs::remove_dir_all(&l.dir);
    release_netns_mount();
}

/// The mount points in `mounts` (`/proc/self/mounts`) at or under `dir`, by whole path
/// components: the state folder `…/3d5` never takes `…/3d57`'s mounts along.
fn mounts_under<'a>(mounts: &'a str, dir: &std::path::Path) -> Vec<&'a str> {
    mounts
        .lines()
        .filter_map(|x| x.split(' ').nth(1))
        .filter(|m| std::path::Path::new(m).starts_with(dir))
        .collect()
}

/// `ip netns add` bind-mounts /run/netns onto itself; drop that when no namespace is left.
fn release_netns_mount() {
    if netns_names().is_empty() && util::is_mounted(std::path::Path::new("/run/netns")) {
        run_quiet(Command::new("umount").arg("/run/netns"));
        let _ = std::fs::remove_dir("/run/netns");
    }
}

/// Sends one control request to cloud `cid`'s daemon and returns its answer.
/// The most a control answer may take.
const ANSWER_LIMIT: u64 = 1 << 20;

pub fn request(cid: &str, line: &str, timeout: Duration) -> Result<String> {
    let l = Layout::new(cid);
    let sock = l.control_sock();
    let mut s = UnixStream::connect(&sock).with_context(|| {
        format!(
            "local cloud `{cid}` does not answer on `{}`; is it up? (`cgcloud-localcloud up`)",
            sock.display()
        )
    })?;
    s.set_read_timeout(Some(timeout))
        .context("failed to set a socket timeout")?;
    s.write_all(format!("{line}\n").as_bytes())
        .context("failed to write to the local cloud")?;
    // The whole answer, up to the daemon closing the connection: an error may carry a box's
    // console over several lines.
    let mut out = String::new();
    s.take(ANSWER_LIMIT)
        .read_to_string(&mut out)
        .with_context(|| {
            format!("local cloud `{cid}` did not answer `{line}` within {timeout:?}")
        })?;
    if out.is_empty() {
        bail!("local cloud `{cid}` closed the connection without answering `{line}`");
    }
    Ok(out.trim_end().to_string())
}

/// `down`: stops cloud `cid` (or every cloud) and removes everything it left.
pub fn down(cid: Option<&str>) -> Result<usize> {
    let targets: Vec<Layout> = match cid {
        Some(c) => vec![Layout::new(c)],
        None => clouds(),
    };
    let count = targets.len();
    for l in &targets {
        if let Some(pid) = daemon_pid(l) {
            if request(&l.cid, "shutdown", Duration::from_secs(30)).is_err() {
                run_quiet(Command::new("kill").args(["-KILL", &pid.to_string()]));
            }
        }
        remove_cloud(l);
    }
    reap_stale();
    Ok(count)
}

#[cfg(test)]
mod mount_tests {
    use super::mounts_under;
    use std::path::Path;

    #[test]
    fn unmounting_matches_whole_path_components() {
        let mounts = "overlay /var/lib/cgcloud-localcloud/3d5/box1/merged overlay rw 0 0\n\
                      overlay /var/lib/cgcloud-localcloud/3d57/box1/merged overlay rw 0 0\n\
                      proc /proc proc rw 0 0\n";
        assert_eq!(
            mounts_under(mounts, Path::new("/var/lib/cgcloud-localcloud/3d5")),
            ["/var/lib/cgcloud-localcloud/3d5/box1/merged"]
        );
    }
}
