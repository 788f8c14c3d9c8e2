//! The command-line surface: every command of the original is there, with its options.

use cgcloud_tests::*;

const ORIGINAL_COMMANDS: &[&str] = &[
    "list-roles",
    "list-options",
    "create",
    "recreate",
    "start",
    "stop",
    "reboot",
    "terminate",
    "image",
    "show",
    "ssh",
    "rsync",
    "list",
    "list-images",
    "delete-image",
    "register-key",
    "cleanup",
    "update-instance-profile",
    "reset-security",
    "create-cluster",
    "grow-cluster",
    "start-cluster",
    "stop-cluster",
    "terminate-cluster",
    "ssh-cluster",
    "rsync-cluster",
];

fn help(args: &[&str]) -> String {
    let home = tempfile::tempdir().unwrap();
    let o = run(bare_cgcloud(home.path(), args));
    assert_success(&o);
    stdout(&o)
}

#[test]
fn help_lists_every_original_command() {
    let text = help(&["--help"]);
    for cmd in ORIGINAL_COMMANDS {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(&format!("{cmd} "))),
            "`{cmd}` missing from cgcloud --help:\n{text}"
        );
    }
}

#[test]
fn every_command_has_help() {
    for cmd in ORIGINAL_COMMANDS {
        let text = help(&[cmd, "--help"]);
        assert!(
            text.contains("Usage: cgcloud"),
            "no usage for {cmd}: {text}"
        );
    }
}

#[test]
fn create_help_shows_the_original_creation_options() {
    let text = help(&["create", "--help"]);
    for opt in [
        "-z, --zone",
        "-n, --namespace",
        "-k, --keypairs",
        "-t, --instance-type",
        "--virtualization-type",
        "--spot-bid",
        "--vpc",
        "--subnet",
        "--spot-launch-group",
        "--spot-auto-zone",
        "--spot-timeout",
        "--spot-tentative",
        "--list",
        "-O, --option",
        "-T, --terminate",
        "-N, --never-terminate",
        "-i, --boot-image",
        "--no-agent",
        "-I, --create-image",
        "-U, --upgrade",
        "CGCLOUD_ZONE",
        "CGCLOUD_NAMESPACE",
        "CGCLOUD_INSTANCE_TYPE",
        "CGCLOUD_KEYPAIRS",
        "/__me__/",
    ] {
        assert!(
            text.contains(opt),
            "`{opt}` missing from create --help:\n{text}"
        );
    }
}

#[test]
fn instance_commands_take_the_selection_options() {
    for cmd in [
        "start",
        "stop",
        "reboot",
        "terminate",
        "show",
        "ssh",
        "rsync",
        "image",
    ] {
        let text = help(&[cmd, "--help"]);
        for opt in ["-c, --cluster-name", "-o, --ordinal", "-I, --instance-id"] {
            assert!(text.contains(opt), "`{opt}` missing from {cmd} --help");
        }
    }
    for cmd in ["ssh", "rsync"] {
        let text = help(&[cmd, "--help"]);
        for opt in ["-l, --login", "-a, --admin"] {
            assert!(text.contains(opt), "`{opt}` missing from {cmd} --help");
        }
    }
}

#[test]
fn cluster_commands_take_their_options() {
    let text = help(&["create-cluster", "--help"]);
    for opt in [
        "-T, --leader-instance-type",
        "-s, --num-workers",
        "-e, --ebs-volume-size",
        "-D, --leader-on-demand",
        "-S, --share",
        "--num-threads",
        "-c, --cluster-name",
    ] {
        assert!(
            text.contains(opt),
            "`{opt}` missing from create-cluster --help"
        );
    }
    let text = help(&["ssh-cluster", "--help"]);
    for opt in ["-P, --parallel", "-L, --skip-leader"] {
        assert!(
            text.contains(opt),
            "`{opt}` missing from ssh-cluster --help"
        );
    }
}

#[test]
fn global_plugin_option_is_accepted_anywhere() {
    let text = help(&["--help"]);
    assert!(text.contains("--plugin <PATH>"), "{text}");
}

