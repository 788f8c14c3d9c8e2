#!/usr/bin/env bash
# Provisioning benchmark. Not a timed test, and never run by the suite: it prints
# times and ratios measured side by side in one run, because the machine is shared and noisy.
#
#   tests/bench/provision.sh
#
# Provisions the same Debian 12 box (generic-debian-bookworm-box on the local cloud) with a role
# of 50 small remote steps (`touch /tmp/bench-<who>-NN`) three ways, in rounds, on the same box
# within each round:
#   cgcloud   `cgcloud create bench-fifty-steps-box --no-agent --json` with the plugin in
#             fifty-steps/; the time is the `setup` phase cgcloud reports (its master connection
#             is already up). `--no-agent`: installing cgcloud's key agent is no part of the 50
#             steps, and the other two ways do not install it either. The role also logs the
#             time of its 50 steps alone, printed beside the set-up phase; and each round first
#             creates (and terminates) the role with `-O steps=0`: the set-up phase's fixed cost
#   raw loop  the same 50 commands, one `ssh` each, over one multiplexed master connection
#             (opened before the clock starts, as cgcloud's is) with cgcloud's per-box ssh_config
#             ($CGCLOUD_DATA_DIR/ssh/<instance-id>.config: HostKeyAlias, cgcloud's known_hosts,
#             StrictHostKeyChecking yes); then again with each command in `sh -c '…'`, the way
#             cgcloud's ssh library runs commands, to show what that extra shell costs
#   Ansible   ansible-core from PyPI in a venv under target/bench, 50 `command` tasks through the
#             same ssh_config (`ansible_ssh_common_args: -F <that config>`), host-key checking
#             left on, no fact gathering, interpreter given; timed as the whole
#             `ansible-playbook` process, once with pipelining on and once with it off
# Then, with BENCH_LATENCY_MS (default 25) added each way to every SSH connection (a delay line,
# delay_relay.py, in the local cloud's ProxyCommand: 50 ms round trips), cgcloud, the raw loop
# and Ansible (pipelining on) again, on a new box each round.
# Goals: cgcloud's steps cost at most 5 ms each (the command included, as the role times them);
# Ansible (pipelining on) at least 30x slower than cgcloud's set-up phase; with latency, cgcloud
# at most 1.2 round trips a step. cgcloud runs its steps through one shell on the box (the step
# runner), the raw loop opens a channel per command. Also prints the phase timings of `create`
# (median of the rounds' creates). After each round it checks on the box that every way ran
# its 50 steps.
#
# Needs root (the local cloud: network namespaces, overlay mounts, containers). Installs what it
# needs (host tools, moto_server, ansible-core), builds cgcloud and the local cloud (debug, in
# the main target folder) unless BENCH_NO_BUILD=1 (then CGCLOUD_BIN / CGCLOUD_LOCALCLOUD_BIN or
# the target folder's), and tears everything down on exit and on Ctrl-C.
# BENCH_ROUNDS (default 3) sets the number of rounds.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
LC=${CGCLOUD_LOCALCLOUD_BIN:-$TARGET/debug/cgcloud-localcloud}
CG=${CGCLOUD_BIN:-$TARGET/debug/cgcloud}
BENCH=$ROOT/target/bench
VENV=$BENCH/ansible-venv
PLUGIN=$BENCH/plugin/release/libbench_fifty_steps.so
ROLE=bench-fifty-steps-box
ADMIN='admin'  # the admin account of generic-debian-bookworm-box
STEPS=50
ROUNDS=${BENCH_ROUNDS:-3}
LATENCY_MS=${BENCH_LATENCY_MS:-25}
REGION=us-west-2

die() { echo "ERROR: $*" >&2; exit 255; }
now() { date +%s%N; }
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
[ "$(id -u)" = 0 ] || die "the local cloud needs root (network namespaces, overlay mounts, containers); run: sudo $0"
case $ROUNDS in '' | *[!0-9]* | 0) die "BENCH_ROUNDS must be a whole number above 0, not \`$ROUNDS\`" ;; esac
case $LATENCY_MS in '' | *[!0-9]*) die "BENCH_LATENCY_MS must be a whole number of milliseconds, not \`$LATENCY_MS\`" ;; esac

