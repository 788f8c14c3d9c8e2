//! Finding a cluster's leader at every boot, as the original's boot tools did, from tags alone:
//! a node's `leader_instance_id` tag names its leader; the leader's private address goes into
//! `/etc/hosts` under the stable name [`LEADER_HOST`], with the node's `etc_hosts_entries`
//! (`name:ip,name:ip`), and the leader's host key (its `cgcloud:host-key` tag, which cgcloud
//! keeps current) into `/etc/ssh/ssh_known_hosts`, so that nodes reach the leader by name with a
//! verified host key. A cluster stopped and started through the EC2 API alone, or a box booted
//! from the node image with the right tags, finds its leader the same way.
//!
//! Run by a oneshot unit ([`discover_unit`]) before cloud-init's final stage, so that the boot
//! hooks, which run after cloud-init finished, find the leader in place.

use std::path::Path;

use anyhow::{anyhow, Context as _};

use crate::aws::describe;

/// The name nodes reach their cluster's leader by.
pub const LEADER_HOST: &str = "cgcloud-leader";
/// The tag naming a node's leader.
pub const LEADER_TAG: &str = "leader_instance_id";
/// The tag cgcloud puts at launch on a cluster's leader, whose `leader_instance_id` (its own
/// ID) can only follow the launch.
pub const LEADER_PENDING_TAG: &str = "cgcloud:cluster-leader";
/// Extra `/etc/hosts` entries of a node, `name:ip,name:ip`.
pub const HOSTS_ENTRIES_TAG: &str = "etc_hosts_entries";
/// The leader's SSH host key, `type base64`, as cgcloud publishes it.
pub const HOST_KEY_TAG: &str = "cgcloud:host-key";
/// The marker of the lines this module manages in `/etc/hosts` and `ssh_known_hosts`.
pub const MARKER: &str = "# cgcloud cluster";
/// Where the discovery unit is installed.
pub const DISCOVER_UNIT_PATH: &str = "/etc/systemd/system/cgcloud-discover.service";

/// What a node learnt about its cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    pub leader_id: String,
    pub leader_ip: String,
    /// `type base64`, if the leader publishes one.
    pub leader_key: Option<String>,
    /// `(name, ip)` from `etc_hosts_entries`.
    pub entries: Vec<(String, String)>,
}

/// What the tags of one instance say.
#[derive(Debug, Clone, Default)]
struct Tags(Vec<(String, String)>);

impl Tags {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

async fn describe_instance(
    ec2: &aws_sdk_ec2::Client,
    id: &str,
) -> anyhow::Result<(Tags, Option<String>)> {
    let out = ec2
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .map_err(|e| anyhow!("failed to describe instance `{id}`: {}", describe(&e)))?;
    let i = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .next()
        .ok_or_else(|| anyhow!("EC2 does not know instance `{id}`"))?;
    let tags = i
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
        .collect();
    Ok((Tags(tags), i.private_ip_address().map(str::to_string)))
}

/// What the tags say about instance `id`'s cluster: `Ok(None)` for a box that is not a
/// cluster node; an error while a leader's own tag is still missing (the caller retries).
pub async fn discover(ec2: &aws_sdk_ec2::Client, id: &str) -> anyhow::Result<Option<Discovery>> {
    let (tags, own_ip) = describe_instance(ec2, id).await?;
    let leader_id = match tags.get(LEADER_TAG) {
        Some(l) => l.to_string(),
        None if tags.get(LEADER_PENDING_TAG).is_some() => {
            return Err(anyhow!(
                "`{id}` leads a cluster but has no `{LEADER_TAG}` tag yet"
            ))
        }
        None => return Ok(None),
    };
    let entries = parse_entries(tags.get(HOSTS_ENTRIES_TAG).unwrap_or_default());
    let (leader_ip, leader_key) = if leader_id == id {
        (own_ip, tags.get(HOST_KEY_TAG).map(str::to_string))
    } else {
        let (leader_tags, ip) = describe_instance(ec2, &leader_id).await?;
        (ip, leader_tags.get(HOST_KEY_TAG).map(str::to_string))
    };
    let leader_ip =
        leader_ip.ok_or_else(|| anyhow!("the leader `{leader_id}` has no private address yet"))?;
    Ok(Some(Discovery {
        leader_id,
        leader_ip,
        leader_key,
        entries,
    }))
}

/// `name:ip,name:ip`; malformed items are skipped.
pub fn parse_entries(text: &str) -> Vec<(String, String)> {
    text.split(',')
        .filter_map(|item| {
            let (name, ip) = item.trim().split_once(':')?;
            let ok = |s: &str| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c))
            };
            (ok(name) && ip.parse::<std::net::IpAddr>().is_ok())
                .then(|| (name.to_string(), ip.to_string()))
        })
        .collect()
}

