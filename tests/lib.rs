//! Test support shared by the integration tests: running the `cgcloud` binary against moto in
//! an isolated account.
#![allow(clippy::unwrap_used)] // Test support: an unwrap that fails is a failing test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub use cgcloud_moto::{form, xml_field, xml_fields, Account, Moto};

/// The zone every test works in.
pub const ZONE: &str = "us-east-1a";

/// The moto server of this test binary, started on first use.
pub fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| Moto::start().unwrap_or_else(|e| panic!("moto_server did not start: {e}")))
}

/// The `cgcloud` binary of this build (`cargo build --workspace` makes it next to the tests).
pub fn cgcloud_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its own path");
    // target/<profile>/deps/<test> -> target/<profile>/cgcloud
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("cgcloud"))
        .expect("target layout");
    assert!(
        bin.exists(),
        "`{}` is missing: run `cargo build --workspace` before the tests",
        bin.display()
    );
    bin
}

/// The release agent `create` installs on boxes (`cargo build --profile agent -p
/// cgcloud-agent` makes it; `tests/suite.sh` builds it before the tests).
pub fn agent_bin() -> PathBuf {
    let bin = cgcloud_bin();
    // target/debug/cgcloud -> target/agent/cgcloud-agent
    let agent = bin
        .parent()
        .and_then(Path::parent)
        .map(|t| t.join("agent/cgcloud-agent"))
        .expect("target layout");
    assert!(
        agent.exists(),
        "`{}` is missing: run `cargo build --profile agent -p cgcloud-agent` before the tests",
        agent.display()
    );
    agent
}

/// A test's own world: a fresh moto account with IAM user `user`, a scratch home directory.
pub struct World {
    pub moto: &'static Moto,
    pub account: Account,
    pub home: tempfile::TempDir,
    last_launch: std::cell::Cell<Option<std::time::Instant>>,
}

impl World {
    /// A world on this test binary's shared moto server.
    pub fn new(user: &str) -> World {
        World::on(moto(), user)
    }

    /// A world on a given moto server (e.g. one started with its own AMI catalogue).
    pub fn on(moto: &'static Moto, user: &str) -> World {
        let account = moto
            .new_account(user)
            .unwrap_or_else(|e| panic!("new moto account: {e}"));
        let home = tempfile::tempdir().expect("a temporary home directory");
        World {
            moto,
            account,
            home,
            last_launch: Default::default(),
        }
    }

    /// `cgcloud ARGS…` with an environment that reaches moto only: this account's credentials,
    /// the zone, no IMDS, no config or credentials files of the machine's user.
    pub fn cgcloud(&self, args: &[&str]) -> Command {
        let mut c = bare_cgcloud(self.home.path(), args);
        c.env("AWS_ENDPOINT_URL", self.moto.endpoint())
            .env("AWS_ACCESS_KEY_ID", &self.account.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &self.account.secret_access_key)
            .env("CGCLOUD_ZONE", ZONE);
        c
    }

    /// Runs cgcloud and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        run(self.cgcloud(args))
    }

    /// One EC2 query-API call in this account.
    pub fn ec2(&self, pairs: &[(&str, &str)]) -> String {
        let mut all = pairs.to_vec();
        all.push(("Version", "2016-11-15"));
        self.moto
            .call(&self.account.id, "ec2", &form(&all))
            .unwrap_or_else(|e| panic!("EC2 call failed: {e}"))
    }

    /// Whether EC2's `action` (e.g. `DescribeSnapshots`) with `id_param=id` lists `id` under
    /// `field`; `missing_code` is the error EC2 answers for an ID it does not know.
    pub fn ec2_lists(
        &self,
        action: &str,
        id_param: &str,
        id: &str,
        field: &str,
        missing_code: &str,
    ) -> bool {
        let all = [
            ("Action", action),
            (id_param, id),
            ("Version", "2016-11-15"),
        ];
        match self.moto.call(&self.account.id, "ec2", &form(&all)) {
            Ok(b) => xml_fields(&b, field).contains(&id.to_string()),
            Err(e) if e.contains(missing_code) => false,
            Err(e) => panic!("{action} failed: {e}"),
        }
    }

    /// One EC2 call that is expected to fail; returns the error body.
    pub fn ec2_err(&self, pairs: &[(&str, &str)]) -> String {
        let mut all = pairs.to_vec();
        all.push(("Version", "2016-11-15"));
        match self.moto.call(&self.account.id, "ec2", &form(&all)) {
            Ok(body) => panic!("EC2 call {pairs:?} unexpectedly succeeded: {body}"),
            Err(e) => e,
        }
    }
}