WORK=$(mktemp -d /tmp/cgcloud-bench.XXXXXX)
MOTO_PID='' DAEMON_PID='' CID=''
teardown() {
  set +e
  # Close every master connection (the raw loop's and Ansible's) before their boxes go away.
  for sock in "$WORK"/raw-*.sock "$WORK"/acp-*/*; do
    [ -S "$sock" ] && ssh -S "$sock" -O exit bench-box >/dev/null 2>&1
  done
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
command -v rsync >/dev/null || need+=(rsync)
command -v ssh >/dev/null || need+=(openssh-client)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }; then
    die "could not install ${need[*]} with apt-get"
  fi
fi
command -v moto_server >/dev/null || { say "installing moto_server"; python3 -m pip install -q 'moto[server]==5.2.1' || die "could not install moto with pip"; }
if [ ! -x "$VENV/bin/ansible-playbook" ]; then
  say "installing ansible-core into $VENV"
  python3 -m venv "$VENV" || die "could not create a venv at \`$VENV\` (install python3-venv)"
  "$VENV/bin/python" -m pip install -q ansible-core || die "could not install ansible-core with pip"
fi
if [ -z "${BENCH_NO_BUILD:-}" ]; then
  say "building cgcloud and the local cloud (a few minutes the first time)"
  (cd "$ROOT" && cargo build -q -p cgcloud-localcloud && cargo build -q -p cgcloud) || die "the build failed"
fi
[ -x "$LC" ] || die "\`$LC\` is not built; run \`cargo build -p cgcloud-localcloud\`"
[ -x "$CG" ] || die "\`$CG\` is not built; run \`cargo build -p cgcloud\`"
say "building the benchmark's role plugin"
cargo build -q --release --manifest-path "$HERE/fifty-steps/Cargo.toml" --target-dir "$BENCH/plugin" \
  || die "building the plugin in \`$HERE/fifty-steps\` failed"
[ -f "$PLUGIN" ] || die "the plugin build left no \`$PLUGIN\`"
"$LC" setup >/dev/null || die "\`cgcloud-localcloud setup\` failed"
ANSIBLE_VERSION=$("$VENV/bin/ansible-playbook" --version) || die "\`$VENV/bin/ansible-playbook\` does not run; remove \`$VENV\` to reinstall it"
ANSIBLE_VERSION=${ANSIBLE_VERSION%%$'\n'*}

# --- start moto and the local cloud ------------------------------------------------------------
. "$ROOT/tests/localcloud/up.sh"
localcloud_up bench
export CGCLOUD_DATA_DIR=$WORK/cgcloud-data CGCLOUD_SSH_KEY=$WORK/id_ed25519
ssh-keygen -q -t ed25519 -N '' -C bench -f "$CGCLOUD_SSH_KEY"
cg() { "$CG" --plugin "$PLUGIN" "$@"; }
timeout 120 "$CG" register-key "$CGCLOUD_SSH_KEY.pub" >"$WORK/register.log" 2>&1 \
  || die "\`cgcloud register-key\` failed: $(tail -5 "$WORK/register.log")"

# --- Ansible's files ---------------------------------------------------------------------------
# Ansible's own state stays in the work folder; host-key checking keeps its default (on).
cat >"$WORK/ansible.cfg" <<EOF
[defaults]
home = $WORK/ansible-home
local_tmp = $WORK/ansible-home/tmp
retry_files_enabled = False
interpreter_python = /usr/bin/python3
nocolor = True
EOF
export ANSIBLE_CONFIG=$WORK/ansible.cfg
playbook() {  # playbook PREFIX COUNT: COUNT `command` tasks touching /tmp/bench-PREFIX-NN
  local prefix=$1 count=$2 i
  printf -- '- hosts: box\n  gather_facts: false\n  tasks:%s\n' "$([ "$count" = 0 ] && echo ' []')"
  for i in $(seq 1 "$count"); do
    printf -- '    - name: step %02d\n      ansible.builtin.command: touch /tmp/bench-%s-%02d\n' "$i" "$prefix" "$i"
  done
}
playbook ansible-pipelined "$STEPS" >"$WORK/pipelined.yml"
playbook ansible-unpipelined "$STEPS" >"$WORK/unpipelined.yml"
playbook none 0 >"$WORK/empty.yml"

# --- the rounds --------------------------------------------------------------------------------
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
RESULTS=$WORK/results.tsv  # round, what, seconds
: >"$RESULTS"
record() { echo "$1	$2	$3" >>"$RESULTS"; }
setup_of() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["phases"]["setup"])' "$1"; }
secs_since() { python3 -c "import sys; print(($(now) - int(sys.argv[1])) / 1e9)" "$1"; }

# ansible_run ROUND MODE PLAYBOOK PIPELINING: times one whole ansible-playbook process.
ansible_run() {
  local r=$1 mode=$2 book=$3 pipelining=$4 t0
  t0=$(now)
  ANSIBLE_PIPELINING=$pipelining ANSIBLE_SSH_CONTROL_PATH_DIR=$WORK/acp-$r-$mode \
    timeout 1800 "$VENV/bin/ansible-playbook" -i "$WORK/inventory-$r" "$book" >"$WORK/ansible-$r-$mode.log" 2>&1 \
    || die "ansible-playbook ($mode) failed: $(tail -15 "$WORK/ansible-$r-$mode.log")"
  record "$r" "ansible-$mode" "$(secs_since "$t0")"
}

# create_box ROUND SUFFIX: `cgcloud create` with the 50 steps; records its phases and the time
# the role logged for its steps (keys ending in SUFFIX); sets ID, ADDRESS and CONFIG.
create_box() {
  local r=$1 sfx=$2 inrole
  timeout 1800 "$CG" --plugin "$PLUGIN" create "$ROLE" --no-agent --json >"$WORK/create-$r$sfx.json" 2>"$WORK/create-$r$sfx.log" \
    || die "\`cgcloud create $ROLE\` failed: $(tail -15 "$WORK/create-$r$sfx.log")"
  read -r ID ADDRESS < <(python3 - "$WORK/create-$r$sfx.json" "$RESULTS" "$r" "$sfx" <<'EOF'
import json, sys
created = json.load(open(sys.argv[1]))
with open(sys.argv[2], "a") as out:
    for phase, secs in created["phases"].items():
        out.write(f"{sys.argv[3]}\tphase {phase}{sys.argv[4]}\t{secs}\n")
print(created["instance_id"], created["address"])
EOF
  ) || die "\`cgcloud create --json\` printed no instance: $(cat "$WORK/create-$r$sfx.json")"
  inrole=$(sed -n "s/.*: ran $STEPS steps in \([0-9.]*\) s$/\1/p" "$WORK/create-$r$sfx.log")
  [ -n "$inrole" ] || die "the role logged no time for its steps: $(tail -15 "$WORK/create-$r$sfx.log")"
  record "$r" "steps in the role$sfx" "$inrole"
  CONFIG=$CGCLOUD_DATA_DIR/ssh/$ID.config
  [ -f "$CONFIG" ] || die "cgcloud left no ssh_config for \`$ID\` at \`$CONFIG\`"
  grep -q 'StrictHostKeyChecking yes' "$CONFIG" || die "\`$CONFIG\` does not pin the host key"
  echo "   $ID at $ADDRESS: setup $(setup_of "$WORK/create-$r$sfx.json") s, of which the steps $inrole s"
}

# raw_loop ROUND KEY PREFIX [sh]: the 50 commands, one `ssh` each, over one multiplexed master
# connection opened before the clock starts (as cgcloud's is); with `sh`, each in `sh -c '…'`.
raw_loop() {
  local r=$1 key=$2 prefix=$3 wrap=${4:-} sock=$WORK/raw-$1-$3${4:-}.sock t0
  timeout 60 ssh -F "$CONFIG" -o ControlMaster=yes -o ControlPath="$sock" -o ControlPersist=300 -fN "$ADDRESS" \
    || die "could not open a master connection to \`$ID\` with \`$CONFIG\`"
  t0=$(now)
  # One timeout for the whole loop, so that no extra process per step weighs on the baseline.
  # shellcheck disable=SC2016 # the inner shell expands its own arguments
  timeout 600 bash -c 'for i in $(seq -w 1 "$1"); do
      c="touch /tmp/bench-$6-$i"; [ -n "$5" ] && c="sh -c '"'"'$c'"'"'"
      ssh -F "$2" -o ControlMaster=no -o ControlPath="$3" -T -n "$4" "$c" || exit 1
    done' raw-loop "$STEPS" "$CONFIG" "$sock" "$ADDRESS" "$wrap" "$prefix" || die "the raw loop ($key) on \`$ID\` failed"
  record "$r" "$key" "$(secs_since "$t0")"
  ssh -S "$sock" -O exit bench-box >/dev/null 2>&1 || true
  echo "   $(tail -1 "$RESULTS" | cut -f3) s"
}

# check_box PREFIX...: every way ran its 50 steps on the box, or the times mean nothing.
check_box() {
  local want='' p counts
  for p in "$@"; do want="$want$p=$STEPS "; done
  # shellcheck disable=SC2016 # expanded on the box
  counts=$(timeout 60 ssh -F "$CONFIG" -T -n "$ADDRESS" \
    'for p in '"$*"'; do printf "%s=%s " $p $(ls /tmp/bench-$p-* 2>/dev/null | wc -l); done') \
    || die "could not count the steps' files on \`$ID\`"
  [ "$counts" = "$want" ] || die "not every way ran its $STEPS steps on \`$ID\`: $counts"
  echo "   checked on the box: $counts"
}

end_round() {  # end_round ROUND: closes Ansible's connections and terminates the box
  local sock
  for sock in "$WORK"/acp-"$1"-*/*; do [ -S "$sock" ] && { ssh -S "$sock" -O exit bench-box >/dev/null 2>&1 || true; }; done
  timeout 300 "$CG" --plugin "$PLUGIN" terminate "$ROLE" >"$WORK/terminate-$1.log" 2>&1 \
    || die "\`cgcloud terminate $ROLE\` failed: $(tail -5 "$WORK/terminate-$1.log")"
}

