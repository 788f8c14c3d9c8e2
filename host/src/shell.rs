//! Every line cgcloud shows the user goes through [`Shell`].
//!
//! Data (listings, JSON) goes to stdout; progress, hints and warnings go to stderr, so that
//! `cgcloud list ROLE --json | jq` stays clean. With `--quiet`, only warnings and errors reach
//! stderr.
//!
//! On a terminal, long operations show a live status line per box (its phase and elapsed time)
//! under the log lines ([`Shell::status`]); elsewhere the same phases appear as plain log lines.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The live status lines: one per box, `(label, phase, since)`.
type Statuses = Arc<Mutex<Vec<(String, String, Instant)>>>;

#[derive(Debug, Clone, Default)]
pub struct Shell {
    quiet: bool,
    debug: bool,
    live: bool,
    statuses: Statuses,
}

impl Shell {
    pub fn new(quiet: bool, debug: bool) -> Shell {
        let live = !quiet && std::io::stderr().is_terminal() && std::env::var_os("TERM").is_some_and(|t| t != "dumb");
        Shell { quiet, debug, live, statuses: Statuses::default() }
    }

    /// Sets the phase of a box's status line (a plain log line when stderr is no terminal).
    pub fn status(&self, label: &str, phase: &str) {
        if !self.live {
            self.info(format!("{label}: {phase}"));
            return;
        }
        {
            let mut st = self.statuses.lock().unwrap_or_else(|e| e.into_inner());
            match st.iter_mut().find(|(l, _, _)| l == label) {
                Some(entry) => {
                    entry.1 = phase.to_string();
                    entry.2 = Instant::now();
                }
                None => st.push((label.to_string(), phase.to_string(), Instant::now())),
            }
        }
        self.redraw(None);
    }

    /// Removes a box's status line.
    pub fn status_done(&self, label: &str) {
        if self.live {
            self.statuses.lock().unwrap_or_else(|e| e.into_inner()).retain(|(l, _, _)| l != label);
            self.redraw(None);
        }
    }

    /// Whether live status lines are shown (then a ticker should call [`Shell::tick`]).
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// Redraws the status lines with fresh elapsed times.
    pub fn tick(&self) {
        if self.live {
            self.redraw(None);
        }
    }

    /// Clears the status lines, prints `line` (if any) above them, and draws them again.
    fn redraw(&self, line: Option<&str>) {
        let st = self.statuses.lock().unwrap_or_else(|e| e.into_inner());
        let mut err = std::io::stderr().lock();
        // The status lines are the last lines on the terminal: move up over them and clear.
        let drawn = st.len();
        let _ = write!(err, "\r\x1b[J");
        if let Some(l) = line {
            let _ = writeln!(err, "{l}");
        }
        for (label, phase, since) in st.iter() {
            let _ = writeln!(err, "\x1b[2m{label}: {phase} ({:.0}s)\x1b[0m", since.elapsed().as_secs_f64());
        }
        if drawn > 0 {
            let _ = write!(err, "\x1b[{drawn}A");
        }
        let _ = err.flush();
    }

    fn err_line(&self, line: String) {
        if self.live && !self.statuses.lock().unwrap_or_else(|e| e.into_inner()).is_empty() {
            self.redraw(Some(&line));
        } else {
            eprintln!("{line}");
        }
    }

    /// A line of data on stdout.
    pub fn out(&self, line: impl AsRef<str>) {
        let mut out = std::io::stdout().lock();
        // NOTE: a closed pipe (`cgcloud list … | head`) is not an error worth reporting.
        let _ = writeln!(out, "{}", line.as_ref());
    }

    /// A JSON document on stdout, pretty-printed.
    pub fn json(&self, value: &serde_json::Value) {
        self.out(serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}")));
    }

    /// Rows of data as tab-separated lines, the header first.
    pub fn table(&self, header: &[&str], rows: &[Vec<String>]) {
        self.out(header.join("\t"));
        for row in rows {
            self.out(row.join("\t"));
        }
    }

    /// Progress and hints on stderr, unless quiet.
    pub fn info(&self, line: impl AsRef<str>) {
        if !self.quiet {
            self.err_line(format!("INFO: {}", line.as_ref()));
        }
    }

    /// Something the user should look at; always shown.
    pub fn warn(&self, line: impl AsRef<str>) {
        self.err_line(format!("WARNING: {}", line.as_ref()));
    }

    /// Details for `--debug`.
    pub fn debug(&self, line: impl AsRef<str>) {
        if self.debug {
            self.err_line(format!("DEBUG: {}", line.as_ref()));
        }
    }

    /// The error line, always shown.
    pub fn error(&self, line: impl AsRef<str>) {
        // An error ends the run: the status lines go, the error stays.
        self.statuses.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.err_line(format!("ERROR: {}", line.as_ref()));
        if self.live {
            self.redraw(None);
        }
    }
}
