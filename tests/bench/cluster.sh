#!/usr/bin/env bash
# Cluster benchmark. Not a timed test, and never run by the suite: it prints the figures of one
# run on this machine, each against its baseline measured in the same run, side by side.
#
#   tests/bench/cluster.sh
#
# Starts its own local cloud and uses the cluster type `recorder-cluster` of the test fixture
# plugin `hook-recorder` (tests/cli/fixtures; leader and workers are `hook-recorder-box`, a
# Debian 12 box whose set-up installs nothing). Makes the node image once (`create -I -T`, with
# the agent), then BENCH_ROUNDS (3) times, alternating:
#   create-cluster -s 1   and   create-cluster -s BENCH_WORKERS (8),
# each from the node image, timed from the command's start to its end (every node booted, its
# boot hooks run), each cluster terminated before the next; the ratio of the two is the figure
# (the original claimed "three minutes independent of the number of nodes"; goal ≤ 1.5).
# Then, with one cluster of 1 + BENCH_WORKERS nodes up, BENCH_SSH_TRIALS (5) times alternating:
#   ssh-cluster -P … hostname   (every node)   and   ssh ROLE -I LEADER hostname   (one box);
# the ratio of the medians is the figure (goal ≤ 2).
#
# Needs root (the local cloud). Builds cgcloud, its agent, the local cloud and the fixture
# plugin (debug) unless BENCH_NO_BUILD=1. Tears everything down on exit and on Ctrl-C.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
ROLE=hook-recorder-box
TYPE=recorder-cluster
WORKERS=${BENCH_WORKERS:-8}
ROUNDS=${BENCH_ROUNDS:-3}
SSH_TRIALS=${BENCH_SSH_TRIALS:-5}
REGION=us-west-2

die() { echo "ERROR: $*" >&2; exit 255; }
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
[ "$(id -u)" = 0 ] || die "the local cloud needs root (network namespaces, overlay mounts, containers); run: sudo $0"
whole() { case $2 in '' | *[!0-9]*) die "$1 must be a whole number, not \`$2\`" ;; esac; }
whole BENCH_WORKERS "$WORKERS"; whole BENCH_ROUNDS "$ROUNDS"; whole BENCH_SSH_TRIALS "$SSH_TRIALS"
[ "$WORKERS" -ge 2 ] && [ "$ROUNDS" -ge 1 ] && [ "$SSH_TRIALS" -ge 1 ] \
  || die "BENCH_WORKERS must be at least 2, BENCH_ROUNDS and BENCH_SSH_TRIALS at least 1"

