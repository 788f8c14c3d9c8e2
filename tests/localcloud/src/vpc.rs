//! The VPC the boxes share, as EC2 has it: each box's interface carries its instance's private
//! address (the one DescribeInstances and the metadata report), boxes reach each other on those
//! addresses over the hub bridge, and the ingress rules of their security groups decide what
//! gets through — an nftables ruleset in the hub, on the bridge's forward path, outside every
//! box (as a security group is outside an instance), rebuilt whenever moto's rules or the
//! running boxes change. Boxes in different VPCs cannot reach each other; the bridge addresses
//! (10.250.0.x) are for the hub alone, and box-to-box traffic on them is dropped.
//!
//! NOTE: moto gives instances in a default subnet random `10.x.y.z` private addresses, not
//! addresses of the subnet's CIDR, so a box routes all three private ranges onto the bridge.

use crate::boxes::Layout;
use crate::util::run;
use anyhow::{bail, Context, Result};
use std::io::Write as _;
use std::process::{Command, Stdio};

/// The private ranges a box reaches its VPC on (through the hub bridge).
pub const PRIVATE_NETS: [&str; 3] = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"];

/// The nftables table the hub filters boxes' traffic in.
pub const TABLE: &str = "cgcloud_vpc";

/// A running box as the VPC sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub instance: String,
    pub private_ip: String,
    pub vpc: String,
    /// Its security groups' IDs.
    pub groups: Vec<String>,
}

/// One ingress rule of a security group, as moto keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingress {
    pub group_id: String,
    /// `tcp`, `udp`, `icmp`, `-1` (everything) or a protocol number.
    pub protocol: String,
    pub from_port: Option<i32>,
    pub to_port: Option<i32>,
    /// A source CIDR block, or
    pub cidr: Option<String>,
    /// a source security group (its members' private addresses).
    pub source_group: Option<String>,
}

/// Whether IPv4 address `ip` lies in `cidr` (`a.b.c.d/n`); `false` for anything malformed.
pub fn in_cidr(ip: &str, cidr: &str) -> bool {
    let parse = |s: &str| s.parse::<std::net::Ipv4Addr>().ok().map(u32::from);
    let Some((net, bits)) = cidr.split_once('/') else {
        return false;
    };
    let (Some(ip), Some(net), Ok(bits)) = (parse(ip), parse(net), bits.parse::<u32>()) else {
        return false;
    };
    if bits > 32 {
        return false;
    }
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    ip & mask == net & mask
}

/// The nftables match of a rule's protocol and ports, or `None` for a protocol this build
/// cannot express (the rule then lets nothing in).
fn l4_match(rule: &Ingress) -> Option<String> {
    let ports = |proto: &str| match (rule.from_port, rule.to_port) {
        (Some(f), Some(t)) if f >= 0 && t >= f && f == t => format!("{proto} dport {f}"),
        (Some(f), Some(t)) if f >= 0 && t >= f => format!("{proto} dport {f}-{t}"),
        _ => format!("meta l4proto {proto}"),
    };
    match rule.protocol.as_str() {
        "-1" | "all" => Some(String::new()),
        "tcp" | "6" => Some(ports("tcp")),
        "udp" | "17" => Some(ports("udp")),
        "icmp" | "1" => {
            let mut m = "meta l4proto icmp".to_string();
            if let Some(t) = rule.from_port.filter(|t| *t >= 0) {
                m.push_str(&format!(" icmp type {t}"));
                if let Some(c) = rule.to_port.filter(|c| *c >= 0) {
                    m.push_str(&format!(" icmp code {c}"));
                }
            }
            Some(m)
        }
        n => n.parse::<u8>().ok().map(|n| format!("meta l4proto {n}")),
    }
}

/// The hub's ruleset for these boxes and rules: forwarding between boxes is dropped unless
/// established or let in by one of the destination's groups, from a box of the same VPC.
pub fn ruleset(members: &[Member], rules: &[Ingress]) -> String {
    let mut lines = Vec::new();
    for dst in members {
        for rule in rules.iter().filter(|r| dst.groups.contains(&r.group_id)) {
            let mut sources: Vec<&str> = members
                .iter()
                .filter(|src| src.instance != dst.instance && src.vpc == dst.vpc)
                .filter(|src| match (&rule.cidr, &rule.source_group) {
                    (Some(cidr), _) => in_cidr(&src.private_ip, cidr),
                    (None, Some(group)) => src.groups.contains(group),
                    (None, None) => false,
                })
                .map(|src| src.private_ip.as_str())
                .collect();
            sources.sort_unstable();
            sources.dedup();
            let Some(l4) = l4_match(rule) else { continue };
            if sources.is_empty() {
                continue;
            }
            let mut line = format!(
                "    ip daddr {} ip saddr {{ {} }}",
                dst.private_ip,
                sources.join(", ")
            );
            if !l4.is_empty() {
                line.push(' ');
                line.push_str(&l4);
            }
            line.push_str(" accept");
            lines.push(line);
        }
    }
    lines.sort();
    lines.dedup();
    format!(
        "table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n  chain forward {{\n    type filter hook forward priority 0; policy drop;\n    ct state established,related accept\n{}  }}\n}}\n",
        lines.iter().map(|l| format!("{l}\n")).collect::<String>()
    )
}

