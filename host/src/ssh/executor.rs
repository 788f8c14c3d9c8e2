//! The step runner: one long-lived shell on the box that runs set-up steps in turn, so that a
//! step costs one round trip plus the command itself instead of a new SSH session and login
//! shell per step.
//!
//! cgcloud starts `sh` on one SSH channel and writes shell text to its standard input: first a
//! prologue ([`PROLOGUE`]: a private temporary folder, and a function that runs one step), then
//! one call of that function per step. Each step runs as before: in the account's login shell
//! (`$SHELL -c <command>`), from the home folder, with the session's environment, its standard
//! input at end of file (or the step's input), so a step's `cd`, `export` or `exit` never reaches
//! the next one. Its stdout and stderr go to files of their own; the runner answers with one
//! header line (`@cgcloud <tag>-<n> <status> <stdout bytes> <stderr bytes>`) followed by exactly
//! those bytes, so output of any size and any content (binary included) comes back intact and
//! separate. A step's input travels base64-encoded in a here-document and is decoded into a
//! file on the box. A step killed by a signal reports the shell's status for it (128 + the
//! signal's number).
//!
//! Anything unexpected (the channel closing, a header that does not match, a step that did not
//! finish in time) leaves the runner unusable: the caller drops it and runs the next step on a
//! channel of its own, or starts a new runner.

use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use cgcloud_plugin_api::features::shell_quote as quote;

/// The runner's set-up, written once after `sh` starts. `cgcloud_step N COMMAND INPUT` runs one
/// step; its output files are named after the step, so that a background process a step left
/// holding them can never mix its writes into a later step's output, and are removed after use
/// unless empty (the common case costs no process beyond the step's own shell).
pub const PROLOGUE: &str = r#"cgcloud_d=$(mktemp -d "${TMPDIR:-/tmp}/cgcloud-steps.XXXXXXXX") || exit 1
trap 'rm -rf "$cgcloud_d"' EXIT
trap 'exit 129' HUP
trap 'exit 143' TERM
trap 'exit 141' PIPE
cd || exit 1
cgcloud_step() {
  cgcloud_o=$cgcloud_d/$1.o
  cgcloud_e=$cgcloud_d/$1.e
  if ! { : >"$cgcloud_o" && : >"$cgcloud_e"; } 2>/dev/null; then
    printf '@cgcloud-unwritable %s\n' "$1"
    return
  fi
  "${SHELL:-/bin/sh}" -c "$2" <"$3" >"$cgcloud_o" 2>"$cgcloud_e"
  cgcloud_s=$?
  if [ -s "$cgcloud_o" ] || [ -s "$cgcloud_e" ]; then
    set -- "$1" $(cd "$cgcloud_d" && wc -c "$1.o" "$1.e")
    printf '@cgcloud %s %s %s %s\n' "$1" "$cgcloud_s" "$2" "$4"
    [ "$2" = 0 ] || head -c "$2" "$cgcloud_o"
    [ "$4" = 0 ] || head -c "$4" "$cgcloud_e"
    rm -f "$cgcloud_o" "$cgcloud_e"
  else
    printf '@cgcloud %s %s 0 0\n' "$1" "$cgcloud_s"
  fi
}
"#;

/// What one step returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOutput {
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Why a step did not come back through the runner.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The runner cannot take this step, and nothing of it ran: run it another way.
    #[error("{0}")]
    NotRun(String),
    /// The step may have run, but its answer was lost: the runner is gone.
    #[error("{0}")]
    Lost(String),
}

type Input = Pin<Box<dyn AsyncWrite + Send>>;
type Output = BufReader<Pin<Box<dyn AsyncRead + Send>>>;

/// A started runner: the shell's standard input and output, and whatever keeps it running.
pub struct Executor {
    input: Input,
    output: Output,
    /// Marks this runner's answers (random per runner).
    tag: String,
    steps: u64,
    /// Set while a step is under way: a step abandoned half-way (its future dropped on a
    /// timeout) leaves it set, and the runner is not used again.
    busy: bool,
    /// The process or channel behind the streams, kept alive as long as the runner.
    process: Option<Box<dyn std::any::Any + Send>>,
}

/// The longest header line (or line before the ready line) read from the runner.
const LINE_LIMIT: u64 = 4096;
/// How much a login shell may print before the runner's ready line (profile noise).
const NOISE_LIMIT: usize = 64 * 1024;

