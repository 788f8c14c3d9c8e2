//! Namespaces, qualified names and their AWS spelling, bit for bit as the original
//! (`lib/src/cgcloud/lib/context.py`).
//!
//! * A **namespace** starts and ends with `/` and has zero or more components in between, e.g.
//!   `/`, `/hannes/`, `/test/abc123/`.
//! * A **component** starts with `[0-9a-z]` followed by any of `[0-9a-z._-]`. Upper case and a
//!   leading `_`, `.` or `-` are illegal.
//! * A **name** is either absolute (starts with `/`) or relative to a namespace; relative names
//!   may contain `/` and may end with `/`.
//! * The **AWS name** of a name is its absolute form without the leading `/`, with every `_`
//!   doubled and then every `/` turned into `_`. A single `_` therefore separates components and
//!   `__` stands for a literal underscore. `___` always decodes as `_/`, because no component may
//!   start with `_`.
//!
//! `__me__` is replaced before a namespace is parsed; see [`substitute_me`] and
//! [`me_from_caller_arn`].

use std::fmt;
use std::str::FromStr;

use crate::d32;

/// The rule every namespace follows, quoted in error messages.
const NAMESPACE_RULE: &str = "a namespace starts and ends with `/`, and each component starts \
    with a lower-case letter or digit followed by lower-case letters, digits, `.`, `_` or `-`";

/// The rule every name follows, quoted in error messages.
const NAME_RULE: &str = "each component of a name starts with a lower-case letter or digit \
    followed by lower-case letters, digits, `.`, `_` or `-`";

/// The placeholder for the current user.
pub const ME_PLACEHOLDER: &str = "__me__";

/// What exactly is wrong with a namespace or name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// The text is empty.
    Empty,
    /// The text has a character outside ASCII.
    NonAscii,
    /// The text has white space or a control character.
    WhiteSpace,
    /// `__me__` was not replaced before parsing.
    UnsubstitutedMe,
    /// The text has an upper-case letter.
    UpperCase,
    /// A namespace that does not start with `/`.
    NoLeadingSlash,
    /// A namespace that does not end with `/`.
    NoTrailingSlash,
    /// Two `/` in a row.
    EmptyComponent,
    /// A component that starts with something other than a lower-case letter or digit.
    BadStart { component: String },
    /// A character that is never allowed in a component.
    BadCharacter { character: char },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Empty => f.write_str("it is empty"),
            Problem::NonAscii => f.write_str("it contains a character outside ASCII"),
            Problem::WhiteSpace => f.write_str("it contains white space or a control character"),
            Problem::UnsubstitutedMe => f.write_str("`__me__` has not been replaced"),
            Problem::UpperCase => f.write_str("it contains upper case"),
            Problem::NoLeadingSlash => f.write_str("it does not start with `/`"),
            Problem::NoTrailingSlash => f.write_str("it does not end with `/`"),
            Problem::EmptyComponent => f.write_str("it contains `//`"),
            Problem::BadStart { component } => {
                write!(
                    f,
                    "component `{component}` does not start with a letter or digit"
                )
            }
            Problem::BadCharacter { character } => {
                write!(f, "character `{character}` is not allowed")
            }
        }
    }
}

/// A namespace, name or AWS name that breaks the grammar.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
#[non_exhaustive]
pub enum NameError {
    /// Not a valid namespace.
    #[error("invalid namespace `{}`: {problem}; {NAMESPACE_RULE}", shown(.namespace))]
    InvalidNamespace { namespace: String, problem: Problem },
    /// A name whose absolute form is not valid. `absolute` is that form (the original reports it
    /// as `Invalid path '<absolute>'`).
    #[error("invalid name `{}`{}: {problem}; {NAME_RULE}", shown(.name), absolute_note(.name, .absolute))]
    InvalidName {
        name: String,
        absolute: String,
        problem: Problem,
    },
    /// An AWS name that does not decode to a valid name.
    #[error("`{}` is not an AWS name made by cgcloud: it decodes to `{}` and {problem}", shown(.aws_name), shown(.decoded))]
    InvalidAwsName {
        aws_name: String,
        decoded: String,
        problem: Problem,
    },
}

/// Keeps every message on one line: control characters are shown escaped.
fn shown(s: &str) -> String {
    if s.chars().any(char::is_control) {
        s.escape_debug().to_string()
    } else {
        s.to_owned()
    }
}