for r in $(seq 1 "$ROUNDS"); do
  # The fixed cost of cgcloud's set-up phase: the same role with no steps.
  say "round $r of $ROUNDS: cgcloud create $ROLE -O steps=0 (the set-up phase's fixed cost)"
  timeout 900 "$CG" --plugin "$PLUGIN" create "$ROLE" -O steps=0 --no-agent --json >"$WORK/create0-$r.json" 2>"$WORK/create0-$r.log" \
    || die "\`cgcloud create $ROLE -O steps=0\` failed: $(tail -15 "$WORK/create0-$r.log")"
  setup0=$(setup_of "$WORK/create0-$r.json") || die "\`cgcloud create --json\` printed no set-up time: $(cat "$WORK/create0-$r.json")"
  record "$r" "setup, 0 steps" "$setup0"
  echo "   setup $(tail -1 "$RESULTS" | cut -f3) s"
  timeout 300 "$CG" --plugin "$PLUGIN" terminate "$ROLE" >"$WORK/terminate0-$r.log" 2>&1 \
    || die "\`cgcloud terminate $ROLE\` failed: $(tail -5 "$WORK/terminate0-$r.log")"

  say "round $r of $ROUNDS: cgcloud create $ROLE (setup = $STEPS steps)"
  create_box "$r" ""
  say "round $r: raw loop of $STEPS commands over one multiplexed ssh"
  raw_loop "$r" raw raw
  # The same with each command wrapped in `sh -c '…'`: what an extra shell on the box costs.
  say "round $r: raw loop again, each command in sh -c"
  raw_loop "$r" raw-sh rawsh sh

  printf '[box]\n%s ansible_user=%s ansible_ssh_common_args="-F %s"\n' "$ADDRESS" "$ADMIN" "$CONFIG" >"$WORK/inventory-$r"
  say "round $r: Ansible, $STEPS command tasks, pipelining on"
  ansible_run "$r" pipelined "$WORK/pipelined.yml" True
  echo "   $(tail -1 "$RESULTS" | cut -f3) s"
  say "round $r: Ansible, $STEPS command tasks, pipelining off"
  ansible_run "$r" unpipelined "$WORK/unpipelined.yml" False
  echo "   $(tail -1 "$RESULTS" | cut -f3) s"
  say "round $r: Ansible, empty play (its start-up alone)"
  ansible_run "$r" empty "$WORK/empty.yml" True
  echo "   $(tail -1 "$RESULTS" | cut -f3) s"
  check_box cgcloud raw rawsh ansible-pipelined ansible-unpipelined
  end_round "$r"
