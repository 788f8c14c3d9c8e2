#!/usr/bin/env bash
# Key-propagation benchmark. Not a timed test, and never run by the suite: it prints
# the figures of one run on this machine, with the periodic path measured in the same run as
# the reference.
#
#   tests/bench/key_propagation.sh
#
# Push path (the figure of the issue): starts its own local cloud, creates BENCH_BOXES (4)
# boxes of generic-debian-bookworm-box with the agent, key pair globs `bench 'bench-*'` and
# CGCLOUD_AGENT_INTERVAL=300, so that only a notification can bring a new key within a trial.
# A warm-up key (not counted) checks that every agent is subscribed. Then BENCH_TRIALS (20)
# times: a new ed25519 key, `cgcloud register-key KEY.pub -k bench-<n>`, and from the moment
# that command returns, two figures per box (propagation_probe.py does one trial):
#   logs in   every box is probed in parallel with a fresh `ssh … true` offering only the new
#             key, through cgcloud's own per-box ssh_config (so the host key is verified), again
#             50 ms after each probe ends, each probe bounded by 5 s, until it logs in; the time
#             is the end of the first successful probe, so it includes one whole ssh login.
#             This is the figure judged against the goal: what "the key works" means.
#   in file   a watcher on each box (an ssh session with the launch key running a shell loop)
#             checks every 50 ms whether the key is in `~/.ssh/authorized_keys.cgcloud` and
#             reports the change; the time is when that line arrives. Finer: no login in it.
# The trial's figures are those of the last box. Before each trial the key must be refused on
# every box and absent from every file (so the probes can fail); after it, `cgcloud ssh ROLE -I
# <id> true` with only the new key must succeed on every box; each box's watcher time must lie
# within what its logins bracket. Just before each change, one login per box in parallel with
# the launch key (which works already) is the baseline: what a login costs at that moment.
# Reports every trial, then p50, p99 (nearest rank: with 20 trials p99 is the slowest) and max
# of both figures against the goal p99 < 2 s, and of the baseline.
#
# Periodic path (the reference): one more box, created after the push trials, globs
# `bench 'poll-*'` and CGCLOUD_AGENT_INTERVAL=BENCH_POLL_INTERVAL (10 s). BENCH_POLL_TRIALS (3)
# times: a key pair imported straight through the EC2 API (boto3; no notification, as for a
# change made outside cgcloud) until it logs in, then deleted through the EC2 API until it is
# refused, both figures as above, each change after a random pause (0 to the interval) so that
# the trials do not all hit the same point of the agent's period. Its latency is bounded by the
# interval (uniform over it); the original's only path for such changes was a 300 s poll.
#
# BENCH_PROBE=cgcloud probes with `cgcloud ssh ROLE -I <id> true` instead of plain ssh (the
# login figure then also includes cgcloud's own EC2 look-up). A trial that has not converged
# within BENCH_TRIAL_TIMEOUT (60 s) counts as "never" and shows the lagging agents' journals.
#
# Needs root (the local cloud: network namespaces, overlay mounts, containers). Builds cgcloud
# and the local cloud (debug) and the agent (the `agent` profile, as for real boxes), in the
# main target folder, unless BENCH_NO_BUILD=1,
# then runs copies of the binaries (CGCLOUD_BIN, CGCLOUD_AGENT_BIN, CGCLOUD_LOCALCLOUD_BIN or
# the target folder's), so a rebuild during the run does not change them. Tears everything
# down on exit and on Ctrl-C.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
ROLE=generic-debian-bookworm-box
BOXES=${BENCH_BOXES:-4}
TRIALS=${BENCH_TRIALS:-20}
POLL_TRIALS=${BENCH_POLL_TRIALS:-3}
POLL_INTERVAL=${BENCH_POLL_INTERVAL:-10}
TRIAL_TIMEOUT=${BENCH_TRIAL_TIMEOUT:-60}
PROBE_MODE=${BENCH_PROBE:-ssh}
PUSH_INTERVAL=300
GOAL=2
REGION=us-west-2

