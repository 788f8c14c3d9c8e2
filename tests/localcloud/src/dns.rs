//! The VPC's DNS stand-in at 169.254.169.253 (where AWS's Amazon-provided DNS answers too): the
//! private DNS names of instances, `ip-A-B-C-D` under `ec2.internal` (moto's `PrivateDnsName`),
//! forward and reverse, computed from the name alone, as AWS's resolver does for a VPC. Every
//! other question is refused at once: nothing is forwarded anywhere, and a box's lookup of a
//! name or address no one knows fails fast instead of waiting for a resolver that is not there
//! (Slurm's daemons look up every peer's address; a silent resolver stalls each message).

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};

use anyhow::{Context as _, Result};

/// Where boxes find the resolver.
pub const DNS_IP: &str = "169.254.169.253";
/// The domain of instances' private DNS names.
pub const DOMAIN: &str = "ec2.internal";

const TYPE_A: u16 = 1;
const TYPE_PTR: u16 = 12;
const CLASS_IN: u16 = 1;
const NXDOMAIN: u8 = 3;
const REFUSED: u8 = 5;
const FORMERR: u8 = 1;

/// `/etc/resolv.conf` of a box.
pub fn resolv_conf() -> String {
    format!("# The VPC's resolver (cgcloud-localcloud)\nnameserver {DNS_IP}\nsearch {DOMAIN}\noptions timeout:1 attempts:2\n")
}

/// Answers questions on `bind` until the process ends.
pub fn serve(bind: SocketAddr) -> Result<()> {
    let socket = UdpSocket::bind(bind).with_context(|| format!("failed to bind `{bind}`"))?;
    let mut buf = [0u8; 1500];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf) else {
            continue;
        };
        if let Some(reply) = answer(&buf[..n]) {
            let _ = socket.send_to(&reply, peer);
        }
    }
}

/// An address in one of the private ranges a VPC uses.
fn private(ip: Ipv4Addr) -> bool {
    ip.is_private()
}

/// `ip-10-1-2-3` (with or without `.ec2.internal`) → 10.1.2.3.
fn forward(name: &str) -> Option<Ipv4Addr> {
    let host = name
        .strip_suffix(&format!(".{DOMAIN}"))
        .unwrap_or(name)
        .strip_prefix("ip-")?;
    let parts: Vec<&str> = host.split('-').collect();
    if parts.len() != 4
        || parts
            .iter()
            .any(|p| p.is_empty() || p.len() > 3 || (p.len() > 1 && p.starts_with('0')))
    {
        return None;
    }
    let ip: Ipv4Addr = parts.join(".").parse().ok()?;
    private(ip).then_some(ip)
}

/// `3.2.1.10.in-addr.arpa` → 10.1.2.3.
fn reverse(name: &str) -> Option<Ipv4Addr> {
    let octets: Vec<&str> = name.strip_suffix(".in-addr.arpa")?.split('.').collect();
    if octets.len() != 4 {
        return None;
    }
    let ip: Ipv4Addr = octets
        .iter()
        .rev()
        .copied()
        .collect::<Vec<_>>()
        .join(".")
        .parse()
        .ok()?;
    private(ip).then_some(ip)
}

fn private_name(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format!("ip-{}-{}-{}-{}.{DOMAIN}", o[0], o[1], o[2], o[3])
}

fn encode_name(name: &str, out: &mut Vec<u8>) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
}