done

# The same with latency: every SSH connection (cgcloud's, the raw loop's, Ansible's) goes
# through a delay line adding BENCH_LATENCY_MS each way to the local cloud's ProxyCommand.
# (netem on the box's link would do the same; not every kernel has it.)
if [ "$LATENCY_MS" != 0 ]; then
  sed "s|ProxyCommand |ProxyCommand python3 $HERE/delay_relay.py $LATENCY_MS |" "$CGCLOUD_SSH_CONFIG" >"$WORK/latency.config"
  grep -q delay_relay "$WORK/latency.config" || die "no ProxyCommand in \`$CGCLOUD_SSH_CONFIG\` to add latency to"
  FAST_CONFIG=$CGCLOUD_SSH_CONFIG
  export CGCLOUD_SSH_CONFIG=$WORK/latency.config
  for r in $(seq 1 "$ROUNDS"); do
    rl="$r-latency"
    say "round $r of $ROUNDS with $((2 * LATENCY_MS)) ms round trips: cgcloud create $ROLE"
    create_box "$rl" "@rtt"
    say "round $r with latency: raw loop"
    raw_loop "$rl" "raw@rtt" raw
    printf '[box]\n%s ansible_user=%s ansible_ssh_common_args="-F %s"\n' "$ADDRESS" "$ADMIN" "$CONFIG" >"$WORK/inventory-$rl"
    say "round $r with latency: Ansible, pipelining on"
    ansible_run "$rl" "pipelined@rtt" "$WORK/pipelined.yml" True
    echo "   $(tail -1 "$RESULTS" | cut -f3) s"
    check_box cgcloud raw ansible-pipelined
    end_round "$rl"
  done
  export CGCLOUD_SSH_CONFIG=$FAST_CONFIG