die() { echo "ERROR: $*" >&2; exit 255; }
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
[ "$(id -u)" = 0 ] || die "the local cloud needs root (network namespaces, overlay mounts, containers); run: sudo $0"
whole() { case $2 in '' | *[!0-9]*) die "$1 must be a whole number, not \`$2\`" ;; esac; }
whole BENCH_BOXES "$BOXES"; whole BENCH_TRIALS "$TRIALS"; whole BENCH_POLL_TRIALS "$POLL_TRIALS"
whole BENCH_POLL_INTERVAL "$POLL_INTERVAL"; whole BENCH_TRIAL_TIMEOUT "$TRIAL_TIMEOUT"
[ "$BOXES" -ge 1 ] && [ "$TRIALS" -ge 1 ] || die "BENCH_BOXES and BENCH_TRIALS must be at least 1"
[ "$POLL_INTERVAL" -ge 1 ] || die "BENCH_POLL_INTERVAL must be at least 1 (seconds)"
case $PROBE_MODE in ssh | cgcloud) ;; *) die "BENCH_PROBE must be \`ssh\` or \`cgcloud\`, not \`$PROBE_MODE\`" ;; esac

WORK=$(mktemp -d /tmp/cgcloud-keybench.XXXXXX)
MOTO_PID= DAEMON_PID= CID= LC=
teardown() {
  set +e
  if [ -n "$CID" ]; then "$LC" down "$CID" >/dev/null 2>&1; fi
  if [ -n "$DAEMON_PID" ]; then kill "$DAEMON_PID" 2>/dev/null; wait "$DAEMON_PID" 2>/dev/null; fi
  if [ -n "$MOTO_PID" ]; then kill -- "-$MOTO_PID" 2>/dev/null || kill "$MOTO_PID" 2>/dev/null; fi
  rm -rf "$WORK"
}
trap teardown EXIT
trap 'exit 130' INT TERM

# --- install and build -------------------------------------------------------------------------
need=()
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v ssh >/dev/null || need+=(openssh-client)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
    || die "could not install ${need[*]} with apt-get"
fi
command -v moto_server >/dev/null || { say "installing moto_server"; python3 -m pip install -q 'moto[server]==5.2.1' || die "could not install moto with pip"; }
python3 -c 'import boto3' 2>/dev/null || die "python3 has no boto3 (it comes with moto): run \`python3 -m pip install 'moto[server]==5.2.1'\`"
if [ -z "${BENCH_NO_BUILD:-}" ]; then
  say "building cgcloud, its agent and the local cloud (a few minutes the first time)"
  (cd "$ROOT" && cargo build -q -p cgcloud -p cgcloud-localcloud && cargo build -q --profile agent -p cgcloud-agent) || die "the build failed"