/// `cgcloud ARGS…` with no AWS configuration at all: no credentials, no endpoint, no zone.
pub fn bare_cgcloud(home: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(cgcloud_bin());
    c.args(args).stdin(Stdio::null()).env_clear();
    for keep in ["PATH", "LANG", "TMPDIR"] {
        if let Some(v) = std::env::var_os(keep) {
            c.env(keep, v);
        }
    }
    c.env("HOME", home)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", home.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            home.join("no-aws-credentials"),
        )
        .env("CGCLOUD_CONFIG", home.join("cgcloud.toml"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CONFIG_HOME", home.join("config"));
    c
}

pub fn run(mut c: Command) -> Output {
    c.output()
        .unwrap_or_else(|e| panic!("failed to run {c:?}: {e}"))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts that cgcloud failed with exit 255 and exactly one `ERROR:` line containing `needle`.
#[track_caller]
pub fn assert_user_error(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(255),
        "expected exit 255; stderr: {err}; stdout: {}",
        stdout(o)
    );
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("ERROR: ")).collect();
    assert_eq!(errors.len(), 1, "expected one ERROR line, got: {err}");
    assert!(
        errors[0].contains(needle),
        "expected `{needle}` in: {}",
        errors[0]
    );
}

#[track_caller]
pub fn assert_success(o: &Output) {
    assert!(
        o.status.success(),
        "cgcloud failed ({:?}); stderr: {}; stdout: {}",
        o.status.code(),
        stderr(o),
        stdout(o)
    );
}

/// Makes an SSH key pair of `kind` (rsa, ed25519) in `dir` with ssh-keygen; returns the
/// private key's path (the public one is next to it with `.pub`).
pub fn ssh_keygen(dir: &Path, name: &str, kind: &str) -> PathBuf {
    let path = dir.join(name);
    let mut c = Command::new("ssh-keygen");
    c.args([
        "-q",
        "-N",
        "",
        "-C",
        &format!("{name}@test"),
        "-t",
        kind,
        "-f",
    ])
    .arg(&path);
    if kind == "rsa" {
        c.args(["-b", "2048"]);
    }
    let o = run(c);
    assert!(o.status.success(), "ssh-keygen failed: {}", stderr(&o));
    path
}

impl World {
    /// Any image moto ships (owned by Amazon), to launch test instances from.
    pub fn any_public_ami(&self) -> String {
        let body = self.ec2(&[("Action", "DescribeImages"), ("Owner.1", "amazon")]);
        xml_field(&body, "imageId").expect("moto ships Amazon images")
    }