fi
# The latency rounds' records carry their round as `N-latency`: fold them into round N.
sed -i 's/^\([0-9]*\)-latency\t/\1\t/' "$RESULTS"

# --- the report --------------------------------------------------------------------------------
say "results: median of $ROUNDS rounds ($STEPS steps; cgcloud $CG; $ANSIBLE_VERSION)"
echo "load average at the start: $LOAD_START; at the end: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
python3 - "$RESULTS" "$STEPS" "$LATENCY_MS" <<'EOF'
import statistics, sys
from collections import defaultdict
times = defaultdict(list)
by_round = defaultdict(dict)
for line in open(sys.argv[1]):
    rnd, what, secs = line.rstrip("\n").split("\t")
    times[what].append(float(secs))
    by_round[rnd][what] = float(secs)
steps = int(sys.argv[2])
med = {k: statistics.median(v) for k, v in times.items()}
def row(name, key, note=""):
    per = med[key] / steps * 1000
    all_ = " ".join(f"{t:.3f}" for t in times[key])
    print(f"  {name:<40} {med[key]:8.3f} s  {per:7.1f} ms/step  (runs: {all_}){note}")
print("provisioning, 50 steps:")
row("cgcloud (create's setup phase)", "phase setup")
row("cgcloud (the steps, timed in the role)", "steps in the role")
row("raw loop, one multiplexed ssh", "raw")
row("raw loop, each command in sh -c", "raw-sh")
row("Ansible, pipelining on", "ansible-pipelined")
row("Ansible, pipelining off", "ansible-unpipelined")
print(f"  {'Ansible start-up (empty play)':<40} {med['ansible-empty']:8.3f} s")
print(f"  {'cgcloud setup phase with 0 steps':<40} {med['setup, 0 steps']:8.3f} s  (runs: {' '.join(f'{t:.3f}' for t in times['setup, 0 steps'])})")
cg, raw = med["phase setup"], med["raw"]
ap, au = med["ansible-pipelined"], med["ansible-unpipelined"]
inrole = med["steps in the role"]
ok = lambda b: "met" if b else "NOT met"
def per_round(a, b):  # the ratio a/b in each round, and their median
    rs = [r[a] / r[b] for r in by_round.values() if a in r and b in r]
    return f"(per round: {' '.join(f'{x:.2f}' for x in rs)}; their median {statistics.median(rs):.2f})"
