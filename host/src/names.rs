//! Host-side naming on top of `cgcloud_common::names`: image references and image names.

use std::sync::OnceLock;

use regex::Regex;

/// An image given on the command line: an ordinal among the role's images, sorted oldest first
/// (negative values count from the newest), or an AMI ID of either length EC2 has used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    Ordinal(i64),
    Ami(String),
}

fn ami_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^ami-(?:[0-9a-f]{8}|[0-9a-f]{17})$").expect("the AMI ID pattern is valid")
    })
}

fn timestamp_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}$")
            .expect("the image timestamp pattern is valid")
    })
}

impl ImageRef {
    pub fn parse(s: &str) -> Result<ImageRef, String> {
        if let Ok(n) = s.parse::<i64>() {
            return Ok(ImageRef::Ordinal(n));
        }
        if ami_re().is_match(s) {
            return Ok(ImageRef::Ami(s.to_string()));
        }
        Err(format!(
            "`{s}` is neither an image ordinal (e.g. -1 for the newest) nor an AMI ID (`ami-` and 8 or 17 \
             lower-case hex digits)"
        ))
    }
}

/// True if `relative_name` (an image name decoded in the namespace) is `prefix_<timestamp>`, the
/// form cgcloud gives its images. Guards against `foo__*` also matching role `foo_bar`'s images.
pub fn is_image_of(relative_name: &str, prefix: &str) -> bool {
    relative_name
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|ts| timestamp_re().is_match(ts))
}

/// Picks the element at `ordinal` (negative counts from the end).
pub fn at_ordinal<T>(items: &[T], ordinal: i64) -> Option<&T> {
    let len = items.len() as i64;
    let i = if ordinal < 0 { len + ordinal } else { ordinal };
    if (0..len).contains(&i) {
        items.get(i as usize)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_refs_accept_both_ami_lengths_and_ordinals() {
        assert_eq!(ImageRef::parse("-1"), Ok(ImageRef::Ordinal(-1)));
        assert_eq!(ImageRef::parse("3"), Ok(ImageRef::Ordinal(3)));
        assert_eq!(
            ImageRef::parse("ami-1e749f67"),
            Ok(ImageRef::Ami("ami-1e749f67".into()))
        );
        assert_eq!(
            ImageRef::parse("ami-0123456789abcdef0"),
            Ok(ImageRef::Ami("ami-0123456789abcdef0".into()))
        );
        assert!(ImageRef::parse("ami-123").is_err());
        assert!(ImageRef::parse("ami-0123456789ABCDEF0").is_err());
        assert!(ImageRef::parse("newest").is_err());
    }

    #[test]
    fn image_names_must_be_prefix_then_timestamp() {
        assert!(is_image_of("foo_2016-01-02_03-04-05", "foo"));
        assert!(!is_image_of("foo_bar_2016-01-02_03-04-05", "foo"));
        assert!(!is_image_of("foo_2016-01-02", "foo"));
        assert!(!is_image_of("foobar_2016-01-02_03-04-05", "foo"));
    }

    #[test]
    fn ordinals_index_from_both_ends() {
        let v = [10, 20, 30];
        assert_eq!(at_ordinal(&v, 0), Some(&10));
        assert_eq!(at_ordinal(&v, -1), Some(&30));
        assert_eq!(at_ordinal(&v, -3), Some(&10));
        assert_eq!(at_ordinal(&v, 3), None);
        assert_eq!(at_ordinal(&v, -4), None);
        assert_eq!(at_ordinal::<i32>(&[], -1), None);
    }
}