impl Executor {
    /// Sends the prologue to a freshly started `sh` and waits, at most `wait`, for its answer.
    pub async fn start(
        input: impl AsyncWrite + Send + 'static,
        output: impl AsyncRead + Send + 'static,
        process: Box<dyn std::any::Any + Send>,
        wait: Duration,
    ) -> Result<Executor, String> {
        let mut exec = Executor {
            input: Box::pin(input),
            output: BufReader::with_capacity(64 * 1024, Box::pin(output)),
            tag: new_tag(),
            steps: 0,
            busy: true,
            process: Some(process),
        };
        let ready = format!("@cgcloud-ready {}", exec.tag);
        let hello = format!("{PROLOGUE}printf '%s\\n' {}\n", quote(&ready));
        let handshake = async {
            exec.input
                .write_all(hello.as_bytes())
                .await
                .map_err(|e| format!("could not write to it: {e}"))?;
            exec.input
                .flush()
                .await
                .map_err(|e| format!("could not write to it: {e}"))?;
            let mut seen = 0usize;
            loop {
                let line = exec
                    .read_line()
                    .await
                    .map_err(|e| format!("it did not answer: {e}"))?;
                if line == ready.as_bytes() {
                    return Ok(());
                }
                seen += line.len() + 1;
                if seen > NOISE_LIMIT {
                    return Err("it printed too much before its ready line".to_string());
                }
            }
        };
        tokio::time::timeout(wait, handshake)
            .await
            .map_err(|_| format!("it did not answer within {}s", wait.as_secs()))??;
        exec.busy = false;
        Ok(exec)
    }

    /// Whether the runner can take another step (no step was abandoned half-way).
    pub fn usable(&self) -> bool {
        !self.busy
    }

    /// Runs one step. Commands holding a NUL byte (which no shell can read) are refused with
    /// [`StepError::NotRun`], as is any step when the box's temporary folder cannot be written.
    pub async fn step(
        &mut self,
        command: &str,
        input: Option<&[u8]>,
    ) -> Result<StepOutput, StepError> {
        if self.busy {
            return Err(StepError::NotRun(
                "the step runner was left in the middle of a step".to_string(),
            ));
        }
        if command.contains('\0') {
            return Err(StepError::NotRun(
                "the command holds a NUL byte".to_string(),
            ));
        }
        self.steps += 1;
        let id = format!("{}-{}", self.tag, self.steps);
        let text = request(&id, command, input);
        self.busy = true;
        let lost = |what: &str, e: std::io::Error| {
            let why = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                "the connection to the box was lost".to_string()
            } else {
                e.to_string()
            };
            StepError::Lost(format!("{what}: {why}"))
        };
        self.input
            .write_all(text.as_bytes())
            .await
            .map_err(|e| lost("could not send the step", e))?;
        self.input
            .flush()
            .await
            .map_err(|e| lost("could not send the step", e))?;
        let line = self
            .read_line()
            .await
            .map_err(|e| lost("no answer from the step runner", e))?;
        let line = String::from_utf8_lossy(&line).into_owned();
        if line == format!("@cgcloud-unwritable {id}") {
            // Nothing ran; the runner is still in step and can take the next one.
            self.busy = false;
            return Err(StepError::NotRun(
                "the box's temporary folder cannot be written".to_string(),
            ));
        }
        let (status, out_len, err_len) = parse_header(&line, &id).ok_or_else(|| {
            StepError::Lost(format!(
                "the step runner answered `{}` instead of step {id}'s result",
                line.escape_debug()
            ))
        })?;
        let mut stdout = vec![0; out_len];
        self.output
            .read_exact(&mut stdout)
            .await
            .map_err(|e| lost("the step's output was cut short", e))?;
        let mut stderr = vec![0; err_len];
        self.output
            .read_exact(&mut stderr)
            .await
            .map_err(|e| lost("the step's output was cut short", e))?;
        self.busy = false;
        Ok(StepOutput {
            status,
            stdout,
            stderr,
        })
    }

    /// Ends the runner: its standard input closes, so the shell exits and removes its folder.
    /// Returns the process behind it, to wait for if the caller wants to.
    pub async fn finish(mut self) -> Option<Box<dyn std::any::Any + Send>> {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.input.shutdown()).await;
        self.process.take()
    }

    /// One line (without its newline) of at most [`LINE_LIMIT`] bytes.
    async fn read_line(&mut self) -> std::io::Result<Vec<u8>> {
        let mut line = Vec::new();
        (&mut self.output)
            .take(LINE_LIMIT)
            .read_until(b'\n', &mut line)
            .await?;
        if line.last() != Some(&b'\n') {
            return Err(if line.len() as u64 >= LINE_LIMIT {
                std::io::Error::other("a line longer than 4096 bytes")
            } else {
                std::io::ErrorKind::UnexpectedEof.into()
            });
        }
        line.pop();
        Ok(line)
    }
}

