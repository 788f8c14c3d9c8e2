//! The file the agent owns: `~/.ssh/authorized_keys.cgcloud` of each managed account.
//!
//! The agent never touches `~/.ssh/authorized_keys` (where cloud-init puts the launch key and
//! people add keys by hand) nor `authorized_keys2`. sshd reads the agent's file because of the
//! drop-in [`SSHD_DROP_IN`], installed at [`SSHD_DROP_IN_PATH`] together with the agent.
//! NOTE: sshd keeps the *first* `AuthorizedKeysFile` it reads, and Debian's `sshd_config`
//! includes `sshd_config.d/*.conf` before its own settings, so the drop-in's name sorts early.
//!
//! Writes are atomic ([`write_atomic`]): a temporary file in the same directory, written,
//! given its mode and owner, fsynced, renamed over the old file, then the directory fsynced.
//! A crash at any point leaves either the old file or the new one, never a mix; temporary files
//! a crash left behind are removed by the next write.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};

/// The file in `~/.ssh` that the agent owns.
pub const MANAGED_FILE: &str = "authorized_keys.cgcloud";
/// Its mode: sshd's `StrictModes` refuses files others can write.
pub const MANAGED_FILE_MODE: u32 = 0o600;
/// The mode of a `~/.ssh` the agent creates.
pub const SSH_DIR_MODE: u32 = 0o700;
/// Where the sshd drop-in goes.
pub const SSHD_DROP_IN_PATH: &str = "/etc/ssh/sshd_config.d/00-cgcloud-agent.conf";
/// The sshd drop-in that adds the agent's file to the default ones.
pub const SSHD_DROP_IN: &str = "\
# Installed with cgcloud-agent: sshd also accepts the keys the agent keeps in sync with the
# namespace's key pairs. Keys added by hand stay in .ssh/authorized_keys.
AuthorizedKeysFile .ssh/authorized_keys .ssh/authorized_keys2 .ssh/authorized_keys.cgcloud
";

/// How long `getent passwd` may take (NSS can be remote).
const GETENT_TIMEOUT: Duration = Duration::from_secs(10);

/// A local account whose keys the agent manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub home: PathBuf,
    pub uid: u32,
    pub gid: u32,
}

impl Account {
    /// `~/.ssh`.
    pub fn ssh_dir(&self) -> PathBuf {
        self.home.join(".ssh")
    }

    /// `~/.ssh/authorized_keys.cgcloud`.
    pub fn managed_file(&self) -> PathBuf {
        self.ssh_dir().join(MANAGED_FILE)
    }
}

/// Where account names are looked up.
#[derive(Debug, Clone)]
pub enum AccountSource {
    /// The system's user database (`getent passwd`, else `/etc/passwd`).
    System,
    /// Exactly these accounts (tests: homes in a temporary directory).
    Fixed(Vec<Account>),
}

impl AccountSource {
    /// The account called `name`, `None` if there is none (yet: role accounts may be created
    /// after the agent starts).
    pub async fn lookup(&self, name: &str) -> anyhow::Result<Option<Account>> {
        match self {
            AccountSource::Fixed(accounts) => Ok(accounts.iter().find(|a| a.name == name).cloned()),
            AccountSource::System => lookup_system(name).await,
        }
    }
}

async fn lookup_system(name: &str) -> anyhow::Result<Option<Account>> {
    let run = tokio::process::Command::new("getent")
        .args(["passwd", "--", name])
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(GETENT_TIMEOUT, run).await {
        Err(_) => bail!("`getent passwd {name}` did not answer within {GETENT_TIMEOUT:?}"),
        Ok(Err(e)) if e.kind() == io::ErrorKind::NotFound => {
            let passwd =
                fs::read_to_string("/etc/passwd").context("failed to read `/etc/passwd`")?;
            Ok(passwd
                .lines()
                .filter_map(parse_passwd_line)
                .find(|a| a.name == name))
        }
        Ok(Err(e)) => Err(e).context("failed to run `getent passwd`"),
        // getent exits with 2 when the name is unknown.
        Ok(Ok(out)) if out.status.code() == Some(2) => Ok(None),
        Ok(Ok(out)) if !out.status.success() => {
            bail!("`getent passwd {name}` failed with {}", out.status)
        }
        Ok(Ok(out)) => Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(parse_passwd_line)
            .find(|a| a.name == name)),
    }
}

/// One `name:x:uid:gid:gecos:home:shell` line.
pub fn parse_passwd_line(line: &str) -> Option<Account> {
    let f: Vec<&str> = line.split(':').collect();
    if f.len() < 7 || f[0].is_empty() || !f[5].starts_with('/') {
        return None;
    }
    Some(Account {
        name: f[0].to_string(),
        uid: f[2].parse().ok()?,
        gid: f[3].parse().ok()?,
        home: PathBuf::from(f[5]),
    })
}

/// One key as the agent writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedKey {
    /// The key pair it came from, written as the comment.
    pub keypair: String,
    /// `<type> <base64>`, no comment, no options.
    pub line: String,
}