/// Lets the hub's bridge hand IPv4 traffic to nftables and installs the ruleset of no boxes
/// (nothing forwarded).
pub fn hub_up(l: &Layout) -> Result<()> {
    let ns = l.hub_ns();
    run(Command::new("ip").args([
        "netns",
        "exec",
        &ns,
        "sysctl",
        "-qw",
        "net.bridge.bridge-nf-call-iptables=1",
    ]))
    .context("the kernel must filter bridged traffic (br_netfilter) for security groups")?;
    apply(l, &ruleset(&[], &[]))
}

/// Replaces the hub's ruleset with `text`, in one transaction.
pub fn apply(l: &Layout, text: &str) -> Result<()> {
    let mut child = Command::new("ip")
        .args(["netns", "exec", &l.hub_ns(), "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("failed to run `nft` (install nftables)")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .context("failed to feed `nft`")?;
    }
    let out = child
        .wait_with_output()
        .context("failed to wait for `nft`")?;
    if !out.status.success() {
        bail!(
            "nft refused the security-group ruleset: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The commands that give box namespace `ns` its private address `ip` and routes to the
/// private ranges through the bridge, with `ip` as their source.
pub fn box_address(ns: &str, ip: &str) -> Result<()> {
    run(Command::new("ip").args(["-n", ns, "addr", "add", &format!("{ip}/32"), "dev", "eth0"]))?;
    for net in PRIVATE_NETS {
        run(Command::new("ip").args(["-n", ns, "route", "add", net, "dev", "eth0", "src", ip]))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(i: &str, ip: &str, vpc: &str, groups: &[&str]) -> Member {
        Member {
            instance: i.into(),
            private_ip: ip.into(),
            vpc: vpc.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn rule(
        group: &str,
        proto: &str,
        ports: (i32, i32),
        cidr: Option<&str>,
        src: Option<&str>,
    ) -> Ingress {
        Ingress {
            group_id: group.into(),
            protocol: proto.into(),
            from_port: Some(ports.0),
            to_port: Some(ports.1),
            cidr: cidr.map(String::from),
            source_group: src.map(String::from),
        }
    }

    #[test]
    fn cidr_membership() {
        assert!(in_cidr("10.241.32.68", "0.0.0.0/0"));
        assert!(in_cidr("10.241.32.68", "10.0.0.0/8"));
        assert!(!in_cidr("10.241.32.68", "172.31.0.0/16"));
        assert!(in_cidr("172.31.5.6", "172.31.5.6/32"));
        assert!(!in_cidr("172.31.5.7", "172.31.5.6/32"));
        assert!(!in_cidr("x", "10.0.0.0/8"));
        assert!(!in_cidr("10.0.0.1", "10.0.0.0/33"));
    }

    #[test]
    fn rules_let_in_only_what_the_destinations_groups_allow_within_the_vpc() {
        let members = [
            member("i-a", "10.1.0.1", "vpc-1", &["sg-cluster"]),
            member("i-b", "10.1.0.2", "vpc-1", &["sg-cluster"]),
            member("i-c", "10.1.0.3", "vpc-1", &["sg-other"]),
            member("i-d", "10.9.0.4", "vpc-2", &["sg-cluster"]),
        ];
        let rules = [
            rule("sg-cluster", "tcp", (6817, 6818), None, Some("sg-cluster")),
            rule("sg-cluster", "tcp", (22, 22), Some("0.0.0.0/0"), None),
            rule("sg-cluster", "icmp", (3, 4), Some("0.0.0.0/0"), None),
            rule("sg-other", "-1", (-1, -1), Some("10.1.0.0/24"), None),
        ];
        let text = ruleset(&members, &rules);
        let lines: Vec<&str> = text.lines().filter(|l| l.contains("daddr")).collect();
        assert_eq!(
            lines,
            [
                "    ip daddr 10.1.0.1 ip saddr { 10.1.0.2 } tcp dport 6817-6818 accept",
                "    ip daddr 10.1.0.1 ip saddr { 10.1.0.2, 10.1.0.3 } meta l4proto icmp icmp type 3 icmp code 4 accept",
                "    ip daddr 10.1.0.1 ip saddr { 10.1.0.2, 10.1.0.3 } tcp dport 22 accept",
                "    ip daddr 10.1.0.2 ip saddr { 10.1.0.1 } tcp dport 6817-6818 accept",
                "    ip daddr 10.1.0.2 ip saddr { 10.1.0.1, 10.1.0.3 } meta l4proto icmp icmp type 3 icmp code 4 accept",
                "    ip daddr 10.1.0.2 ip saddr { 10.1.0.1, 10.1.0.3 } tcp dport 22 accept",
                "    ip daddr 10.1.0.3 ip saddr { 10.1.0.1, 10.1.0.2 } accept",
            ]
        );
        assert!(text.contains("policy drop;"));
        assert!(text.contains("ct state established,related accept"));
    }

    #[test]
    fn no_boxes_no_forwarding() {
        let text = ruleset(&[], &[]);
        assert!(!text.contains("daddr"));
        assert!(text.starts_with("table inet cgcloud_vpc\ndelete table inet cgcloud_vpc\n"));
    }
}