fn absolute_note(name: &str, absolute: &str) -> String {
    if name == absolute {
        String::new()
    } else {
        format!(" (absolute `{}`)", shown(absolute))
    }
}

fn is_component_start(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn is_component_char(c: char) -> bool {
    is_component_start(c) || matches!(c, '.' | '_' | '-')
}

/// Problems that apply to the whole text, checked first so that the message names the most
/// helpful one.
fn check_characters(s: &str) -> Result<(), Problem> {
    if s.is_empty() {
        return Err(Problem::Empty);
    }
    if !s.is_ascii() {
        return Err(Problem::NonAscii);
    }
    if s.chars()
        .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
    {
        return Err(Problem::WhiteSpace);
    }
    if s.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(Problem::UpperCase);
    }
    Ok(())
}

/// Checks `/`-separated components, none of them empty.
fn check_components(inner: &str) -> Result<(), Problem> {
    for component in inner.split('/') {
        let mut chars = component.chars();
        match chars.next() {
            None => return Err(Problem::EmptyComponent),
            Some(c) if !is_component_start(c) => {
                if !is_component_char(c) {
                    return Err(Problem::BadCharacter { character: c });
                }
                return Err(Problem::BadStart {
                    component: component.to_owned(),
                });
            }
            Some(_) => {}
        }
        if let Some(c) = chars.find(|&c| !is_component_char(c)) {
            return Err(Problem::BadCharacter { character: c });
        }
    }
    Ok(())
}

/// The original's `namespace_re`: `^(/([0-9a-z][0-9a-z._-]*))*/$`.
///
/// NOTE: Python's `$` also matches before a trailing newline, so the original accepted
/// `"/foo/\n"`; this rejects it. It also rejects any `__me__` left over, which the grammar
/// alone would accept inside a component (`/x__me__/`): `__me__` is always replaced before a
/// namespace is parsed, so a leftover one is a mistake.
fn check_namespace(s: &str) -> Result<(), Problem> {
    if s.contains(ME_PLACEHOLDER) {
        return Err(Problem::UnsubstitutedMe);
    }
    check_characters(s)?;
    let Some(rest) = s.strip_prefix('/') else {
        return Err(Problem::NoLeadingSlash);
    };
    if rest.is_empty() {
        return Ok(());
    }
    let Some(inner) = rest.strip_suffix('/') else {
        return Err(Problem::NoTrailingSlash);
    };
    check_components(inner)
}

/// The original's `name_re` for an absolute name: `^(/([0-9a-z][0-9a-z._-]*))*/?$`.
fn check_absolute_name(s: &str) -> Result<(), Problem> {
    check_characters(s)?;
    let Some(rest) = s.strip_prefix('/') else {
        return Err(Problem::NoLeadingSlash);
    };
    if rest.is_empty() {
        return Ok(());
    }
    let inner = rest.strip_suffix('/').unwrap_or(rest);
    check_components(inner)
}

/// A valid namespace such as `/` or `/hannes/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace(String);

impl Namespace {
    /// Parse a namespace. `__me__` must already be replaced (see [`substitute_me`]); non-ASCII
    /// text, upper case, white space and anything else outside the grammar is rejected, never
    /// corrected.
    pub fn parse(s: &str) -> Result<Namespace, NameError> {
        check_namespace(s).map_err(|problem| NameError::InvalidNamespace {
            namespace: s.to_owned(),
            problem,
        })?;
        Ok(Namespace(s.to_owned()))
    }

    /// The root namespace `/`, which contains every name.
    pub fn root() -> Namespace {
        Namespace("/".to_owned())
    }

    /// The namespace as text, e.g. `/hannes/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for `/`.
    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The absolute form of `name`: kept if it starts with `/`, otherwise prefixed with this
    /// namespace. In `/foo/`, `bar1/bar2` becomes `/foo/bar1/bar2` and the empty name
    /// becomes `/foo/`.
    pub fn absolute_name(&self, name: &str) -> Result<String, NameError> {
        let absolute = if name.starts_with('/') {
            name.to_owned()
        } else {
            format!("{}{}", self.0, name)
        };
        match check_absolute_name(&absolute) {
            Ok(()) => Ok(absolute),
            Err(problem) => Err(NameError::InvalidName {
                name: name.to_owned(),
                absolute,
                problem,
            }),
        }
    }

