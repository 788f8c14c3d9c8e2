//! Reading moto's state without the AWS SDK: `GET /moto-api/data.json` (every model of every
//! account, as JSON) for instances and images, and a few EC2 query calls for what that dump
//! leaves out (user data, key-pair public keys).

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::net::SocketAddr;

/// A moto server reached over plain HTTP.
#[derive(Debug, Clone)]
pub struct MotoApi {
    addr: SocketAddr,
}

/// An EC2 instance as moto's dump describes it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Instance {
    pub id: String,
    pub owner_id: String,
    #[serde(default)]
    pub region_name: String,
    pub state: String,
    pub image_id: String,
    #[serde(default)]
    pub key_name: Option<String>,
    #[serde(default)]
    pub public_ip: Option<String>,
    #[serde(default)]
    pub private_ip: Option<String>,
    #[serde(default)]
    pub public_dns_name: Option<String>,
    #[serde(default)]
    pub private_dns_name: Option<String>,
    #[serde(default)]
    pub vpc_id: Option<String>,
    #[serde(default)]
    pub availability_zone: Option<String>,
    #[serde(default)]
    pub instance_type: Option<String>,
    #[serde(default)]
    pub iam_instance_profile: Option<serde_json::Value>,
    #[serde(default)]
    pub tags: serde_json::Map<String, serde_json::Value>,
}

impl Instance {
    /// True when `host` (as ssh was given it) names this instance.
    pub fn answers_to(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.');
        host == self.id
            || [
                &self.public_ip,
                &self.private_ip,
                &self.public_dns_name,
                &self.private_dns_name,
            ]
            .iter()
            .any(|a| {
                a.as_deref()
                    .is_some_and(|a| !a.is_empty() && a.eq_ignore_ascii_case(host))
            })
    }
}

/// An AMI as moto's dump describes it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Image {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    pub owner_id: String,
    #[serde(default)]
    pub state: String,
    /// Set for images made by CreateImage.
    #[serde(default)]
    pub source_instance_id: Option<String>,
    #[serde(default)]
    pub instance_id: Option<String>,
}

impl Image {
    /// The instance this image was made from, if CreateImage made it.
    pub fn from_instance(&self) -> Option<&str> {
        self.source_instance_id
            .as_deref()
            .or(self.instance_id.as_deref())
            .filter(|s| !s.is_empty())
    }
}

/// The parts of moto's dump the local cloud reads.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub instances: Vec<Instance>,
    pub images: Vec<Image>,
    pub volumes: Vec<VolumeRec>,
}

#[derive(Deserialize)]
struct Dump {
    #[serde(default)]
    ec2: Ec2Dump,
}

#[derive(Deserialize, Default)]
struct Ec2Dump {
    #[serde(rename = "Instance", default)]
    instances: Vec<Instance>,
    #[serde(rename = "Ami", default)]
    images: Vec<Image>,
    #[serde(rename = "Volume", default)]
    volumes: Vec<VolumeRec>,
}

/// An EBS volume as moto's dump shows it (attachments are not in it).
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct VolumeRec {
    pub id: String,
    #[serde(default)]
    pub status: String,
}

/// Parses moto's `/moto-api/data.json`.
pub fn parse_dump(json: &str) -> Result<Snapshot> {
    let d: Dump =
        serde_json::from_str(json).context("failed to parse moto's `/moto-api/data.json`")?;
    Ok(Snapshot {
        instances: d.ec2.instances,
        images: d.ec2.images,
        volumes: d.ec2.volumes,
    })
}

impl MotoApi {
    /// `endpoint` is `http://HOST:PORT` (what `AWS_ENDPOINT_URL` holds).
    pub fn new(endpoint: &str) -> Result<MotoApi> {
        let rest = endpoint
            .strip_prefix("http://")
            .with_context(|| format!("moto endpoint `{endpoint}` must be `http://HOST:PORT`"))?;
        let hostport = rest.trim_end_matches('/');
        let addr = std::net::ToSocketAddrs::to_socket_addrs(hostport)
            .with_context(|| format!("bad moto endpoint `{endpoint}`"))?
            .next()
            .with_context(|| format!("moto endpoint `{endpoint}` resolves to nothing"))?;
        if !addr.ip().is_loopback() {
            bail!("moto endpoint `{endpoint}` is not on loopback; the local cloud talks only to a local moto_server");
        }
        Ok(MotoApi { addr })
    }

    /// moto's socket address (on loopback).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything moto holds, for every account.
    pub fn snapshot(&self) -> Result<Snapshot> {
        let (status, body) = self.http("GET", "/moto-api/data.json", &[], "")?;
        if status != 200 {
            bail!("moto answered HTTP {status} to `GET /moto-api/data.json`");
        }
        parse_dump(&body)
    }