WORK=$(mktemp -d /tmp/cgcloud-clusterbench.XXXXXX)
MOTO_PID= DAEMON_PID= CID= LC=
teardown() {
  set +e
  # BENCH_KEEP_LOGS=DIR keeps cgcloud's logs of the run.
  if [ -n "${BENCH_KEEP_LOGS:-}" ]; then mkdir -p "$BENCH_KEEP_LOGS" && cp "$WORK"/*.log "$WORK"/*.out "$BENCH_KEEP_LOGS"/ 2>/dev/null; fi
  if [ -n "$CID" ]; then "$LC" down "$CID" >/dev/null 2>&1; fi
  if [ -n "$DAEMON_PID" ]; then kill "$DAEMON_PID" 2>/dev/null; wait "$DAEMON_PID" 2>/dev/null; fi
  if [ -n "$MOTO_PID" ]; then kill -- "-$MOTO_PID" 2>/dev/null || kill "$MOTO_PID" 2>/dev/null; fi
  rm -rf "$WORK"
}
trap teardown EXIT
trap 'exit 130' INT TERM

# --- build -------------------------------------------------------------------------------------
command -v moto_server >/dev/null || die "moto_server is missing: run \`bash tests/suite.sh\` once, or \`python3 -m pip install 'moto[server]==5.2.1'\`"
if [ -z "${BENCH_NO_BUILD:-}" ]; then
  say "building cgcloud, its agent, the local cloud and the fixture plugin"
  (cd "$ROOT" && cargo build -q -p cgcloud -p cgcloud-agent -p cgcloud-localcloud) || die "the build failed"
  cargo build -q --workspace --manifest-path "$ROOT/tests/cli/fixtures/Cargo.toml" \
    --target-dir "$TARGET/plugin-fixtures/cli" || die "the fixture plugin did not build"
fi
mkdir -p "$WORK/bin"
for name in cgcloud cgcloud-agent cgcloud-localcloud; do
  [ -x "$TARGET/debug/$name" ] || die "\`$TARGET/debug/$name\` is not built; run \`cargo build -p $name\`"
  cp "$TARGET/debug/$name" "$WORK/bin/$name"
done
PLUGIN=$WORK/bin/libhook_recorder.so
cp "$TARGET/plugin-fixtures/cli/debug/libhook_recorder.so" "$PLUGIN" || die "the fixture plugin is not built"
CG=$WORK/bin/cgcloud LC=$WORK/bin/cgcloud-localcloud
"$LC" setup >/dev/null || die "\`cgcloud-localcloud setup\` failed"

# --- start moto and the local cloud ------------------------------------------------------------
. "$ROOT/tests/localcloud/up.sh"
localcloud_up bench
export CGCLOUD_DATA_DIR=$WORK/cgcloud-data CGCLOUD_CONFIG=$WORK/cgcloud.toml CGCLOUD_SSH_KEY=$WORK/launch HOME=$WORK/home
mkdir -p "$HOME"
ssh-keygen -q -t ed25519 -N '' -C bench -f "$CGCLOUD_SSH_KEY"
cg() { timeout 900 "$CG" --plugin "$PLUGIN" "$@"; }
cg register-key "$CGCLOUD_SSH_KEY.pub" >"$WORK/register.log" 2>&1 || die "register-key failed: $(tail -5 "$WORK/register.log")"

say "the node image: create $ROLE -I -T"
cg create "$ROLE" -I -T >"$WORK/image.log" 2>&1 || die "making the node image failed: $(tail -15 "$WORK/image.log")"

# The machine's busy CPU time so far, in hundredths of a second (every core, every process:
# the boxes, moto, the local cloud and cgcloud).
busy() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
CORES=$(nproc)

# timed N NAME: creates cluster NAME of 1 + N nodes; prints the seconds it took and the CPU
# seconds the machine spent meanwhile.
timed() {
  local start end b0 b1
  b0=$(busy) start=$(date +%s.%N)
  cg create-cluster "$TYPE" -s "$1" -c "$2" >"$WORK/$2.out" 2>"$WORK/$2.log" \
    || die "create-cluster -s $1 failed: $(tail -15 "$WORK/$2.log")"
  end=$(date +%s.%N) b1=$(busy)
  python3 -c "print(f'{$end - $start:.1f} {($b1 - $b0) / 100:.1f}')"
}

median() { python3 -c 'import statistics, sys; print(f"{statistics.median(float(x) for x in sys.argv[1:]):.2f}")' "$@"; }

say "create-cluster: 1 worker against $WORKERS workers, $ROUNDS rounds, alternating"
ones=() manys=() cpus1=() cpusn=()
for r in $(seq 1 "$ROUNDS"); do
  read -r one cpu1 <<<"$(timed 1 "one-$r")"
  cg terminate-cluster "$TYPE" -c "one-$r" >/dev/null 2>&1 || die "terminate-cluster failed"
  read -r many cpun <<<"$(timed "$WORKERS" "many-$r")"
  if [ "$r" -lt "$ROUNDS" ]; then
    cg terminate-cluster "$TYPE" -c "many-$r" >/dev/null 2>&1 || die "terminate-cluster failed"
  fi
  ones+=("$one") manys+=("$many") cpus1+=("$cpu1") cpusn+=("$cpun")
  echo "   round $r: 1 worker ${one} s (${cpu1} CPU s), $WORKERS workers ${many} s (${cpun} CPU s), ratio $(python3 -c "print(f'{$many / $one:.2f}')")"
done
M1=$(median "${ones[@]}") MN=$(median "${manys[@]}") C1=$(median "${cpus1[@]}") CN=$(median "${cpusn[@]}")

say "ssh-cluster -P hostname on $((WORKERS + 1)) nodes against one ssh, $SSH_TRIALS trials, alternating"
LEADER=$(awk '$1 == "leader" {print $2}' "$WORK/many-$ROUNDS.out")
[ -n "$LEADER" ] || die "create-cluster named no leader: $(cat "$WORK/many-$ROUNDS.out")"
clock() {
  local start end
  start=$(date +%s.%N)
  "$@" >"$WORK/ssh.out" 2>"$WORK/ssh.log" || die "\`$*\` failed: $(tail -5 "$WORK/ssh.log")"
  end=$(date +%s.%N)
  python3 -c "print(f'{$end - $start:.3f}')"
}
singles=() clusters=()
for t in $(seq 1 "$SSH_TRIALS"); do
  single=$(clock cg ssh "$ROLE" -I "$LEADER" hostname)
  all=$(clock cg ssh-cluster "$TYPE" -c "many-$ROUNDS" -P hostname)
  [ "$(wc -l <"$WORK/ssh.out")" = "$((WORKERS + 1))" ] || die "ssh-cluster answered from $(wc -l <"$WORK/ssh.out") nodes, not $((WORKERS + 1))"
  singles+=("$single") clusters+=("$all")
  echo "   trial $t: one box ${single} s, $((WORKERS + 1)) nodes ${all} s"
done
S1=$(median "${singles[@]}") SN=$(median "${clusters[@]}")
cg terminate-cluster "$TYPE" -c "many-$ROUNDS" >/dev/null 2>&1 || die "terminate-cluster failed"

say "results (medians)"
python3 - "$M1" "$MN" "$S1" "$SN" "$WORKERS" "$C1" "$CN" "$CORES" <<'EOF'
import sys
m1, mn, s1, sn = map(float, sys.argv[1:5])
w = int(sys.argv[5])
c1, cn, cores = float(sys.argv[6]), float(sys.argv[7]), int(sys.argv[8])
print(f"create-cluster: 1 worker {m1:.1f} s, {w} workers {mn:.1f} s: ratio {mn / m1:.2f} (goal <= 1.5)")
# On one machine every box boots on the same cores: the wall time cannot be below the CPU
# time spent divided by the cores. How close each run comes to that floor shows whether the
# rest is waiting that cgcloud or the local cloud could remove.
print(f"  CPU: {c1:.1f} s and {cn:.1f} s on {cores} cores; the {w}-worker run is "
      f"{cn / cores / mn * 100:.0f} % CPU-bound (its floor {cn / cores:.1f} s), the 1-worker run "
      f"{c1 / cores / m1 * 100:.0f} %; the ratio of CPU time is {cn / c1:.2f}")
print(f"ssh-cluster -P on {w + 1} nodes {sn:.2f} s, one ssh {s1:.2f} s: ratio {sn / s1:.2f} (goal <= 2)")
EOF