fi
mkdir -p "$WORK/bin"
for pair in "cgcloud:${CGCLOUD_BIN:-}" "cgcloud-agent:${CGCLOUD_AGENT_BIN:-}" "cgcloud-localcloud:${CGCLOUD_LOCALCLOUD_BIN:-}"; do
  name=${pair%%:*} from=${pair#*:}
  # The agent as users build it for their boxes (the `agent` profile), the rest debug.
  if [ "$name" = cgcloud-agent ]; then from=${from:-$TARGET/agent/$name}; else from=${from:-$TARGET/debug/$name}; fi
  [ -x "$from" ] || die "\`$from\` is not built; run \`cargo build -p $name\`"
  # cgcloud installs the `cgcloud-agent` next to itself.
  cp "$from" "$WORK/bin/$name" || die "could not copy \`$from\` to \`$WORK/bin\`"
done
CG=$WORK/bin/cgcloud LC=$WORK/bin/cgcloud-localcloud
"$LC" setup >/dev/null || die "\`cgcloud-localcloud setup\` failed"

# --- start moto and the local cloud ------------------------------------------------------------
. "$ROOT/tests/localcloud/up.sh"
localcloud_up bench
export CGCLOUD_DATA_DIR=$WORK/cgcloud-data CGCLOUD_CONFIG=$WORK/cgcloud.toml CGCLOUD_SSH_KEY=$WORK/launch
mkdir -p "$WORK/home" "$WORK/keys" "$WORK/trials"
ssh-keygen -q -t ed25519 -N '' -C bench -f "$CGCLOUD_SSH_KEY"
timeout 120 env HOME="$WORK/home" "$CG" register-key "$CGCLOUD_SSH_KEY.pub" >"$WORK/register.log" 2>&1 \
  || die "\`cgcloud register-key\` failed: $(tail -5 "$WORK/register.log")"

# create_box N INTERVAL GLOB…: creates one box with the agent; appends "ID ADDRESS CONFIG" to $WORK/boxes-N.
create_box() {
  local n=$1 interval=$2; shift 2
  timeout 900 env HOME="$WORK/home" CGCLOUD_AGENT_INTERVAL="$interval" "$CG" create "$ROLE" -k "$@" --json \
    >"$WORK/create-$n.json" 2>"$WORK/create-$n.log" \
    || die "\`cgcloud create $ROLE -k $*\` failed: $(tail -15 "$WORK/create-$n.log")"
  local id address
  read -r id address < <(python3 -c 'import json, sys; c = json.load(open(sys.argv[1])); print(c["instance_id"], c["address"])' "$WORK/create-$n.json") \
    || die "\`cgcloud create --json\` printed no instance: $(cat "$WORK/create-$n.json")"
  [ -f "$CGCLOUD_DATA_DIR/ssh/$id.config" ] || die "cgcloud left no ssh_config for \`$id\`"
  # The service must run before any trial, or a trial would time its start-up.
  local active
  active=$(timeout 60 env HOME="$WORK/home" "$CG" ssh "$ROLE" -I "$id" systemctl is-active cgcloud-agent 2>&1) || true
  [ "$active" = active ] || die "the agent on \`$id\` is not active (\`$active\`)"
  echo "$id $address $CGCLOUD_DATA_DIR/ssh/$id.config"
}

# journal ID: the agent's last log lines on a box, for a trial that did not converge.
journal() {
  timeout 60 env HOME="$WORK/home" "$CG" ssh "$ROLE" -I "$1" sudo journalctl -u cgcloud-agent --no-pager -n 20 2>&1 | sed 's/^/    /'
}

# trial FILE KEY WANT TIMEOUT BOXFILE CHANGE…: one probe run; prints its line.
trial() {
  local out=$1 key=$2 want=$3 limit=$4 boxfile=$5; shift 5
  local args=() id address config
  while read -r id address config; do args+=(--box "$id" "$address" "$config"); done <"$boxfile"
  [ "$PROBE_MODE" = cgcloud ] && args+=(--cgcloud "$CG" "$ROLE")
  local rc=0
  HOME=$WORK/home python3 "$HERE/propagation_probe.py" "$out" --key "$key" --want "$want" --timeout "$limit" \
    --watch-key "$CGCLOUD_SSH_KEY" "${args[@]}" "$@" || rc=$?
  [ "$rc" = 130 ] && exit 130
  [ "$rc" = 255 ] && die "trial \`$out\` could not run (see above)"
  python3 - "$out" <<'EOF'
import json, sys
t = json.load(open(sys.argv[1]))
def f(x):
    return f"{x:6.3f}" if x is not None else "  --  "
per = " ".join(f(v) for v in t["boxes"].values())
wper = " ".join(f(v) for v in t["watched"].values())
errs = f", {t['error_count']} probe errors" if t["error_count"] else ""
print(f"{t['want']} on all: {f(t['last'])} s (per box {per}); in the file on all: {f(t['watched_last'])} s "
      f"(per box {wper}); baseline login on all: {f(t['baseline_last'])} s; change {t['change_secs']:.3f} s, "
      f"{t['probes']} probes{errs}")
for box, why in t["disagree"].items():
    print(f"  {box}: the watcher and the logins disagree: {why}")
EOF
  python3 -c 'import json, sys; [print(f"  {b}: {e}") for b, es in json.load(open(sys.argv[1]))["errors"].items() for e in es]' "$out"
  if [ "$rc" != 0 ]; then
    python3 -c 'import json, sys; [print(b) for b, v in json.load(open(sys.argv[1]))["boxes"].items() if v is None]' "$out" |
      while read -r id; do echo "  \`$id\` did not get there; its agent's journal:"; journal "$id"; done
  fi
  return 0
}

# --- push path ---------------------------------------------------------------------------------
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
say "creating $BOXES boxes with the agent (globs \`bench 'bench-*'\`, CGCLOUD_AGENT_INTERVAL=$PUSH_INTERVAL)"
: >"$WORK/push-boxes"
for n in $(seq 1 "$BOXES"); do
  create_box "$n" "$PUSH_INTERVAL" bench 'bench-*' >>"$WORK/push-boxes"
  echo "   box $n: $(tail -1 "$WORK/push-boxes" | cut -d' ' -f1-2)"
done
read -r FIRST _ <"$WORK/push-boxes"
exec_start=$(timeout 60 env HOME="$WORK/home" "$CG" ssh "$ROLE" -I "$FIRST" systemctl show -p ExecStart cgcloud-agent 2>&1) || true
case $exec_start in *"--interval $PUSH_INTERVAL "*) ;; *) die "the agent on \`$FIRST\` does not run with \`--interval $PUSH_INTERVAL\`: $exec_start" ;; esac