    /// One EC2 query call inside `account` and `region`; returns the XML body.
    pub fn ec2(&self, account: &str, region: &str, form: &str) -> Result<String> {
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential=localcloud/20260101/{region}/ec2/aws4_request, SignedHeaders=host, Signature=0"
        );
        let (status, body) = self.http(
            "POST",
            "/",
            &[("Authorization", &auth), ("x-moto-account-id", account)],
            form,
        )?;
        if status != 200 {
            let code = xml_field(&body, "Code").unwrap_or_default();
            let msg =
                xml_field(&body, "Message").unwrap_or_else(|| body.chars().take(200).collect());
            bail!(
                "EC2 `{}` failed: {code} {msg}",
                form.split('&').next().unwrap_or(form)
            );
        }
        Ok(body)
    }

    /// The IDs of the instance's security groups (moto's dump leaves them out).
    pub fn security_groups(&self, inst: &Instance) -> Result<Vec<String>> {
        let body = self.ec2(
            &inst.owner_id,
            &inst.region_name,
            &format!(
                "Action=DescribeInstances&Version=2016-11-15&InstanceId.1={}",
                inst.id
            ),
        )?;
        // The instance's own `groupSet` comes before its network interfaces' copies.
        let set = body
            .split_once("<groupSet>")
            .and_then(|(_, rest)| rest.split_once("</groupSet>"))
            .map(|(set, _)| set)
            .unwrap_or_default();
        Ok(cgcloud_moto::xml_fields(set, "groupId"))
    }

    /// The ingress rules of every security group of `account` in `region`.
    ///
    /// NOTE: from DescribeSecurityGroups, not from the dump: moto 5.2's dump keeps rules that
    /// were revoked.
    pub fn ingress_rules(&self, account: &str, region: &str) -> Result<Vec<crate::vpc::Ingress>> {
        let body = self.ec2(
            account,
            region,
            "Action=DescribeSecurityGroups&Version=2016-11-15",
        )?;
        let mut out = Vec::new();
        for group in items(section(&body, "securityGroupInfo").unwrap_or_default()) {
            // The group's own ID comes before its rules (whose `groups` name others).
            let head = group.split("<ip").next().unwrap_or_default();
            let Some(group_id) = xml_field(head, "groupId") else {
                continue;
            };
            for perm in items(section(group, "ipPermissions").unwrap_or_default()) {
                let port = |f: &str| xml_field(perm, f).and_then(|p| p.parse::<i32>().ok());
                let rule =
                    |cidr: Option<String>, source_group: Option<String>| crate::vpc::Ingress {
                        group_id: group_id.clone(),
                        protocol: xml_field(perm, "ipProtocol").unwrap_or_default(),
                        from_port: port("fromPort"),
                        to_port: port("toPort"),
                        cidr,
                        source_group,
                    };
                for g in items(section(perm, "groups").unwrap_or_default()) {
                    out.push(rule(None, xml_field(g, "groupId")));
                }
                for r in items(section(perm, "ipRanges").unwrap_or_default()) {
                    out.push(rule(xml_field(r, "cidrIp"), None));
                }
            }
        }
        Ok(out)
    }

    /// The instance's user data, decoded (empty when it has none).
    pub fn user_data(&self, inst: &Instance) -> Result<Vec<u8>> {
        let body = self.ec2(
            &inst.owner_id,
            &inst.region_name,
            &format!("Action=DescribeInstanceAttribute&Version=2016-11-15&InstanceId={}&Attribute=userData", inst.id),
        )?;
        let Some(block) = xml_field(&body, "userData") else {
            return Ok(Vec::new());
        };
        let Some(b64) = xml_field(&block, "value") else {
            return Ok(Vec::new());
        };
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .with_context(|| format!("user data of `{}` is not base64", inst.id))
    }

    /// The public key of the instance's key pair, if it has one.
    pub fn key_pair_public_key(&self, inst: &Instance) -> Result<Option<String>> {
        let Some(name) = inst.key_name.as_deref().filter(|n| !n.is_empty()) else {
            return Ok(None);
        };
        let body = self.ec2(
            &inst.owner_id,
            &inst.region_name,
            &format!(
                "Action=DescribeKeyPairs&Version=2016-11-15&KeyName.1={}&IncludePublicKey=true",
                urlencode(name)
            ),
        )?;
        Ok(xml_field(&body, "publicKey").map(|k| xml_unescape(k.trim())))
    }

    /// A plain HTTP/1.1 exchange (`cgcloud_moto::http_exchange`).
    pub fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<(u16, String)> {
        cgcloud_moto::http_exchange(self.addr, method, path, headers, body)
            .map_err(anyhow::Error::msg)
    }
}

