//! Checks run on a plugin file *before* `dlopen`: permissions, and that the file is a whole
//! ELF or Mach-O shared library (headers, segments and sections inside the file). `dlopen`
//! runs code and a truncated library kills the process inside it (SIGBUS), so nothing is
//! loaded that fails here.

use crate::error::PluginError;
use std::path::Path;

/// Refuses files that group or others may write (anyone could swap the code cgcloud runs).
pub fn check_permissions(path: &Path, meta: &std::fs::Metadata) -> Result<(), PluginError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(PluginError::Writable(path.to_path_buf(), mode));
        }
    }
    #[cfg(not(unix))]
    let _ = (path, meta);
    Ok(())
}

/// The effective uid of this process.
#[cfg(unix)]
fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions, touches no memory of ours and cannot fail.
    unsafe { libc::geteuid() }
}

/// Refuses a file owned by anyone but this user or root: its owner could swap the code.
pub fn check_owner(path: &Path, meta: &std::fs::Metadata) -> Result<(), PluginError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let uid = meta.uid();
        if uid != 0 && uid != euid() {
            return Err(PluginError::NotOwned(path.to_path_buf(), uid));
        }
    }
    #[cfg(not(unix))]
    let _ = (path, meta);
    Ok(())
}

/// Refuses a file in a folder (or any folder above it) that someone other than this user or
/// root owns, or that group or others may write without the sticky bit (`/tmp` is fine): there
/// the file could be renamed away and replaced.
pub fn check_folders(path: &Path) -> Result<(), PluginError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let full =
            std::fs::canonicalize(path).map_err(|e| PluginError::Io(path.to_path_buf(), e))?;
        let me = euid();
        for folder in full.ancestors().skip(1) {
            let meta =
                std::fs::metadata(folder).map_err(|e| PluginError::Io(folder.to_path_buf(), e))?;
            let unsafe_folder = |why: String| PluginError::UnsafeFolder {
                file: path.to_path_buf(),
                folder: folder.to_path_buf(),
                why,
            };
            if meta.uid() != 0 && meta.uid() != me {
                return Err(unsafe_folder(format!("belongs to uid {}", meta.uid())));
            }
            let mode = meta.mode() & 0o7777;
            if mode & 0o022 != 0 && mode & 0o1000 == 0 {
                return Err(unsafe_folder(format!(
                    "group or others may write (mode {mode:o})"
                )));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Checks that `bytes` (the whole file at `path`) is a complete shared library.
pub fn check_structure(path: &Path, bytes: &[u8]) -> Result<(), PluginError> {
    if bytes.starts_with(b"\x7fELF") {
        elf(path, bytes)
    } else if bytes.len() >= 4 && macho_magic(bytes).is_some() {
        macho(path, bytes)
    } else {
        Err(PluginError::NotALibrary(path.to_path_buf()))
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    big_endian: bool,
}

impl Reader<'_> {
    fn get<const N: usize>(&self, at: u64) -> Option<[u8; N]> {
        let at = usize::try_from(at).ok()?;
        let slice = self.bytes.get(at..at.checked_add(N)?)?;
        slice.try_into().ok()
    }
    fn u16(&self, at: u64) -> Option<u64> {
        let b = self.get::<2>(at)?;
        Some(u64::from(if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }))
    }
    fn u32(&self, at: u64) -> Option<u64> {
        let b = self.get::<4>(at)?;
        Some(u64::from(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }))
    }
    fn u64(&self, at: u64) -> Option<u64> {
        let b = self.get::<8>(at)?;
        Some(if self.big_endian {
            u64::from_be_bytes(b)
        } else {
            u64::from_le_bytes(b)
        })
    }
}

fn corrupt(path: &Path, what: String) -> PluginError {
    PluginError::Corrupt(path.to_path_buf(), what)
}

fn within(end: Option<u64>, len: u64) -> bool {
    matches!(end, Some(e) if e <= len)
}

