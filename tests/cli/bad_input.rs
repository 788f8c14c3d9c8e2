//! Bad input of every class, as a careless or hostile user gives it, one row a class: each run
//! ends with exit status 255 and exactly one `ERROR:` line naming what was wrong, prints nothing
//! on stdout, never panics, takes seconds at most, stays within 1 GiB of address space (`prlimit`,
//! so that reading a device or a huge file would fail the run), and the account holds nothing
//! new afterwards: no instance, security group, IAM role or instance profile, key pair.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use cgcloud_tests::*;

use crate::preflight::{release_agent, Person};

const ROLE: &str = "generic-debian-bookworm-box";

/// The address space a run may use.
const MEMORY: u64 = 1 << 30;

/// `c` run under `prlimit --as=MEMORY`, with the same arguments and environment.
fn bounded(c: &Command) -> Output {
    let mut b = Command::new("prlimit");
    b.arg(format!("--as={MEMORY}"))
        .arg("--")
        .arg(c.get_program())
        .args(c.get_args())
        .env_clear()
        .stdin(std::process::Stdio::null());
    for (k, v) in c.get_envs() {
        if let Some(v) = v {
            b.env(k, v);
        }
    }
    run(b)
}

/// What the account holds that a run could have made.
fn holdings(p: &Person) -> Vec<String> {
    let w = &p.w;
    let mut all = w.live_instance_ids(None);
    let groups = w.ec2(&[("Action", "DescribeSecurityGroups")]);
    all.extend(xml_fields(&groups, "groupName"));
    for (action, field) in [
        ("ListRoles", "RoleName"),
        ("ListInstanceProfiles", "InstanceProfileName"),
    ] {
        let body = w
            .moto
            .iam(
                &w.account.id,
                &form(&[("Action", action), ("Version", "2010-05-08")]),
            )
            .unwrap();
        all.extend(xml_fields(&body, field));
    }
    let pairs = w.ec2(&[("Action", "DescribeKeyPairs")]);
    all.extend(xml_fields(&pairs, "keyName"));
    all.sort();
    all
}

#[test]
fn every_class_of_bad_input_is_refused_with_one_line_before_anything_is_made() {
    let p = Person::new("bea");
    p.put_agent("x86_64", &release_agent());
    let fifo = p.w.home.path().join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let fifo = fifo.to_str().unwrap();
    let key = p.key.with_extension("pub");
    let key = key.to_str().unwrap();
    let long_ns = format!("/{}/", "a".repeat(300));
    let long_name = "k".repeat(1000);
    // (class, arguments, environment, what the error line says)
    type Row<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let rows: Vec<Row> = vec![
        (
            "wait overflowing",
            vec!["create", ROLE],
            vec![("CGCLOUD_TIMEOUT_RUNNING", "18446744073709551615")],
            "CGCLOUD_TIMEOUT_RUNNING must be a whole number of seconds",
        ),
        (
            "wait not a number",
            vec!["create", ROLE],
            vec![("CGCLOUD_TIMEOUT_SSH", "soon")],
            "CGCLOUD_TIMEOUT_SSH must be",
        ),
        (
            "interval zero",
            vec!["create", ROLE],
            vec![("CGCLOUD_AGENT_INTERVAL", "0")],
            "CGCLOUD_AGENT_INTERVAL must be",
        ),
        (
            "spot bid NaN",
            vec!["create", ROLE, "--spot-bid", "NaN"],
            vec![],
            "--spot-bid must be a price",
        ),
        (
            "spot bid infinite",
            vec!["create", ROLE, "--spot-bid", "inf"],
            vec![],
            "--spot-bid must be a price",
        ),
        (
            "instance type",
            vec!["create", ROLE, "-t", "x y"],
            vec![],
            "is not an EC2 instance type",
        ),
        (
            "volume type",
            vec!["create", ROLE, "--root-volume-type", "bogus"],
            vec![],
            "is not an EBS volume type",
        ),
        (
            "namespace too long for AWS names",
            vec!["create", ROLE, "-n", &long_ns],
            vec![],
            "longer than IAM allows",
        ),
        (
            "namespace characters",
            vec!["create", ROLE, "-n", "/a b/"],
            vec![],
            "invalid namespace",
        ),
        (
            "key pair name with a control character",
            vec!["register-key", key, "-k", "bad\u{1}name"],
            vec![],
            "cannot name a key pair",
        ),
        (
            "key pair name not ASCII",
            vec!["register-key", key, "-k", "ключ"],
            vec![],
            "cannot name a key pair",
        ),
        (
            "key pair name of 1000 characters",
            vec!["register-key", key, "-k", &long_name],
            vec![],
            "cannot name a key pair",
        ),
        (
            "key file a device",
            vec!["register-key", "/dev/zero"],
            vec![],
            "not a regular file",
        ),
        (
            "key file a FIFO",
            vec!["register-key", fifo],
            vec![],
            "not a regular file",
        ),
        (
            "configuration file a FIFO",
            vec!["create", ROLE],
            vec![("CGCLOUD_CONFIG", fifo)],
            "not a regular file",
        ),
        (
            "configuration file a device",
            vec!["create", ROLE],
            vec![("CGCLOUD_CONFIG", "/dev/zero")],
            "not a regular file",
        ),
        (
            "plugin a FIFO",
            vec!["--plugin", fifo, "create", ROLE],
            vec![],
            "is not a plugin",
        ),
        (
            "plugin a device",
            vec!["--plugin", "/dev/null", "create", ROLE],
            vec![],
            "is not a plugin",
        ),
        (
            "plugin path a FIFO",
            vec!["create", ROLE],
            vec![("CGCLOUD_PLUGIN_PATH", fifo)],
            "is not a plugin",
        ),
    ];
    let before = holdings(&p);
    for (class, args, env, says) in &rows {
        let mut c = p.w.cgcloud(args);
        c.env("CGCLOUD_DATA_DIR", p.data_dir())
            .env("CGCLOUD_SSH_KEY", &p.key);
        for (k, v) in env {
            c.env(k, v);
        }
        let started = Instant::now();
        let o = bounded(&c);
        let took = started.elapsed();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(255), "{class}: {err}");
        let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("ERROR: ")).collect();
        assert_eq!(errors.len(), 1, "{class}: one error line: {err}");
        assert!(errors[0].contains(says), "{class}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("memory allocation"),
            "{class}: {err}"
        );
        assert!(stdout(&o).is_empty(), "{class}: {}", stdout(&o));
        // What the user typed comes back escaped: no control character reaches the terminal.
        assert!(
            err.chars().all(|c| c == '\n' || !c.is_control()),
            "{class}: {err:?}"
        );
        assert!(took < Duration::from_secs(20), "{class}: {took:?}");
    }
    assert_eq!(holdings(&p), before, "nothing was made");
}
