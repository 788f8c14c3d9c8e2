//! ARN partitions. Never hard-code `arn:aws:`: GovCloud, China and the isolated regions live in
//! their own partitions.

/// The partition of a region: `aws-cn` (`cn-*`), `aws-us-gov` (`us-gov-*`), `aws-iso`
/// (`us-iso-*`), `aws-iso-b` (`us-isob-*`), `aws-iso-e` (`eu-isoe-*`), `aws-iso-f`
/// (`us-isof-*`), `aws-eusc` (`eusc-*`, the European Sovereign Cloud), otherwise `aws`.
pub fn partition_for_region(region: &str) -> &'static str {
    const PREFIXES: [(&str, &str); 7] = [
        ("cn-", "aws-cn"),
        ("us-gov-", "aws-us-gov"),
        ("us-iso-", "aws-iso"),
        ("us-isob-", "aws-iso-b"),
        ("eu-isoe-", "aws-iso-e"),
        ("us-isof-", "aws-iso-f"),
        ("eusc-", "aws-eusc"),
    ];
    PREFIXES
        .iter()
        .find(|(prefix, _)| region.starts_with(prefix))
        .map_or("aws", |&(_, partition)| partition)
}

/// The account ID in an ARN (its fifth field), if it has one.
pub fn account_of_arn(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    if parts.next() != Some("arn") {
        return None;
    }
    let account = parts.nth(3)?;
    parts.next()?;
    (!account.is_empty()).then_some(account)
}

/// The partition of an ARN (its second field), if it is an ARN.
pub fn partition_of_arn(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(3, ':');
    if parts.next() != Some("arn") {
        return None;
    }
    let partition = parts.next()?;
    parts.next()?;
    partition.starts_with("aws").then_some(partition)
}