/// The reply to one query packet; `None` for what is not a query at all.
pub fn answer(q: &[u8]) -> Option<Vec<u8>> {
    if q.len() < 12 || q[2] & 0x80 != 0 {
        return None; // too short, or a response
    }
    let header = |rcode: u8, answers: u16, question_end: usize| {
        let mut r = Vec::with_capacity(question_end + 64);
        r.extend_from_slice(&q[..2]); // ID
                                      // QR, the query's opcode and RD; AA; RA off: this resolver does not recurse.
        r.push(0x80 | (q[2] & 0x79) | 0x04);
        r.push(rcode);
        let qd: u16 = if question_end > 12 { 1 } else { 0 };
        r.extend_from_slice(&qd.to_be_bytes());
        r.extend_from_slice(&answers.to_be_bytes());
        r.extend_from_slice(&[0, 0, 0, 0]);
        r.extend_from_slice(&q[12..question_end]);
        r
    };
    let opcode = (q[2] >> 3) & 0x0f;
    let qdcount = u16::from_be_bytes([q[4], q[5]]);
    if opcode != 0 || qdcount != 1 {
        return Some(header(if opcode != 0 { 4 } else { FORMERR }, 0, 12));
    }
    // The question: labels (no compression in a question), type, class.
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *q.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return Some(header(FORMERR, 0, 12));
        }
        let label = q.get(i..i + len)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    let qclass = u16::from_be_bytes([*q.get(i + 2)?, *q.get(i + 3)?]);
    let end = i + 4;
    let name = labels.join(".");
    let ours = name == DOMAIN
        || name.ends_with(&format!(".{DOMAIN}"))
        || name.starts_with("ip-")
        || name.ends_with(".in-addr.arpa");
    if !ours || qclass != CLASS_IN {
        return Some(header(REFUSED, 0, end));
    }
    let record = |r: &mut Vec<u8>, rtype: u16, data: &[u8]| {
        r.extend_from_slice(&[0xc0, 0x0c]); // the question's name
        r.extend_from_slice(&rtype.to_be_bytes());
        r.extend_from_slice(&CLASS_IN.to_be_bytes());
        r.extend_from_slice(&60u32.to_be_bytes());
        r.extend_from_slice(&(data.len() as u16).to_be_bytes());
        r.extend_from_slice(data);
    };
    if let Some(ip) = forward(&name) {
        // Known name: its address, or no data for other types (AAAA…).
        if qtype == TYPE_A {
            let mut r = header(0, 1, end);
            record(&mut r, TYPE_A, &ip.octets());
            return Some(r);
        }
        return Some(header(0, 0, end));
    }
    if let Some(ip) = reverse(&name) {
        if qtype == TYPE_PTR {
            let mut r = header(0, 1, end);
            let mut data = Vec::new();
            encode_name(&private_name(ip), &mut data);
            record(&mut r, TYPE_PTR, &data);
            return Some(r);
        }
        return Some(header(0, 0, end));
    }
    Some(header(NXDOMAIN, 0, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        encode_name(name, &mut q);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&CLASS_IN.to_be_bytes());
        q
    }

    fn rcode(r: &[u8]) -> u8 {
        r[3] & 0x0f
    }

    fn answers(r: &[u8]) -> u16 {
        u16::from_be_bytes([r[6], r[7]])
    }

    #[test]
    fn private_names_resolve_both_ways() {
        let q = query("ip-10-1-2-3.ec2.internal", TYPE_A);
        let r = answer(&q).expect("a reply");
        assert_eq!(&r[..2], &[0x12, 0x34], "the query's ID");
        assert_eq!(r[2] & 0x80, 0x80, "a response");
        assert_eq!((rcode(&r), answers(&r)), (0, 1));
        assert_eq!(&r[r.len() - 4..], &[10, 1, 2, 3]);
        assert_eq!(&r[12..q.len()], &q[12..], "the question is echoed");
        // The bare host name, as a box's own name.
        let r = answer(&query("IP-192-168-0-9", TYPE_A)).expect("a reply");
        assert_eq!(&r[r.len() - 4..], &[192, 168, 0, 9]);

        let r = answer(&query("3.2.1.10.in-addr.arpa", TYPE_PTR)).expect("a reply");
        assert_eq!((rcode(&r), answers(&r)), (0, 1));
        let mut want = Vec::new();
        encode_name("ip-10-1-2-3.ec2.internal", &mut want);
        assert!(r.ends_with(&want));
    }

    #[test]
    fn everything_else_fails_at_once() {
        // Public addresses and names: not the VPC's, refused (nothing is forwarded).
        for name in ["deb.debian.org", "example.com", "localhost"] {
            let r = answer(&query(name, TYPE_A)).expect("a reply");
            assert_eq!((rcode(&r), answers(&r)), (REFUSED, 0), "{name}");
        }
        for (name, t) in [
            ("ip-54-1-2-3.ec2.internal", TYPE_A),
            ("3.2.1.54.in-addr.arpa", TYPE_PTR),
            ("ip-10-1-2.ec2.internal", TYPE_A),
            ("ip-10-01-2-3.ec2.internal", TYPE_A),
            ("cgcloud-leader.ec2.internal", TYPE_A),
        ] {
            let r = answer(&query(name, t)).expect("a reply");
            assert_eq!((rcode(&r), answers(&r)), (NXDOMAIN, 0), "{name}");
        }
        // A known name, another type: no data, no error.
        let r = answer(&query("ip-10-1-2-3.ec2.internal", 28)).expect("a reply");
        assert_eq!((rcode(&r), answers(&r)), (0, 0));
        // Garbage: short packets and responses get nothing; a truncated question nothing.
        assert!(answer(&[1, 2, 3]).is_none());
        let mut response = query("ip-10-1-2-3", TYPE_A);
        response[2] |= 0x80;
        assert!(answer(&response).is_none());
        let q = query("ip-10-1-2-3", TYPE_A);
        assert!(answer(&q[..q.len() - 3]).is_none());
    }
}
