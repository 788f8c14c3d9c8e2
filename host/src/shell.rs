//! Every line cgcloud shows the user goes through [`Shell`].
//!
//! Data (listings, JSON) goes to stdout; progress, hints and warnings go to stderr, so that
//! `cgcloud list ROLE --json | jq` stays clean. With `--quiet`, only warnings and errors reach
//! stderr.

use std::io::Write;

#[derive(Debug, Clone, Default)]
pub struct Shell {
    quiet: bool,
    debug: bool,
}

impl Shell {
    pub fn new(quiet: bool, debug: bool) -> Shell {
        Shell { quiet, debug }
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
            eprintln!("INFO: {}", line.as_ref());
        }
    }

    /// Something the user should look at; always shown.
    pub fn warn(&self, line: impl AsRef<str>) {
        eprintln!("WARNING: {}", line.as_ref());
    }

    /// Details for `--debug`.
    pub fn debug(&self, line: impl AsRef<str>) {
        if self.debug {
            eprintln!("DEBUG: {}", line.as_ref());
        }
    }

    /// The error line, always shown.
    pub fn error(&self, line: impl AsRef<str>) {
        eprintln!("ERROR: {}", line.as_ref());
    }
}