/// `current` without the lines this module manages.
fn unmanaged(current: &str) -> String {
    current
        .lines()
        .filter(|l| !l.ends_with(MARKER))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// `/etc/hosts` with the leader's and the node's entries in place of earlier ones.
pub fn hosts_file(current: &str, d: &Discovery) -> String {
    let mut out = unmanaged(current);
    out.push_str(&format!("{}\t{LEADER_HOST} {MARKER}\n", d.leader_ip));
    for (name, ip) in &d.entries {
        out.push_str(&format!("{ip}\t{name} {MARKER}\n"));
    }
    out
}

/// `/etc/ssh/ssh_known_hosts` with the leader's host key (by name and address) in place of an
/// earlier one.
pub fn known_hosts_file(current: &str, d: &Discovery) -> String {
    let mut out = unmanaged(current);
    if let Some(key) = &d.leader_key {
        let key: Vec<&str> = key.split_whitespace().take(2).collect();
        if key.len() == 2 {
            out.push_str(&format!(
                "{LEADER_HOST},{} {} {} {MARKER}\n",
                d.leader_ip, key[0], key[1]
            ));
        }
    }
    out
}

/// Writes `/etc/hosts` and `/etc/ssh/ssh_known_hosts` under `root` (`/` on a box).
pub fn apply(root: &Path, d: &Discovery) -> anyhow::Result<()> {
    for (rel, render) in [
        ("etc/hosts", hosts_file as fn(&str, &Discovery) -> String),
        ("etc/ssh/ssh_known_hosts", known_hosts_file),
    ] {
        let path = root.join(rel);
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        let next = render(&current, d);
        if next != current {
            crate::authorized::write_atomic(&path, next.as_bytes(), 0o644, Some((0, 0)))
                .with_context(|| format!("failed to write `{}`", path.display()))?;
        }
    }
    Ok(())
}

/// The oneshot unit that runs `binary discover` at every boot, before cloud-init's final stage.
pub fn discover_unit(binary: &Path, zone: &str) -> String {
    format!(
        "[Unit]\nDescription=cgcloud: find this node's cluster leader\nWants=network-online.target\n\
         After=network-online.target\nBefore=cloud-final.service\n\n[Service]\nType=oneshot\n\
         ExecStart={} discover --zone {zone}\nTimeoutStartSec=150\n\n[Install]\nWantedBy=multi-user.target\n",
        binary.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d() -> Discovery {
        Discovery {
            leader_id: "i-1".into(),
            leader_ip: "10.1.2.3".into(),
            leader_key: Some("ssh-ed25519 AAAAC3 comment".into()),
            entries: vec![("db".into(), "10.9.9.9".into())],
        }
    }

    #[test]
    fn entries_parse_and_skip_garbage() {
        assert_eq!(
            parse_entries("a:10.0.0.1, b-2:10.0.0.2,bad,x y:1.2.3.4,c:notanip,"),
            [
                ("a".to_string(), "10.0.0.1".to_string()),
                ("b-2".to_string(), "10.0.0.2".to_string())
            ]
        );
    }

    #[test]
    fn managed_lines_are_replaced_and_others_kept() {
        let hosts = "127.0.0.1\tlocalhost\n10.0.0.7\tcgcloud-leader # cgcloud cluster\n";
        assert_eq!(
            hosts_file(hosts, &d()),
            "127.0.0.1\tlocalhost\n10.1.2.3\tcgcloud-leader # cgcloud cluster\n10.9.9.9\tdb # cgcloud cluster\n"
        );
        assert_eq!(
            known_hosts_file("other ssh-rsa AAAA\n", &d()),
            "other ssh-rsa AAAA\ncgcloud-leader,10.1.2.3 ssh-ed25519 AAAAC3 # cgcloud cluster\n"
        );
        // Applied again, nothing changes.
        let once = hosts_file(hosts, &d());
        assert_eq!(hosts_file(&once, &d()), once);
    }

    #[test]
    fn files_are_written_under_the_root() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc/ssh")).unwrap();
        std::fs::write(root.path().join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
        let uid = std::fs::metadata("/proc/self").map(|m| {
            use std::os::unix::fs::MetadataExt;
            m.uid()
        });
        if uid.unwrap_or(1) != 0 {
            eprintln!("not root; writing files owned by root needs root; skipping");
            return;
        }
        apply(root.path(), &d()).unwrap();
        let hosts = std::fs::read_to_string(root.path().join("etc/hosts")).unwrap();
        assert!(hosts.contains("10.1.2.3\tcgcloud-leader"));
        let kh = std::fs::read_to_string(root.path().join("etc/ssh/ssh_known_hosts")).unwrap();
        assert!(kh.starts_with("cgcloud-leader,10.1.2.3 ssh-ed25519 AAAAC3"));
    }
}

#[cfg(test)]
mod fuzz {
    //! The tags a node reads at every boot are anyone's with tagging rights, and what they say
    //! goes into `/etc/hosts` and `/etc/ssh/ssh_known_hosts` as root.
    use super::*;
    use proptest::prelude::*;

    /// Tag text shaped like `name:ip,name:ip` among arbitrary characters.
    fn entries_text() -> impl Strategy<Value = String> {
        let part = prop_oneof![
            "[a-z0-9.-]{0,10}:10\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
            "[a-z]{1,6}:[0-9a-f:]{2,20}",
            Just(",".to_string()),
            Just("\n".to_string()),
            Just("# cgcloud cluster".to_string()),
            any::<String>(),
        ];
        proptest::collection::vec(part, 0..8).prop_map(|p| p.join(","))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Whatever the tags say, each managed line is one line that ends with the marker, no
        /// line of the file that cgcloud does not manage is lost, and rendering again changes
        /// nothing.
        #[test]
        fn tags_never_add_lines_of_their_own(
            entries in entries_text(),
            key in any::<String>(),
            current in "[ -~\n]{0,200}",
        ) {
            let d = Discovery {
                leader_id: "i-0123456789abcdef0".into(),
                leader_ip: "10.0.0.5".into(),
                leader_key: Some(key),
                entries: parse_entries(&entries),
            };
            for render in [hosts_file as fn(&str, &Discovery) -> String, known_hosts_file] {
                let out = render(&current, &d);
                let kept: Vec<&str> = current.lines().filter(|l| !l.ends_with(MARKER)).collect();
                let managed: Vec<&str> = out.lines().filter(|l| l.ends_with(MARKER)).collect();
                let others: Vec<&str> = out.lines().filter(|l| !l.ends_with(MARKER)).collect();
                prop_assert_eq!(others, kept);
                for line in &managed {
                    prop_assert!(!line.contains('\r'), "{:?}", line);
                    prop_assert_eq!(line.matches(MARKER).count(), 1, "{:?}", line);
                }
                prop_assert_eq!(render(&out, &d), out.clone());
            }
            let hosts = hosts_file("", &d);
            prop_assert_eq!(hosts.lines().count(), 1 + d.entries.len());
            prop_assert!(known_hosts_file("", &d).lines().count() <= 1);
        }
    }
}
