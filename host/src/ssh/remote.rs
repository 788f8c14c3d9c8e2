//! A box reached over one multiplexed OpenSSH master connection, and the [`HostServices`]
//! role hooks call through it (`run`, `sudo`, `put_file`, `get_file`, `log`, options,
//! cancellation).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use cgcloud_plugin_api::{CmdOutput, Level};
use cgcloud_plugin_host::HostServices;
use openssh::{KnownHosts, Session, SessionBuilder, Stdio};
use tokio::io::AsyncWriteExt;

use super::executor::{Executor, StepError};
use super::{BoxConfig, SshSettings, Target, CONNECT_TIMEOUT};
use crate::errors::Result;
use crate::shell::Shell;
use crate::{bail_user, user_error};

/// Set once the user interrupted cgcloud: hooks stop at their next call to the box.
static CANCELLED: AtomicBool = AtomicBool::new(false);

/// Marks the run as interrupted.
pub fn cancel() {
    CANCELLED.store(true, Ordering::SeqCst);
}

/// An open SSH connection to a box.
pub struct Remote {
    pub target: Target,
    session: Arc<Session>,
    /// The step runner on the box ([`super::executor`]), started at the first command.
    runner: tokio::sync::Mutex<Runner>,
    shell: Shell,
}

/// The state of a connection's step runner.
enum Runner {
    /// Not started yet.
    Untried,
    Ready(Executor),
    /// It could not start on this box: every command gets a channel of its own.
    Off,
}

/// How long the step runner may take to start before cgcloud does without it.
const RUNNER_START: Duration = Duration::from_secs(20);

/// Quotes a string for a POSIX shell: the plugin API's `shell_quote`, which roles use too.
pub use cgcloud_plugin_api::features::shell_quote as quote;

impl Remote {
    /// Connects, retrying while the box is not answering yet, for at most `timeout`. A host key
    /// that does not match the pinned one fails at once: that is never transient.
    pub async fn connect(
        settings: &SshSettings,
        target: &Target,
        timeout: Duration,
        shell: &Shell,
    ) -> Result<Remote> {
        let config = BoxConfig::write(settings, target)?;
        let control_dir = settings.data_dir.join("ssh").join("control");
        std::fs::create_dir_all(&control_dir)
            .with_context(|| format!("failed to create `{}`", control_dir.display()))?;
        let mut builder = SessionBuilder::default();
        builder
            .config_file(&config.path)
            .known_hosts_check(KnownHosts::Strict)
            .user_known_hosts_file(settings.known_hosts())
            .user(target.user.clone())
            .connect_timeout(CONNECT_TIMEOUT)
            .server_alive_interval(Duration::from_secs(15))
            .control_directory(&control_dir);
        if let Some(identity) = &settings.identity {
            builder.keyfile(identity);
        }
        let deadline = Instant::now() + timeout;
        let mut attempt = 0u32;
        let mut last_said = Instant::now();
        loop {
            attempt += 1;
            match builder.connect_mux(&target.address).await {
                Ok(session) => {
                    return Ok(Remote {
                        target: target.clone(),
                        session: Arc::new(session),
                        runner: tokio::sync::Mutex::new(Runner::Untried),
                        shell: shell.clone(),
                    })
                }
                Err(e) => {
                    let text = error_text(&e);
                    if text.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
                        || text.contains("Host key verification failed")
                    {
                        bail_user!(
                            "the SSH host key of `{}` ({}) does not match the key pinned for it in `{}`; refusing to \
                             connect. Someone may be intercepting the connection, or the pin or the box's published key \
                             (its `cgcloud:host-key` tag) was changed: compare the pin with that tag and with the keys \
                             the box printed to its console (`aws ec2 get-console-output`) before trusting anything: {text}",
                            target.instance_id,
                            target.address,
                            settings.known_hosts().display()
                        );
                    }
                    if Instant::now() >= deadline {
                        bail_user!(
                            "could not log in to `{}` as `{}` at {} within {}s: {text}",
                            target.instance_id,
                            target.user,
                            target.address,
                            timeout.as_secs()
                        );
                    }
                    shell.debug(format!(
                        "ssh attempt {attempt} to {} failed: {text}",
                        target.address
                    ));
                    // Say why it is still waiting: on a terminal in the box's status line, else
                    // in a log line every half minute.
                    let why: String = text.chars().take(120).collect();
                    if shell.is_live() {
                        shell.status(
                            &target.instance_id,
                            &format!("waiting for SSH at {} ({why})", target.address),
                        );
                    } else if last_said.elapsed() >= Duration::from_secs(30) {
                        shell.info(format!(
                            "{}: still waiting for SSH at {}: {why}",
                            target.instance_id, target.address
                        ));
                        last_said = Instant::now();
                    }
                    tokio::time::sleep(Duration::from_millis(500.min(100 * u64::from(attempt))))
                        .await;
                }
            }
        }
    }