    /// Launches an instance tagged `Name=name_tag` plus `tags`; returns its ID.
    /// Launches are at least a second apart (from one's return to the next's start), so that
    /// launch times (whole seconds) order them.
    pub fn launch(&self, name_tag: &str, tags: &[(&str, &str)]) -> String {
        if let Some(last) = self.last_launch.get() {
            let gap = std::time::Duration::from_millis(1050);
            if let Some(rest) = gap.checked_sub(last.elapsed()) {
                std::thread::sleep(rest);
            }
        }
        let ami = self.any_public_ami();
        let mut pairs: Vec<(String, String)> = vec![
            ("Action".into(), "RunInstances".into()),
            ("ImageId".into(), ami),
            ("MinCount".into(), "1".into()),
            ("MaxCount".into(), "1".into()),
            ("InstanceType".into(), "t3.micro".into()),
            ("Placement.AvailabilityZone".into(), ZONE.into()),
            ("TagSpecification.1.ResourceType".into(), "instance".into()),
            ("TagSpecification.1.Tag.1.Key".into(), "Name".into()),
            ("TagSpecification.1.Tag.1.Value".into(), name_tag.into()),
        ];
        for (n, (k, v)) in tags.iter().enumerate() {
            pairs.push((
                format!("TagSpecification.1.Tag.{}.Key", n + 2),
                k.to_string(),
            ));
            pairs.push((
                format!("TagSpecification.1.Tag.{}.Value", n + 2),
                v.to_string(),
            ));
        }
        let refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let body = self.ec2(&refs);
        // The gap counts from when RunInstances returned: on a loaded machine a slow call could
        // otherwise be stamped later than the next one.
        self.last_launch.set(Some(std::time::Instant::now()));
        xml_field(&body, "instanceId").expect("RunInstances returns an instance")
    }

    /// The IDs of the instances that are not terminated (pending to stopped), sorted; only those
    /// whose `cgcloud:namespace` tag is `namespace` if given.
    pub fn live_instance_ids(&self, namespace: Option<&str>) -> Vec<String> {
        let tag_filter = "tag:cgcloud:namespace";
        let mut pairs = vec![
            ("Action", "DescribeInstances"),
            ("Filter.1.Name", "instance-state-name"),
            ("Filter.1.Value.1", "pending"),
            ("Filter.1.Value.2", "running"),
            ("Filter.1.Value.3", "stopping"),
            ("Filter.1.Value.4", "stopped"),
        ];
        if let Some(ns) = namespace {
            pairs.extend([("Filter.2.Name", tag_filter), ("Filter.2.Value.1", ns)]);
        }
        let mut ids = xml_fields(&self.ec2(&pairs), "instanceId");
        ids.sort();
        ids.dedup();
        ids
    }

    /// The URLs of the account's SQS queues in us-east-1.
    pub fn queue_urls(&self) -> Vec<String> {
        let body = self
            .moto
            .call_in(
                &self.account.id,
                "us-east-1",
                "sqs",
                &form(&[("Action", "ListQueues")]),
            )
            .unwrap_or_else(|e| panic!("ListQueues: {e}"));
        xml_fields(&body, "QueueUrl")
    }

    /// The endpoints of the account's SNS subscriptions in us-east-1.
    pub fn subscription_endpoints(&self) -> Vec<String> {
        let body = self
            .moto
            .call_in(
                &self.account.id,
                "us-east-1",
                "sns",
                &form(&[("Action", "ListSubscriptions")]),
            )
            .unwrap_or_else(|e| panic!("ListSubscriptions: {e}"));
        xml_fields(&body, "Endpoint")
    }

    /// The state name of an instance, as EC2 reports it.
    pub fn instance_state(&self, id: &str) -> String {
        let body = self.ec2(&[("Action", "DescribeInstances"), ("InstanceId.1", id)]);
        let state = body
            .split("<instanceState>")
            .nth(1)
            .expect("an instanceState");
        xml_field(state, "name").expect("a state name")
    }
}

/// The user data in an EC2 `DescribeInstanceAttribute` (`Attribute=userData`) response,
/// decoded (by coreutils' `base64`, independently of cgcloud).
pub fn user_data_in(body: &str) -> String {
    use std::io::Write as _;
    let encoded = xml_field(body.split("<userData>").nth(1).unwrap_or_default(), "value")
        .unwrap_or_else(|| panic!("no user data in: {body}"));
    let mut child = Command::new("base64")
        .arg("-d")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("base64 runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(encoded.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("base64 finishes");
    assert!(out.status.success(), "base64 -d failed on {encoded}");
    String::from_utf8(out.stdout).expect("user data is text")
}

/// `<type> <base64>` of an OpenSSH public key line (its comment dropped).
pub fn key_part(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}
