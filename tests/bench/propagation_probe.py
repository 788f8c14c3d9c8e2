"""One trial of the key-propagation benchmark (tests/bench/key_propagation.sh); not run alone.

Does one change to the namespace's key pairs, then probes every box in parallel until the key
has the wanted state on all of them, and prints the trial as one JSON line:

  propagation_probe.py TRIAL.json --key KEY --want accepted|refused --timeout SECONDS
      --watch-key LAUNCH_KEY --box ID ADDRESS SSH_CONFIG [--box …] [--cgcloud CGCLOUD ROLE]
      (--ec2-import NAME PUBLIC_KEY_FILE | --ec2-delete NAME | --run CMD…)

The clock starts when the change returns (`--run`'s command exits, or the EC2 call answers), so
the figure is what a user waits for after the command prompt comes back. A probe is one fresh
`ssh … true` that offers only KEY (no agent, IdentitiesOnly) through cgcloud's own per-box
ssh_config with its IdentityFile lines removed, so the host key is verified as cgcloud does;
with --cgcloud, a probe is `cgcloud ssh ROLE -I ID true` instead. A box counts when a probe ends
in the wanted state: exit 0 (accepted) or `Permission denied` (refused); any other failure
(timeout, connection error) is counted as an error and probing goes on. Each box is probed again
PAUSE after its previous probe ended; each probe is bounded by PROBE_TIMEOUT. So a box's
figure is an upper bound that includes one login; the start of its last refused (for `accepted`)
probe is a lower bound.

Before the change, one login per box in parallel with LAUNCH_KEY (which works already) gives
the baseline: what one login costs at that moment.

A second, finer figure comes from a watcher on each box: one ssh session (with LAUNCH_KEY)
running a shell loop that checks every WATCH_EVERY whether KEY is in the managed account's
`~/.ssh/authorized_keys.cgcloud` and prints each change of state; the line is timed when it
arrives here. The loop ends when its session's stdin closes, so no loop outlives a trial.

Before the change, one probe per box must show the opposite state, or the trial is void (the
probe could not have failed). Exit status: 0 when every box reached the state in time, 1 when
some did not (the JSON says which), 255 on a broken set-up.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

PAUSE = 0.05
PROBE_TIMEOUT = 5.0
CHANGE_TIMEOUT = 120.0
WATCH_EVERY = 0.05
WATCH_START_TIMEOUT = 20.0
MANAGED_FILE = ".ssh/authorized_keys.cgcloud"
# Single quotes only around it: the remote login shell runs `bash -c '<this>' watcher BLOB`.
# `read -t` doubles as the pause and notices the end of stdin (EOF: status 1; timeout: > 128).
WATCH_LOOP = (
    'f=$HOME/' + MANAGED_FILE + '; last=; '
    'while :; do '
    'if grep -qF -e "$1" "$f" 2>/dev/null; then s=present; else s=absent; fi; '
    'if [ "$s" != "$last" ]; then echo "$s"; last=$s; fi; '
    'read -t ' + str(WATCH_EVERY) + ' -r _; [ $? -gt 128 ] || exit 0; '
    'done'
)


def die(msg):
    print(f"ERROR: {msg}", file=sys.stderr)
    sys.exit(255)


def parse():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--key", required=True)
    p.add_argument("--want", choices=["accepted", "refused"], required=True)
    p.add_argument("--timeout", type=float, required=True)
    p.add_argument("--watch-key", required=True)
    p.add_argument("--box", nargs=3, action="append", metavar=("ID", "ADDRESS", "SSH_CONFIG"), required=True)
    p.add_argument("--cgcloud", nargs=2, metavar=("CGCLOUD", "ROLE"))
    change = p.add_mutually_exclusive_group(required=True)
    change.add_argument("--run", nargs=argparse.REMAINDER)
    change.add_argument("--ec2-import", nargs=2, metavar=("NAME", "PUBLIC_KEY_FILE"))
    change.add_argument("--ec2-delete", metavar="NAME")
    return p.parse_args()


def probe_env(key):
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    env["CGCLOUD_SSH_KEY"] = key
    return env


def probe(args, box, env, key=None):
    """One login attempt with KEY (or `key`): ('accepted' | 'refused' | 'error', seconds, detail)."""
    box_id, address, config = box
    if args.cgcloud:
        cmd = [args.cgcloud[0], "ssh", args.cgcloud[1], "-I", box_id, "true"]
    else:
        cmd = ["ssh", "-F", config, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
               "-o", "ConnectTimeout=5", "-i", key or args.key, "-T", "-n", address, "true"]
    start = time.monotonic()
    try:
        r = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=PROBE_TIMEOUT)
    except subprocess.TimeoutExpired:
        return "error", time.monotonic() - start, f"no answer within {PROBE_TIMEOUT} s"
    took = time.monotonic() - start
    if r.returncode < 0:
        # Killed by a signal from outside (Ctrl-C reaches the whole process group): stop now,
        # from any thread, rather than report a broken box.
        print("interrupted", file=sys.stderr)
        os._exit(130)
    err = r.stderr.decode(errors="replace").strip()
    if r.returncode == 0:
        return "accepted", took, ""
    if "Permission denied" in err:
        return "refused", took, ""
    return "error", took, f"exit {r.returncode}: {err.splitlines()[-1] if err else ''}"


def config_without_identities(box, workdir):
    """A copy of cgcloud's ssh_config for the box without IdentityFile, so only KEY is offered."""
    box_id, address, config = box
    try:
        with open(config) as f:
            lines = f.readlines()
    except OSError as e:
        die(f"cannot read cgcloud's ssh_config `{config}` for `{box_id}`: {e}")
    if not any(line.strip() == "StrictHostKeyChecking yes" for line in lines):
        die(f"`{config}` does not pin the host key; refusing to probe `{box_id}` with it")
    path = os.path.join(workdir, f"{box_id}.probe-config")
    with open(path, "w") as f:
        f.writelines(l for l in lines if not l.strip().lower().startswith("identityfile"))
    return (box_id, address, path)


