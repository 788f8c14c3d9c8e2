//! The agent's log: one line per event on stderr. Under systemd (`JOURNAL_STREAM` set) each
//! line starts with its syslog priority (`<3>`, `<4>`, `<6>`), which journald reads.
// The agent's one way to say anything.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fmt::Display;
use std::io::Write as _;
use std::sync::OnceLock;

fn journald() -> bool {
    static J: OnceLock<bool> = OnceLock::new();
    *J.get_or_init(|| std::env::var_os("JOURNAL_STREAM").is_some())
}

fn emit(priority: u8, label: &str, msg: &dyn Display) {
    // Untrusted text (message bodies, AWS errors) never spans lines.
    let text = msg.to_string().replace(['\n', '\r'], " ");
    let line = if journald() {
        format!("<{priority}>{text}\n")
    } else {
        format!("{label}: {text}\n")
    };
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

pub fn error(msg: impl Display) {
    emit(3, "ERROR", &msg);
}

pub fn warn(msg: impl Display) {
    emit(4, "WARNING", &msg);
}

pub fn info(msg: impl Display) {
    emit(6, "INFO", &msg);
}
