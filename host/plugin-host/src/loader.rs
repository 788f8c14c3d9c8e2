//! Loading one plugin file: the checks before `dlopen` (owner and permissions of the file and
//! its folders, sha256 against the lock, ELF/Mach-O structure, the build-info string: ABI major
//! and panic strategy, pins), then `dlopen` with abi_stable's header, C-ABI self-test, version
//! and layout checks, then the manifest.
//!
//! The file is opened once: every check reads that descriptor, and `dlopen` loads the same
//! open file (`/proc/self/fd/N` on Linux; elsewhere a private copy of the checked bytes), so a
//! file swapped at the path between the checks and the load is never the one loaded.

use crate::error::PluginError;
use crate::integrity::{check_folders, check_owner, check_permissions, check_structure};
use crate::lock::{first_line, sha256_hex, Lock};
use crate::sources::{Candidate, Origin};
use abi_stable::library::{lib_header_from_path, LibraryError};
use cgcloud_plugin_api::abi::{PluginModRef, ABI_MAJOR};
use cgcloud_plugin_api::proto::Manifest;
use cgcloud_plugin_api::BuildInfo;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What is known about a plugin file after the checks that need no `dlopen`.
#[derive(Debug, Clone)]
pub struct Inspected {
    pub path: PathBuf,
    pub origin: Origin,
    pub info: BuildInfo,
    /// The file's sha256: computed for files that need a lock entry (hashing costs about as
    /// much as loading), `None` for ad-hoc ones unless asked for.
    pub sha256: Option<String>,
    /// The file as it was checked; loading goes through this descriptor, never the path again.
    file: Arc<std::fs::File>,
}

/// Opens a plugin file for reading without blocking on a FIFO or device.
fn open(path: &Path) -> Result<std::fs::File, PluginError> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    options
        .open(path)
        .map_err(|e| PluginError::Io(path.to_path_buf(), e))
}

/// The largest plugin file read (a release plugin is a few MB).
const MAX_PLUGIN_BYTES: u64 = 512 << 20;

/// A plugin file's bytes for the checks: mapped read-only rather than copied (copying a
/// megabyte into fresh memory was half of a plugin's load time), or read where mapping is not
/// available.
enum Contents {
    #[cfg(unix)]
    Mapped {
        at: *mut libc::c_void,
        len: usize,
    },
    Read(Vec<u8>),
}

impl Contents {
    fn of(file: &std::fs::File, len: u64) -> std::io::Result<Contents> {
        let len = usize::try_from(len).map_err(std::io::Error::other)?;
        #[cfg(unix)]
        if len > 0 {
            use std::os::unix::io::AsRawFd;
            // SAFETY: a read-only private mapping of a regular file this process opened, of the
            // file's length, unmapped on drop, never written through. The file belongs to this
            // user or root in folders no one else may write (checked before): only they could
            // change it while it is mapped, and `dlopen` maps the same file right after anyway.
            let at = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE,
                    file.as_raw_fd(),
                    0,
                )
            };
            if at != libc::MAP_FAILED {
                return Ok(Contents::Mapped { at, len });
            }
        }
        use std::io::Read as _;
        let mut bytes = Vec::with_capacity(len);
        file.take(len as u64).read_to_end(&mut bytes)?;
        Ok(Contents::Read(bytes))
    }
}

impl std::ops::Deref for Contents {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            // SAFETY: `at` is a live mapping of `len` readable bytes until `drop`.
            #[cfg(unix)]
            Contents::Mapped { at, len } => unsafe {
                std::slice::from_raw_parts(at.cast::<u8>(), *len)
            },
            Contents::Read(bytes) => bytes,
        }
    }
}

impl Drop for Contents {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Contents::Mapped { at, len } = self {
            // SAFETY: unmaps exactly the mapping made in `of`, with no slice of it left.
            unsafe {
                libc::munmap(*at, *len);
            }
        }
    }
}

/// A loaded plugin.
#[derive(Clone)]
pub struct Loaded {
    pub inspected: Inspected,
    pub module: PluginModRef,
    pub manifest: Manifest,
}

/// Runs every check that does not need to load the file.
pub fn inspect(
    candidate: &Candidate,
    lock: Option<(&Lock, &Path)>,
    pins: &BTreeMap<String, semver::VersionReq>,
    want_sha256: bool,
) -> Result<Inspected, PluginError> {
    let path = &candidate.path;
    let file = open(path)?;
    let meta = file
        .metadata()
        .map_err(|e| PluginError::Io(path.clone(), e))?;
    if !meta.is_file() {
        return Err(PluginError::NotALibrary(path.clone()));
    }
    check_permissions(path, &meta)?;
    check_owner(path, &meta)?;
    check_folders(path)?;
    if meta.len() > MAX_PLUGIN_BYTES {
        return Err(PluginError::Corrupt(
            path.clone(),
            format!("larger than {MAX_PLUGIN_BYTES} bytes"),
        ));
    }
    let contents = Contents::of(&file, meta.len()).map_err(|e| PluginError::Io(path.clone(), e))?;
    let bytes: &[u8] = &contents;
    let needs_lock = candidate.origin.needs_lock() && lock.is_some();
    let sha256 = (want_sha256 || needs_lock).then(|| sha256_hex(bytes));
    if let (true, Some(found)) = (needs_lock, &sha256) {
        if let Some((lock, lock_path)) = lock {
            match lock.entry(path) {
                None => {
                    return Err(PluginError::NotLocked {
                        file: path.clone(),
                        lock: lock_path.to_path_buf(),
                    })
                }
                Some(entry) if entry.sha256 != *found => {
                    return Err(PluginError::HashMismatch {
                        file: path.clone(),
                        lock: lock_path.to_path_buf(),
                        found: found.clone(),
                        locked: entry.sha256.clone(),
                    })
                }
                Some(_) => {}
            }
        }
    }
    check_structure(path, bytes)?;
    let info = BuildInfo::find(bytes).ok_or_else(|| PluginError::NoEntry(path.clone()))?;
    if info.abi != ABI_MAJOR {
        return Err(PluginError::AbiMismatch {
            name: info.name,
            file: path.clone(),
            api: info.api,
            abi: info.abi,
            host_api: cgcloud_plugin_api::API_VERSION,
            host: ABI_MAJOR,
        });
    }
    if !info.panic_unwind {
        return Err(PluginError::PanicAbort {
            name: info.name,
            file: path.clone(),
        });
    }
    check_pin(&info.name, &info.version, path, pins)?;
    Ok(Inspected {
        path: path.clone(),
        origin: candidate.origin,
        info,
        sha256,
        file: Arc::new(file),
    })
}