fn elf(path: &Path, bytes: &[u8]) -> Result<(), PluginError> {
    let len = bytes.len() as u64;
    let short = || corrupt(path, format!("the ELF header is cut short at {len} bytes"));
    let wide = match bytes.get(4) {
        Some(1) => false,
        Some(2) => true,
        _ => return Err(short()),
    };
    let big_endian = match bytes.get(5) {
        Some(1) => false,
        Some(2) => true,
        _ => return Err(short()),
    };
    let r = Reader { bytes, big_endian };
    let header_size = if wide { 64 } else { 52 };
    if len < header_size {
        return Err(short());
    }
    let e_type = r.u16(16).ok_or_else(short)?;
    match e_type {
        2 => return Err(PluginError::Executable(path.to_path_buf())),
        3 => {}
        _ => return Err(PluginError::NotALibrary(path.to_path_buf())),
    }
    let (phoff, shoff) = if wide {
        (r.u64(32), r.u64(40))
    } else {
        (r.u32(28), r.u32(32))
    };
    let (phoff, shoff) = (phoff.ok_or_else(short)?, shoff.ok_or_else(short)?);
    let base = if wide { 54 } else { 42 };
    let field = |i: u64| r.u16(base + 2 * i).ok_or_else(short);
    let (phentsize, phnum, shentsize, shnum) = (field(0)?, field(1)?, field(2)?, field(3)?);

    if !within(phoff.checked_add(phentsize * phnum), len) {
        return Err(corrupt(
            path,
            format!("its program headers end past the end of the file ({len} bytes)"),
        ));
    }
    let mut interp = false;
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        let p_type = r.u32(at).ok_or_else(short)?;
        let (offset, filesz) = if wide {
            (r.u64(at + 8), r.u64(at + 32))
        } else {
            (r.u32(at + 4), r.u32(at + 16))
        };
        let (offset, filesz) = (offset.ok_or_else(short)?, filesz.ok_or_else(short)?);
        if !within(offset.checked_add(filesz), len) {
            return Err(corrupt(
                path,
                format!(
                    "segment {i} ends at byte {} but the file has {len}",
                    offset.saturating_add(filesz)
                ),
            ));
        }
        interp |= p_type == 3;
    }
    if interp {
        // PT_INTERP: a position-independent executable, not a library.
        return Err(PluginError::Executable(path.to_path_buf()));
    }
    if shnum > 0 {
        if !within(shoff.checked_add(shentsize * shnum), len) {
            return Err(corrupt(
                path,
                format!("its section headers end past the end of the file ({len} bytes)"),
            ));
        }
        for i in 0..shnum {
            let at = shoff + i * shentsize;
            let sh_type = r.u32(at + 4).ok_or_else(short)?;
            if sh_type == 8 {
                continue; // SHT_NOBITS (.bss) occupies no file space
            }
            let (offset, size) = if wide {
                (r.u64(at + 24), r.u64(at + 32))
            } else {
                (r.u32(at + 16), r.u32(at + 20))
            };
            let (offset, size) = (offset.ok_or_else(short)?, size.ok_or_else(short)?);
            if !within(offset.checked_add(size), len) {
                return Err(corrupt(
                    path,
                    format!(
                        "section {i} ends at byte {} but the file has {len}",
                        offset.saturating_add(size)
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// `(wide, big_endian)` for a Mach-O magic number.
fn macho_magic(bytes: &[u8]) -> Option<(bool, bool)> {
    match bytes.get(..4)? {
        [0xce, 0xfa, 0xed, 0xfe] => Some((false, false)),
        [0xcf, 0xfa, 0xed, 0xfe] => Some((true, false)),
        [0xfe, 0xed, 0xfa, 0xce] => Some((false, true)),
        [0xfe, 0xed, 0xfa, 0xcf] => Some((true, true)),
        _ => None,
    }
}

fn macho(path: &Path, bytes: &[u8]) -> Result<(), PluginError> {
    let len = bytes.len() as u64;
    let short = || {
        corrupt(
            path,
            format!("the Mach-O header is cut short at {len} bytes"),
        )
    };
    let (wide, big_endian) = macho_magic(bytes).ok_or_else(short)?;
    let r = Reader { bytes, big_endian };
    let header_size: u64 = if wide { 32 } else { 28 };
    let filetype = r.u32(12).ok_or_else(short)?;
    match filetype {
        2 => return Err(PluginError::Executable(path.to_path_buf())),
        6 | 8 => {}
        _ => return Err(PluginError::NotALibrary(path.to_path_buf())),
    }
    let ncmds = r.u32(16).ok_or_else(short)?;
    let sizeofcmds = r.u32(20).ok_or_else(short)?;
    if !within(header_size.checked_add(sizeofcmds), len) {
        return Err(corrupt(
            path,
            format!("its load commands end past the end of the file ({len} bytes)"),
        ));
    }
    let mut at = header_size;
    for i in 0..ncmds {
        let cmd = r.u32(at).ok_or_else(short)?;
        let size = r.u32(at + 4).ok_or_else(short)?;
        if size < 8 {
            return Err(corrupt(path, format!("load command {i} has size {size}")));
        }
        let segment = match cmd {
            0x19 => Some((r.u64(at + 40), r.u64(at + 48))),
            0x1 => Some((r.u32(at + 32), r.u32(at + 36))),
            _ => None,
        };
        if let Some((off, filesz)) = segment {
            let (off, filesz) = (off.ok_or_else(short)?, filesz.ok_or_else(short)?);
            if !within(off.checked_add(filesz), len) {
                return Err(corrupt(
                    path,
                    format!(
                        "segment {i} ends at byte {} but the file has {len}",
                        off.saturating_add(filesz)
                    ),
                ));
            }
        }
        at += size;
    }
    Ok(())
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    /// Bytes a plugin file may hold: anything, and anything behind an ELF or Mach-O magic.
    fn file() -> impl Strategy<Value = Vec<u8>> {
        let magic = prop_oneof![
            Just(b"\x7fELF".to_vec()),
            Just(b"\x7fELF\x02\x01\x01".to_vec()),
            Just(vec![0xcf, 0xfa, 0xed, 0xfe]),
            Just(vec![0xca, 0xfe, 0xba, 0xbe]),
            Just(Vec::new()),
        ];
        (magic, proptest::collection::vec(any::<u8>(), 0..600)).prop_map(|(mut m, rest)| {
            m.extend(rest);
            m
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// A plugin file of any content is judged, never a panic.
        #[test]
        fn any_file_is_judged_without_panicking(bytes in file()) {
            let _ = check_structure(Path::new("x.so"), &bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("x.so")
    }

    #[test]
    fn text_is_not_a_library() {
        assert!(matches!(
            check_structure(p(), b"hello world\n"),
            Err(PluginError::NotALibrary(_))
        ));
    }

    #[test]
    fn cut_elf_header_is_corrupt() {
        let err = check_structure(p(), b"\x7fELF\x02\x01\x01").expect_err("short");
        assert_eq!(
            err.to_string(),
            "`x.so` is truncated or corrupt (the ELF header is cut short at 7 bytes); rebuild the plugin or copy it again"
        );
    }

    #[test]
    fn macho_dylib_with_segment_past_end_is_corrupt() {
        // 64-bit little-endian Mach-O dylib with one LC_SEGMENT_64 claiming 4096 file bytes.
        let mut b = vec![0u8; 32 + 72];
        b[..4].copy_from_slice(&[0xcf, 0xfa, 0xed, 0xfe]);
        b[12..16].copy_from_slice(&6u32.to_le_bytes());
        b[16..20].copy_from_slice(&1u32.to_le_bytes());
        b[20..24].copy_from_slice(&72u32.to_le_bytes());
        b[32..36].copy_from_slice(&0x19u32.to_le_bytes());
        b[36..40].copy_from_slice(&72u32.to_le_bytes());
        b[32 + 40..32 + 48].copy_from_slice(&0u64.to_le_bytes());
        b[32 + 48..32 + 56].copy_from_slice(&4096u64.to_le_bytes());
        let err = check_structure(p(), &b).expect_err("segment past end");
        assert!(
            err.to_string()
                .contains("segment 0 ends at byte 4096 but the file has 104"),
            "{err}"
        );
        b[32 + 48..32 + 56].copy_from_slice(&104u64.to_le_bytes());
        check_structure(p(), &b).expect("whole file");
        b[12..16].copy_from_slice(&2u32.to_le_bytes());
        assert!(matches!(
            check_structure(p(), &b),
            Err(PluginError::Executable(_))
        ));
    }
}
