//! Configuration errors are errors (one line naming the file and line, or the variable, the
//! key and what is accepted), `cgcloud config` shows every value with where it came from, and
//! the completion scripts and manual pages cover every command.

use std::path::Path;
use std::process::{Command, Output};

use cgcloud_tests::*;
use serde_json::Value;

fn cgcloud_in(home: &Path, args: &[&str], config: Option<&str>, env: &[(&str, &str)]) -> Output {
    if let Some(text) = config {
        std::fs::write(home.join("cgcloud.toml"), text).unwrap();
    }
    let mut c = bare_cgcloud(home, args);
    for (k, v) in env {
        c.env(k, v);
    }
    run(c)
}

/// The commands `cgcloud --help` lists.
fn commands(home: &Path) -> Vec<String> {
    let o = run(bare_cgcloud(home, &["--help"]));
    assert_success(&o);
    let text = stdout(&o);
    let listing = text
        .split("Commands:")
        .nth(1)
        .expect("a command list")
        .split("Options:")
        .next()
        .unwrap()
        .to_string();
    listing
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect()
}

/// A configuration file (if any), environment values, and what the error line must contain.
type Case<'a> = (Option<&'a str>, &'a [(&'a str, &'a str)], &'a [&'a str]);

#[test]
fn bad_configuration_values_stop_every_command_with_one_line() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("cgcloud.toml");
    let file = file.to_str().unwrap();
    let cases: &[Case] = &[
        (Some("[timeouts]\nssh = \"soon\"\n"), &[], &[file, "line 2", "whole number of seconds from 1 to 604800"]),
        (Some("[timeouts]\nssh = 0\n"), &[], &[file, "line 2", "from 1 to 604800"]),
        (Some("# a comment\n[timeouts]\nssh = 18446744073709551615\n"), &[], &[file, "line 3"]),
        (Some("[timeouts]\nshh = 5\n"), &[], &[file, "line 2", "unknown wait `shh`", "ssh"]),
        (Some("zone = \"us-west-2a\"\n"), &[], &[file, "line 1", "unknown field `zone`", "ssh_config"]),
        (Some("[plugins]\npaths = \"/opt\"\n"), &[], &[file, "line 2", "invalid type"]),
        (Some("[plugins\n"), &[], &[file, "line 1"]),
        (Some("ssh_config = 5\n"), &[], &[file, "line 1", "invalid type"]),
        (None, &[("CGCLOUD_TIMEOUT_SSH", "soon")], &["CGCLOUD_TIMEOUT_SSH must be a whole number of seconds from 1 to 604800, not `soon`"]),
        (None, &[("CGCLOUD_TIMEOUT_RUNNING", "9223372036854775808")], &["CGCLOUD_TIMEOUT_RUNNING must be"]),
        (None, &[("CGCLOUD_TIMEOUT_STOP", "-5")], &["CGCLOUD_TIMEOUT_STOP must be"]),
        (None, &[("CGCLOUD_TIMEOUT_SHH", "5")], &["`CGCLOUD_TIMEOUT_SHH` is not a wait cgcloud knows", "CGCLOUD_TIMEOUT_SSH"]),
        (None, &[("CGCLOUD_AGENT_INTERVAL", "0")], &["CGCLOUD_AGENT_INTERVAL must be a number of seconds from 1 to 86400"]),
        (None, &[("CGCLOUD_CONFIG", "/dev/zero")], &["`/dev/zero`", "not a regular file"]),
        (None, &[("CGCLOUD_CONFIG", "/")], &["`/`", "a directory"]),
    ];
    for (config, env, needles) in cases {
        let _ = std::fs::remove_file(home.path().join("cgcloud.toml"));
        // Commands that need no AWS and one that does: the check comes first for all.
        for args in [
            &["list-roles"][..],
            &["config", "--offline"][..],
            &["list", "some-role"][..],
        ] {
            let started = std::time::Instant::now();
            let o = cgcloud_in(home.path(), args, *config, env);
            for needle in *needles {
                assert_user_error(&o, needle);
            }
            assert!(stdout(&o).is_empty(), "{args:?} printed: {}", stdout(&o));
            assert!(
                started.elapsed().as_secs() < 10,
                "{args:?} {env:?} took {:?}",
                started.elapsed()
            );
        }
    }
}