print("goals:")
print(f"  cgcloud's cost a step (the command included)  {inrole / steps * 1000:6.1f} ms   (goal <= 5 ms: {ok(inrole / steps <= 0.005)})")
print(f"  Ansible (pipelining on) / cgcloud  {ap / cg:6.1f}x   (goal >= 30x: {ok(ap / cg >= 30)}) {per_round('ansible-pipelined', 'phase setup')}")
print("ratios of the medians (per round: the same box, minutes apart):")
print(f"  cgcloud / raw loop                 {cg / raw:6.2f}x   {per_round('phase setup', 'raw')}")
print(f"  cgcloud (steps timed in the role) / raw loop {inrole / raw:6.2f}x")
print(f"  cgcloud / raw loop in sh -c        {cg / med['raw-sh']:6.2f}x   {per_round('phase setup', 'raw-sh')}")
print(f"  Ansible (pipelining off) / cgcloud {au / cg:6.1f}x   {per_round('ansible-unpipelined', 'phase setup')}")
print(f"  Ansible without its start-up (pipelining on) / cgcloud {(ap - med['ansible-empty']) / cg:6.1f}x")
if "steps in the role@rtt" in med:
    rtt = 2 * int(sys.argv[3]) / 1000
    print(f"with {rtt * 1000:.0f} ms round trips (a delay line on every SSH connection), per step in round trips:")
    row("cgcloud (the steps, timed in the role)", "steps in the role@rtt", f"  {med['steps in the role@rtt'] / steps / rtt:5.2f} RTT a step (goal <= 1.2: {ok(med['steps in the role@rtt'] / steps / rtt <= 1.2)})")
    row("cgcloud (create's setup phase)", "phase setup@rtt")
    row("raw loop, one multiplexed ssh", "raw@rtt", f"  {med['raw@rtt'] / steps / rtt:5.2f} RTT a step")
    row("Ansible, pipelining on", "ansible-pipelined@rtt", f"  {med['ansible-pipelined@rtt'] / steps / rtt:5.2f} RTT a step")
print("create's phases (median of the creates):")
for phase in ["api", "pending-to-running", "boot-to-ssh", "cloud-init", "setup"]:
    key = f"phase {phase}"
    if key in med:
        print(f"  {phase:<20} {med[key]:7.3f} s   (runs: {' '.join(f'{t:.3f}' for t in times[key])})")
EOF
