//! End-to-end tests of the local cloud: drive moto's EC2 API and ssh directly, with host keys
//! verified (each instance's host key comes from its cloud-config `ssh_keys`, generated here, and
//! known_hosts pins it under `HostKeyAlias <instance-id>`).
//!
//! Needs root, the host tools and the cached rootfs (`cgcloud-localcloud setup`), and the
//! `cgcloud-localcloud` binary built (`cargo test -p cgcloud-localcloud` builds it).
#![allow(clippy::unwrap_used)] // A test crate: an unwrap that fails is a failing test.

use cgcloud_localcloud::LocalCloud;
use cgcloud_moto::{xml_field, xml_fields};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const DEBIAN12: &str = "ami-0de12a0000000b121";
const DEBIAN13: &str = "ami-0de13a0000000c130";
const UBUNTU2404: &str = "ami-00b24a0000000a240";

fn cloud() -> LocalCloud {
    std::env::set_var(
        "CGCLOUD_LOCALCLOUD_BIN",
        env!("CARGO_BIN_EXE_cgcloud-localcloud"),
    );
    match LocalCloud::start() {
        Ok(c) => c,
        Err(e) => panic!("the local cloud did not start: {e:#}"),
    }
}

/// A test's keys and files: the user's key pair, and per instance a host key.
struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    fn new(cloud: &LocalCloud) -> Keys {
        let dir = tempfile::tempdir().expect("temp dir");
        keygen(&dir.path().join("user"));
        let public = std::fs::read_to_string(dir.path().join("user.pub")).expect("user.pub");
        let body = cloud
            .ec2(&format!(
                "Action=ImportKeyPair&KeyName=tester&PublicKeyMaterial={}",
                b64(public.trim())
            ))
            .expect("ImportKeyPair");
        assert!(body.contains("<keyName>tester</keyName>"), "{body}");
        Keys { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Launches one instance of `ami` whose host key (made here) is pinned in known_hosts;
    /// `extra` is more cloud-config. Returns the instance id.
    fn launch(&self, cloud: &LocalCloud, ami: &str, extra: &str) -> String {
        self.launch_with(cloud, ami, extra, "")
    }

    /// Like [`Keys::launch`], with more RunInstances parameters (`&Name=value…`).
    fn launch_with(&self, cloud: &LocalCloud, ami: &str, extra: &str, params: &str) -> String {
        let tag = format!(
            "host{}",
            std::fs::read_dir(self.dir.path())
                .map(|d| d.count())
                .unwrap_or(0)
        );
        let hk = self.path(&tag);
        keygen(&hk);
        let private = std::fs::read_to_string(&hk).expect("host key");
        let public = std::fs::read_to_string(hk.with_extension("pub")).expect("host key pub");
        let mut ud = String::from("#cloud-config\nssh_keys:\n  ed25519_private: |\n");
        for l in private.lines() {
            ud.push_str(&format!("    {l}\n"));
        }
        ud.push_str(&format!("  ed25519_public: {}\n{extra}", public.trim()));
        let body = cloud
            .ec2(&format!(
                "Action=RunInstances&ImageId={ami}&MinCount=1&MaxCount=1&KeyName=tester&InstanceType=t3.micro&UserData={}{params}",
                b64(&ud)
            ))
            .expect("RunInstances");
        let iid = xml_field(&body, "instanceId").expect("an instance id");
        let pin: Vec<&str> = public.split_whitespace().take(2).collect();
        let mut kh = std::fs::read_to_string(self.path("known_hosts")).unwrap_or_default();
        kh.push_str(&format!("{iid} {}\n", pin.join(" ")));
        std::fs::write(self.path("known_hosts"), kh).expect("known_hosts");
        iid
    }

    /// Runs `cmd` on instance `iid` at `host` over ssh with the cloud's ssh_config.
    fn ssh(&self, cloud: &LocalCloud, iid: &str, host: &str, cmd: &str) -> Output {
        Command::new("ssh")
            .arg("-F")
            .arg(cloud.ssh_config())
            .arg("-i")
            .arg(self.path("user"))
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                self.path("known_hosts").display()
            ))
            .args([
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "ControlPath=none",
            ])
            .args(["-o", &format!("HostKeyAlias={iid}")])
            .arg(format!("admin@{host}"))
            .arg(cmd)
            .output()
            .expect("ssh runs")
    }

    /// Like [`Keys::ssh`], but the command must succeed; returns its stdout.
    fn run(&self, cloud: &LocalCloud, iid: &str, host: &str, cmd: &str) -> String {
        let out = self.ssh(cloud, iid, host, cmd);
        assert!(
            out.status.success(),
            "`{cmd}` on {iid} ({host}) failed: {}\nstderr: {}\ncloud log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            cloud.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn keygen(path: &Path) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "e2e", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen runs");
    assert!(st.success());
}

