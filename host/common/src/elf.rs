//! Just enough of ELF to tell whether a program can run on a box: its machine (x86_64 or
//! arm64), whether it is linked statically, and the newest glibc symbol version it needs
//! (from `.gnu.version_r`, as `objdump -p` shows under "Version References").
//!
//! The input is an untrusted file: every offset and size is checked against the buffer, and
//! a malformed file is an [`ElfError`], never a panic.

use std::fmt;

/// The CPU architectures cgcloud launches boxes on, named as EC2 names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Arch {
    X86_64,
    Arm64,
}

impl Arch {
    /// Every architecture, in the order `cgcloud config` lists them.
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Arm64];

    /// EC2's name (`x86_64`, `arm64`), also the folder name under the data directory's `agents/`.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    /// EC2's names (`x86_64`, `arm64`) and the toolchains' (`amd64`, `aarch64`).
    pub fn parse(s: &str) -> Option<Arch> {
        match s {
            "x86_64" | "amd64" | "x86_64_mac" => Some(Arch::X86_64),
            "arm64" | "aarch64" | "arm64_mac" => Some(Arch::Arm64),
            _ => None,
        }
    }

    /// The Rust target triple of a glibc Linux build for this architecture.
    pub fn rust_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-gnu",
            Arch::Arm64 => "aarch64-unknown-linux-gnu",
        }
    }

    /// The architecture of the machine cgcloud itself runs on, if it is one of these.
    pub fn host() -> Option<Arch> {
        Arch::parse(std::env::consts::ARCH)
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A glibc version such as 2.34.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GlibcVersion(pub u32, pub u32);

impl GlibcVersion {
    /// `2.34` (also the tail of a symbol version, `GLIBC_2.34`, or a three-part `2.3.4`, whose
    /// third part does not matter for ordering here).
    pub fn parse(s: &str) -> Option<GlibcVersion> {
        let mut parts = s.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        if parts.any(|p| p.parse::<u32>().is_err()) {
            return None;
        }
        Some(GlibcVersion(major, minor))
    }
}

impl fmt::Display for GlibcVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// What cgcloud needs to know of a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    /// `None`: an ELF machine cgcloud does not launch (e.g. 32-bit ARM); `machine` says which.
    pub arch: Option<Arch>,
    /// The ELF `e_machine` value.
    pub machine: u16,
    /// Whether the program names a dynamic loader (`PT_INTERP`); a static program does not.
    pub dynamic: bool,
    /// The dynamic loader it names, if any (`/lib64/ld-linux-x86-64.so.2`).
    pub interpreter: Option<String>,
    /// The newest `GLIBC_x.y` version it references; `None` for programs that need no glibc.
    pub glibc: Option<GlibcVersion>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    #[error("not an ELF program")]
    NotElf,
    #[error("a 32-bit or big-endian ELF file; cgcloud boxes run 64-bit little-endian programs")]
    Unsupported,
    #[error("not an executable ELF file (type {0})")]
    NotExecutable(u16),
    #[error("a damaged ELF file: {0}")]
    Malformed(&'static str),
}

const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;
const PT_INTERP: u32 = 3;
const SHT_GNU_VERNEED: u32 = 0x6fff_fffe;
/// At most this many version-need records are read (real programs have a handful).
const MAX_RECORDS: usize = 4096;

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn bytes(&self, off: u64, len: u64) -> Result<&'a [u8], ElfError> {
        let start = usize::try_from(off).map_err(|_| ElfError::Malformed("offset out of range"))?;
        let len = usize::try_from(len).map_err(|_| ElfError::Malformed("size out of range"))?;
        let end = start
            .checked_add(len)
            .ok_or(ElfError::Malformed("offset out of range"))?;
        self.0
            .get(start..end)
            .ok_or(ElfError::Malformed("truncated"))
    }
    fn u16(&self, off: u64) -> Result<u16, ElfError> {
        let b = self.bytes(off, 2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&self, off: u64) -> Result<u32, ElfError> {
        let b = self.bytes(off, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&self, off: u64) -> Result<u64, ElfError> {
        let b = self.bytes(off, 8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    /// A NUL-terminated string starting at `off`, within `limit` bytes.
    fn cstr(&self, off: u64, limit: u64) -> Result<&'a str, ElfError> {
        let avail = (self.0.len() as u64).saturating_sub(off).min(limit);
        let b = self.bytes(off, avail)?;
        let end = b
            .iter()
            .position(|&c| c == 0)
            .ok_or(ElfError::Malformed("unterminated string"))?;
        std::str::from_utf8(&b[..end])
            .map_err(|_| ElfError::Malformed("a string that is not UTF-8"))
    }
}

/// Reads what cgcloud needs from the bytes of a program.
pub fn inspect(data: &[u8]) -> Result<ElfInfo, ElfError> {
    if data.len() < 4 || &data[..4] != b"\x7fELF" {
        return Err(ElfError::NotElf);
    }
    let r = Reader(data);
    // EI_CLASS 2 = 64-bit, EI_DATA 1 = little-endian.
    if r.bytes(4, 2)? != [2, 1] {
        return Err(ElfError::Unsupported);
    }
    let e_type = r.u16(16)?;
    // ET_EXEC or ET_DYN (position-independent executables).
    if e_type != 2 && e_type != 3 {
        return Err(ElfError::NotExecutable(e_type));
    }
    let machine = r.u16(18)?;
    let arch = match machine {
        EM_X86_64 => Some(Arch::X86_64),
        EM_AARCH64 => Some(Arch::Arm64),
        _ => None,
    };
    let phoff = r.u64(32)?;
    let shoff = r.u64(40)?;
    let phentsize = u64::from(r.u16(54)?);
    let phnum = u64::from(r.u16(56)?);
    let shentsize = u64::from(r.u16(58)?);
    let shnum = u64::from(r.u16(60)?);

    let mut interpreter = None;
    if phnum > 0 {
        if phentsize < 56 {
            return Err(ElfError::Malformed("program header entries too small"));
        }
        for i in 0..phnum {
            let ph = phoff
                .checked_add(i * phentsize)
                .ok_or(ElfError::Malformed("offset out of range"))?;
            if r.u32(ph)? == PT_INTERP {
                let off = r.u64(ph + 8)?;
                let size = r.u64(ph + 32)?;
                interpreter = Some(r.cstr(off, size.min(4096))?.to_string());
            }
        }
    }

    let mut glibc: Option<GlibcVersion> = None;
    if shnum > 0 {
        if shentsize < 64 {
            return Err(ElfError::Malformed("section header entries too small"));
        }
        let section = |i: u64| -> Result<(u32, u32, u64, u64, u32), ElfError> {
            let sh = shoff
                .checked_add(i * shentsize)
                .ok_or(ElfError::Malformed("offset out of range"))?;
            // sh_type, sh_link, sh_offset, sh_size, sh_info
            Ok((
                r.u32(sh + 4)?,
                r.u32(sh + 40)?,
                r.u64(sh + 24)?,
                r.u64(sh + 32)?,
                r.u32(sh + 44)?,
            ))
        };
        for i in 0..shnum {
            let (kind, link, off, size, count) = section(i)?;
            if kind != SHT_GNU_VERNEED {
                continue;
            }
            if u64::from(link) >= shnum {
                return Err(ElfError::Malformed(
                    "version references name no string table",
                ));
            }
            let (_, _, str_off, str_size, _) = section(u64::from(link))?;
            let strings = |name: u32| -> Result<&str, ElfError> {
                if u64::from(name) >= str_size {
                    return Err(ElfError::Malformed("a name outside its string table"));
                }
                r.cstr(str_off + u64::from(name), str_size - u64::from(name))
            };
            let end = off
                .checked_add(size)
                .ok_or(ElfError::Malformed("offset out of range"))?;
            let mut need = off;
            let mut records = 0usize;
            for _ in 0..count {
                // Elf64_Verneed: vn_version u16, vn_cnt u16, vn_file u32, vn_aux u32, vn_next u32
                if need.checked_add(16).is_none_or(|e| e > end) {
                    return Err(ElfError::Malformed(
                        "version references run past their section",
                    ));
                }
                let cnt = r.u16(need + 2)?;
                let aux_off = r.u32(need + 8)?;
                let next = r.u32(need + 12)?;
                let mut aux = need + u64::from(aux_off);
                for _ in 0..cnt {
                    records += 1;
                    if records > MAX_RECORDS {
                        return Err(ElfError::Malformed("too many version references"));
                    }
                    // Elf64_Vernaux: vna_hash u32, vna_flags u16, vna_other u16, vna_name u32, vna_next u32
                    if aux.checked_add(16).is_none_or(|e| e > end) {
                        return Err(ElfError::Malformed(
                            "version references run past their section",
                        ));
                    }
                    let name = strings(r.u32(aux + 8)?)?;
                    if let Some(v) = name.strip_prefix("GLIBC_").and_then(GlibcVersion::parse) {
                        glibc = Some(glibc.map_or(v, |g| g.max(v)));
                    }
                    let next_aux = r.u32(aux + 12)?;
                    if next_aux == 0 {
                        break;
                    }
                    aux += u64::from(next_aux);
                }
                if next == 0 {
                    break;
                }
                need += u64::from(next);
            }
        }
    }
    Ok(ElfInfo {
        arch,
        machine,
        dynamic: interpreter.is_some(),
        interpreter,
        glibc,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This test program itself: an ELF of the machine the tests run on.
    fn own_program() -> Vec<u8> {
        std::fs::read(std::env::current_exe().unwrap()).unwrap()
    }

    #[test]
    fn reads_the_running_test_program() {
        let info = inspect(&own_program()).unwrap();
        assert_eq!(info.arch, Arch::host());
        if cfg!(target_env = "gnu") {
            assert!(info.dynamic);
            let glibc = info
                .glibc
                .expect("a glibc program references GLIBC_ versions");
            assert!(glibc >= GlibcVersion(2, 2), "{glibc}");
        }
    }

    #[test]
    fn refuses_what_is_not_a_64_bit_program() {
        assert_eq!(inspect(b"#!/bin/sh\necho hi\n"), Err(ElfError::NotElf));
        assert_eq!(inspect(b""), Err(ElfError::NotElf));
        let mut elf32 = own_program();
        elf32[4] = 1;
        assert_eq!(inspect(&elf32), Err(ElfError::Unsupported));
        let mut relocatable = own_program();
        relocatable[16] = 1;
        relocatable[17] = 0;
        assert_eq!(inspect(&relocatable), Err(ElfError::NotExecutable(1)));
    }

    #[test]
    fn tells_the_machine() {
        let mut arm = own_program();
        arm[18..20].copy_from_slice(&EM_AARCH64.to_le_bytes());
        assert_eq!(inspect(&arm).unwrap().arch, Some(Arch::Arm64));
        arm[18..20].copy_from_slice(&40u16.to_le_bytes()); // EM_ARM
        let info = inspect(&arm).unwrap();
        assert_eq!((info.arch, info.machine), (None, 40));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let data = own_program();
        // The headers and the tables cgcloud reads sit in the first pages and the section
        // headers at the end; cut at many points in both.
        let mut cuts: Vec<usize> = (0..4096.min(data.len())).step_by(7).collect();
        cuts.extend((data.len().saturating_sub(8192)..data.len()).step_by(13));
        for n in cuts {
            let _ = inspect(&data[..n]);
        }
    }

    #[test]
    fn glibc_versions_order_numerically() {
        assert!(GlibcVersion::parse("2.34").unwrap() > GlibcVersion::parse("2.4").unwrap());
        assert_eq!(GlibcVersion::parse("2.2.5"), Some(GlibcVersion(2, 2)));
        assert_eq!(GlibcVersion::parse("2"), None);
        assert_eq!(GlibcVersion::parse("2.x"), None);
        assert_eq!(GlibcVersion(2, 34).to_string(), "2.34");
    }

    #[test]
    fn arch_names() {
        for a in Arch::ALL {
            assert_eq!(Arch::parse(a.as_str()), Some(a));
        }
        assert_eq!(Arch::parse("aarch64"), Some(Arch::Arm64));
        assert_eq!(Arch::parse("i386"), None);
    }
}