    /// Runs a command through the remote shell.
    pub async fn run(&self, command: &str) -> Result<CmdOutput> {
        self.run_with_stdin(command, None).await
    }

    /// Runs a command with `input` on its standard input, for at most the `step` wait.
    pub async fn run_with_stdin(&self, command: &str, input: Option<&[u8]>) -> Result<CmdOutput> {
        self.run_bounded(command, input, None).await
    }

    /// Runs a command that waits for something with a wait of its own (`limit`), which then
    /// bounds it in place of the `step` wait.
    pub async fn run_waiting(&self, command: &str, limit: Duration) -> Result<CmdOutput> {
        self.run_bounded(command, None, Some(limit)).await
    }

    async fn run_bounded(
        &self,
        command: &str,
        input: Option<&[u8]>,
        limit: Option<Duration>,
    ) -> Result<CmdOutput> {
        let run = async {
            match self.through_runner(command, input).await {
                Ok(Some(out)) => Ok(out),
                Ok(None) => self.on_a_channel(command, input).await,
                Err(why) => Err(why),
            }
        };
        // Every command on a box is bounded (`CGCLOUD_TIMEOUT_STEP`): a set-up step that hangs
        // ends the run with this error, and `create` terminates the box unless -N.
        let step = limit.is_none();
        let limit = limit.unwrap_or(crate::config::timeouts().step);
        let (status, stdout, stderr) = tokio::time::timeout(limit, run)
            .await
            .map_err(|_| {
                user_error!(
                    "`{command}` on `{}` did not finish within {}s{}",
                    self.target.instance_id,
                    limit.as_secs(),
                    if step { " (CGCLOUD_TIMEOUT_STEP)" } else { "" }
                )
            })?
            .map_err(|why| {
                user_error!(
                    "failed to run `{command}` on `{}`: {why}",
                    self.target.instance_id,
                )
            })?;
        Ok(CmdOutput::new(
            status,
            &String::from_utf8_lossy(&stdout),
            &String::from_utf8_lossy(&stderr),
        ))
    }

    /// Runs a command through the connection's step runner, starting it first if this is the
    /// first command. `Ok(None)`: the runner cannot take it (it could not start on this box, it
    /// is busy with another thread's command, or nothing of the command ran), so it gets a
    /// channel of its own. A command whose answer was lost is an error: it may have run.
    async fn through_runner(
        &self,
        command: &str,
        input: Option<&[u8]>,
    ) -> std::result::Result<Option<RunOutput>, String> {
        let Ok(mut runner) = self.runner.try_lock() else {
            return Ok(None);
        };
        if matches!(&*runner, Runner::Ready(e) if !e.usable()) {
            // A step was abandoned half-way (its wait ran out): start afresh.
            *runner = Runner::Untried;
        }
        if matches!(&*runner, Runner::Untried) {
            *runner = match self.start_runner().await {
                Ok(exec) => {
                    self.shell.debug(format!(
                        "{}: running commands through one shell on the box",
                        self.target.instance_id
                    ));
                    Runner::Ready(exec)
                }
                Err(why) => {
                    self.shell.debug(format!(
                        "{}: running each command on a channel of its own: the step runner did not start ({why})",
                        self.target.instance_id
                    ));
                    Runner::Off
                }
            };
        }
        let Runner::Ready(exec) = &mut *runner else {
            return Ok(None);
        };
        match exec.step(command, input).await {
            Ok(out) => Ok(Some((out.status, out.stdout, out.stderr))),
            Err(StepError::NotRun(why)) => {
                self.shell.debug(format!(
                    "{}: running `{command}` on a channel of its own: {why}",
                    self.target.instance_id
                ));
                Ok(None)
            }
            Err(StepError::Lost(why)) => {
                *runner = Runner::Untried;
                Err(why)
            }
        }
    }

    /// Starts `sh` on a channel of its own and hands it the runner's prologue.
    async fn start_runner(&self) -> std::result::Result<Executor, String> {
        let mut cmd = Session::to_raw_command(self.session.clone(), "exec sh");
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = tokio::time::timeout(RUNNER_START, cmd.spawn())
            .await
            .map_err(|_| "no channel within the wait".to_string())?
            .map_err(|e| error_text(&e))?;
        let (Some(input), Some(output)) = (child.stdin().take(), child.stdout().take()) else {
            return Err("its channel has no standard input or output".to_string());
        };
        Executor::start(input, output, Box::new(child), RUNNER_START).await
    }