fn b64(s: &str) -> String {
    use base64::Engine;
    let e = base64::engine::general_purpose::STANDARD.encode(s);
    cgcloud_localcloud::moto::urlencode(&e)
}

fn describe(cloud: &LocalCloud, iid: &str) -> String {
    cloud
        .ec2(&format!("Action=DescribeInstances&InstanceId.1={iid}"))
        .expect("DescribeInstances")
}

fn public_ip(cloud: &LocalCloud, iid: &str) -> String {
    xml_field(&describe(cloud, iid), "ipAddress").expect("a public IP")
}

fn box_of(cloud: &LocalCloud, iid: &str) -> Option<serde_json::Value> {
    let st = cloud.status().expect("status");
    st["boxes"]
        .as_array()
        .expect("boxes")
        .iter()
        .find(|b| b["instance"] == iid)
        .cloned()
}

#[test]
fn box_lifecycle_follows_the_ec2_api() {
    let cloud = cloud();
    let cid = cloud.cid().to_string();
    let keys = Keys::new(&cloud);
    let iid = keys.launch(
        &cloud,
        DEBIAN12,
        "write_files:\n  - path: /etc/e2e-written\n    content: |\n      written-by-cloud-init\nruncmd:\n  - [sh, -c, 'echo ran > /root/runcmd']\n",
    );
    let ip = public_ip(&cloud, &iid);

    // Lazy boot on first connect; the key pair works for admin; real cloud-init ran the user data.
    let t0 = Instant::now();
    let out = keys.run(&cloud, &iid, &ip, "hostname; sudo cloud-init status --wait >/dev/null; sudo cloud-init query v1.platform; cat /etc/e2e-written; sudo cat /root/runcmd; systemctl is-system-running");
    let first = t0.elapsed();
    let lines: Vec<&str> = out.lines().collect();
    let private = xml_field(&describe(&cloud, &iid), "privateIpAddress").expect("private ip");
    assert_eq!(
        lines[0],
        format!("ip-{}", private.replace('.', "-")),
        "{out}"
    );
    assert_eq!(lines[1], "nocloud", "the NoCloud seed was used: {out}");
    assert_eq!(
        &lines[2..],
        ["written-by-cloud-init", "ran", "running"],
        "{out}"
    );
    assert!(first < Duration::from_secs(30), "first ssh took {first:?}");

    // The private address and DNS name reach the same box.
    let dns = xml_field(&describe(&cloud, &iid), "dnsName").expect("public dns");
    assert_eq!(
        keys.run(&cloud, &iid, &private, "cat /etc/e2e-written")
            .trim(),
        "written-by-cloud-init"
    );
    assert_eq!(
        keys.run(&cloud, &iid, &dns, "cat /etc/e2e-written").trim(),
        "written-by-cloud-init"
    );

    // Fail closed: no route out of the box; an address no box plays is refused at once, by name.
    let out = keys.ssh(&cloud, &iid, &ip, "ip route get 192.0.2.1");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unreachable"),
        "{out:?}"
    );
    let t0 = Instant::now();
    let out = keys.ssh(&cloud, &iid, "54.214.99.99", "true");
    assert!(!out.status.success());
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "refusal took {:?}",
        t0.elapsed()
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no instance of the local cloud has the address `54.214.99.99`"),
        "{err}"
    );

    // The box has its own host cgroup.
    let b = box_of(&cloud, &iid).expect("a box");
    let n = b["box"].as_u64().expect("box number");
    let cg = cgcloud_localcloud::boxes::cgroup_roots()[0].join(format!("cglc-{cid}-{n}"));
    assert!(
        !cgcloud_localcloud::boxes::cgroup_pids(&cg).is_empty(),
        "no processes in `{}`",
        cg.display()
    );

    // Stop powers the box off and keeps its disk; start boots the same disk at moto's new IP.
    keys.run(
        &cloud,
        &iid,
        &ip,
        "echo kept | sudo tee /etc/e2e-kept >/dev/null",
    );
    cloud
        .ec2(&format!("Action=StopInstances&InstanceId.1={iid}"))
        .expect("StopInstances");
    cloud.sync().expect("sync");
    assert_eq!(box_of(&cloud, &iid).expect("box kept")["running"], false);
    let out = keys.ssh(&cloud, &iid, &private, "true");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is stopped"),
        "{out:?}"
    );
    cloud
        .ec2(&format!("Action=StartInstances&InstanceId.1={iid}"))
        .expect("StartInstances");
    let ip2 = public_ip(&cloud, &iid);
    assert_ne!(ip, ip2, "moto gives a started instance a new public IP");
    assert_eq!(
        keys.run(&cloud, &iid, &ip2, "cat /etc/e2e-kept").trim(),
        "kept"
    );

    // CreateImage snapshots the disk; an instance of that image boots with the file.
    let body = cloud
        .ec2(&format!(
            "Action=CreateImage&InstanceId={iid}&Name=e2e-image"
        ))
        .expect("CreateImage");
    let ami = xml_field(&body, "imageId").expect("an image id");
    cloud
        .ec2(&format!("Action=TerminateInstances&InstanceId.1={iid}"))
        .expect("TerminateInstances");
    cloud.sync().expect("sync");
    assert!(box_of(&cloud, &iid).is_none(), "terminate destroys the box");
    assert!(LocalCloud::leftovers(&cid)
        .iter()
        .all(|l| !l.contains(&format!("cglc-{cid}-{n}"))));
    let iid2 = keys.launch(&cloud, &ami, "");
    let ip3 = public_ip(&cloud, &iid2);
    let out = keys.run(&cloud, &iid2, &ip3, "cat /etc/e2e-kept; sudo cloud-init status --wait >/dev/null; sudo cloud-init query instance_id");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["kept", iid2.as_str()],
        "{out}"
    );
    cloud
        .ec2(&format!("Action=TerminateInstances&InstanceId.1={iid2}"))
        .expect("TerminateInstances");
    cloud
        .ec2(&format!("Action=DeregisterImage&ImageId={ami}"))
        .expect("DeregisterImage");

    // Teardown leaves nothing behind.
    drop(cloud);
    assert_eq!(LocalCloud::leftovers(&cid), Vec::<String>::new());
}

