//! The `cgcloud-agent` binary: a real run against moto stopped by SIGTERM, and one-line errors.
#![allow(clippy::unwrap_used)] // A test crate: an unwrap that fails is a failing test.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cgcloud_moto::{form, xml_field, Moto};

const BIN: &str = env!("CARGO_BIN_EXE_cgcloud-agent");
const K1: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPYe5EjA90eBhXVCmc2knswjsuRVOSlKWuLZH3BrPWp4 k1";

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A command that reaches only moto: no profile files, no instance metadata service.
fn agent(moto: &Moto, account: &cgcloud_moto::Account, home: &std::path::Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_ENDPOINT_URL", moto.endpoint())
        .env("AWS_ACCESS_KEY_ID", &account.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &account.secret_access_key)
        .env("AWS_CONFIG_FILE", home.join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("none"))
        .env("AWS_EC2_METADATA_DISABLED", "true");
    c
}

#[test]
fn run_converges_then_stops_cleanly_on_sigterm() {
    let moto = Moto::start().unwrap();
    let account = moto.new_account("alice").unwrap();
    let ec2 = |pairs: &[(&str, &str)]| {
        let mut all = pairs.to_vec();
        all.push(("Version", "2016-11-15"));
        moto.call(&account.id, "ec2", &form(&all)).unwrap()
    };
    ec2(&[
        ("Action", "ImportKeyPair"),
        ("KeyName", "alice"),
        ("PublicKeyMaterial", &b64(K1)),
    ]);
    let ami = xml_field(
        &ec2(&[("Action", "DescribeImages"), ("Owner.1", "amazon")]),
        "imageId",
    )
    .unwrap();
    let run = ec2(&[
        ("Action", "RunInstances"),
        ("ImageId", &ami),
        ("MinCount", "1"),
        ("MaxCount", "1"),
    ]);
    let instance = xml_field(&run, "instanceId").unwrap();
    let home = tempfile::tempdir().unwrap();

    let mut child = agent(&moto, &account, home.path())
        .args([
            "run",
            "-n",
            "/alice/",
            "-z",
            "us-east-1a",
            "-k",
            "alice",
            "--interval",
            "300",
        ])
        .args([
            "--accounts",
            "cgcloud-test-no-such-account",
            "--instance-id",
            &instance,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let tag = loop {
        let tags = ec2(&[
            ("Action", "DescribeTags"),
            ("Filter.1.Name", "resource-id"),
            ("Filter.1.Value.1", &instance),
        ]);
        if tags.contains("cgcloud:keys-hash") {
            break tags;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not acknowledge within 30 s"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the agent exited early"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(tag.contains(&cgcloud_agent::keys_hash([K1])), "{tag}");
    // Let it settle into its long poll, then stop it.
    std::thread::sleep(Duration::from_secs(1));
    let stopped = Instant::now();
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(10),
            "SIGTERM did not stop the agent"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        stopped.elapsed() < Duration::from_secs(3),
        "stopping took {:?}",
        stopped.elapsed()
    );
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.contains("INFO: SIGTERM received"), "{stderr}");
    assert!(
        stderr.contains("there is no account `cgcloud-test-no-such-account` yet"),
        "{stderr}"
    );
}

#[test]
fn bad_options_fail_with_one_line() {
    let home = tempfile::tempdir().unwrap();
    for (args, expected) in [
        (
            vec!["-n", "/Alice/", "-k", "alice"],
            "invalid namespace `/Alice/`",
        ),
        (
            vec!["-n", "/alice/", "-k", "@bad*"],
            "mixes `@` with glob characters",
        ),
        (
            vec!["-n", "/alice/", "-k", "__me__"],
            "CGCLOUD_ME is not set",
        ),
    ] {
        let out = Command::new(BIN)
            .env_clear()
            .env("HOME", home.path())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .args([
                "once",
                "-z",
                "us-east-1a",
                "--accounts",
                "admin",
                "--instance-id",
                "i-12345678",
            ])
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(255), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with("ERROR: ") && stderr.contains(expected),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn policy_and_names_are_printed() {
    let out = Command::new(BIN)
        .args(["policy", "-n", "/alice/"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let policy: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(policy["Version"], "2012-10-17");
    let out = Command::new(BIN)
        .args(["names", "-n", "/a.b/", "--instance-id", "i-12345678"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let ns = cgcloud_common::Namespace::parse("/a.b/").unwrap();
    assert_eq!(
        text,
        format!(
            "topic {}\nqueue {}\n",
            cgcloud_agent::topic_name(&ns),
            cgcloud_agent::queue_name(&ns, "i-12345678").unwrap()
        )
    );
}
