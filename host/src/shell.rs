//! Every line cgcloud shows the user goes through [`Shell`].
//!
//! Data (listings, JSON) goes to stdout; progress, hints and warnings go to stderr, so that
//! `cgcloud list ROLE --json | jq` stays clean. With `--quiet`, only warnings and errors reach
//! stderr.
//!
//! On a terminal, long operations show a live status line per box (its phase and elapsed time)
//! under the log lines ([`Shell::status`]); elsewhere the same phases appear as plain log lines.
// Every line cgcloud shows goes through here: the one module that prints.
#![allow(clippy::print_stdout, clippy::print_stderr)]

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
    /// The first failed write to stdout (a full disk, a closed descriptor): the run then
    /// fails, so that nobody takes missing output for a complete one.
    write_failure: Arc<Mutex<Option<String>>>,
}

impl Shell {
    pub fn new(quiet: bool, debug: bool) -> Shell {
        let live = !quiet
            && std::io::stderr().is_terminal()
            && std::env::var_os("TERM").is_some_and(|t| t != "dumb");
        Shell {
            quiet,
            debug,
            live,
            statuses: Statuses::default(),
            write_failure: Arc::default(),
        }
    }

    /// Why writing to stdout failed, if it did; flushes what is still buffered first.
    pub fn write_failure(&self) -> Option<String> {
        if let Err(e) = std::io::stdout().lock().flush() {
            self.note_write_failure(&e);
        }
        self.write_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn note_write_failure(&self, e: &std::io::Error) {
        // NOTE: a pipe its reader closed (`cgcloud list … | head`) is the reader's choice,
        // not a failure.
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return;
        }
        let mut first = self.write_failure.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() {
            *first = Some(format!("failed to write to standard output: {e}"));
        }
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
            self.statuses
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|(l, _, _)| l != label);
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
            let _ = writeln!(
                err,
                "\x1b[2m{label}: {phase} ({:.0}s)\x1b[0m",
                since.elapsed().as_secs_f64()
            );
        }
        if drawn > 0 {
            let _ = write!(err, "\x1b[{drawn}A");
        }
        let _ = err.flush();
    }

    fn err_line(&self, line: String) {
        // Lines may be several on purpose (a console's tail); nothing else moves the cursor.
        let line = line
            .split('\n')
            .map(printable)
            .collect::<Vec<_>>()
            .join("\n");
        self.err_out(line);
    }

    /// A line a command cgcloud ran (e.g. ssh on a cluster node) wrote to its stderr, as it
    /// came: the user's own command may colour its output.
    pub fn err_out(&self, line: impl AsRef<str>) {
        let line = line.as_ref();
        if self.live
            && !self
                .statuses
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty()
        {
            self.redraw(Some(line));
        } else {
            eprintln!("{line}");
        }
    }

    /// A line of data on stdout.
    pub fn out(&self, line: impl AsRef<str>) {
        let mut out = std::io::stdout().lock();
        if let Err(e) = writeln!(out, "{}", line.as_ref()) {
            drop(out);
            self.note_write_failure(&e);
        }
    }

    /// A JSON document on stdout, pretty-printed.
    pub fn json(&self, value: &serde_json::Value) {
        self.out(
            serde_json::to_string_pretty(value)
                .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}")),
        );
    }

    /// Rows of data, the header first: on a terminal in aligned columns, elsewhere (a pipe, a
    /// file) as the original's tab-separated lines, which scripts read.
    /// A table too wide for the terminal is shown as one block of `column  value` lines per row.
    /// Rows of JSON objects: as a JSON array with `json`, else as a table of `columns` (each
    /// cell the value under the column's name; strings bare, nothing for null).
    pub fn rows(&self, columns: &[&str], rows: Vec<serde_json::Value>, json: bool) {
        if json {
            self.json(&serde_json::Value::Array(rows));
            return;
        }
        let text: Vec<Vec<String>> = rows
            .iter()
            .map(|row| {
                columns
                    .iter()
                    .map(|c| match &row[*c] {
                        serde_json::Value::Null => String::new(),
                        serde_json::Value::String(s) => s.clone(),
                        v => v.to_string(),
                    })
                    .collect()
            })
            .collect();
        self.table(columns, &text);
    }

    pub fn table(&self, header: &[&str], rows: &[Vec<String>]) {
        let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
        // Cells come from EC2 (tags anyone with tagging rights wrote) and from plugins.
        let rows: Vec<Vec<String>> = rows
            .iter()
            .map(|r| r.iter().map(|c| printable(c)).collect())
            .collect();
        let rows = &rows[..];
        let lines = match terminal_width() {
            Some(width) => {
                let lines = aligned(&header, rows);
                if lines.iter().all(|l| l.chars().count() <= width) {
                    lines
                } else {
                    records(&header, rows)
                }
            }
            None => tab_separated(&header, rows),
        };
        for line in lines {
            self.out(line);
        }
    }

    /// `(setting, value, source)` rows: on a terminal `setting  value  (source)`, the settings
    /// aligned; elsewhere tab-separated lines under a `setting value from` header.
    pub fn settings(&self, rows: &[(String, String, String)]) {
        if terminal_width().is_some() {
            let w = rows
                .iter()
                .map(|(s, _, _)| s.chars().count())
                .max()
                .unwrap_or(0);
            for (s, v, f) in rows {
                self.out(format!(
                    "{s}{}  {v}  ({f})",
                    " ".repeat(w - s.chars().count())
                ));
            }
        } else {
            let header = [
                "setting".to_string(),
                "value".to_string(),
                "from".to_string(),
            ];
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|(s, v, f)| vec![s.clone(), v.clone(), f.clone()])
                .collect();
            for line in tab_separated(&header, &table) {
                self.out(line);
            }
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
        self.statuses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.err_line(format!("ERROR: {}", line.as_ref()));
        if self.live {
            self.redraw(None);
        }
    }
}