#[test]
fn trixie_box_has_apt_through_the_relay_and_metadata() {
    let cloud = cloud();
    let keys = Keys::new(&cloud);
    let account = cloud.account().id.clone();
    let iam = |form: &str| {
        cloud
            .moto()
            .iam(&account, &format!("{form}&Version=2010-05-08"))
            .expect("IAM call")
    };
    let trust = cgcloud_localcloud::moto::urlencode(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
    );
    iam(&format!(
        "Action=CreateRole&RoleName=e2e-role&AssumeRolePolicyDocument={trust}"
    ));
    iam("Action=CreateInstanceProfile&InstanceProfileName=e2e-profile");
    iam("Action=AddRoleToInstanceProfile&InstanceProfileName=e2e-profile&RoleName=e2e-role");
    let iid = keys.launch_with(&cloud, DEBIAN13, "", "&IamInstanceProfile.Name=e2e-profile");
    let ip = public_ip(&cloud, &iid);
    let md = "http://169.254.169.254/latest/meta-data";
    let out = keys.run(
        &cloud,
        &iid,
        &ip,
        &format!(
            ". /etc/os-release; echo $VERSION_CODENAME; \
             curl -sf {md}/instance-id; echo; curl -sf {md}/placement/availability-zone; echo; \
             curl -sf {md}/iam/security-credentials/; echo; \
             key=$(curl -sf {md}/iam/security-credentials/e2e-role | sed -n 's/.*\"AccessKeyId\": *\"\\([^\"]*\\)\".*/\\1/p'); \
             curl -sf -H \"Authorization: AWS4-HMAC-SHA256 Credential=$key/20260101/us-west-2/sts/aws4_request, SignedHeaders=host, Signature=0\" \
               -d 'Action=GetCallerIdentity&Version=2011-06-15' http://10.250.0.1:4566/ | grep -o '<Arn>[^<]*</Arn>'; \
             sudo apt-get -q update >/dev/null && sudo apt-get install -y -q jq >/dev/null && echo '{{\"a\":7}}' | jq .a"
        ),
    );
    let zone = xml_field(&describe(&cloud, &iid), "availabilityZone").expect("zone");
    let arn = format!("<Arn>arn:aws:sts::{account}:assumed-role/e2e-role/{iid}</Arn>");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "trixie",
            iid.as_str(),
            zone.as_str(),
            "e2e-role",
            arn.as_str(),
            "7"
        ],
        "{out}"
    );
}