/// The content of the managed file: a header, then one key per line in the given order.
pub fn render(keys: &[ManagedKey]) -> String {
    let mut out = String::from(
        "# Managed by cgcloud-agent, which rewrites this file from the namespace's key pairs.\n\
         # Add keys by hand to ~/.ssh/authorized_keys instead; cgcloud never changes that file.\n",
    );
    for k in keys {
        out.push_str(&format!(
            "{} cgcloud:{}\n",
            k.line,
            comment_safe(&k.keypair)
        ));
    }
    out
}

/// A key pair name as a key comment: EC2 allows any ASCII in names, but a space, newline or
/// other control character would change the line's meaning, so anything outside
/// `A-Za-z0-9._@+=:,/-` becomes `_`.
fn comment_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._@+=:,/-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// What [`sync_account`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Unchanged,
    Written,
}

/// Makes the account's managed file hold exactly `content`, owned by the account with mode
/// 0600, creating `~/.ssh` (0700, owned by the account) if it is missing. Nothing is written
/// when the file is already right.
///
/// Refuses a `~/.ssh` that is a symbolic link or belongs to someone other than the account or
/// root: the agent runs as root, and must not be steered into writing elsewhere.
pub fn sync_account(account: &Account, content: &str) -> anyhow::Result<Change> {
    let dir = account.ssh_dir();
    match fs::symlink_metadata(&dir) {
        Ok(m) => {
            if !m.is_dir() {
                bail!(
                    "`{}` is not a directory (a symbolic link?); not writing keys for `{}`",
                    dir.display(),
                    account.name
                );
            }
            if m.uid() != account.uid && m.uid() != 0 {
                bail!(
                    "`{}` belongs to uid {}, not to `{}` (uid {}); not writing keys there",
                    dir.display(),
                    m.uid(),
                    account.name,
                    account.uid
                );
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir(&dir)
                .with_context(|| format!("failed to create `{}`", dir.display()))?;
            fs::set_permissions(&dir, fs::Permissions::from_mode(SSH_DIR_MODE))
                .with_context(|| format!("failed to set the mode of `{}`", dir.display()))?;
            std::os::unix::fs::lchown(&dir, Some(account.uid), Some(account.gid)).with_context(
                || format!("failed to hand `{}` to `{}`", dir.display(), account.name),
            )?;
        }
        Err(e) => return Err(e).with_context(|| format!("failed to inspect `{}`", dir.display())),
    }
    let file = account.managed_file();
    if is_already(&file, content, account.uid, account.gid) {
        return Ok(Change::Unchanged);
    }
    write_atomic(
        &file,
        content.as_bytes(),
        MANAGED_FILE_MODE,
        Some((account.uid, account.gid)),
    )
    .with_context(|| format!("failed to write `{}`", file.display()))?;
    Ok(Change::Written)
}

fn is_already(file: &Path, content: &str, uid: u32, gid: u32) -> bool {
    let Ok(m) = fs::symlink_metadata(file) else {
        return false;
    };
    m.is_file()
        && m.uid() == uid
        && m.gid() == gid
        && m.mode() & 0o7777 == MANAGED_FILE_MODE
        && fs::read(file).is_ok_and(|old| old == content.as_bytes())
}

pub use cgcloud_common::fsutil::write_atomic;
#[cfg(test)]
use cgcloud_common::fsutil::write_atomic_with;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_pair_names_cannot_add_lines_or_options() {
        let k = ManagedKey {
            keypair: "eve\nssh-ed25519 AAAAforged attacker\tcommand=\"sh\"".into(),
            line: "ssh-ed25519 AAAAreal".into(),
        };
        let text = render(&[k]);
        let keys: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            keys,
            ["ssh-ed25519 AAAAreal cgcloud:eve_ssh-ed25519_AAAAforged_attacker_command=_sh_"]
        );
    }

    fn me(home: &Path) -> Account {
        let m = fs::metadata(home).unwrap();
        Account {
            name: "box-admin".into(),
            home: home.to_path_buf(),
            uid: m.uid(),
            gid: m.gid(),
        }
    }

    fn key(name: &str, line: &str) -> ManagedKey {
        ManagedKey {
            keypair: name.into(),
            line: line.into(),
        }
    }

    #[test]
    fn a_crash_before_the_rename_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MANAGED_FILE);
        write_atomic(&path, b"old\n", 0o600, None).unwrap();
        let mut temp_seen = None;
        let err = write_atomic_with(&path, b"new\n", 0o600, None, |temp| {
            // The new content is complete and on disk, but not in place yet.
            assert_eq!(fs::read(temp).unwrap(), b"new\n");
            temp_seen = Some(temp.to_path_buf());
            Err(io::Error::other("power cut"))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "power cut");
        assert_eq!(fs::read(&path).unwrap(), b"old\n");
        assert!(
            !temp_seen.unwrap().exists(),
            "an error cleans up its temporary file"
        );

        // A real crash cannot clean up: its temporary file is removed by the next write.
        let stale = dir.path().join(format!(".{MANAGED_FILE}.tmp.999.0"));
        fs::write(&stale, b"half").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"old\n");
        write_atomic(&path, b"new\n", 0o600, None).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new\n");
        assert!(!stale.exists());
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(MANAGED_FILE)]);
    }

    #[test]
    fn mode_is_exact_despite_umask_and_old_file_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"x").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        write_atomic(&path, b"y", 0o600, None).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, 0o600);
    }

    #[test]
    fn sync_creates_ssh_dir_and_leaves_hand_added_keys_alone() {
        let home = tempfile::tempdir().unwrap();
        let acct = me(home.path());
        let content = render(&[
            key("alice", "ssh-ed25519 AAAA1"),
            key("bob", "ssh-ed25519 AAAA2"),
        ]);
        assert_eq!(sync_account(&acct, &content).unwrap(), Change::Written);
        let ssh = home.path().join(".ssh");
        assert_eq!(fs::metadata(&ssh).unwrap().mode() & 0o7777, 0o700);
        let written = fs::read_to_string(ssh.join(MANAGED_FILE)).unwrap();
        assert!(
            written.ends_with("ssh-ed25519 AAAA1 cgcloud:alice\nssh-ed25519 AAAA2 cgcloud:bob\n"),
            "{written}"
        );
        assert!(written.starts_with("# Managed by cgcloud-agent"));

        fs::write(ssh.join("authorized_keys"), "ssh-ed25519 HAND mine\n").unwrap();
        assert_eq!(sync_account(&acct, &content).unwrap(), Change::Unchanged);
        let fewer = render(&[key("bob", "ssh-ed25519 AAAA2")]);
        assert_eq!(sync_account(&acct, &fewer).unwrap(), Change::Written);
        assert_eq!(fs::read_to_string(ssh.join(MANAGED_FILE)).unwrap(), fewer);
        assert_eq!(
            fs::read_to_string(ssh.join("authorized_keys")).unwrap(),
            "ssh-ed25519 HAND mine\n"
        );
        // A wrong mode is repaired even when the content is right.
        fs::set_permissions(ssh.join(MANAGED_FILE), fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(sync_account(&acct, &fewer).unwrap(), Change::Written);
        assert_eq!(
            fs::metadata(ssh.join(MANAGED_FILE)).unwrap().mode() & 0o7777,
            0o600
        );
    }

    #[test]
    fn a_symlinked_ssh_dir_is_refused() {
        let home = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), home.path().join(".ssh")).unwrap();
        let e = sync_account(&me(home.path()), "x\n").unwrap_err();
        assert!(e.to_string().contains("is not a directory"), "{e}");
        assert_eq!(fs::read_dir(elsewhere.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_symlink_in_place_of_the_file_is_replaced_not_followed() {
        let home = tempfile::tempdir().unwrap();
        let acct = me(home.path());
        fs::create_dir(home.path().join(".ssh")).unwrap();
        let victim = home.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        std::os::unix::fs::symlink(&victim, acct.managed_file()).unwrap();
        assert_eq!(sync_account(&acct, "k\n").unwrap(), Change::Written);
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert!(fs::symlink_metadata(acct.managed_file()).unwrap().is_file());
    }

    #[test]
    fn files_are_handed_to_the_account() {
        // Handing files to another user needs root; as another user this test has nothing to check.
        if fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(1) != 0 {
            eprintln!("not root; skipping");
            return;
        }
        let home = tempfile::tempdir().unwrap();
        let acct = Account {
            name: "someone".into(),
            home: home.path().into(),
            uid: 4242,
            gid: 4343,
        };
        assert_eq!(sync_account(&acct, "k\n").unwrap(), Change::Written);
        for p in [acct.ssh_dir(), acct.managed_file()] {
            let m = fs::metadata(&p).unwrap();
            assert_eq!((m.uid(), m.gid()), (4242, 4343), "{}", p.display());
        }
        // A `~/.ssh` that belongs to a third user is refused.
        std::os::unix::fs::lchown(acct.ssh_dir(), Some(5555), None).unwrap();
        let e = sync_account(&acct, "k2\n").unwrap_err();
        assert!(e.to_string().contains("belongs to uid 5555"), "{e}");
        assert_eq!(fs::read_to_string(acct.managed_file()).unwrap(), "k\n");
    }

    #[test]
    fn passwd_lines() {
        assert_eq!(
            parse_passwd_line("admin:x:1000:1001:Admin,,,:/home/admin:/bin/bash"),
            Some(Account {
                name: "admin".into(),
                uid: 1000,
                gid: 1001,
                home: "/home/admin".into()
            })
        );
        assert_eq!(parse_passwd_line("broken:x:1000"), None);
        assert_eq!(parse_passwd_line("nohome:x:1:1::relative:/bin/sh"), None);
    }

    #[tokio::test]
    async fn system_lookup_finds_root_and_not_nonsense() {
        let root = AccountSource::System.lookup("root").await.unwrap().unwrap();
        assert_eq!(root.uid, 0);
        assert!(AccountSource::System
            .lookup("no-such-user-cgcloud")
            .await
            .unwrap()
            .is_none());
    }
}