#[test]
fn a_fifo_as_configuration_file_does_not_hang() {
    let home = tempfile::tempdir().unwrap();
    let fifo = home.path().join("fifo");
    let o = run({
        let mut c = Command::new("mkfifo");
        c.arg(&fifo);
        c
    });
    assert_success(&o);
    let started = std::time::Instant::now();
    let o = cgcloud_in(
        home.path(),
        &["list-roles"],
        None,
        &[("CGCLOUD_CONFIG", fifo.to_str().unwrap())],
    );
    assert_user_error(&o, "not a regular file");
    assert!(started.elapsed().as_secs() < 10);
}

#[test]
fn config_shows_each_value_and_where_it_came_from() {
    let home = tempfile::tempdir().unwrap();
    let text = "ssh_config = \"~/my_ssh_config\"\n[timeouts]\nssh = 900\nstop = 60\n";
    let env = [
        ("CGCLOUD_ZONE", "us-west-2b"),
        ("CGCLOUD_TIMEOUT_STOP", "120"),
        ("CGCLOUD_ME", "alice"),
        ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEY1234"),
        ("AWS_SECRET_ACCESS_KEY", "never-shown-secret"),
    ];
    let o = cgcloud_in(
        home.path(),
        &["config", "--offline", "--json"],
        Some(text),
        &env,
    );
    assert_success(&o);
    assert!(
        !stdout(&o).contains("never-shown-secret") && !stderr(&o).contains("never-shown-secret")
    );
    let rows: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let get = |setting: &str| -> (String, String) {
        let r = rows
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["setting"] == setting)
            .unwrap_or_else(|| panic!("no `{setting}` in {rows}"));
        (
            r["value"].as_str().unwrap().to_string(),
            r["from"].as_str().unwrap().to_string(),
        )
    };
    let file = home.path().join("cgcloud.toml").display().to_string();
    assert_eq!(get("config file"), (file.clone(), "CGCLOUD_CONFIG".into()));
    assert_eq!(get("zone"), ("us-west-2b".into(), "CGCLOUD_ZONE".into()));
    assert_eq!(get("region"), ("us-west-2".into(), "the zone".into()));
    assert_eq!(get("namespace"), ("/__me__/".into(), "default".into()));
    assert_eq!(get("__me__"), ("alice".into(), "CGCLOUD_ME".into()));
    assert!(
        get("credentials").0.contains("AWS_ACCESS_KEY_ID …1234"),
        "{:?}",
        get("credentials")
    );
    assert_eq!(get("timeout ssh"), ("900s".into(), file.clone()));
    assert_eq!(
        get("timeout stop"),
        ("120s".into(), "CGCLOUD_TIMEOUT_STOP".into())
    );
    assert_eq!(get("timeout running"), ("600s".into(), "default".into()));
    assert_eq!(
        get("ssh config"),
        (
            home.path().join("my_ssh_config").display().to_string(),
            file
        )
    );
    assert_eq!(get("data directory").1, "default");
    let arm = get("agent for arm64 boxes").0;
    assert!(arm.starts_with("missing: build one with `cargo build --profile agent -p cgcloud-agent --target aarch64-unknown-linux-gnu`"), "{arm}");
    // The table form has the same rows.
    let o = cgcloud_in(home.path(), &["config", "--offline"], None, &env);
    assert_success(&o);
    assert!(
        stdout(&o).starts_with("setting\tvalue\tfrom\n"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn completions_cover_every_command_and_the_role_names() {
    let home = tempfile::tempdir().unwrap();
    let commands = commands(home.path());
    assert!(
        commands.len() >= 30 && commands.contains(&"create".to_string()),
        "{commands:?}"
    );
    for shell in ["bash", "zsh", "fish"] {
        let o = cgcloud_in(home.path(), &["completions", shell], None, &[]);
        assert_success(&o);
        let script = stdout(&o);
        for cmd in &commands {
            assert!(
                script.contains(cmd.as_str()),
                "{shell} completions lack `{cmd}`"
            );
        }
        assert!(
            script.contains("generic-debian-bookworm-box"),
            "{shell} completions complete role names"
        );
    }
    // bash accepts the script, and completes a role after `cgcloud ssh`.
    let o = run({
        let mut c = Command::new("bash");
        c.arg("-c").arg(
            "source /dev/stdin; COMP_WORDS=(cgcloud ssh generic-debian-b); COMP_CWORD=2; _cgcloud cgcloud generic-debian-b ssh; \
             printf '%s\\n' \"${COMPREPLY[@]}\"",
        );
        c.stdin(
            std::fs::File::open({
                let p = home.path().join("completions.bash");
                std::fs::write(
                    &p,
                    stdout(&cgcloud_in(
                        home.path(),
                        &["completions", "bash"],
                        None,
                        &[],
                    )),
                )
                .unwrap();
                p
            })
            .unwrap(),
        );
        c
    });
    assert_success(&o);
    assert!(
        stdout(&o)
            .lines()
            .any(|l| l == "generic-debian-bookworm-box"),
        "bash completed: {}",
        stdout(&o)
    );
}

#[test]
fn manual_pages_render_for_every_command() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("man1");
    let o = cgcloud_in(
        home.path(),
        &["man", "--out-dir", dir.to_str().unwrap()],
        None,
        &[],
    );
    assert_success(&o);
    let mut pages = vec!["cgcloud".to_string()];
    pages.extend(
        commands(home.path())
            .into_iter()
            .map(|c| format!("cgcloud-{c}")),
    );
    for page in &pages {
        let path = dir.join(format!("{page}.1"));
        assert!(path.is_file(), "no page `{}`", path.display());
        let o = run({
            let mut c = Command::new("man");
            c.arg("-l")
                .arg("-P")
                .arg("cat")
                .arg(&path)
                .env("MANWIDTH", "100")
                .env("LC_ALL", "C.UTF-8");
            c
        });
        assert_success(&o);
        let text = stdout(&o);
        assert!(
            text.contains("NAME") && text.contains(page.as_str()),
            "`man -l {page}.1` rendered: {text}"
        );
    }
    let create = std::fs::read_to_string(dir.join("cgcloud-create.1")).unwrap();
    assert!(
        create.contains("boot\\-image") || create.contains("boot-image"),
        "create's page lists its options"
    );
    // One page to stdout.
    let o = cgcloud_in(home.path(), &["man", "ssh"], None, &[]);
    assert_success(&o);
    assert!(stdout(&o).starts_with(".ie"), "{}", stdout(&o));
    let o = cgcloud_in(home.path(), &["man", "no-such-command"], None, &[]);
    assert_user_error(&o, "there is no command `no-such-command`");
}

#[test]
fn an_endpoint_that_never_answers_fails_within_the_api_wait() {
    // Accepts every connection and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in silent.incoming() {
            held.push(c);
        }
    });
    let home = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let o = cgcloud_in(
        home.path(),
        &["list", "generic-debian-trixie-box"],
        None,
        &[
            ("AWS_ENDPOINT_URL", &endpoint),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("CGCLOUD_ZONE", "us-west-2a"),
            ("CGCLOUD_ME", "probe"),
            ("CGCLOUD_TIMEOUT_API", "1"),
        ],
    );
    assert_user_error(&o, "AWS did not answer in time");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}