    /// The AWS spelling of `name`: absolute form, leading `/` dropped, `_` → `__`, then
    /// `/` → `_`. In `/this_ns/`, `foo` becomes `this__ns_foo`.
    pub fn to_aws_name(&self, name: &str) -> Result<String, NameError> {
        let absolute = self.absolute_name(name)?;
        let without_root = &absolute[1..];
        Ok(without_root.replace('_', "__").replace('/', "_"))
    }

    /// The inverse of [`Namespace::to_aws_name`]: split on `__`, turn `_` into `/` in each piece,
    /// join the pieces with `_` and prefix `/`. The result is relative (this namespace stripped)
    /// if it lies in this namespace, absolute otherwise: in `/` the AWS name
    /// `hannes_spark-master` decodes to `hannes/spark-master`, in `/foo/` to
    /// `/hannes/spark-master`.
    ///
    /// NOTE: the original also decoded AWS names containing `/` (`a/` like `a_`), which
    /// `to_aws_name` never makes; they are refused here, so that every AWS name accepted is the
    /// one spelling of its name.
    pub fn from_aws_name(&self, aws_name: &str) -> Result<String, NameError> {
        let decoded = format!(
            "/{}",
            aws_name
                .split("__")
                .map(|piece| piece.replace('_', "/"))
                .collect::<Vec<_>>()
                .join("_")
        );
        let checked = if aws_name.contains('/') {
            Err(Problem::BadCharacter { character: '/' })
        } else {
            check_absolute_name(&decoded)
        };
        if let Err(problem) = checked {
            return Err(NameError::InvalidAwsName {
                aws_name: aws_name.to_owned(),
                decoded,
                problem,
            });
        }
        match decoded.strip_prefix(self.0.as_str()) {
            Some(relative) => Ok(relative.to_owned()),
            None => Ok(decoded),
        }
    }

    /// True if `name` is relative or starts with this namespace. Child namespaces are
    /// contained, and the root namespace contains every name.
    pub fn contains_name(&self, name: &str) -> bool {
        !name.starts_with('/') || name.starts_with(self.0.as_str())
    }

    /// Whether the name an AWS name decodes to lies in this namespace; an error if it does not
    /// decode to a valid name.
    ///
    /// NOTE: in the root namespace every decodable AWS name counts as contained, including
    /// resources cgcloud never made. Never use this alone to decide what to delete.
    pub fn contains_aws_name(&self, aws_name: &str) -> Result<bool, NameError> {
        Ok(self.contains_name(&self.from_aws_name(aws_name)?))
    }

