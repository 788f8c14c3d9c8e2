//! Reusable pieces of role behaviour ("features") that roles compose instead of inheriting:
//! the package managers the built-in roles use, for any role to call from its hooks, e.g.
//! `fn install_packages(&self, cx: &Cx, p: Vec<String>) -> Result<()> { apt::install(cx, &p) }`
//! or, for a role that works on several distributions,
//! `PackageManager::Dnf5.install(cx, &p)`.
//!
//! | module | job |
//! |---|---|
//! | [`package_manager`] | apt and dnf behind one type: bounded lock waits, retries on mirror hiccups only, substitutions |
//! | [`apt`], [`dnf`] | the two package managers' commands |

pub mod apt;
pub mod dnf;
pub mod package_manager;

pub use package_manager::PackageManager;

/// Quotes `word` for a POSIX shell: as is when it is made only of characters no shell treats
/// specially, else in single quotes.
pub fn shell_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.+=:/,@%".contains(c));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_quotes_only_when_needed() {
        assert_eq!(shell_quote("htop"), "htop");
        assert_eq!(shell_quote("python3.12=3.12*"), "'python3.12=3.12*'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn shell_quote_survives_the_shell() {
        for s in [
            "plain",
            "with space",
            "it's",
            "$(rm -rf /)",
            "",
            "a\"b",
            "new\nline",
            "*",
            "~x",
        ] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", shell_quote(s)))
                .output()
                .expect("sh runs");
            assert_eq!(String::from_utf8_lossy(&out.stdout), s);
        }
    }
}
