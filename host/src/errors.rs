//! The result type, user errors and exit codes.
//!
//! Every failure reaches the user as one line, `ERROR: <message>`, on stderr, and the process
//! exits with [`EXIT_USER_ERROR`]. Usage errors (clap) exit with [`EXIT_USAGE`]. `cgcloud ssh`
//! passes the remote command's status through instead.

/// Exit status for every error a command reports, as in the original cgcloud.
pub const EXIT_USER_ERROR: i32 = 255;
/// Exit status for command-line usage errors.
pub const EXIT_USAGE: i32 = 2;

pub type Result<T, E = anyhow::Error> = std::result::Result<T, E>;

/// Makes an error whose message is shown to the user as it is.
#[macro_export]
macro_rules! user_error {
    ($($arg:tt)*) => { ::anyhow::anyhow!($($arg)*) };
}

/// Returns early with a user error.
#[macro_export]
macro_rules! bail_user {
    ($($arg:tt)*) => { return Err($crate::user_error!($($arg)*)) };
}

/// The one line printed for an error: its context chain joined by `: `, on one line.
pub fn one_line(err: &anyhow::Error) -> String {
    let text = format!("{err:#}");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[test]
    fn one_line_joins_the_context_chain_and_folds_newlines() {
        let e: anyhow::Result<()> = Err(anyhow::anyhow!("boom\nsecond line"));
        let e = e.context("failed to do `x`").unwrap_err();
        assert_eq!(one_line(&e), "failed to do `x`: boom second line");
    }
}