    /// Like [`Namespace::contains_aws_name`], with `false` for AWS names that do not decode.
    pub fn try_contains_aws_name(&self, aws_name: &str) -> bool {
        self.contains_aws_name(aws_name).unwrap_or(false)
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Namespace {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Namespace::parse(s)
    }
}

impl AsRef<str> for Namespace {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl serde::Serialize for Namespace {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Namespace {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Namespace::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The part of a name after its last `/`; empty for names ending with `/`.
pub fn base_name(name: &str) -> &str {
    match name.rfind('/') {
        Some(i) => &name[i + 1..],
        None => name,
    }
}

/// Substitute every `__me__` in `s` with `me` lower-cased; with `drop_hostname`, `me` is cut at
/// the first `@` first (`alice@example.org` → `alice`).
///
/// Namespaces use `drop_hostname = true`; keypair names use `false` and keep the `@` part.
/// Strings without `__me__` come back unchanged.
pub fn substitute_me(s: &str, me: &str, drop_hostname: bool) -> String {
    if !s.contains(ME_PLACEHOLDER) {
        return s.to_owned();
    }
    let me = if drop_hostname {
        me.split('@').next().unwrap_or(me)
    } else {
        me
    };
    s.replace(ME_PLACEHOLDER, &me.to_lowercase())
}

/// "me" from an STS caller ARN (`GetCallerIdentity`), case kept (callers lower-case it through
/// [`substitute_me`]):
///
/// * IAM user `arn:aws:iam::123456789012:user/path/Alice` → `Alice` (the user name; the path is
///   dropped);
/// * assumed role `arn:aws:sts::123456789012:assumed-role/Role/alice@example.org` → the session
///   name `alice@example.org` (SSO sessions are named after the user);
/// * federated user `arn:aws:sts::123456789012:federated-user/bob` → `bob`;
/// * the account root, or anything else → `None`.
///
/// Every partition is accepted (`aws`, `aws-cn`, `aws-us-gov`, `aws-iso`, ...).
///
/// NOTE: the original used `IAM GetUser`, which only works for IAM users; assumed-role
/// credentials map to their session name here.
pub fn me_from_caller_arn(arn: &str) -> Option<String> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some(service), Some(_region), Some(account), Some(res)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    if !partition.starts_with("aws") || account.is_empty() {
        return None;
    }
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    match service {
        "iam" => {
            let path_and_name = res.strip_prefix("user/")?;
            non_empty(base_name(path_and_name))
        }
        "sts" => {
            if let Some(role_and_session) = res.strip_prefix("assumed-role/") {
                let (role, session) = role_and_session.split_once('/')?;
                if role.is_empty() {
                    return None;
                }
                non_empty(session)
            } else {
                non_empty(res.strip_prefix("federated-user/")?)
            }
        }
        _ => None,
    }
}

/// The namespace for one test run: `/test/<d32 of big-endian (unix_time, pid)>/`. The suffix has
/// 13 characters and test namespaces sort chronologically.
pub fn test_namespace(unix_time: u32, pid: u32) -> Namespace {
    let mut bytes = [0u8; 8];
    bytes[..4].copy_from_slice(&unix_time.to_be_bytes());
    bytes[4..].copy_from_slice(&pid.to_be_bytes());
    let ns = Namespace(format!("/test/{}/", d32::encode(&bytes)));
    debug_assert!(
        check_namespace(&ns.0).is_ok(),
        "d32 text is a valid component"
    );
    ns
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(s: &str) -> Namespace {
        Namespace::parse(s).expect("test namespace is valid")
    }

    #[test]
    fn error_messages_name_value_problem_and_rule() {
        let err = Namespace::parse("/Foo/").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid namespace `/Foo/`: it contains upper case; a namespace starts and ends \
             with `/`, and each component starts with a lower-case letter or digit followed by \
             lower-case letters, digits, `.`, `_` or `-`"
        );
        let err = ns("/foo/").absolute_name("_bar").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid name `_bar` (absolute `/foo/_bar`): component `_bar`"),
            "{err}"
        );
        let err = Namespace::parse("/__me__/").unwrap_err();
        assert!(
            err.to_string().contains("`__me__` has not been replaced"),
            "{err}"
        );
        let err = Namespace::parse("/a\nb/").unwrap_err();
        assert!(!err.to_string().contains('\n'), "{err}");
        let err = Namespace::root().from_aws_name("___").unwrap_err();
        assert!(err.to_string().contains("decodes to `/_/`"), "{err}");
    }

    #[test]
    fn problems_are_specific() {
        let problem = |s: &str| match Namespace::parse(s) {
            Err(NameError::InvalidNamespace { problem, .. }) => problem,
            other => panic!("expected an error for {s:?}, got {other:?}"),
        };
        assert_eq!(problem(""), Problem::Empty);
        assert_eq!(problem("/föo/"), Problem::NonAscii);
        assert_eq!(problem("/fo o/"), Problem::WhiteSpace);
        assert_eq!(problem("foo"), Problem::NoLeadingSlash);
        assert_eq!(problem("/foo"), Problem::NoTrailingSlash);
        assert_eq!(problem("//foo/"), Problem::EmptyComponent);
        assert_eq!(problem("/foo//"), Problem::EmptyComponent);
        assert_eq!(
            problem("/_foo/"),
            Problem::BadStart {
                component: "_foo".into()
            }
        );
        assert_eq!(problem("/a+b/"), Problem::BadCharacter { character: '+' });
        assert_eq!(problem("/+b/"), Problem::BadCharacter { character: '+' });
    }

    #[test]
    fn serde_round_trip_validates() {
        let json = serde_json::to_string(&ns("/hannes/")).unwrap();
        assert_eq!(json, "\"/hannes/\"");
        let back: Namespace = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ns("/hannes/"));
        assert!(serde_json::from_str::<Namespace>("\"/Hannes/\"").is_err());
    }
}