/// The shell text for one step: its input decoded into a file first, if it has one.
fn request(id: &str, command: &str, input: Option<&[u8]>) -> String {
    match input {
        None => format!("cgcloud_step {id} {} /dev/null\n", quote(command)),
        Some(data) => {
            use base64::Engine as _;
            let encoded = base64::engine::general_purpose::STANDARD.encode(data);
            let mut text = String::with_capacity(encoded.len() + encoded.len() / 76 + 256);
            let end = format!("@cgcloud-end-{id}");
            text.push_str(&format!("if base64 -d >\"$cgcloud_d/{id}.i\" <<'{end}'\n"));
            for chunk in encoded.as_bytes().chunks(76) {
                // Base64 is ASCII: every chunk is valid UTF-8.
                text.push_str(std::str::from_utf8(chunk).unwrap_or_default());
                text.push('\n');
            }
            text.push_str(&format!(
                "{end}\nthen cgcloud_step {id} {q} \"$cgcloud_d/{id}.i\"; rm -f \"$cgcloud_d/{id}.i\"\n\
                 else rm -f \"$cgcloud_d/{id}.i\"; printf '@cgcloud-unwritable %s\\n' {id}; fi\n",
                q = quote(command)
            ));
            text
        }
    }
}

/// `@cgcloud <id> <status> <stdout bytes> <stderr bytes>` for the step `id`.
fn parse_header(line: &str, id: &str) -> Option<(i32, usize, usize)> {
    let mut words = line.split(' ');
    if words.next()? != "@cgcloud" || words.next()? != id {
        return None;
    }
    let status = words.next()?.parse::<u8>().ok()?;
    let out_len = words.next()?.parse().ok()?;
    let err_len = words.next()?.parse().ok()?;
    if words.next().is_some() {
        return None;
    }
    Some((i32::from(status), out_len, err_len))
}

/// A random tag for one runner's answers.
fn new_tag() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

#[cfg(test)]
mod tests {
    //! The runner's semantics, with a local `sh` standing in for the box's: the same shell text
    //! and framing as over SSH, without a box.

    use super::*;
    use std::process::Stdio;