#[test]
fn images_that_cannot_boot_and_other_accounts_are_refused() {
    let cloud = cloud();
    let keys = Keys::new(&cloud);
    // A non-Debian base image exists for lookups but has no box.
    let body = cloud
        .ec2("Action=DescribeImages&Owner.1=099720109477&Filter.1.Name=name&Filter.1.Value.1=ubuntu/images/*noble-24.04-amd64-server-*")
        .expect("DescribeImages");
    assert_eq!(xml_fields(&body, "imageId"), vec![UBUNTU2404]);
    let iid = keys.launch(&cloud, UBUNTU2404, "");
    let out = keys.ssh(&cloud, &iid, &public_ip(&cloud, &iid), "true");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("cannot boot in the local cloud"), "{err}");
    assert!(err.contains(UBUNTU2404), "{err}");

    // An instance of another account has no box in this cloud.
    let other = cloud.moto().new_account("intruder").expect("account");
    let body = cloud
        .moto()
        .call(
            &other.id,
            "ec2",
            &format!(
                "Action=RunInstances&ImageId={DEBIAN12}&MinCount=1&MaxCount=1&Version=2016-11-15"
            ),
        )
        .expect("RunInstances in another account");
    let foreign = xml_field(&body, "instanceId").expect("instance id");
    let out = keys.ssh(&cloud, &foreign, &foreign, "true");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("no instance of the local cloud has the address"),
        "{out:?}"
    );
}

#[test]
fn a_box_that_fails_to_boot_reports_its_console() {
    let cloud = cloud();
    let keys = Keys::new(&cloud);
    let iid = keys.launch(&cloud, DEBIAN12, "");
    let ip = public_ip(&cloud, &iid);
    // An image without an init: the next box made from it cannot boot.
    keys.run(
        &cloud,
        &iid,
        &ip,
        "sudo rm -f /sbin/init /usr/sbin/init /lib/systemd/systemd /usr/lib/systemd/systemd",
    );
    let body = cloud
        .ec2(&format!("Action=CreateImage&InstanceId={iid}&Name=broken"))
        .expect("CreateImage");
    let ami = xml_field(&body, "imageId").expect("image id");
    let iid2 = keys.launch(&cloud, &ami, "");
    let t0 = Instant::now();
    let out = keys.ssh(&cloud, &iid2, &public_ip(&cloud, &iid2), "true");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        t0.elapsed() < Duration::from_secs(70),
        "took {:?}",
        t0.elapsed()
    );
    assert!(
        err.contains("failed to boot; its console ends with"),
        "{err}"
    );
    assert!(
        box_of(&cloud, &iid2).is_some_and(|b| b["running"] == false),
        "a failed box is torn down"
    );
}

fn private_ip(cloud: &LocalCloud, iid: &str) -> String {
    xml_field(&describe(cloud, iid), "privateIpAddress").expect("a private IP")
}

/// Lets `proto` to `port` into group `sg` from `source` (`cidr:…` or `group:sg-…`).
fn ingress(cloud: &LocalCloud, action: &str, sg: &str, port: u16, source: &str) {
    let src = match source.split_once(':') {
        Some(("cidr", c)) => format!("IpPermissions.1.IpRanges.1.CidrIp={c}"),
        Some(("group", g)) => format!("IpPermissions.1.Groups.1.GroupId={g}"),
        _ => panic!("bad source {source}"),
    };
    cloud
        .ec2(&format!(
            "Action={action}&GroupId={sg}&IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort={port}&IpPermissions.1.ToPort={port}&{src}"
        ))
        .unwrap_or_else(|e| panic!("{action} failed: {e:#}"));
}