# A first key, not counted: checks that every agent is subscribed before the clock matters.
say "warm-up (not counted): register-key -k bench-warmup"
ssh-keygen -q -t ed25519 -N '' -C bench-warmup -f "$WORK/keys/bench-warmup"
trial "$WORK/trials/warmup.json" "$WORK/keys/bench-warmup" accepted "$TRIAL_TIMEOUT" "$WORK/push-boxes" \
  --run env HOME="$WORK/home" "$CG" register-key "$WORK/keys/bench-warmup.pub" -k bench-warmup
python3 -c 'import json, sys; sys.exit(json.load(open(sys.argv[1]))["last"] is None)' "$WORK/trials/warmup.json" \
  || die "the warm-up key never worked on every box within $TRIAL_TIMEOUT s: the push path is broken (see above)"

say "push path: $TRIALS trials, $BOXES boxes, probing every box every 50 ms ($PROBE_MODE)"
for n in $(seq 1 "$TRIALS"); do
  key=$WORK/keys/bench-$n
  ssh-keygen -q -t ed25519 -N '' -C "bench-$n" -f "$key"
  printf 'trial %2d: ' "$n"
  trial "$WORK/trials/push-$n.json" "$key" accepted "$TRIAL_TIMEOUT" "$WORK/push-boxes" \
    --run env HOME="$WORK/home" "$CG" register-key "$key.pub" -k "bench-$n"
  # What the issue means by "works": `cgcloud ssh` with only the new key.
  while read -r id _; do
    SSH_AUTH_SOCK='' CGCLOUD_SSH_KEY=$key timeout 60 env HOME="$WORK/home" "$CG" ssh "$ROLE" -I "$id" true >/dev/null 2>&1 \
      || echo "   \`cgcloud ssh $ROLE -I $id true\` with key bench-$n failed after the trial"
  done <"$WORK/push-boxes"
done

# The watchers' loops end with their sessions: none may be left to load the boxes.
while read -r id _; do
  left=$(timeout 60 env HOME="$WORK/home" "$CG" ssh "$ROLE" -I "$id" "pgrep -c -f 'read -t 0[.]05' || true" 2>&1) || true
  [ "$left" = 0 ] || echo "   WARNING: \`$id\` still runs watcher loops after the trials: \`$left\`"
done <"$WORK/push-boxes"

# The agents' own share: from reading the notification to the files written ("wrote … in N ms,
# notified" in their journals), next to the end-to-end figure above.
while read -r id _; do
  timeout 60 env HOME="$WORK/home" "$CG" ssh "$ROLE" -I "$id" sudo journalctl -u cgcloud-agent --no-pager -o cat </dev/null 2>/dev/null \
    | sed -n 's/.*wrote [0-9]* keys .* in \([0-9]*\) ms, notified$/\1/p'