    async fn local() -> Executor {
        let mut child = tokio::process::Command::new("sh")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("sh starts");
        let input = child.stdin.take().unwrap();
        let output = child.stdout.take().unwrap();
        Executor::start(input, output, Box::new(child), Duration::from_secs(20))
            .await
            .expect("the runner starts")
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn status_and_both_streams_come_back_separately() {
        rt().block_on(async {
            let mut e = local().await;
            let out = e
                .step("echo out; echo err >&2; exit 3", None)
                .await
                .unwrap();
            assert_eq!(out.status, 3);
            assert_eq!(out.stdout, b"out\n");
            assert_eq!(out.stderr, b"err\n");
            let out = e.step("true", None).await.unwrap();
            assert_eq!((out.status, out.stdout.len(), out.stderr.len()), (0, 0, 0));
        });
    }

    #[test]
    fn megabytes_on_both_streams_and_binary_output_come_back_intact() {
        rt().block_on(async {
            let mut e = local().await;
            // 3 MiB of every byte value on stdout, 2 MiB on stderr, written interleaved.
            let cmd = "i=0; while [ $i -lt 48 ]; do \
                         head -c 65536 /dev/zero | tr '\\0' '\\377'; printf '\\0\\n\\r@cgcloud x'; \
                         head -c 43690 /dev/zero | tr '\\0' 'e' >&2; i=$((i+1)); done";
            let out = e.step(cmd, None).await.unwrap();
            assert_eq!(out.status, 0);
            assert_eq!(out.stdout.len(), 48 * (65536 + 13));
            assert_eq!(out.stderr.len(), 48 * 43690);
            assert!(out.stderr.iter().all(|&b| b == b'e'));
            assert_eq!(&out.stdout[65536..65549], b"\0\n\r@cgcloud x");
            assert_eq!(out.stdout[0], 0xff);
            // The runner is in step afterwards.
            let out = e.step("echo next", None).await.unwrap();
            assert_eq!(out.stdout, b"next\n");
        });
    }

    #[test]
    fn a_step_reads_end_of_file_or_its_input() {
        rt().block_on(async {
            let mut e = local().await;
            let out = e.step("cat; echo read-all", None).await.unwrap();
            assert_eq!(out.stdout, b"read-all\n");
            let data: Vec<u8> = (0..=255u8).cycle().take(200_000).collect();
            let out = e.step("cat", Some(&data)).await.unwrap();
            assert_eq!(out.status, 0);
            assert_eq!(out.stdout, data);
            let out = e.step("wc -c", Some(b"")).await.unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
        });
    }

    #[test]
    fn exit_cd_and_export_stay_inside_their_step() {
        rt().block_on(async {
            let mut e = local().await;
            let home = e.step("pwd", None).await.unwrap().stdout;
            let out = e
                .step("cd /; export CGCLOUD_PROBE=1; exit 0", None)
                .await
                .unwrap();
            assert_eq!(out.status, 0);
            let out = e
                .step("pwd; echo \"[${CGCLOUD_PROBE:-}]\"", None)
                .await
                .unwrap();
            assert_eq!(out.stdout, [home, b"[]\n".to_vec()].concat());
            let out = e.step("exec true", None).await.unwrap();
            assert_eq!(out.status, 0);
            let out = e.step("echo still-there", None).await.unwrap();
            assert_eq!(out.stdout, b"still-there\n");
        });
    }

    #[test]
    fn a_step_killed_by_a_signal_reports_it_and_the_next_one_runs() {
        rt().block_on(async {
            let mut e = local().await;
            let out = e.step("echo before; kill -KILL $$", None).await.unwrap();
            assert_eq!(out.status, 128 + 9);
            assert_eq!(out.stdout, b"before\n");
            let out = e.step("echo after", None).await.unwrap();
            assert_eq!(out.stdout, b"after\n");
        });
    }

    #[test]
    fn a_background_process_holding_the_output_never_mixes_into_later_steps() {
        rt().block_on(async {
            let mut e = local().await;
            let out = e
                .step("(sleep 0.3; echo late; echo late >&2) & echo now", None)
                .await
                .unwrap();
            assert_eq!(out.stdout, b"now\n");
            let out = e.step("sleep 0.6; echo mine", None).await.unwrap();
            assert_eq!(out.stdout, b"mine\n");
            assert!(out.stderr.is_empty());
        });
    }

    #[test]
    fn a_step_abandoned_on_its_timeout_leaves_the_runner_unusable() {
        rt().block_on(async {
            let mut e = local().await;
            let hung =
                tokio::time::timeout(Duration::from_millis(300), e.step("sleep 30", None)).await;
            assert!(hung.is_err(), "the step cannot finish in time");
            assert!(!e.usable());
            assert!(matches!(
                e.step("true", None).await,
                Err(StepError::NotRun(_))
            ));
        });
    }

    #[test]
    fn a_runner_whose_shell_dies_reports_the_step_as_lost() {
        rt().block_on(async {
            let mut e = local().await;
            let err = e.step("kill -KILL $PPID; sleep 1", None).await.unwrap_err();
            assert!(matches!(err, StepError::Lost(_)), "{err}");
            assert!(
                err.to_string().contains("connection to the box was lost"),
                "{err}"
            );
        });
    }

    #[test]
    fn something_that_is_no_shell_never_starts_a_runner() {
        rt().block_on(async {
            for program in ["cat", "true"] {
                let mut child = tokio::process::Command::new(program)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .kill_on_drop(true)
                    .spawn()
                    .unwrap();
                let input = child.stdin.take().unwrap();
                let output = child.stdout.take().unwrap();
                let started =
                    Executor::start(input, output, Box::new(child), Duration::from_secs(2)).await;
                assert!(started.is_err(), "{program}");
            }
        });
    }

    #[test]
    fn headers_are_parsed_strictly() {
        assert_eq!(parse_header("@cgcloud a-1 0 5 6", "a-1"), Some((0, 5, 6)));
        assert_eq!(
            parse_header("@cgcloud a-1 255 0 0", "a-1"),
            Some((255, 0, 0))
        );
        for bad in [
            "@cgcloud a-2 0 5 6",
            "@cgcloud a-1 256 0 0",
            "@cgcloud a-1 0 5",
            "@cgcloud a-1 0 5 6 7",
            "@cgcloud a-1 0 -5 6",
            "cgcloud a-1 0 5 6",
            "",
        ] {
            assert_eq!(parse_header(bad, "a-1"), None, "{bad}");
        }
    }
}
