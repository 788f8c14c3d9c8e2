//! The instance-metadata stand-in: what a box reaches at `http://169.254.169.254/` (IMDSv1, and
//! v2 tokens: random, per instance, expiring; an instance launched with `HttpTokens=required`
//! gets 401 without one, as on EC2; the hop limit is not modelled), answered from moto's view of the instance the asking box plays. Instance-profile
//! credentials are real moto credentials from STS AssumeRole on the profile's role, so software
//! in the box uses the standard credential chain unchanged; the emulated AWS itself is reachable
//! from boxes at [`AWS_RELAY_PORT`] on the hub.

use crate::daemon::Cloud;
use crate::moto::{urlencode, xml_field, Instance};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The hub port that relays to moto (`http://10.250.0.1:4566`, LocalStack's customary port).
pub const AWS_RELAY_PORT: u16 = 4566;

/// Serves one connection relayed from the hub: a `PEER <ip>` line, then one HTTP request.
pub fn serve(cloud: &Cloud, c: UnixStream) {
    let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(mut w) = c.try_clone() else { return };
    let mut r = BufReader::new(c);
    let mut peer = String::new();
    if r.read_line(&mut peer).is_err() {
        return;
    }
    let ip = peer.trim().strip_prefix("PEER ").unwrap_or("").to_string();
    let mut request = String::new();
    if r.read_line(&mut request).is_err() {
        return;
    }
    let mut len = 0usize;
    let mut asked_ttl: Option<String> = None;
    let mut token: Option<String> = None;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        let lower = h.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        if let Some(v) = lower.strip_prefix("x-aws-ec2-metadata-token-ttl-seconds:") {
            asked_ttl = Some(v.trim().to_string()).filter(|v| v.parse::<u32>().is_ok());
        }
        if lower.starts_with("x-aws-ec2-metadata-token:") {
            token = h.split_once(':').map(|(_, v)| v.trim().to_string());
        }
    }
    let mut body = vec![0u8; len.min(65536)];
    let _ = r.read_exact(&mut body);
    let mut parts = request.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let (status, ctype, text) = match cloud.instance_at(&ip) {
        None => (
            404,
            "text/plain",
            format!("no instance plays box address {ip}\n"),
        ),
        Some(inst) if method == "PUT" && path == "/latest/api/token" => match &asked_ttl {
            Some(ttl) => (200, "text/plain", issue_token(&inst.id, ttl)),
            None => (
                400,
                "text/plain",
                "missing X-aws-ec2-metadata-token-ttl-seconds\n".into(),
            ),
        },
        // IMDSv2 required (`HttpTokens=required` at launch): no valid token, no metadata.
        Some(inst) if !token_valid(&inst.id, token.as_deref()) && tokens_required(cloud, &inst) => {
            (
                401,
                "text/plain",
                "IMDSv2 is required: PUT /latest/api/token first\n".into(),
            )
        }
        Some(inst) => answer(cloud, &inst, path),
    };
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        _ => "Not Found",
    };
    // IMDSv2: a token answer says how long the token lives (SDKs refuse one that does not).
    let ttl = match (&asked_ttl, method, path, status) {
        (Some(asked), "PUT", "/latest/api/token", 200) => {
            format!("X-aws-ec2-metadata-token-ttl-seconds: {asked}\r\n")
        }
        _ => String::new(),
    };
    let _ = write!(
        w,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n{ttl}Content-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
}

/// Tokens handed out: token → (instance, expiry).
fn tokens() -> &'static Mutex<HashMap<String, (String, Instant)>> {
    static TOKENS: OnceLock<Mutex<HashMap<String, (String, Instant)>>> = OnceLock::new();
    TOKENS.get_or_init(Default::default)
}

/// A fresh random token for `instance`, valid for `ttl` seconds (at most 6 hours, as IMDS).
fn issue_token(instance: &str, ttl: &str) -> String {
    let mut raw = [0u8; 24];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut raw);
    }
    let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let secs = ttl.parse::<u64>().unwrap_or(21_600).clamp(1, 21_600);
    let mut all = tokens().lock().unwrap_or_else(|e| e.into_inner());
    all.retain(|_, (_, until)| *until > Instant::now());
    all.insert(
        token.clone(),
        (
            instance.to_string(),
            Instant::now() + Duration::from_secs(secs),
        ),
    );
    token
}