done <"$WORK/push-boxes" >"$WORK/agent-ms"

# --- periodic path (reference) -----------------------------------------------------------------
if [ "$POLL_TRIALS" -gt 0 ]; then
  say "periodic path: one more box (globs \`bench 'poll-*'\`, CGCLOUD_AGENT_INTERVAL=$POLL_INTERVAL), changes through the EC2 API"
  create_box poll "$POLL_INTERVAL" bench 'poll-*' >"$WORK/poll-box"
  echo "   box: $(cut -d' ' -f1-2 "$WORK/poll-box")"
  limit=$((3 * POLL_INTERVAL + 30))
  for n in $(seq 1 "$POLL_TRIALS"); do
    key=$WORK/keys/poll-$n
    ssh-keygen -q -t ed25519 -N '' -C "poll-$n" -f "$key"
    # A random phase: right after the previous trial converged, the agent has just reconciled,
    # and every trial would sample the same point of its period.
    sleep "$(python3 -c 'import random, sys; print(round(random.uniform(0, float(sys.argv[1])), 3))' "$POLL_INTERVAL")"
    printf 'poll %2d, EC2 ImportKeyPair: ' "$n"
    trial "$WORK/trials/poll-add-$n.json" "$key" accepted "$limit" "$WORK/poll-box" --ec2-import "poll-$n" "$key.pub"
    if python3 -c 'import json, sys; sys.exit(json.load(open(sys.argv[1]))["last"] is None)' "$WORK/trials/poll-add-$n.json"; then
      sleep "$(python3 -c 'import random, sys; print(round(random.uniform(0, float(sys.argv[1])), 3))' "$POLL_INTERVAL")"
      printf 'poll %2d, EC2 DeleteKeyPair: ' "$n"
      trial "$WORK/trials/poll-del-$n.json" "$key" refused "$limit" "$WORK/poll-box" --ec2-delete "poll-$n"
    fi
  done
fi

# --- the report --------------------------------------------------------------------------------
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
say "results"
echo "load average at the start: $LOAD_START; at the end: $LOAD_END ($(nproc) cores); probes: $PROBE_MODE"
AGENT_MS=$WORK/agent-ms python3 - "$WORK/trials" "$TRIALS" "$POLL_TRIALS" "$BOXES" "$GOAL" "$POLL_INTERVAL" "$TRIAL_TIMEOUT" "$PROBE_MODE" <<'EOF'
import json, math, os, statistics, sys
d, trials, polls, boxes, goal, interval, limit, mode = sys.argv[1:]
trials, polls, boxes, goal, interval, limit = int(trials), int(polls), int(boxes), float(goal), int(interval), int(limit)

def load(name):
    p = os.path.join(d, name)
    return json.load(open(p)) if os.path.exists(p) else None

def rank(xs, q):  # nearest rank; None (never reached) sorts last
    xs = sorted(xs, key=lambda x: math.inf if x is None else x)
    return xs[max(0, math.ceil(q * len(xs)) - 1)] if xs else None

def fmt(x):
    return "never" if x is None else f"{x:.3f} s"

def summary(xs):
    return rank(xs, 0.50), rank(xs, 0.99), rank(xs, 1.0)

def ok(p99):
    return "met" if p99 is not None and p99 < goal else "NOT met"