pub use cgcloud_moto::{dechunk, urlencode, xml_field, xml_unescape};

/// The inner text of the first `<tag>…</tag>` in `xml`, for an element that does not nest in
/// itself.
fn section<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(&xml[start..end])
}

/// The inner texts of the `<item>` elements directly inside `list` (items nest).
fn items(list: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    let mut i = 0;
    while i < list.len() {
        let rest = &list[i..];
        if rest.starts_with("<item>") {
            if depth == 0 {
                start = i + "<item>".len();
            }
            depth += 1;
            i += "<item>".len();
        } else if rest.starts_with("</item>") {
            depth = depth.saturating_sub(1);
            if depth == 0 {
                out.push(&list[start..i]);
            }
            i += "</item>".len();
        } else {
            i += rest.chars().next().map(char::len_utf8).unwrap_or(1);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = r#"{"core":{},"ec2":{"Instance":[{"id":"i-1","owner_id":"111111111111","region_name":"us-west-2","state":"running","image_id":"ami-1","key_name":"k","public_ip":"54.214.1.2","private_ip":"10.0.0.5","public_dns_name":"ec2-54-214-1-2.compute-1.amazonaws.com","private_dns_name":"ip-10-0-0-5.ec2.internal","tags":{"Name":"x"},"other":1}],
      "Ami":[{"id":"ami-2","name":"img","owner_id":"111111111111","state":"available","source_instance_id":"i-1","instance_id":null},{"id":"ami-1","name":"debian-12-amd64-20250101-1","owner_id":"136693071363","state":"available","source_instance_id":null}]}}"#;

    #[test]
    fn parses_instances_and_images_from_the_dump() {
        let s = parse_dump(DUMP).expect("valid dump");
        assert_eq!(s.instances.len(), 1);
        let i = &s.instances[0];
        assert!(i.answers_to("54.214.1.2"));
        assert!(i.answers_to("ip-10-0-0-5.ec2.internal"));
        assert!(i.answers_to("EC2-54-214-1-2.compute-1.amazonaws.com."));
        assert!(i.answers_to("i-1"));
        assert!(!i.answers_to("54.214.1.3"));
        assert_eq!(s.images[0].from_instance(), Some("i-1"));
        assert_eq!(s.images[1].from_instance(), None);
    }

    #[test]
    fn a_remote_endpoint_is_refused() {
        let e = MotoApi::new("http://10.1.2.3:5000").expect_err("not loopback");
        assert!(e.to_string().contains("not on loopback"), "{e}");
        assert!(MotoApi::new("http://127.0.0.1:5000").is_ok());
    }

    #[test]
    fn ingress_rules_are_read_from_describe_security_groups() {
        let body = r#"<DescribeSecurityGroupsResponse><securityGroupInfo><item><groupId>sg-1</groupId><ipPermissionsEgress><item><ipProtocol>-1</ipProtocol><groups/><ipRanges><item><cidrIp>0.0.0.0/0</cidrIp></item></ipRanges></item></ipPermissionsEgress><ipPermissions><item><ipProtocol>tcp</ipProtocol><fromPort>6817</fromPort><toPort>6818</toPort><groups><item><userId>1</userId><groupId>sg-1</groupId></item></groups><ipRanges/></item><item><ipProtocol>tcp</ipProtocol><fromPort>22</fromPort><toPort>22</toPort><groups/><ipRanges><item><cidrIp>0.0.0.0/0</cidrIp></item></ipRanges></item></ipPermissions></item></securityGroupInfo></DescribeSecurityGroupsResponse>"#;
        let groups = items(section(body, "securityGroupInfo").unwrap());
        assert_eq!(groups.len(), 1);
        let perms = items(section(groups[0], "ipPermissions").unwrap());
        assert_eq!(perms.len(), 2);
        assert_eq!(xml_field(perms[0], "fromPort").as_deref(), Some("6817"));
        let sources = items(section(perms[0], "groups").unwrap());
        assert_eq!(xml_field(sources[0], "groupId").as_deref(), Some("sg-1"));
        assert!(items(section(perms[0], "ipRanges").unwrap_or_default()).is_empty());
    }

    #[test]
    fn dechunks_and_encodes() {
        assert_eq!(dechunk("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), "abcde");
        assert_eq!(urlencode("a b/c"), "a%20b%2Fc");
    }
}