fn token_valid(instance: &str, token: Option<&str>) -> bool {
    let Some(token) = token else { return false };
    let all = tokens().lock().unwrap_or_else(|e| e.into_inner());
    matches!(all.get(token), Some((i, until)) if i == instance && *until > Instant::now())
}

/// True when the instance was launched with `HttpTokens=required` (IMDSv1 off). Fails closed:
/// when moto cannot say, a token is required.
fn tokens_required(cloud: &Cloud, inst: &Instance) -> bool {
    metadata_option(cloud, inst, "httpTokens").map_or(true, |v| v.as_deref() == Some("required"))
}

/// How long moto's view of an instance and its profile is reused: a change (new metadata
/// options, a role taken off the profile) applies within this time.
const VIEW_TTL: Duration = Duration::from_secs(2);
/// How long role credentials are reused (EC2 serves the same ones for hours; the role check
/// before them is kept for [`VIEW_TTL`] only).
const CREDENTIALS_TTL: Duration = Duration::from_secs(60);

/// Moto's successful answers, kept for their time to live: key → (answer, expiry). Asking moto
/// anew for each metadata request made it the bottleneck when many boxes booted at once, and
/// the SDKs in the boxes gave up after their 1 s metadata timeout.
fn cached(key: String, ttl: Duration, ask: impl FnOnce() -> Option<String>) -> Option<String> {
    static CACHE: OnceLock<Mutex<HashMap<String, (String, Instant)>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let now = Instant::now();
    {
        let mut all = cache.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|_, (_, expiry)| *expiry > now);
        if let Some((answer, _)) = all.get(&key) {
            return Some(answer.clone());
        }
    }
    let answer = ask()?;
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, (answer.clone(), now + ttl));
    Some(answer)
}

/// One of the instance's metadata options as moto reports it (`httpTokens`,
/// `instanceMetadataTags`, …); `Err` when moto did not answer.
fn metadata_option(cloud: &Cloud, inst: &Instance, field: &str) -> Result<Option<String>, ()> {
    cached(format!("describe {}", inst.id), VIEW_TTL, || {
        cloud
            .moto()
            .ec2(
                &inst.owner_id,
                &inst.region_name,
                &format!(
                    "Action=DescribeInstances&Version=2016-11-15&InstanceId.1={}",
                    inst.id
                ),
            )
            .ok()
    })
    .map(|b| xml_field(&b, field))
    .ok_or(())
}

fn answer(cloud: &Cloud, inst: &Instance, path: &str) -> (u16, &'static str, String) {
    let ok = |s: String| (200, "text/plain", s);
    let zone = inst.availability_zone.clone().unwrap_or_default();
    let region = inst.region_name.clone();
    let path = path.trim_end_matches('/');
    let m = path
        .strip_prefix("/latest/meta-data")
        .map(|p| p.trim_start_matches('/'));
    match m {
        Some("") => ok("ami-id\nhostname\ninstance-id\ninstance-type\nlocal-hostname\nlocal-ipv4\nplacement/\npublic-hostname\npublic-ipv4\niam/\ntags/\n".into()),
        Some("instance-id") => ok(inst.id.clone()),
        Some("ami-id") => ok(inst.image_id.clone()),
        Some("instance-type") => ok(inst.instance_type.clone().unwrap_or_default()),
        Some("local-ipv4") => ok(inst.private_ip.clone().unwrap_or_default()),
        Some("public-ipv4") => ok(inst.public_ip.clone().unwrap_or_default()),
        Some("hostname") | Some("local-hostname") => ok(inst.private_dns_name.clone().unwrap_or_default()),
        Some("public-hostname") => ok(inst.public_dns_name.clone().unwrap_or_default()),
        Some("placement") => ok("availability-zone\nregion\n".into()),
        Some("placement/availability-zone") => ok(zone),
        Some("placement/region") => ok(region),
        Some("iam") => ok("info\nsecurity-credentials/\n".into()),
        Some("iam/security-credentials") => match role(cloud, inst) {
            Some((name, _)) => ok(name),
            None => not_found(),
        },
        Some(p) if p.starts_with("iam/security-credentials/") => match credentials(cloud, inst, &p[25..]) {
            Some(json) => (200, "application/json", json),
            None => not_found(),
        },
        Some("iam/info") => match role(cloud, inst) {
            Some((_, profile_arn)) => (
                200,
                "application/json",
                serde_json::json!({"Code": "Success", "InstanceProfileArn": profile_arn}).to_string(),
            ),
            None => not_found(),
        },
        Some(p) if p == "tags/instance" || p.starts_with("tags/instance/") => {
            if !tags_enabled(cloud, inst) {
                return not_found();
            }
            let key = p.strip_prefix("tags/instance").unwrap_or("").trim_start_matches('/');
            if key.is_empty() {
                ok(inst.tags.keys().cloned().collect::<Vec<_>>().join("\n"))
            } else {
                match inst.tags.get(key).and_then(|v| v.as_str()) {
                    Some(v) => ok(v.to_string()),
                    None => not_found(),
                }
            }
        }
        _ if path == "/latest/dynamic/instance-identity/document" => (
            200,
            "application/json",
            serde_json::json!({
                "accountId": inst.owner_id, "instanceId": inst.id, "region": region,
                "availabilityZone": zone, "imageId": inst.image_id,
                "instanceType": inst.instance_type, "privateIp": inst.private_ip,
            })
            .to_string(),
        ),
        _ => not_found(),
    }
}