push = [load(f"push-{n}.json") for n in range(1, trials + 1)]
login = [t["last"] if t else None for t in push]
infile = [t["watched_last"] if t else None for t in push]
cmd = [t["change_secs"] for t in push if t]
probe = [t["probe_median_secs"] for t in push if t and t["probe_median_secs"] is not None]
base = [t["baseline_last"] if t else None for t in push]
extra = [None if t is None or t["last"] is None or t["baseline_last"] is None else t["last"] - t["baseline_last"] for t in push]
disagree = sum(len(t["disagree"]) for t in push if t)
lp50, lp99, lmax = summary(login)
fp50, fp99, fmax = summary(infile)
bp50, bp99, bmax = summary(base)
xp50, xp99, xmax = summary(extra)
print(f"push path, {trials} trials x {boxes} boxes, clock started when register-key returned (nearest-rank percentiles):")
print(f"  key logs in on every box:       p50 {fmt(lp50)}   p99 {fmt(lp99)}   max {fmt(lmax)}   (goal p99 < {goal:g} s: {ok(lp99)})")
print(f"  key in the file on every box:   p50 {fmt(fp50)}   p99 {fmt(fp99)}   max {fmt(fmax)}   (goal p99 <= 0.3 s: {'met' if fp99 is not None and fp99 <= 0.3 else 'NOT met'})")
print(f"  baseline, a working key logs in on every box (just before each change, in parallel):")
print(f"                                  p50 {fmt(bp50)}   p99 {fmt(bp99)}   max {fmt(bmax)}")
print(f"  logs in minus baseline, per trial: p50 {fmt(xp50)}   p99 {fmt(xp99)}   max {fmt(xmax)}; "
      f"ratio of p50s {lp50 / bp50:.2f}x" if lp50 and bp50 else "  (no baseline)")
print(f"  trials not converged within {limit} s: {sum(x is None for x in login)}; boxes where watcher and logins disagree: {disagree}")
if lp99 and bp99:
    print(f"  login p99 / baseline p99: {lp99 / bp99:.2f}x (goal <= 1.1x: {'met' if lp99 / bp99 <= 1.1 else 'NOT met'})")
agent_ms = [int(x) for x in open(os.environ["AGENT_MS"]).read().split()] if os.path.exists(os.environ.get("AGENT_MS", "")) else []
if agent_ms:
    agent_ms.sort()
    print(f"  the agents' own time, notification read -> files written ({len(agent_ms)} reconciles): "
          f"p50 {agent_ms[len(agent_ms) // 2]} ms, max {agent_ms[-1]} ms")
if cmd and probe:
    print(f"  register-key itself: median {statistics.median(cmd):.3f} s; one login probe ({mode}): median {statistics.median(probe):.3f} s "
          f"(the login figure includes one such login)")

rows = []
if polls:
    adds = [load(f"poll-add-{n}.json") for n in range(1, polls + 1)]
    dels = [load(f"poll-del-{n}.json") for n in range(1, polls + 1)]
    print(f"periodic path, {polls} trials on 1 box with a {interval} s interval (EC2 API change -> state on the box; "
          "login / file):")
    for what, ts in [("key pair imported -> logs in", adds), ("key pair deleted  -> refused", dels)]:
        print(f"  {what}: " + "   ".join(f"{fmt(t['last'])} / {fmt(t['watched_last'])}" for t in ts if t))
    print(f"  expected: uniform over 0..{interval} s plus one reconcile; at the default 300 s interval, mean ~150 s, worst ~300 s")
    both = [t["last"] for t in adds + dels if t]
    rows.append(f"| Key propagation, periodic reconcile only (key pair imported/deleted through the EC2 API; interval {interval} s; "
                f"{len(both)} changes on 1 box) | {fmt(rank(both, 0.0))} .. {fmt(rank(both, 1.0))} (login) "
                f"| reference: bounded by the interval (default 300 s) |")

print()
print("Markdown rows (| what | figure | goal |):")
print(f"| Key propagation, push: `register-key` returned -> key logs in on all {boxes} boxes ({trials} trials) "
      f"| p50 {fmt(lp50)}, p99 {fmt(lp99)}, max {fmt(lmax)} | p99 < {goal:g} s: {ok(lp99)} |")
print(f"| Key propagation, push: `register-key` returned -> key in `authorized_keys.cgcloud` on all {boxes} boxes "
      f"| p50 {fmt(fp50)}, p99 {fmt(fp99)}, max {fmt(fmax)} | p99 < {goal:g} s: {ok(fp99)} |")
print(f"| Baseline, same run: a working key logs in on all {boxes} boxes (one parallel ssh login each) "
      f"| p50 {fmt(bp50)}, p99 {fmt(bp99)}, max {fmt(bmax)} | (reference) |")
for r in rows:
    print(r)
EOF
