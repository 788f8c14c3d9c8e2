//! The error type of role hooks. It crosses the ABI as JSON, so it is plain data.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The result type of every hook.
pub type Result<T, E = RoleError> = std::result::Result<T, E>;

/// What kind of failure a [`RoleError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The hook failed (its own error, or a remote command that failed).
    Failed,
    /// The hook panicked; the panic was caught in the plugin.
    Panicked,
    /// The host asked the hook to stop (timeout or interrupt).
    Cancelled,
    /// A host service failed (e.g. the SSH connection broke) or does not exist in this host.
    Host,
    /// A kind this build does not know; treated as `Failed`.
    Unknown,
}

crate::proto::lenient_enum!(ErrorKind {
    Failed = "failed",
    Panicked = "panicked",
    Cancelled = "cancelled",
    Host = "host",
});

/// The error of a role hook: a kind and a message (lower-case, names in backticks). Made with
/// [`RoleError::failed`] and the other constructors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RoleError {
    pub kind: ErrorKind,
    pub message: String,
}

impl RoleError {
    /// A hook failure with the given message.
    pub fn failed(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Failed,
            message: message.into(),
        }
    }
    /// A failure of the host's services.
    pub fn host(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Host,
            message: message.into(),
        }
    }
    /// The host cancelled the hook.
    pub fn cancelled() -> Self {
        Self {
            kind: ErrorKind::Cancelled,
            message: "cancelled by cgcloud".into(),
        }
    }
    /// A panic caught at the plugin boundary.
    pub fn panicked(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Panicked,
            message: message.into(),
        }
    }
    /// A remote command that exited non-zero: the command, its status and its stderr framed
    /// between rulers.
    pub fn command_failed(command: &str, status: i32, stderr: &str) -> Self {
        let ruler = "-".repeat(40);
        let stderr = stderr.trim_end();
        Self::failed(format!(
            "command `{command}` exited with status {status}\n{ruler} stderr\n{stderr}\n{ruler}"
        ))
    }
    /// Adds context in front of the message: `context: message`.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl fmt::Display for RoleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RoleError {}

impl From<serde_json::Error> for RoleError {
    fn from(e: serde_json::Error) -> Self {
        Self::failed(format!("malformed message at the plugin boundary: {e}"))
    }
}