/// Checks the admin's pin for `name`, if any.
pub fn check_pin(
    name: &str,
    version: &str,
    path: &Path,
    pins: &BTreeMap<String, semver::VersionReq>,
) -> Result<(), PluginError> {
    let Some(req) = pins.get(name) else {
        return Ok(());
    };
    let ok = semver::Version::parse(version)
        .map(|v| req.matches(&v))
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(PluginError::PinMismatch {
            name: name.into(),
            version: version.into(),
            file: path.to_path_buf(),
            req: req.to_string(),
        })
    }
}

/// Loads an inspected file. Only call this after [`inspect`] passed.
pub fn load(inspected: Inspected) -> Result<Loaded, PluginError> {
    let path = inspected.path.clone();
    let name = inspected.info.name.clone();
    let checked = checked_file(&inspected)?;
    // NOTE: glibc's dlopen reuses a loaded library whose *name* matches: the descriptor behind
    // `/proc/self/fd/N` must stay open for the process's life (loaded libraries are never
    // unloaded anyway), or a later plugin opened on the same number would get this one.
    std::mem::forget(Arc::clone(&inspected.file));
    let module = lib_header_from_path(&checked)
        .and_then(|header| header.init_root_module::<PluginModRef>())
        .map_err(|e| library_error(&path, &name, e))?;
    if module.abi_major() != ABI_MAJOR {
        return Err(PluginError::AbiMismatch {
            name,
            file: path,
            api: inspected.info.api.clone(),
            abi: module.abi_major(),
            host_api: cgcloud_plugin_api::API_VERSION,
            host: ABI_MAJOR,
        });
    }
    if module.panic_unwind() != 1 {
        return Err(PluginError::PanicAbort { name, file: path });
    }
    let bytes = cgcloud_plugin_api::abi::manifest_bytes(module);
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| PluginError::Incompatible {
            name: name.clone(),
            file: path.clone(),
            detail: format!("unreadable manifest: {e}"),
        })?;
    if manifest.abi != ABI_MAJOR {
        return Err(PluginError::AbiMismatch {
            name,
            file: path,
            api: manifest.api.clone(),
            abi: manifest.abi,
            host_api: cgcloud_plugin_api::API_VERSION,
            host: ABI_MAJOR,
        });
    }
    Ok(Loaded {
        inspected,
        module,
        manifest,
    })
}

/// A path that names exactly the file [`inspect`] checked.
#[cfg(target_os = "linux")]
fn checked_file(inspected: &Inspected) -> Result<PathBuf, PluginError> {
    use std::os::unix::io::AsRawFd;
    Ok(PathBuf::from(format!(
        "/proc/self/fd/{}",
        inspected.file.as_raw_fd()
    )))
}

/// A path that names exactly the file [`inspect`] checked: a private copy of its bytes.
#[cfg(not(target_os = "linux"))]
fn checked_file(inspected: &Inspected) -> Result<PathBuf, PluginError> {
    use std::io::{Seek, SeekFrom};
    let err = |e| PluginError::Io(inspected.path.clone(), e);
    let dir = tempfile::Builder::new()
        .prefix("cgcloud-plugin-")
        .tempdir()
        .map_err(err)?;
    let copy = dir
        .path()
        .join(inspected.path.file_name().unwrap_or_default());
    let mut from: &std::fs::File = &inspected.file;
    from.seek(SeekFrom::Start(0)).map_err(err)?;
    let mut to = std::fs::File::create(&copy).map_err(err)?;
    std::io::copy(&mut from, &mut to).map_err(err)?;
    // The library stays mapped after its file is gone; the folder is cgcloud's alone.
    let _ = dir.keep();
    Ok(copy)
}

fn library_error(path: &Path, name: &str, e: LibraryError) -> PluginError {
    match e {
        LibraryError::GetSymbolError { .. } => PluginError::NoEntry(path.to_path_buf()),
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => PluginError::Incompatible {
            name: name.into(),
            file: path.to_path_buf(),
            detail: format!("ABI version {actual_version}, this cgcloud has {expected_version}"),
        },
        LibraryError::AbiInstability(_)
        | LibraryError::InvalidCAbi { .. }
        | LibraryError::InvalidAbiHeader(_) => PluginError::Incompatible {
            name: name.into(),
            file: path.to_path_buf(),
            detail: "the layout check failed".into(),
        },
        other => PluginError::LoadFailed(path.to_path_buf(), first_line(&other.to_string())),
    }
}
