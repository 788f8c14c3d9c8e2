//! Keypair globs (`-k`, `CGCLOUD_KEYPAIRS`, the agent's `--keypairs`) and their expansion
//! (the original's `expand_keypair_globs`, `context.py:534`).
//!
//! Each glob is a literal keypair name or shell pattern, `@user` (the keypair named after an IAM
//! user) or `@@group` (the keypairs named after the members of an IAM group). Talking to IAM and
//! EC2 is the caller's job; [`expand`] only combines the answers.

use std::collections::{BTreeMap, BTreeSet, HashSet};

/// One parsed keypair glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeypairGlob {
    /// A literal keypair name or a shell glob, `__me__` already substituted.
    Pattern(String),
    /// `@user`: the keypair named like this IAM user.
    User(String),
    /// `@@group`: the keypairs named like the members of this IAM group.
    Group(String),
}

/// Why a keypair glob was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
#[non_exhaustive]
pub enum GlobError {
    #[error(
        "empty keypair name: give a keypair name, a glob such as `alice*`, `@user` or `@@group`"
    )]
    Empty,
    #[error("`{0}` names no IAM user or group: write `@user` or `@@group`")]
    NoPrincipal(String),
    #[error("`{0}` mixes `@` with glob characters: `@user` and `@@group` take a literal IAM name")]
    MixedGlob(String),
    #[error("`{0}` is not a valid IAM name: IAM user and group names consist of letters, digits and `+=,.@_-`")]
    BadIamName(String),
    #[error("keypair glob `{}` contains white space or a control character", .0.escape_debug())]
    WhiteSpace(String),
    #[error("keypair glob `{glob}` has a bad character range `{range}`: the first character must not sort after the second")]
    BadRange { glob: String, range: String },
}

fn is_iam_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)
}

/// Parse one glob. `@` and `@@` take a literal IAM user or group name (letters, digits,
/// `+=,.@_-`; no glob characters); anything else is a keypair name or shell glob. White space,
/// control characters and character ranges that run backwards (`[z-a]`) are refused.
pub fn parse_glob(s: &str) -> Result<KeypairGlob, GlobError> {
    if s.is_empty() {
        return Err(GlobError::Empty);
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(GlobError::WhiteSpace(s.to_owned()));
    }
    let (principal, make): (&str, fn(String) -> KeypairGlob) =
        if let Some(group) = s.strip_prefix("@@") {
            (group, KeypairGlob::Group)
        } else if let Some(user) = s.strip_prefix('@') {
            (user, KeypairGlob::User)
        } else {
            compile(s).map_err(|range| GlobError::BadRange {
                glob: s.to_owned(),
                range,
            })?;
            return Ok(KeypairGlob::Pattern(s.to_owned()));
        };
    if principal.is_empty() {
        return Err(GlobError::NoPrincipal(s.to_owned()));
    }
    if principal.contains(['*', '?', '[', ']']) {
        return Err(GlobError::MixedGlob(s.to_owned()));
    }
    if !principal.chars().all(is_iam_name_char) {
        return Err(GlobError::BadIamName(s.to_owned()));
    }
    Ok(make(principal.to_owned()))
}

/// Expand globs into keypair names, in glob order: each keypair appears once, at its first
/// match; within one pattern, names come in the order of `existing`.
///
/// * `existing` is every keypair name in the region;
/// * `@user` yields the user's name if the caller confirmed the user exists (it is in `users`)
///   and a keypair of that name exists;
/// * `@@group` yields the members of exactly that group (`members[group]`, which the caller
///   filled by paging through IAM `GetGroup`), each if a keypair of that name exists.
///
/// NOTE: the original always asked IAM for group `developers`, whatever group was given.
pub fn expand<'a>(
    globs: &[KeypairGlob],
    existing: &'a [String],
    users: &BTreeSet<String>,
    members: &BTreeMap<String, Vec<String>>,
) -> Vec<String> {
    let mut result = Vec::new();
    let mut taken: HashSet<&str> = HashSet::new();
    let mut take = |name: &'a String| {
        if taken.insert(name.as_str()) {
            result.push(name.clone());
        }
    };
    for glob in globs {
        match glob {
            KeypairGlob::Pattern(pattern) => {
                // A pattern that does not compile matches nothing, as `glob_matches` says.
                if let Ok(tokens) = compile(pattern) {
                    existing
                        .iter()
                        .filter(|name| matches_tokens(&tokens, name))
                        .for_each(&mut take);
                }
            }
            KeypairGlob::User(user) => {
                if users.contains(user) {
                    existing.iter().filter(|e| *e == user).for_each(&mut take);
                }
            }
            KeypairGlob::Group(group) => {
                for member in members.get(group).into_iter().flatten() {
                    existing.iter().filter(|e| *e == member).for_each(&mut take);
                }
            }
        }
    }
    result
}

