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
    let _ = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Writes `content` to `path` through a temporary file in the same folder and a rename.
pub fn write_atomic(path: &Path, content: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, content)
        .with_context(|| format!("failed to write `{}`", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| {
        format!(
            "failed to rename `{}` to `{}`",
            tmp.display(),
            path.display()
        )
    })
}

/// Writes a file, creating its parent folders.
pub fn write_file(path: &Path, content: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create `{}`", dir.display()))?;
    }
    std::fs::write(path, content).with_context(|| format!("failed to write `{}`", path.display()))
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