    /// Runs a command on a channel of its own: the login shell runs the command line as ssh
    /// sends it (no extra `sh -c` layer).
    async fn on_a_channel(
        &self,
        command: &str,
        input: Option<&[u8]>,
    ) -> std::result::Result<RunOutput, String> {
        let mut cmd = self.session.raw_command(command);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let run = async {
            let mut child = cmd.spawn().await?;
            if let Some(data) = input {
                if let Some(mut stdin) = child.stdin().take() {
                    stdin
                        .write_all(data)
                        .await
                        .map_err(openssh::Error::ChildIo)?;
                    stdin.shutdown().await.map_err(openssh::Error::ChildIo)?;
                }
            }
            child.wait_with_output().await
        };
        match run.await {
            Ok(out) => Ok((out.status.code().unwrap_or(-1), out.stdout, out.stderr)),
            // The library turns the shell's 127 into an error; a step sees the status, as the
            // step runner reports it.
            Err(openssh::Error::Remote(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok((
                127,
                Vec::new(),
                format!(
                    "{}: command not found",
                    command.split_whitespace().next().unwrap_or_default()
                )
                .into_bytes(),
            )),
            Err(e) => Err(error_text(&e)),
        }
    }

    /// Runs the shell script `script` as root (`sudo -n sh -c`), with `input` on its standard
    /// input. A non-zero exit is an error saying what failed (`what`), on which box, with the
    /// status and stderr ([`failure`]).
    pub async fn run_as_root(
        &self,
        script: &str,
        input: Option<&[u8]>,
        what: &str,
    ) -> Result<CmdOutput> {
        // A script is long: errors name what it does (`what`), not its text.
        let out = self
            .run_with_stdin(&format!("sudo -n sh -c {}", quote(script)), input)
            .await
            .map_err(|e| {
                let why = crate::errors::one_line(&e);
                let why = why.rsplit_once("`: ").map_or(why.as_str(), |(_, w)| w);
                user_error!("{what} on `{}` failed: {why}", self.target.instance_id)
            })?;
        if out.status != 0 {
            bail_user!("{}", failure(&self.target.instance_id, what, &out));
        }
        Ok(out)
    }

    /// Ends the step runner (its shell removes its temporary folder) and closes the master
    /// connection.
    pub async fn close(self) {
        if let Runner::Ready(exec) = self.runner.into_inner() {
            if let Some(process) = exec.finish().await {
                if let Ok(child) = process.downcast::<openssh::Child<Arc<Session>>>() {
                    let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
                }
            }
        }
        if let Ok(session) = Arc::try_unwrap(self.session) {
            let _ = session.close().await;
        }
    }
}

/// A command's exit status, stdout and stderr.
type RunOutput = (i32, Vec<u8>, Vec<u8>);

/// A failed remote command: its command, the box, the exit code, and its stderr between rulers.
pub fn failure(instance_id: &str, command: &str, out: &CmdOutput) -> String {
    let ruler = "-".repeat(20);
    format!(
        "`{command}` failed on `{instance_id}` with exit code {}; its stderr: {ruler} {} {ruler}",
        out.status,
        out.stderr.trim()
    )
}

fn error_text(e: &openssh::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts
        .join(": ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Role hooks' view of a box: a [`Remote`] driven from a blocking thread.
pub struct BoxServices {
    /// The box's instance ID.
    pub instance_id: String,
    /// The SSH connection; `None` before SSH is tried (`on_instance_running`), when hooks may
    /// log and read options but not reach the box.
    pub remote: Option<Arc<Remote>>,
    pub handle: tokio::runtime::Handle,
    pub options: BTreeMap<String, String>,
    pub shell: Shell,
    pub cancelled: Arc<AtomicBool>,
    /// Who is speaking in log lines: `<role> on <instance-id>`.
    pub label: String,
    /// The hooks running now, innermost last (for the box's live status line).
    pub hooks: std::sync::Mutex<Vec<String>>,
}

/// A step as the status line shows it: its first line, white space folded, at most 72 characters.
fn step_text(step: &str) -> String {
    let line = step
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default();
    let folded = line.split_whitespace().collect::<Vec<_>>().join(" ");
    let more = step.trim().lines().count() > 1;
    if folded.chars().count() > 72 {
        format!("{}…", folded.chars().take(71).collect::<String>())
    } else if more {
        format!("{folded} …")
    } else {
        folded
    }
}

impl BoxServices {
    /// Shows the current hook and `step` in the box's live status line (terminals only).
    fn show_step(&self, step: &str) {
        if !self.shell.is_live() {
            return;
        }
        let hook = self.current_hook();
        let text = if hook.is_empty() {
            step_text(step)
        } else {
            format!("{hook}: {}", step_text(step))
        };
        self.shell.status(&self.instance_id, &text);
    }

    /// The innermost hook running now (empty between hooks).
    fn current_hook(&self) -> String {
        self.hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last()
            .cloned()
            .unwrap_or_default()
    }

    /// The connection to the box, or the error that there is none yet.
    fn remote(&self, what: &str) -> std::result::Result<&Remote, String> {
        let hook = self.current_hook();
        self.remote.as_deref().ok_or_else(|| {
            format!(
                "`{}` cannot {what}: `{hook}` runs before SSH is tried, so it can log and read options \
                 but not reach the box (use `on_instance_ready` for that)",
                self.instance_id
            )
        })
    }

    fn block<T>(
        &self,
        f: impl std::future::Future<Output = Result<T>>,
    ) -> std::result::Result<T, String> {
        if self.is_cancelled() {
            return Err("cancelled".to_string());
        }
        self.handle
            .block_on(f)
            .map_err(|e| crate::errors::one_line(&e))
    }
}

impl HostServices for BoxServices {
    fn run(&self, command: &str) -> std::result::Result<CmdOutput, String> {
        self.shell.debug(format!("{}: $ {command}", self.label));
        let remote = self.remote(&format!("run `{command}`"))?;
        self.show_step(command);
        self.block(remote.run(command))
    }

    fn sudo(&self, command: &str, user: Option<&str>) -> std::result::Result<CmdOutput, String> {
        let as_user = user
            .map(|u| format!("-u {} ", quote(u)))
            .unwrap_or_default();
        let full = format!("sudo -n {as_user}-- sh -c {}", quote(command));
        self.shell.debug(format!("{}: # {command}", self.label));
        let remote = self.remote(&format!("run `{command}`"))?;
        self.show_step(command);
        self.block(remote.run(&full))
    }

    fn put_file(
        &self,
        path: &str,
        data: &[u8],
        mode: u32,
        sudo: bool,
    ) -> std::result::Result<(), String> {
        // A fresh temporary file in the target's folder (never a predictable name: this may run
        // as root in a folder others can write), renamed over the target once complete.
        let dir = match path.rfind('/') {
            Some(0) => "/".to_string(),
            Some(n) => path[..n].to_string(),
            None => ".".to_string(),
        };
        let script = format!(
            "set -e; umask 077; t=$(mktemp -- {template}); trap 'rm -f -- \"$t\"' EXIT; cat > \"$t\"; \
             chmod {mode:o} -- \"$t\"; mv -f -- \"$t\" {p}; trap - EXIT",
            template = quote(&format!("{}/.cgcloud-put.XXXXXXXX", dir.trim_end_matches('/'))),
            p = quote(path)
        );
        let command = if sudo {
            format!("sudo -n -- sh -c {}", quote(&script))
        } else {
            format!("sh -c {}", quote(&script))
        };
        self.shell.debug(format!(
            "{}: put {path} ({} bytes, mode {mode:o})",
            self.label,
            data.len()
        ));
        let remote = self.remote(&format!("write `{path}`"))?;
        self.show_step(&format!("write {path}"));
        let out = self.block(remote.run_with_stdin(&command, Some(data)))?;
        if out.status != 0 {
            return Err(failure(&self.instance_id, &format!("write {path}"), &out));
        }
        Ok(())
    }

    fn get_file(&self, path: &str, sudo: bool) -> std::result::Result<Vec<u8>, String> {
        // NOTE: base64 keeps binary files intact through the text-only command output.
        let cat = format!("base64 -w0 {}", quote(path));
        let command = if sudo {
            format!("sudo -n -- {cat}")
        } else {
            cat
        };
        let remote = self.remote(&format!("read `{path}`"))?;
        let out = self.block(remote.run(&command))?;
        if out.status != 0 {
            return Err(failure(&self.instance_id, &format!("read {path}"), &out));
        }
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(out.stdout.trim())
            .map_err(|e| format!("the contents of `{path}` came back garbled: {e}"))
    }

    fn log(&self, level: Level, message: &str) {
        let line = format!("{}: {message}", self.label);
        match level {
            Level::Error | Level::Warn => self.shell.warn(line),
            Level::Debug => self.shell.debug(line),
            _ => self.shell.info(line),
        }
    }

    fn option(&self, name: &str) -> Option<String> {
        self.options.get(name).cloned()
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst) || CANCELLED.load(Ordering::SeqCst)
    }

    fn hook_started(&self, hook: &str) {
        self.hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(hook.to_string());
    }

    fn hook_finished(&self, hook: &str) {
        let mut hooks = self.hooks.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = hooks.iter().rposition(|h| h == hook) {
            hooks.truncate(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_show_as_one_short_line() {
        assert_eq!(
            step_text("apt-get install -y   nginx"),
            "apt-get install -y nginx"
        );
        assert_eq!(step_text("\n  set -e\n  make\n"), "set -e …");
        let long = step_text(&"x".repeat(200));
        assert_eq!(long.chars().count(), 72);
        assert!(long.ends_with('…'));
    }
}