#[test]
fn usage_errors_exit_2() {
    let home = tempfile::tempdir().unwrap();
    // As in the original's test_illegal_argument: a stray positional is a usage error.
    let o = run(bare_cgcloud(
        home.path(),
        &["delete-image", "some-role", "-1"],
    ));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = run(bare_cgcloud(home.path(), &["no-such-command"]));
    assert_eq!(o.status.code(), Some(2));
    let o = run(bare_cgcloud(
        home.path(),
        &["recreate", "r", "-i", "ami-123"],
    ));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("neither an image ordinal"),
        "{}",
        stderr(&o)
    );
    let o = run(bare_cgcloud(
        home.path(),
        &["terminate", "r", "-o", "1", "-I", "i-0123"],
    ));
    assert_eq!(o.status.code(), Some(2), "-o and -I are mutually exclusive");
}

#[test]
fn cluster_commands_name_an_unknown_cluster_type() {
    let w = World::new("alice");
    for args in [
        &["create-cluster", "spark"][..],
        &["grow-cluster", "spark"][..],
        &["stop-cluster", "spark"][..],
    ] {
        let o = w.run(args);
        assert_user_error(&o, "no such role or cluster type: `spark`");
        assert!(stdout(&o).is_empty());
    }
    // A volume size in range does not hide the unknown type.
    let o = w.run(&["create-cluster", "spark", "-e", "10"]);
    assert_user_error(&o, "no such role or cluster type: `spark`");
}

#[test]
fn output_that_cannot_be_written_fails_the_run() {
    let home = tempfile::tempdir().unwrap();
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    for args in [
        &["list-roles"][..],
        &["list-options", "generic-debian-trixie-box"],
        &["--help"],
    ] {
        let mut c = bare_cgcloud(home.path(), args);
        c.stdout(full.try_clone().unwrap());
        let o = run(c);
        assert_eq!(o.status.code(), Some(255), "{args:?}: {}", stderr(&o));
        assert_eq!(
            stderr(&o).trim(),
            "ERROR: failed to write to standard output: No space left on device (os error 28)",
            "{args:?}"
        );
    }
    // A reader that stops early is its own choice: not an error.
    let mut c = bare_cgcloud(home.path(), &["list-roles"]);
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o), "");
}

#[test]
fn control_characters_from_the_command_line_are_escaped() {
    let home = tempfile::tempdir().unwrap();
    let o = run(bare_cgcloud(
        home.path(),
        &["list-options", "bad\u{7}role\u{1b}[2J\u{9b}"],
    ));
    assert_eq!(o.status.code(), Some(255));
    let err = stderr(&o);
    assert!(
        err.contains(r"no such role: `bad\x07role\x1b[2J\u{9b}`"),
        "{err}"
    );
    assert!(!err.chars().any(|c| c.is_control() && c != '\n'), "{err:?}");
    // Usage errors quote what was typed without its escape sequences.
    let o = run(bare_cgcloud(home.path(), &["no\u{1b}]0;title\u{7}such"]));
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("unrecognized subcommand 'nosuch'"), "{err}");
    assert!(!err.chars().any(|c| c.is_control() && c != '\n'), "{err:?}");
}

#[test]
fn volume_sizes_and_flags_are_checked_before_anything_else() {
    let home = tempfile::tempdir().unwrap();
    for size in ["0", "16385"] {
        let o = run(bare_cgcloud(
            home.path(),
            &["create-cluster", "any-type", "-e", size],
        ));
        assert_eq!(o.status.code(), Some(255));
        assert_eq!(
            stderr(&o).trim(),
            format!(
                "ERROR: --ebs-volume-size {size} is out of range: an EBS volume has 1 to 16384 GB"
            )
        );
    }
    let o = run(bare_cgcloud(
        home.path(),
        &["create-cluster", "any-type", "-e", "5", "-Q"],
    ));
    assert_eq!(o.status.code(), Some(255));
    assert!(
        stderr(&o).contains("-Q does not wait for the nodes"),
        "{}",
        stderr(&o)
    );
    let o = run(bare_cgcloud(
        home.path(),
        &["terminate-cluster", "any-type", "-Q", "--delete-volumes"],
    ));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}