fn security_group(cloud: &LocalCloud, name: &str) -> String {
    let body = cloud
        .ec2(&format!(
            "Action=CreateSecurityGroup&GroupName={name}&GroupDescription=e2e"
        ))
        .expect("CreateSecurityGroup");
    let sg = xml_field(&body, "groupId").expect("a group id");
    ingress(
        cloud,
        "AuthorizeSecurityGroupIngress",
        &sg,
        22,
        "cidr:0.0.0.0/0",
    );
    sg
}

/// Whether a TCP connection from box `from` to `ip:port` is accepted within 2 s.
fn connects(keys: &Keys, cloud: &LocalCloud, from: &str, ip: &str, port: u16) -> bool {
    let probe = format!(
        "python3 -c 'import socket; socket.create_connection((\"{ip}\", {port}), timeout=2)'"
    );
    keys.ssh(cloud, from, &public_ip(cloud, from), &probe)
        .status
        .success()
}

/// Waits up to 10 s for `connects` to become `want` (rule changes apply within a poll or two).
fn eventually(keys: &Keys, cloud: &LocalCloud, from: &str, ip: &str, port: u16, want: bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = connects(keys, cloud, from, ip, port);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{from} -> {ip}:{port}: connected {got}, wanted {want}\ncloud log:\n{}",
            cloud.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn boxes_reach_each_other_on_private_addresses_as_their_security_groups_allow() {
    let cloud = cloud();
    let keys = Keys::new(&cloud);
    // A cluster group: SSH from anywhere, 7000 from its own members. And a group of outsiders.
    let cluster = security_group(&cloud, "vpc-e2e-cluster");
    ingress(
        &cloud,
        "AuthorizeSecurityGroupIngress",
        &cluster,
        7000,
        &format!("group:{cluster}"),
    );
    let outside = security_group(&cloud, "vpc-e2e-outside");
    let in_group = format!("&SecurityGroupId.1={cluster}");
    let a = keys.launch_with(&cloud, DEBIAN12, "", &in_group);
    let b = keys.launch_with(&cloud, DEBIAN12, "", &in_group);
    let c = keys.launch_with(
        &cloud,
        DEBIAN12,
        "",
        &format!("&SecurityGroupId.1={outside}"),
    );
    let pb = private_ip(&cloud, &b);
    for iid in [&a, &b, &c] {
        // Each box's interface carries its EC2 private address (booting it on the way).
        let addrs = keys.run(
            &cloud,
            iid,
            &public_ip(&cloud, iid),
            "ip -4 -o addr show dev eth0",
        );
        let p = private_ip(&cloud, iid);
        assert!(addrs.contains(&format!("inet {p}/32")), "{iid}: {addrs}");
    }
    for port in [7000, 7001] {
        keys.run(
            &cloud,
            &b,
            &public_ip(&cloud, &b),
            &format!("sudo systemd-run --unit=listen{port} python3 -m http.server {port}"),
        );
    }
    // The group lets its members in on 7000; nothing else gets in, and outsiders do not.
    eventually(&keys, &cloud, &a, &pb, 7000, true);
    assert!(!connects(&keys, &cloud, &a, &pb, 7001), "7001 is closed");
    assert!(!connects(&keys, &cloud, &c, &pb, 7000), "c is not a member");
    // Changes to the group apply to running boxes.
    ingress(
        &cloud,
        "AuthorizeSecurityGroupIngress",
        &cluster,
        7001,
        "cidr:0.0.0.0/0",
    );
    eventually(&keys, &cloud, &c, &pb, 7001, true);
    ingress(
        &cloud,
        "RevokeSecurityGroupIngress",
        &cluster,
        7000,
        &format!("group:{cluster}"),
    );
    eventually(&keys, &cloud, &a, &pb, 7000, false);
    for iid in [&a, &b, &c] {
        cloud
            .ec2(&format!("Action=TerminateInstances&InstanceId.1={iid}"))
            .expect("TerminateInstances");
    }
}
