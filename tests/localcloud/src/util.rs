//! Small helpers shared by every module: running host tools with readable errors, files, time.

use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// Renders a command line for error messages.
pub fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` to completion; a non-zero exit becomes an error naming the command and its stderr.
pub fn run(cmd: &mut Command) -> Result<()> {
    output(cmd).map(|_| ())
}

/// Runs `cmd` to completion and returns its stdout.
pub fn output(cmd: &mut Command) -> Result<String> {
    let line = show(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("failed to run `{line}`"))?;
    if !out.status.success() {
        bail!(
            "`{line}` failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `cmd`, ignoring its outcome: for best-effort clean-up steps.
pub fn run_quiet(cmd: &mut Command) {
    succeeds(cmd);
}

/// Runs `cmd` with no input and its output dropped; whether it exited with success.
pub fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Writes `content` to `path` atomically (`cgcloud_common::fsutil::write_atomic`), readable by
/// all (the folder decides who can reach it).
pub fn write_atomic(path: &Path, content: &[u8]) -> Result<()> {
    cgcloud_common::fsutil::write_atomic(path, content, 0o644, None)
        .with_context(|| format!("failed to write `{}`", path.display()))
}

/// Writes a file, creating its parent folders.
pub fn write_file(path: &Path, content: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create `{}`", dir.display()))?;
    }
    std::fs::write(path, content).with_context(|| format!("failed to write `{}`", path.display()))
}

/// Writes `content` (mode `mode`) at `rel` inside a box's file tree `root` without following
/// any symbolic link: the tree is the box's, and root inside a box must not steer the root
/// daemon into writing host files. Every folder on the way must be a real folder (missing ones
/// are made); the file is written to a fresh temporary file and renamed over `rel`, which
/// replaces a link there instead of following it.
pub fn write_in_tree(root: &Path, rel: &str, mode: u32, content: &[u8]) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt;
    let rel = Path::new(rel.trim_start_matches('/'));
    let mut dir = root.to_path_buf();
    let parent = rel.parent().unwrap_or(Path::new(""));
    for part in parent.components() {
        let std::path::Component::Normal(name) = part else {
            bail!("`{}` is not a plain path inside the box", rel.display());
        };
        dir.push(name);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(_) => bail!(
                "`{}` in the box is not a folder (a symbolic link?); not writing `{}`",
                dir.display(),
                rel.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir(&dir)
                .with_context(|| format!("failed to create `{}`", dir.display()))?,
            Err(e) => {
                return Err(e).with_context(|| format!("failed to inspect `{}`", dir.display()))
            }
        }
    }
    let Some(name) = rel.file_name() else {
        bail!("`{}` names no file", rel.display())
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".localcloud-")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(&dir)
        .with_context(|| format!("failed to create a file in `{}`", dir.display()))?;
    tmp.write_all(content)
        .with_context(|| format!("failed to write into `{}`", dir.display()))?;
    // NOTE: the umask may have narrowed the mode given at creation.
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("failed to chmod a file in `{}`", dir.display()))?;
    let target = dir.join(name);
    tmp.persist(&target)
        .with_context(|| format!("failed to write `{}`", target.display()))?;
    Ok(())
}

/// Reads a text file inside a box's tree without following a symbolic link at its end (an
/// empty string for a link or a missing file); the folders above must be real folders.
pub fn read_in_tree(root: &Path, rel: &str) -> String {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt;
    let rel = Path::new(rel.trim_start_matches('/'));
    let mut dir = root.to_path_buf();
    for part in rel.parent().unwrap_or(Path::new("")).components() {
        dir.push(part);
        if !std::fs::symlink_metadata(&dir).is_ok_and(|m| m.file_type().is_dir()) {
            return String::new();
        }
    }
    let Some(name) = rel.file_name() else {
        return String::new();
    };
    let mut text = String::new();
    // O_NOFOLLOW | O_NONBLOCK: a link fails to open; a FIFO does not hang.
    if let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(0o400000 | 0o4000)
        .open(dir.join(name))
    {
        if f.metadata().is_ok_and(|m| m.is_file()) {
            let _ = f.take(1 << 20).read_to_string(&mut text);
        }
    }
    text
}

/// The last `n` lines of a text file, or a note that it is empty.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return format!("(`{}` is empty)", path.display());
    }
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Milliseconds since `t0`, for progress lines.
pub fn ms(t0: Instant) -> u128 {
    t0.elapsed().as_millis()
}

/// True when `path` is a mount point (listed in `/proc/self/mounts`).
pub fn is_mounted(path: &Path) -> bool {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return false;
    };
    let p = path.to_string_lossy();
    mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(1))
        .any(|m| m == p)
}

/// Takes one of `count` machine-wide slots named `<kind>-<k>.lock` under
/// `/run/lock/cgcloud-localcloud`, polling every `poll` for at most `timeout`; the slot is
/// held until the returned file is dropped. `busy` says, in the error, why none was free.
pub fn take_slot(
    kind: &str,
    count: usize,
    timeout: std::time::Duration,
    poll: std::time::Duration,
    busy: &str,
) -> Result<std::fs::File> {
    let dir = std::path::PathBuf::from("/run/lock/cgcloud-localcloud");
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("failed to create `{}`", dir.display()))?;
    let deadline = Instant::now() + timeout;
    loop {
        for k in 0..count {
            let p = dir.join(format!("{kind}-{k}.lock"));
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&p)
                .with_context(|| format!("failed to open `{}`", p.display()))?;
            if f.try_lock().is_ok() {
                return Ok(f);
            }
        }
        if Instant::now() > deadline {
            bail!("no {kind} slot became free within {timeout:?}{busy}");
        }
        std::thread::sleep(poll);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_files_never_follow_links_out_of_the_tree() {
        let host = tempfile::tempdir().unwrap();
        let secret = host.path().join("host-file");
        std::fs::write(&secret, "host data\n").unwrap();
        let tree = tempfile::tempdir().unwrap();
        let root = tree.path();
        std::fs::create_dir(root.join("etc")).unwrap();
        // The box's root made its /etc/hosts a link to a host file, and /var/lib a link to a
        // host folder.
        std::os::unix::fs::symlink(&secret, root.join("etc/hosts")).unwrap();
        std::fs::create_dir(root.join("var")).unwrap();
        std::os::unix::fs::symlink(host.path(), root.join("var/lib")).unwrap();

        assert_eq!(
            read_in_tree(root, "/etc/hosts"),
            "",
            "a link is not read through"
        );
        write_in_tree(root, "/etc/hosts", 0o644, b"127.0.0.1 localhost\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&secret).unwrap(),
            "host data\n",
            "the host file is untouched"
        );
        let m = std::fs::symlink_metadata(root.join("etc/hosts")).unwrap();
        assert!(m.file_type().is_file(), "the link was replaced by a file");
        assert_eq!(read_in_tree(root, "/etc/hosts"), "127.0.0.1 localhost\n");

        let e = write_in_tree(root, "/var/lib/cloud/seed", 0o600, b"x").unwrap_err();
        assert!(format!("{e:#}").contains("is not a folder"), "{e:#}");
        assert!(
            !host.path().join("cloud").exists(),
            "nothing was made through the linked folder"
        );
        assert!(write_in_tree(root, "/etc/../../escape", 0o600, b"x").is_err());
        write_in_tree(root, "/a/new/folder/file", 0o600, b"made").unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("a/new/folder/file")).unwrap(),
            "made"
        );
    }
}