/// `text` with its control characters (other than tab) written as escapes (`\x1b`, `\u{9b}`):
/// names and values from users, EC2 tags and plugins can never move the cursor, clear the
/// screen or hide text on the terminal that shows them.
pub fn printable(text: &str) -> String {
    if !text.chars().any(|c| c != '\t' && c.is_control()) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\t' => out.push(c),
            c if (c as u32) < 0x80 && c.is_control() => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// The width of the terminal stdout is, or `None` when stdout is no terminal.
fn terminal_width() -> Option<usize> {
    let out = std::io::stdout();
    if !out.is_terminal() {
        return None;
    }
    Some(terminal_size::terminal_size_of(&out).map_or(80, |(w, _)| usize::from(w.0)))
}

/// One block per row: `column  value` lines, the columns aligned, a blank line between rows.
fn records(header: &[String], rows: &[Vec<String>]) -> Vec<String> {
    let w = header.iter().map(|h| h.chars().count()).max().unwrap_or(0);
    let mut out = Vec::new();
    for (n, row) in rows.iter().enumerate() {
        if n > 0 {
            out.push(String::new());
        }
        for (h, cell) in header.iter().zip(row) {
            out.push(format!("{h}{}  {cell}", " ".repeat(w - h.chars().count())));
        }
    }
    out
}

fn tab_separated(header: &[String], rows: &[Vec<String>]) -> Vec<String> {
    std::iter::once(header)
        .chain(rows.iter().map(Vec::as_slice))
        .map(|r| r.join("\t"))
        .collect()
}

/// Columns padded to their widest cell, two spaces apart, the last one unpadded.
fn aligned(header: &[String], rows: &[Vec<String>]) -> Vec<String> {
    let all: Vec<&[String]> = std::iter::once(header)
        .chain(rows.iter().map(Vec::as_slice))
        .collect();
    let columns = all.iter().map(|r| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            all.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    all.iter()
        .map(|row| {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                line.push_str(cell);
                if c + 1 < row.len() {
                    line.push_str(&" ".repeat(widths[c] - cell.chars().count() + 2));
                }
            }
            line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(rows: &[&[&str]]) -> Vec<Vec<String>> {
        rows.iter()
            .map(|r| r.iter().map(|c| c.to_string()).collect())
            .collect()
    }

    #[test]
    fn tables_align_on_a_terminal_and_stay_tab_separated_elsewhere() {
        let header = vec!["name".to_string(), "id".to_string(), "state".to_string()];
        let rows = cells(&[
            &["a-long-role", "i-1", "running"],
            &["b", "i-0123456789", "stopped"],
        ]);
        assert_eq!(
            aligned(&header, &rows),
            [
                "name         id            state",
                "a-long-role  i-1           running",
                "b            i-0123456789  stopped"
            ]
        );
        assert_eq!(
            tab_separated(&header, &rows),
            [
                "name\tid\tstate",
                "a-long-role\ti-1\trunning",
                "b\ti-0123456789\tstopped"
            ]
        );
        assert_eq!(
            records(&header, &rows),
            [
                "name   a-long-role",
                "id     i-1",
                "state  running",
                "",
                "name   b",
                "id     i-0123456789",
                "state  stopped"
            ]
        );
    }

    #[test]
    fn control_characters_become_escapes_and_everything_else_stays() {
        assert_eq!(printable("plain\ttext ünïcode"), "plain\ttext ünïcode");
        assert_eq!(printable("a\u{1b}[2Jb\u{7}"), "a\\x1b[2Jb\\x07");
        assert_eq!(printable("line\nnext\r"), "line\\x0anext\\x0d");
        assert_eq!(printable("\u{7f}\u{9b}"), "\\x7f\\u{9b}");
    }
}
