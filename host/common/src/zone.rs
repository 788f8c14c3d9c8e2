//! Availability zones and the regions they belong to.
//!
//! The original only understood `<2 letters>-<word>-<n><letter>` (`us-west-1b`), which misses
//! GovCloud, the isolated partitions, Local Zones and Wavelength Zones. This accepts them all.

use std::sync::LazyLock;

use regex::Regex;

/// A region: `us-east-1`, `us-gov-west-1`, `cn-north-1`, `us-isob-east-1`, `eu-isoe-west-1`,
/// `eusc-de-east-1`, ...
const REGION: &str = r"(?:[a-z]{2}(?:-gov|-iso[a-z]?)?|eusc-[a-z]{2})-[a-z]+-[1-9][0-9]*";

static REGION_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!("^{REGION}$")).expect("the region pattern is a valid regex")
});

/// A zone name: the region followed by a zone letter (`us-east-1a`), a Local Zone
/// (`us-west-2-lax-1a`) or a Wavelength Zone (`us-east-1-wl1-bos-wlz-1`).
static ZONE_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        "^({REGION})(?:[a-z]|-[a-z]+-[1-9][0-9]*[a-z]|-wl[1-9][0-9]*-[a-z]+-wlz-[1-9][0-9]*)$"
    ))
    .expect("the zone pattern is a valid regex")
});

/// A zone ID (`use1-az1`, `usw2-lax1-az1`, `use1-wl1-bos-wlz1`), which names the same physical
/// zone in every account, unlike zone names.
static ZONE_ID_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z]{3,6}[0-9]+-(?:[a-z0-9]+-)*(?:az|wlz)[0-9]+$")
        .expect("the zone-ID pattern is a valid regex")
});

/// Why a zone name was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
#[non_exhaustive]
pub enum ZoneError {
    /// Not a zone name at all.
    #[error(
        "invalid availability zone `{}`: expected a zone name such as `us-east-1a`, \
         `us-west-2-lax-1a` or `us-east-1-wl1-bos-wlz-1`",
        .0.escape_debug()
    )]
    Invalid(String),
    /// A zone ID was given where a zone name is needed.
    #[error(
        "`{0}` is an availability zone ID, not a zone name: give the zone name, e.g. \
         `us-east-1a` (`aws ec2 describe-availability-zones` lists both)"
    )]
    ZoneId(String),
    /// A region was given where a zone is needed.
    #[error("`{0}` is a region, not an availability zone: add the zone letter, e.g. `{0}a`")]
    Region(String),
}

/// The region of an availability zone, e.g. `us-east-1a`, `us-west-2-lax-1a` and
/// `us-east-1-wl1-bos-wlz-1` all lie in `us-east-1`.
pub fn region_of_zone(zone: &str) -> Result<String, ZoneError> {
    if let Some(region) = ZONE_RE.captures(zone).and_then(|c| c.get(1)) {
        return Ok(region.as_str().to_owned());
    }
    if REGION_RE.is_match(zone) {
        Err(ZoneError::Region(zone.to_owned()))
    } else if ZONE_ID_RE.is_match(zone) {
        Err(ZoneError::ZoneId(zone.to_owned()))
    } else {
        Err(ZoneError::Invalid(zone.to_owned()))
    }
}

/// True for a region name such as `us-east-1`, `us-gov-west-1` or `cn-north-1`.
pub fn is_region(region: &str) -> bool {
    REGION_RE.is_match(region)
}
