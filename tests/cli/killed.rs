//! `kill -9` of cgcloud at many points of `create`, `image` and `create-cluster`. Each run goes
//! through its own fault proxy (`cgcloud_moto::faults`), which lets the call chosen as the kill
//! point take effect at moto and holds its answer: the run is killed right after that call did
//! its work and before cgcloud learnt of it, the worst moment. Once the killed runs' claims ran
//! out, `list` and `list-images` call what they made abandoned and `cleanup -y` removes all of
//! it — instances, agent queues and their subscriptions, host-key pins, half-made images and
//! their snapshots — and nothing else: not a box made by hand, not another namespace's, not
//! what a finished run made.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use cgcloud_moto::faults::{Fault, FaultProxy, Rule};
use cgcloud_tests::*;
use serde_json::Value;

use crate::preflight::{moto_with_base_images, release_agent, Person};

const ROLE: &str = "generic-debian-bookworm-box";
const OWNER: &str = "cgcloud:namespace";
/// The claim of the runs here, in seconds: renewed every 4 s, well after the calls chosen as
/// kill points.
const LEASE: u64 = 12;

/// Where a run is killed.
#[derive(Clone, Copy, Debug)]
enum Point {
    /// Once the `n`th request for an action took effect at moto (its answer held).
    Call(&'static str, u32),
    /// While SSH is being tried: the ProxyCommand of the run's SSH configuration ran.
    Ssh,
    /// Not killed: the run finishes.
    Never,
}

/// A run of cgcloud through a proxy of its own.
struct Run {
    child: Child,
    proxy: FaultProxy,
    point: Point,
    marker: PathBuf,
}

/// Starts `cgcloud ARGS…` as `p`, through a new proxy that holds the answer of `point`.
fn start(p: &Person, n: usize, args: &[&str], point: Point) -> Run {
    let proxy = FaultProxy::start(moto_with_base_images().port(), n as u64 + 1)
        .unwrap_or_else(|e| panic!("{e}"));
    if let Point::Call(action, nth) = point {
        proxy.add(Rule::nth(nth, action, Fault::Stall));
    }
    // SSH never reaches a box: the ProxyCommand leaves a mark and waits (bounded), and no
    // address is ever contacted.
    let marker = p.w.home.path().join(format!("ssh-tried-{n}"));
    let ssh_config = p.w.home.path().join(format!("ssh-{n}.config"));
    std::fs::write(
        &ssh_config,
        format!(
            "Host *\n  ProxyCommand sh -c 'echo > {}; exec sleep 60'\n",
            marker.display()
        ),
    )
    .unwrap();
    let mut c = p.w.cgcloud(args);
    c.env("CGCLOUD_DATA_DIR", p.data_dir())
        .env("CGCLOUD_SSH_KEY", &p.key)
        .env("CGCLOUD_SSH_CONFIG", &ssh_config)
        .env("CGCLOUD_TIMEOUT_LEASE", LEASE.to_string())
        .env("AWS_ENDPOINT_URL", proxy.endpoint())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c.spawn().unwrap_or_else(|e| panic!("cgcloud: {e}"));
    Run {
        child,
        proxy,
        point,
        marker,
    }
}

impl Run {
    /// Waits for the run's kill point and kills it with SIGKILL; a run with no kill point is
    /// waited for and must succeed. Returns the actions the run called, in order.
    fn finish(mut self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(90);
        let reached = || match self.point {
            Point::Call(action, _) => self.proxy.stalled(action) >= 1,
            Point::Ssh => self.marker.exists(),
            Point::Never => true,
        };
        while !reached() {
            if let Ok(Some(status)) = self.child.try_wait() {
                let o = self.child.wait_with_output().unwrap();
                panic!(
                    "the run ended ({status}) before {:?}: {}\ncalls: {:?}",
                    self.point,
                    stderr(&o),
                    self.proxy.history()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{:?} not reached; calls: {:?}",
                self.point,
                self.proxy.history()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        if matches!(self.point, Point::Never) {
            let o = self.child.wait_with_output().unwrap();
            assert_success(&o);
        } else {
            self.child.kill().unwrap();
            self.child.wait().unwrap();
        }
        self.proxy.history()
    }
}

/// The IDs of the instances tagged with namespace `ns` that are not terminated.
fn ids_in(p: &Person, ns: &str) -> Vec<String> {
    p.w.live_instance_ids(Some(ns))
}

/// What `list ROLE --json` says of each box's set-up.
fn setup_states(p: &Person, args: &[&str]) -> Vec<(String, String)> {
    let o = p.run(args, &[]);
    assert_success(&o);
    let rows: Value = serde_json::from_str(&stdout(&o)).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["instance_id"]
                    .as_str()
                    .or(r["id"].as_str())
                    .unwrap()
                    .to_string(),
                r["setup"].as_str().unwrap_or("none").to_string(),
            )
        })
        .collect()
}

fn pins(p: &Person) -> String {
    std::fs::read_to_string(p.data_dir().join("known_hosts")).unwrap_or_default()
}

/// Sleeps until the claims of runs killed at `killed_at` ran out.
fn until_claims_ran_out(killed_at: Instant) {
    let until = killed_at + Duration::from_secs(LEASE + 2);
    std::thread::sleep(until.saturating_duration_since(Instant::now()));
}

#[test]
fn create_killed_at_ten_points_leaves_nothing_that_cleanup_does_not_remove() {
    use Point::*;
    let p = Person::new("erin");
    p.put_agent("x86_64", &release_agent());
    // From right after RunInstances, through the box's tags and its agent wiring, to waiting
    // for the box and for SSH.
    let points = [
        Call("RunInstances", 1),
        Call("CreateTags", 1),
        Call("CreateTopic", 1),
        Call("CreateQueue", 1),
        Call("TagQueue", 1),
        Call("SetQueueAttributes", 1),
        Call("Subscribe", 1),
        Call("TagQueue", 2),
        // The first looks for instances launched twice, right after RunInstances.
        Call("DescribeInstances", 2),
        Ssh,
    ];
    // What cleanup must leave alone: a box of the role made by hand in the namespace, and a
    // run killed the same way in another namespace.
    let by_hand = p.w.launch(&format!("erin_{ROLE}"), &[(OWNER, "/erin/")]);
    let mut runs: Vec<Run> = points
        .iter()
        .enumerate()
        .map(|(n, point)| start(&p, n, &["create", ROLE], *point))
        .collect();
    runs.push(start(
        &p,
        points.len(),
        &["create", ROLE, "-n", "/frank/"],
        Call("Subscribe", 1),
    ));
    for r in runs {
        let calls = r.finish();
        assert_eq!(
            calls.iter().filter(|a| *a == "RunInstances").count(),
            1,
            "{calls:?}"
        );
    }
    let killed_at = Instant::now();
    let theirs = ids_in(&p, "/frank/");
    assert_eq!(theirs.len(), 1);
    let killed: Vec<String> = ids_in(&p, "/erin/")
        .into_iter()
        .filter(|id| id != &by_hand)
        .collect();
    assert_eq!(killed.len(), points.len(), "one box a killed run");
    // Every killed run but the one killed before it learnt its box's ID pinned its host key.
    let pinned = pins(&p);
    assert_eq!(
        killed
            .iter()
            .filter(|id| pinned.contains(id.as_str()))
            .count(),
        killed.len() - 1,
        "{pinned}"
    );

    until_claims_ran_out(killed_at);
    let mut want: Vec<(String, String)> = killed
        .iter()
        .map(|id| (id.clone(), "abandoned".to_string()))
        .chain([(by_hand.clone(), "none".to_string())])
        .collect();
    want.sort();
    let mut states = setup_states(&p, &["list", ROLE, "--json"]);
    states.sort();
    assert_eq!(states, want);

    let o = p.run(&["cleanup", "-y"], &[]);
    assert_success(&o);
    for id in &killed {
        assert!(stdout(&o).contains(id.as_str()), "{id}: {}", stdout(&o));
        assert_eq!(p.w.instance_state(id), "terminated", "{id}");
    }
    assert_eq!(
        ids_in(&p, "/erin/"),
        std::slice::from_ref(&by_hand),
        "the box made by hand stays"
    );
    assert_eq!(
        ids_in(&p, "/frank/"),
        theirs,
        "another namespace's box stays"
    );
    let queues = p.w.queue_urls();
    assert!(
        killed
            .iter()
            .all(|id| !queues.iter().any(|q| q.ends_with(id.as_str()))),
        "{queues:?}"
    );
    assert!(
        queues.iter().any(|q| q.ends_with(theirs[0].as_str())),
        "another namespace's queue stays: {queues:?}"
    );
    let subs = p.w.subscription_endpoints();
    assert!(
        killed
            .iter()
            .all(|id| !subs.iter().any(|s| s.ends_with(id.as_str()))),
        "{subs:?}"
    );
    assert!(
        subs.iter().any(|s| s.ends_with(theirs[0].as_str())),
        "another namespace's subscription stays: {subs:?}"
    );
    let pinned = pins(&p);
    assert!(
        killed.iter().all(|id| !pinned.contains(id.as_str())),
        "{pinned}"
    );
    assert!(pinned.contains(theirs[0].as_str()), "{pinned}");
    // Nothing is left for a second cleanup.
    let o = p.run(&["cleanup", "-y"], &[]);
    assert_success(&o);
    assert!(stderr(&o).contains("nothing to delete"), "{}", stderr(&o));
}

/// The index of the first `action` at or after `from` in `history`.
fn next(history: &[String], from: usize, action: &str) -> usize {
    history[from..]
        .iter()
        .position(|a| a == action)
        .unwrap_or_else(|| panic!("no {action} after call {from} in {history:?}"))
        + from
}

/// The kill point at `history[at]`: that action's occurrence there.
fn point_at(history: &[String], at: usize) -> Point {
    let action: &'static str = Box::leak(history[at].clone().into_boxed_str());
    let nth = history[..=at].iter().filter(|a| *a == action).count() as u32;
    Point::Call(action, nth)
}

fn image_snapshots(p: &Person, image: &str) -> Vec<String> {
    let body =
        p.w.ec2(&[("Action", "DescribeImages"), ("ImageId.1", image)]);
    xml_fields(&body, "snapshotId")
}

fn image_exists(p: &Person, image: &str) -> bool {
    let body =
        p.w.ec2(&[("Action", "DescribeImages"), ("ImageId.1", image)]);
    xml_fields(&body, "imageId").contains(&image.to_string())
}

fn snapshot_exists(p: &Person, id: &str) -> bool {
    p.w.ec2_lists(
        "DescribeSnapshots",
        "SnapshotId.1",
        id,
        "snapshotId",
        "InvalidSnapshot.NotFound",
    )
}

/// This account's images with the namespace's name prefix.
fn images_named(p: &Person, prefix: &str) -> Vec<String> {
    let body = p.w.ec2(&[
        ("Action", "DescribeImages"),
        ("Owner.1", "self"),
        ("Filter.1.Name", "name"),
        ("Filter.1.Value.1", &format!("{prefix}*")),
    ]);
    let mut ids = xml_fields(&body, "imageId");
    ids.sort();
    ids
}

#[test]
fn image_killed_half_way_leaves_an_image_cleanup_deregisters_with_its_snapshots() {
    let p = Person::new("hana");
    let box_id = p.w.launch(
        &format!("hana_{ROLE}"),
        &[(OWNER, "/hana/"), ("generation", "0")],
    );
    p.w.ec2(&[("Action", "StopInstances"), ("InstanceId.1", &box_id)]);
    let image = ["image", ROLE, "--force"];
    // A run left alone, to learn the calls `image` makes.
    let h = start(&p, 0, &image, Point::Never).finish();
    let finished = images_named(&p, "hana_");
    assert_eq!(finished.len(), 1, "{finished:?}");
    let made = next(&h, 0, "CreateImage");
    let waited = next(&h, made, "DescribeImages");
    let tagged = next(&h, waited, "CreateTags");
    let listed = next(&h, tagged, "DescribeImages");
    let marked = next(&h, listed, "CreateTags");
    let abandoning = [made, waited, tagged, listed];
    let mut before = finished.clone();
    let mut abandoned = Vec::new();
    for (n, at) in abandoning.iter().chain([&marked]).enumerate() {
        // Image names carry the time to the second: one run a second.
        std::thread::sleep(Duration::from_millis(1100));
        start(&p, n + 1, &image, point_at(&h, *at)).finish();
        let now = images_named(&p, "hana_");
        let new: Vec<String> = now
            .iter()
            .filter(|i| !before.contains(i))
            .cloned()
            .collect();
        assert_eq!(new.len(), 1, "killed at call {at} of {h:?}: {now:?}");
        if *at != marked {
            abandoned.push(new[0].clone());
        }
        before = now;
    }
    let killed_at = Instant::now();
    let kept_after_mark = before
        .iter()
        .find(|i| !finished.contains(i) && !abandoned.contains(i))
        .unwrap()
        .clone();
    let snaps: Vec<(String, Vec<String>)> = abandoned
        .iter()
        .map(|i| (i.clone(), image_snapshots(&p, i)))
        .collect();
    assert!(snaps.iter().all(|(_, s)| !s.is_empty()), "{snaps:?}");

    // While the killed runs' claims last their images are being made; then abandoned.
    let states = setup_states(&p, &["list-images", ROLE, "--json"]);
    for (id, state) in &states {
        let want = if abandoned.contains(id) {
            "setting-up"
        } else {
            "ready"
        };
        assert_eq!(state, want, "{id}: {states:?}");
    }
    until_claims_ran_out(killed_at);
    let states = setup_states(&p, &["list-images", ROLE, "--json"]);
    for (id, state) in &states {
        let want = if abandoned.contains(id) {
            "abandoned"
        } else {
            "ready"
        };
        assert_eq!(state, want, "{id}: {states:?}");
    }
    let o = p.run(&["list-images", ROLE], &[]);
    assert!(stderr(&o).contains("was never finished"), "{}", stderr(&o));
    // A half-made image is never booted.
    let o = p.run(&["recreate", ROLE, "-i", &abandoned[0]], &[]);
    assert_user_error(&o, "was never finished");
    assert_eq!(
        ids_in(&p, "/hana/"),
        std::slice::from_ref(&box_id),
        "nothing launched"
    );

    let o = p.run(&["cleanup", "-y"], &[]);
    assert_success(&o);
    for (image, snapshots) in &snaps {
        assert!(
            stdout(&o).contains(image.as_str()),
            "{image}: {}",
            stdout(&o)
        );
        assert!(!image_exists(&p, image), "{image} deregistered");
        for s in snapshots {
            assert!(!snapshot_exists(&p, s), "{s} of {image} deleted");
        }
    }
    for image in [&finished[0], &kept_after_mark] {
        assert!(image_exists(&p, image), "finished image {image} stays");
        for s in image_snapshots(&p, image) {
            assert!(snapshot_exists(&p, &s), "{s} of {image} stays");
        }
    }
    assert_eq!(ids_in(&p, "/hana/"), [box_id], "the imaged box stays");
}

#[test]
fn create_cluster_killed_half_way_leaves_a_whole_cluster_for_cleanup() {
    let p = Person::new("ivan");
    let plugin = crate::boxes::fixture_plugin("hook-recorder");
    let plugin = plugin.to_str().unwrap();
    // The node image the cluster boots, made by `image` of a box of the role.
    let box_id = p.w.launch(
        "ivan_hook-recorder-box",
        &[(OWNER, "/ivan/"), ("generation", "0")],
    );
    p.w.ec2(&[("Action", "StopInstances"), ("InstanceId.1", &box_id)]);
    assert_success(&p.run(
        &["--plugin", plugin, "image", "hook-recorder-box", "--force"],
        &[],
    ));
    p.w.ec2(&[("Action", "TerminateInstances"), ("InstanceId.1", &box_id)]);
    let cluster = [
        "--plugin",
        plugin,
        "create-cluster",
        "recorder-cluster",
        "-s",
        "2",
        "-Q",
    ];
    // A run left alone, to learn the calls of `create-cluster`; its cluster must stay.
    let h = start(&p, 0, &cluster, Point::Never).finish();
    let finished = ids_in(&p, "/ivan/");
    assert_eq!(finished.len(), 3, "{h:?}");
    let states = setup_states(
        &p,
        &["--plugin", plugin, "list", "hook-recorder-box", "--json"],
    );
    assert!(states.iter().all(|(_, s)| s == "ready"), "{states:?}");
    // The leader launched; the leader done and the workers planned; the workers launched; their
    // tags; waiting for the workers.
    let leader = next(&h, 0, "RunInstances");
    let leader_done = next(&h, leader, "DescribeImages");
    let workers = next(&h, leader_done, "RunInstances");
    let tagged = next(&h, workers, "CreateTags");
    let waiting = next(&h, tagged, "DescribeInstances");
    let runs: Vec<Run> = [leader, leader_done, workers, tagged, waiting]
        .iter()
        .enumerate()
        .map(|(n, at)| start(&p, n + 1, &cluster, point_at(&h, *at)))
        .collect();
    for r in runs {
        r.finish();
    }
    let killed_at = Instant::now();
    let killed: Vec<String> = ids_in(&p, "/ivan/")
        .into_iter()
        .filter(|i| !finished.contains(i))
        .collect();
    // 1 leader, 1 leader, 3 nodes, 3 nodes, 3 nodes.
    assert_eq!(killed.len(), 11, "{killed:?}");
    until_claims_ran_out(killed_at);
    let states = setup_states(
        &p,
        &["--plugin", plugin, "list", "hook-recorder-box", "--json"],
    );
    for (id, state) in &states {
        let want = if killed.contains(id) {
            "abandoned"
        } else {
            "ready"
        };
        assert_eq!(state, want, "{id}: {states:?}");
    }
    let o = p.run(&["--plugin", plugin, "cleanup", "-y"], &[]);
    assert_success(&o);
    for id in &killed {
        assert_eq!(p.w.instance_state(id), "terminated", "{id}");
    }
    let mut left = ids_in(&p, "/ivan/");
    left.sort();
    let mut want = finished.clone();
    want.sort();
    assert_eq!(left, want, "the finished cluster stays");
}
