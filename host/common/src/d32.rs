//! d32: unpadded base32 with the order-preserving alphabet `234567abcdefghijklmnopqrstuvwxyz`.
//!
//! This is the encoding the original uses for test-namespace suffixes and hashed IAM role names
//! (`bd2k.util.d32.standard`). Because the alphabet is sorted in ASCII order and bits are taken
//! most significant first, byte strings of equal length encode to strings in the same order, so
//! test namespaces built from a big-endian time stamp sort chronologically.
//!
//! `n` bytes encode to `(8 * n + 4) / 5` characters; the unused low bits of the last character
//! are zero.

const ALPHABET: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";

/// Encode `bytes` as d32, e.g. `[0xff]` → `"zw"`.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity((bytes.len() * 8).div_ceil(5));
    let mut acc: u16 = 0;
    let mut bits: u32 = 0;
    for &b in bytes {
        acc = (acc << 8) | u16::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[usize::from((acc >> bits) & 31)]));
        }
        // Keep only the bits that have not been emitted yet.
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[usize::from((acc << (5 - bits)) & 31)]));
    }
    out
}

fn value_of(c: u8) -> Option<u16> {
    match c {
        b'2'..=b'7' => Some(u16::from(c - b'2')),
        b'a'..=b'z' => Some(u16::from(c - b'a') + 6),
        _ => None,
    }
}

/// Decode d32 text. Returns `None` for characters outside the alphabet, for lengths no byte
/// string encodes to (1, 3 or 6 modulo 8), and for non-zero padding bits in the last character.
///
/// NOTE: the original decoder silently maps unknown characters to zero and ignores padding bits;
/// this one is strict so that `encode(decode(s)?) == s` always holds.
pub fn decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let mut acc: u16 = 0;
    let mut bits: u32 = 0;
    for &c in s.as_bytes() {
        acc = (acc << 5) | value_of(c)?;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if bits >= 5 || acc != 0 {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_from_the_original_doctests() {
        assert_eq!(encode(b""), "");
        assert_eq!(encode(b"\x00"), "22");
        assert_eq!(encode(b"\xff"), "zw");
        assert_eq!(encode(b"\x00\x01\x02\x03\x04"), "222k62s6");
        assert_eq!(encode(b"\x00\x01\x02\x03\x04\x05"), "222k62s62o");
        assert_eq!(decode("zw"), Some(vec![0xff]));
        assert_eq!(
            decode("222k62s62o"),
            Some(b"\x00\x01\x02\x03\x04\x05".to_vec())
        );
        assert_eq!(decode("222k62s6"), Some(b"\x00\x01\x02\x03\x04".to_vec()));
        assert_eq!(decode(""), Some(vec![]));
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(decode("2"), None, "one character cannot hold a byte");
        assert_eq!(decode("222"), None);
        assert_eq!(decode("222222"), None);
        assert_eq!(decode("z1"), None, "`1` is not in the alphabet");
        assert_eq!(decode("ZW"), None, "upper case is not in the alphabet");
        assert_eq!(decode("zz"), None, "non-zero padding bits");
    }
}