fn not_found() -> (u16, &'static str, String) {
    (404, "text/plain", "Not Found\n".into())
}

/// The profile's role name and the profile's ARN, if the instance has a profile.
fn role(cloud: &Cloud, inst: &Instance) -> Option<(String, String)> {
    let p = inst.iam_instance_profile.as_ref()?;
    let name = p
        .get("Name")
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .or_else(|| {
            p.get("Arn")
                .and_then(|v| v.as_str())
                .and_then(|a| a.rsplit('/').next())
                .map(str::to_string)
        })?;
    let body = cached(
        format!("profile {} {name}", inst.owner_id),
        VIEW_TTL,
        || {
            iam_call(
                cloud,
                inst,
                &format!(
                    "Action=GetInstanceProfile&Version=2010-05-08&InstanceProfileName={}",
                    urlencode(&name)
                ),
            )
        },
    )?;
    let role_block = xml_field(&body, "Roles")?;
    let role = xml_field(&role_block, "RoleName")?;
    let profile_arn = xml_field(&body.replace(&role_block, ""), "Arn").unwrap_or_default();
    Some((role, profile_arn))
}

fn iam_call(cloud: &Cloud, inst: &Instance, form: &str) -> Option<String> {
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential=localcloud/20260101/{}/iam/aws4_request, SignedHeaders=host, Signature=0",
        inst.region_name
    );
    let (status, body) = cloud
        .moto()
        .http(
            "POST",
            "/",
            &[
                ("Authorization", &auth),
                ("x-moto-account-id", &inst.owner_id),
            ],
            form,
        )
        .ok()?;
    (status == 200).then_some(body)
}

fn credentials(cloud: &Cloud, inst: &Instance, asked: &str) -> Option<String> {
    let (role, _) = role(cloud, inst)?;
    if role != asked {
        return None;
    }
    cached(
        format!("credentials {} {role}", inst.id),
        CREDENTIALS_TTL,
        || assume_role(cloud, inst, &role),
    )
}

/// Fresh credentials of `role` for `inst`, from STS AssumeRole, as the metadata's JSON.
fn assume_role(cloud: &Cloud, inst: &Instance, role: &str) -> Option<String> {
    let arn = format!("arn:aws:iam::{}:role/{role}", inst.owner_id);
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential=localcloud/20260101/{}/sts/aws4_request, SignedHeaders=host, Signature=0",
        inst.region_name
    );
    let form = format!(
        "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName={}",
        urlencode(&arn),
        urlencode(&inst.id)
    );
    let (status, body) = cloud
        .moto()
        .http(
            "POST",
            "/",
            &[
                ("Authorization", &auth),
                ("x-moto-account-id", &inst.owner_id),
            ],
            &form,
        )
        .ok()?;
    if status != 200 {
        return None;
    }
    Some(
        serde_json::json!({
            "Code": "Success", "Type": "AWS-HMAC",
            "AccessKeyId": xml_field(&body, "AccessKeyId")?,
            "SecretAccessKey": xml_field(&body, "SecretAccessKey")?,
            "Token": xml_field(&body, "SessionToken")?,
            "Expiration": xml_field(&body, "Expiration")?,
            "LastUpdated": xml_field(&body, "Expiration")?,
        })
        .to_string(),
    )
}

/// True when the instance allows tags in its metadata (`InstanceMetadataTags=enabled`).
fn tags_enabled(cloud: &Cloud, inst: &Instance) -> bool {
    metadata_option(cloud, inst, "instanceMetadataTags")
        .is_ok_and(|v| v.as_deref() == Some("enabled"))
}