/// Shell-glob matching as the original's `bd2k.util.fnmatch`, against the whole name and
/// case-sensitive:
///
/// * `*` matches any run of characters except `/`; `**` matches any run including `/`;
/// * `?` matches any one character;
/// * `[seq]` matches one character in `seq`, `[!seq]` one not in it; ranges like `a-z` work, a
///   `]` right after `[` or `[!` is literal, `-` first or last is literal, and a `[` without a
///   closing `]` is literal;
/// * there is no escape character.
///
/// A pattern with a backwards range (`[z-a]`) matches nothing; [`parse_glob`] refuses it.
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    compile(pattern).is_ok_and(|tokens| matches_tokens(&tokens, name))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    /// `?`
    AnyChar,
    /// `*`
    AnyButSlash,
    /// `**`
    AnyRun,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// Translate a pattern the way `bd2k.util.fnmatch.translate` does, then parse each character
/// class the way Python's `sre_parse` reads the translated class. The error is the first
/// backwards range.
fn compile(pattern: &str) -> Result<Vec<Token>, String> {
    let pat: Vec<char> = pattern.chars().collect();
    let n = pat.len();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < n {
        let c = pat[i];
        i += 1;
        match c {
            '*' => {
                if i < n && pat[i] == '*' {
                    i += 1;
                    tokens.push(Token::AnyRun);
                } else {
                    tokens.push(Token::AnyButSlash);
                }
            }
            '?' => tokens.push(Token::AnyChar),
            '[' => {
                let mut j = i;
                if j < n && pat[j] == '!' {
                    j += 1;
                }
                if j < n && pat[j] == ']' {
                    j += 1;
                }
                while j < n && pat[j] != ']' {
                    j += 1;
                }
                if j >= n {
                    tokens.push(Token::Literal('['));
                } else {
                    tokens.push(class(&pat[i..j])?);
                    i = j + 1;
                }
            }
            _ => tokens.push(Token::Literal(c)),
        }
    }
    Ok(tokens)
}

/// One class body (between `[` and `]`, never empty).
fn class(body: &[char]) -> Result<Token, String> {
    let (negated, items) = match body.split_first() {
        Some(('!', rest)) => (true, rest),
        _ => (false, body),
    };
    let mut ranges = Vec::new();
    let mut k = 0;
    while k < items.len() {
        let lo = items[k];
        match (items.get(k + 1), items.get(k + 2)) {
            (Some('-'), Some(&hi)) => {
                if hi < lo {
                    return Err(format!("{lo}-{hi}"));
                }
                ranges.push((lo, hi));
                k += 3;
            }
            _ => {
                ranges.push((lo, lo));
                k += 1;
            }
        }
    }
    Ok(Token::Class { negated, ranges })
}

fn token_matches_char(token: &Token, c: char) -> bool {
    match token {
        Token::Literal(l) => *l == c,
        Token::AnyChar => true,
        Token::Class { negated, ranges } => {
            ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
        }
        Token::AnyButSlash | Token::AnyRun => false,
    }
}

/// Whole-name match by dynamic programming over (token, character) positions: linear in the
/// product of the lengths, no exponential backtracking.
fn matches_tokens(tokens: &[Token], name: &str) -> bool {
    let chars: Vec<char> = name.chars().collect();
    let width = chars.len() + 1;
    // reach[j]: the tokens seen so far can consume exactly the first j characters.
    let mut reach = vec![false; width];
    reach[0] = true;
    for token in tokens {
        let mut next = vec![false; width];
        match token {
            Token::AnyRun | Token::AnyButSlash => {
                for j in 0..width {
                    next[j] = reach[j]
                        || (j > 0
                            && next[j - 1]
                            && (*token == Token::AnyRun || chars[j - 1] != '/'));
                }
            }
            _ => {
                for j in 1..width {
                    next[j] = reach[j - 1] && token_matches_char(token, chars[j - 1]);
                }
            }
        }
        reach = next;
    }
    reach[chars.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compile_follows_the_translation() {
        assert_eq!(
            compile("a[").unwrap(),
            vec![Token::Literal('a'), Token::Literal('[')]
        );
        assert_eq!(
            compile("[]]").unwrap(),
            vec![Token::Class {
                negated: false,
                ranges: vec![(']', ']')]
            }]
        );
        assert_eq!(
            compile("[!a-c-]").unwrap(),
            vec![Token::Class {
                negated: true,
                ranges: vec![('a', 'c'), ('-', '-')]
            }]
        );
        assert_eq!(compile("[z-a]").unwrap_err(), "z-a");
        assert_eq!(
            compile("***").unwrap(),
            vec![Token::AnyRun, Token::AnyButSlash]
        );
    }
}
