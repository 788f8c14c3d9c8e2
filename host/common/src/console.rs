//! The SSH host keys an instance printed to its console at first boot, as cloud-init's
//! `keys_to_console` module prints them:
//!
//! ```text
//! -----BEGIN SSH HOST KEY KEYS-----
//! ecdsa-sha2-nistp256 AAAAE2VjZHNh… root@ip-10-0-0-1
//! ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI… root@ip-10-0-0-1
//! -----END SSH HOST KEY KEYS-----
//! ```
//!
//! The console is outside input: serial terminals interleave control sequences and carriage
//! returns, and the block can be cut off at either end. Parsing fails closed: only a complete
//! block counts, and only lines that are exactly a known key type and valid base64 key data.

use base64::Engine as _;

const BEGIN: &str = "-----BEGIN SSH HOST KEY KEYS-----";
const END: &str = "-----END SSH HOST KEY KEYS-----";

/// Key types cgcloud accepts from a console, best first.
const TYPES: &[&str] = &[
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
];

/// Removes ANSI escape sequences and carriage returns.
fn clean(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                // CSI: ESC [ params final-byte (0x40..=0x7e); other escapes: ESC + one char.
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&c) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\r' => {}
            c if c.is_control() && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// The host public keys (`<type> <base64>`, no comment) of the last complete key block in
/// `console`, best type first. Empty if there is no complete block.
pub fn host_keys(console: &str) -> Vec<String> {
    let lines: Vec<String> = console.lines().map(clean).collect();
    let Some(end) = lines.iter().rposition(|l| l.trim() == END) else {
        return Vec::new();
    };
    let Some(begin) = lines[..end].iter().rposition(|l| l.trim() == BEGIN) else {
        return Vec::new();
    };
    let mut keys: Vec<(usize, String)> = Vec::new();
    for line in &lines[begin + 1..end] {
        let mut words = line.split_whitespace();
        let (Some(kind), Some(data)) = (words.next(), words.next()) else {
            continue;
        };
        let Some(rank) = TYPES.iter().position(|t| *t == kind) else {
            continue;
        };
        let Ok(blob) = base64::engine::general_purpose::STANDARD.decode(data) else {
            continue;
        };
        // The blob starts with the key type again, as a length-prefixed string.
        let declared = blob
            .get(..4)
            .map(|n| u32::from_be_bytes([n[0], n[1], n[2], n[3]]) as usize)
            .and_then(|n| blob.get(4..4 + n));
        if declared != Some(kind.as_bytes()) {
            continue;
        }
        let key = format!("{kind} {data}");
        if !keys.iter().any(|(_, k)| *k == key) {
            keys.push((rank, key));
        }
    }
    keys.sort_by_key(|(rank, _)| *rank);
    keys.into_iter().map(|(_, k)| k).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN35fZv6kVsxDmQNxTLUN0V5is/1ARqdI3X4VmEhx1+d";
    const EC: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBE2tSTLbfBukXKdhIrF2yXBJ7bOjzQ/HZKDmyp22ACWxK8hxbQXodmHdEsA9eVeRzEMr3C0aVW/qshbKinkMgN0=";

    fn block(lines: &[&str]) -> String {
        let mut s = String::from("[   12.3] cloud-init[412]: boot\n");
        s.push_str(BEGIN);
        s.push('\n');
        for l in lines {
            s.push_str(l);
            s.push('\n');
        }
        s.push_str(END);
        s.push_str("\nlogin: ");
        s
    }

    #[test]
    fn reads_the_block_best_type_first() {
        let text = block(&[
            &format!("{EC} root@ip-10-0-0-1"),
            &format!("{ED} root@ip-10-0-0-1"),
        ]);
        assert_eq!(host_keys(&text), vec![ED.to_string(), EC.to_string()]);
    }

    #[test]
    fn survives_terminal_noise() {
        let text = block(&[&format!("\u{1b}[0m\u{1b}[2J{ED} root@ip\r")]);
        assert_eq!(host_keys(&text), vec![ED.to_string()]);
    }

    #[test]
    fn fails_closed() {
        // No end, no begin, a cut-off block, a type that does not match its data, garbage.
        assert!(host_keys(&format!("{BEGIN}\n{ED}\n")).is_empty());
        assert!(host_keys(&format!("{ED}\n{END}\n")).is_empty());
        assert!(host_keys("").is_empty());
        let mislabelled = ED.replace("ssh-ed25519", "ssh-rsa");
        assert!(host_keys(&block(&[&mislabelled])).is_empty());
        assert!(host_keys(&block(&["ssh-ed25519 not-base64!!", "hello world"])).is_empty());
    }

    #[test]
    fn the_last_complete_block_counts() {
        let old = block(&[EC]);
        let new = block(&[ED]);
        assert_eq!(host_keys(&format!("{old}\n{new}")), vec![ED.to_string()]);
        assert_eq!(
            host_keys(&format!("{new}\n{BEGIN}\n{EC}\n")),
            vec![ED.to_string()]
        );
    }
}