class Watcher:
    """The on-box watcher of one box: the arrival time of each state line it prints."""

    def __init__(self, args, box, blob):
        box_id, address, config = box
        self.box_id = box_id
        env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
        cmd = ["ssh", "-F", config, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
               "-o", "ConnectTimeout=5", "-i", args.watch_key, "-T", address,
               f"bash -c '{WATCH_LOOP}' watcher {blob}"]
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.lines = []  # (monotonic arrival, state)
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for raw in self.proc.stdout:
            with self.cond:
                self.lines.append((time.monotonic(), raw.decode(errors="replace").strip()))
                self.cond.notify_all()

    def first_state(self):
        with self.cond:
            self.cond.wait_for(lambda: self.lines or self.proc.poll() is not None, WATCH_START_TIMEOUT)
            return self.lines[0][1] if self.lines else None

    def reached(self, state, t0):
        """Seconds from t0 to the first line saying `state`, or None."""
        with self.cond:
            return next((t - t0 for t, s in self.lines[1:] if s == state), None)

    def stop(self):
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def error(self):
        return self.proc.stderr.read().decode(errors="replace").strip() if self.proc.stderr else ""


def main():
    args = parse()
    workdir = os.path.dirname(os.path.abspath(args.out))
    boxes = [config_without_identities(b, workdir) for b in args.box]
    env = probe_env(args.key)
    before = "refused" if args.want == "accepted" else "accepted"

    try:
        with open(args.key + ".pub") as f:
            blob = f.read().split()[1]
    except (OSError, IndexError) as e:
        die(f"cannot read the public key `{args.key}.pub`: {e}")

    # The probe must be able to fail: before the change, every box shows the opposite state.
    for b in boxes:
        for _ in range(3):  # a transient connection error is no verdict; ask again
            state, _, detail = probe(args, b, env)
            if state != "error":
                break
            time.sleep(1)
        if state != before:
            die(f"before the change, `{b[0]}` should have {before} the key but the probe gave "
                f"{state} {detail}".rstrip())
    watchers = [Watcher(args, b, blob) for b in boxes]
    in_file = "present" if args.want == "accepted" else "absent"
    for w in watchers:
        first = w.first_state()
        if first is None or first == in_file:
            for x in watchers:
                x.stop()
            die(f"the watcher on `{w.box_id}` should have said the key is "
                f"{'absent' if in_file == 'present' else 'present'} but said {first!r}: {w.error()}")

    # The baseline, side by side: one login per box in parallel with the launch key, which
    # works already, so the login figure below can be read against what a login costs now.
    baseline = {}

    def login_alone(b):
        state, took, _ = probe(args, b, probe_env(args.watch_key), key=args.watch_key)
        baseline[b[0]] = took if state == "accepted" else None

    round_ = [threading.Thread(target=login_alone, args=(b,), daemon=True) for b in boxes]
    for t in round_:
        t.start()
    for t in round_:
        t.join(PROBE_TIMEOUT + 5)

    ec2 = None
    if args.ec2_import or args.ec2_delete:
        import boto3  # only the periodic reference needs it

        ec2 = boto3.client("ec2")
        ec2.describe_key_pairs()  # the client's first call is slow; keep it off the clock
    change_start = time.monotonic()
    if args.run:
        try:
            r = subprocess.run(args.run, stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=CHANGE_TIMEOUT)
        except subprocess.TimeoutExpired:
            die(f"`{' '.join(args.run)}` did not finish within {CHANGE_TIMEOUT} s")
        if r.returncode != 0:
            die(f"`{' '.join(args.run)}` failed (exit {r.returncode}): "
                f"{r.stderr.decode(errors='replace').strip()}")
    elif args.ec2_import:
        name, pub = args.ec2_import
        with open(pub, "rb") as f:
            ec2.import_key_pair(KeyName=name, PublicKeyMaterial=f.read())
    else:
        ec2.delete_key_pair(KeyName=args.ec2_delete)
    t0 = time.monotonic()
    change_secs = t0 - change_start

    deadline = t0 + args.timeout
    reached = {}
    probes = []  # (box, state, seconds) of every probe after the change
    errors = {}
    not_yet = {}  # box -> start of its last probe that still showed the old state
    lock = threading.Lock()

    def watch(b):
        while time.monotonic() < deadline:
            started = time.monotonic()
            state, took, detail = probe(args, b, env)
            done = time.monotonic()
            with lock:
                probes.append((b[0], state, took))
                if state == "error":
                    errors.setdefault(b[0], []).append(detail)
                if state == before:
                    not_yet[b[0]] = started - t0
            if state == args.want:
                with lock:
                    reached[b[0]] = done - t0
                return
            time.sleep(PAUSE)

    threads = [threading.Thread(target=watch, args=(b,), daemon=True) for b in boxes]
    for t in threads:
        t.start()
    for t in threads:
        # Each probe is bounded, so each thread ends by the deadline plus one probe.
        t.join(args.timeout + PROBE_TIMEOUT + 5)

    # Give a watcher a moment for a line still on its way, then end the sessions.
    time.sleep(2 * WATCH_EVERY)
    watched = {w.box_id: w.reached(in_file, t0) for w in watchers}
    for w in watchers:
        w.stop()
        if watched[w.box_id] is None:
            errors.setdefault(w.box_id, []).append(
                f"the watcher never saw the key {in_file} (exit {w.proc.returncode}): {w.error()}")
    # The watcher must agree with the logins: the change happened after the last probe that
    # still saw the old state started, and before the first that saw the new one ended (plus
    # the watcher's own period and a little transit).
    disagree = {}
    for b in boxes:
        w, lo, hi = watched[b[0]], not_yet.get(b[0], -change_secs), reached.get(b[0])
        if w is not None and hi is not None and not (lo <= w <= hi + 2 * WATCH_EVERY):
            disagree[b[0]] = f"watcher {w:.3f} s outside the logins' bracket {lo:.3f}..{hi:.3f} s"
    times = [reached.get(b[0]) for b in boxes]
    wtimes = list(watched.values())
    trial = {
        "want": args.want,
        "change_secs": change_secs,
        "boxes": {b[0]: reached.get(b[0]) for b in boxes},
        "last": max(times) if all(t is not None for t in times) else None,
        "not_yet": not_yet,
        "disagree": disagree,
        "watched": watched,
        "watched_last": max(wtimes) if all(t is not None for t in wtimes) else None,
        "baseline": baseline,
        "baseline_last": max(baseline.values()) if baseline and None not in baseline.values() else None,
        "probes": len(probes),
        "probe_median_secs": statistics.median(p[2] for p in probes) if probes else None,
        "errors": {k: v[-3:] for k, v in errors.items()},
        "error_count": sum(len(v) for v in errors.values()),
    }
    with open(args.out, "w") as f:
        json.dump(trial, f)
    sys.exit(0 if trial["last"] is not None else 1)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        os._exit(130)
