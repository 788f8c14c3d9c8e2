#!/usr/bin/env bash
# Scale benchmark. Not a timed test, and never run by the suite: it prints what cgcloud's
# read-mostly commands cost with 10, 100 and 1,000 instances in one namespace, measured in one
# run, so that how the cost grows shows side by side.
#
#   tests/bench/scale.sh
#
# moto alone, no boxes: for each size N (BENCH_SIZES, default "10 100 1000") moto is reset and
# given N instances of namespace /bench/ made straight through the EC2 API (one RunInstances),
# tagged as `create-cluster` tags a Slurm cluster's nodes: a `slurm-leader` and N-1
# `slurm-worker`s of cluster `c`, with the `cgcloud:namespace` ownership tag and key
# acknowledgements. Then, through a counting proxy in front of moto (count_proxy.py), each of
#   list slurm-worker, list slurm-worker --json, keys status, cleanup (listing only: no -y,
#   no terminal, so it deletes nothing), terminate-cluster slurm -c c (binds the cluster,
#   then terminates every node; last, it changes the state)
# runs BENCH_RUNS (3) times (terminate-cluster once), and its wall time (median), its AWS
# calls by action and its peak memory (max RSS) are recorded. The report gives each figure per
# size and the growth from 100 to 1,000 instances per added instance: time and calls may grow
# at most linearly (a page of results per call, never a call per instance where a filter
# does), memory should stay about flat.
#
# Builds cgcloud and the Slurm plugin (debug) unless BENCH_NO_BUILD=1; installs moto_server
# with pip if missing. Talks to loopback only.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
CG=${CGCLOUD_BIN:-$TARGET/debug/cgcloud}
PLUGIN=${BENCH_PLUGIN:-$TARGET/debug/libcgcloud_slurm.so}
SIZES=${BENCH_SIZES:-10 100 1000}
RUNS=${BENCH_RUNS:-3}
REGION=us-west-2

die() { echo "ERROR: $*" >&2; exit 255; }
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
for n in $SIZES; do case $n in '' | *[!0-9]* | 0) die "BENCH_SIZES must be whole numbers above 1, not \`$n\`" ;; esac; done
case $RUNS in '' | *[!0-9]* | 0) die "BENCH_RUNS must be a whole number above 0, not \`$RUNS\`" ;; esac
command -v moto_server >/dev/null || { say "installing moto_server"; python3 -m pip install -q 'moto[server]==5.2.1' || die "could not install moto with pip"; }
[ -x /usr/bin/time ] || die "/usr/bin/time is missing (apt-get install time): it measures peak memory"
if [ -z "${BENCH_NO_BUILD:-}" ]; then
  say "building cgcloud and the Slurm plugin"
  (cd "$ROOT" && cargo build -q -p cgcloud -p cgcloud-slurm) || die "the build failed"
fi
[ -x "$CG" ] || die "\`$CG\` is not built"
[ -f "$PLUGIN" ] || die "\`$PLUGIN\` is not built"

WORK=$(mktemp -d /tmp/cgcloud-scale.XXXXXX)
MOTO_PID='' PROXY_PID=''
teardown() {
  set +e
  [ -n "$PROXY_PID" ] && kill "$PROXY_PID" 2>/dev/null
  [ -n "$MOTO_PID" ] && { kill -- "-$MOTO_PID" 2>/dev/null || kill "$MOTO_PID" 2>/dev/null; }
  rm -rf "$WORK"
}
trap teardown EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MOTO_PORT=$(free_port) PROXY_PORT=$(free_port)
(setsid moto_server -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 & echo $! >"$WORK/moto.pid")
MOTO_PID=$(cat "$WORK/moto.pid")
python3 "$HERE/count_proxy.py" "$PROXY_PORT" "http://127.0.0.1:$MOTO_PORT" 2>"$WORK/proxy.log" &
PROXY_PID=$!
for _ in $(seq 100); do
  curl -sf -o /dev/null "http://127.0.0.1:$MOTO_PORT/moto-api/" && curl -sf -o /dev/null "http://127.0.0.1:$PROXY_PORT/__counts" && break
  sleep 0.1
done
curl -sf -o /dev/null "http://127.0.0.1:$PROXY_PORT/__counts" || die "moto or the counting proxy did not start: $(tail -5 "$WORK/moto.log" "$WORK/proxy.log")"
MOTO=http://127.0.0.1:$MOTO_PORT PROXY=http://127.0.0.1:$PROXY_PORT
export AWS_REGION=$REGION AWS_DEFAULT_REGION=$REGION AWS_EC2_METADATA_DISABLED=true
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
export CGCLOUD_DATA_DIR=$WORK/data CGCLOUD_CONFIG=$WORK/none.toml CGCLOUD_ZONE=${REGION}a
export CGCLOUD_NAMESPACE=/bench/ CGCLOUD_ME=bench

# populate N: resets moto and makes the N nodes (through moto directly: not counted).
populate() {
  curl -sf -X POST "$MOTO/moto-api/reset" >/dev/null || die "could not reset moto"
  AWS_ENDPOINT_URL=$MOTO python3 - "$1" <<'PYEOF' || die "could not make the instances"
import boto3, sys
n = int(sys.argv[1])
ec2 = boto3.client("ec2")
image = ec2.describe_images(Owners=["amazon"], MaxResults=5)["Images"][0]["ImageId"]
ids = []
while len(ids) < n:
    batch = min(500, n - len(ids))
    out = ec2.run_instances(ImageId=image, MinCount=batch, MaxCount=batch, InstanceType="t3.micro",
                            Placement={"AvailabilityZone": "us-west-2a"})
    ids += [i["InstanceId"] for i in out["Instances"]]
leader = ids[0]
common = [{"Key": "cgcloud:namespace", "Value": "/bench/"}, {"Key": "cluster_name", "Value": "c"},
          {"Key": "leader_instance_id", "Value": leader}, {"Key": "cgcloud:keys-hash", "Value": "0" * 16}]
ec2.create_tags(Resources=[leader], Tags=common + [{"Key": "Name", "Value": "bench_slurm-leader"},
                                                   {"Key": "cluster_ordinal", "Value": "0"}])
for k, i in enumerate(ids[1:], start=1):
    ec2.create_tags(Resources=[i], Tags=common + [{"Key": "Name", "Value": "bench_slurm-worker"},
                                                  {"Key": "cluster_ordinal", "Value": str(k)}])
PYEOF
}

RESULTS=$WORK/results.tsv  # size, command, seconds, calls, max RSS KiB, calls by action
: >"$RESULTS"
# measure N NAME ARGS...: one run through the proxy; appends a row.
measure() {
  local n=$1 name=$2 t0 t1 rss calls; shift 2
  curl -sf -X POST "$PROXY/__reset" >/dev/null
  t0=$(date +%s%N)
  AWS_ENDPOINT_URL=$PROXY /usr/bin/time -f '%M' -o "$WORK/rss" timeout 900 "$CG" --plugin "$PLUGIN" "$@" \
    </dev/null >"$WORK/out" 2>"$WORK/err" || {
    # `cleanup` without -y and without a terminal lists and declines: that is its listing run.
    [ "$name" = cleanup ] || die "\`cgcloud $*\` failed with $N instances: $(tail -5 "$WORK/err")"
  }
  t1=$(date +%s%N)
  rss=$(tail -1 "$WORK/rss")
  calls=$(curl -sf "$PROXY/__counts")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$name" "$(( (t1 - t0) / 1000 ))" \
    "$(python3 -c 'import json, sys; print(sum(json.loads(sys.argv[1]).values()))' "$calls")" "$rss" "$calls" >>"$RESULTS"
}

# moto_alone N: the DescribeInstances that `list` makes, straight to moto with curl: moto's own
# share of the figures (a baseline measured side by side, in the same run).
moto_alone() {
  local t0 t1
  t0=$(date +%s%N)
  curl -sf -o /dev/null -X POST "$MOTO/" \
    -H "Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/$REGION/ec2/aws4_request, SignedHeaders=host, Signature=0" \
    -d 'Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=tag:Name&Filter.1.Value.1=bench_slurm-worker' \
    || die "moto did not answer DescribeInstances"
  t1=$(date +%s%N)
  printf '%s\t%s\t%s\t1\t0\t{}\n' "$1" "moto alone: DescribeInstances" "$(( (t1 - t0) / 1000 ))" >>"$RESULTS"
}

for N in $SIZES; do
  say "$N instances"
  populate "$N"
  for r in $(seq 1 "$RUNS"); do
    moto_alone "$N"
    measure "$N" "list" list slurm-worker
    measure "$N" "list --json" list slurm-worker --json
    # The listing must list every worker, or the figures mean nothing.
    [ "$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))))' "$WORK/out")" = $((N - 1)) ] \
      || die "\`list --json\` did not list the $((N - 1)) workers"
    measure "$N" "keys status" keys status
    measure "$N" "cleanup" cleanup
  done
  measure "$N" "terminate-cluster" terminate-cluster slurm -c c
  left=$(AWS_ENDPOINT_URL=$MOTO python3 -c 'import boto3; print(sum(len(r["Instances"]) for r in boto3.client("ec2").describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["running"]}])["Reservations"]))')
  [ "$left" = 0 ] || die "terminate-cluster left $left instances running"
  echo "   done ($(cut -f2 "$RESULTS" | sort -u | wc -l) commands)"
done

say "results (wall time: median of $RUNS runs; debug build; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
python3 - "$RESULTS" <<'PYEOF'
import json, statistics, sys
from collections import defaultdict
rows = defaultdict(list)
for line in open(sys.argv[1]):
    n, name, us, calls, rss, by = line.rstrip("\n").split("\t")
    rows[(name, int(n))].append((int(us) / 1e6, int(calls), int(rss), json.loads(by)))
sizes = sorted({n for _, n in rows})
names = list(dict.fromkeys(name for name, _ in rows))
print(f"  {'command':<20}" + "".join(f"{n:>8} inst: s / calls / MiB " for n in sizes))
for name in names:
    cells = []
    for n in sizes:
        runs = rows[(name, n)]
        secs = statistics.median(r[0] for r in runs)
        cells.append(f"{secs:14.3f} / {runs[0][1]:4d} / {max(r[2] for r in runs) / 1024:5.1f}  ")
    print(f"  {name:<20}" + "".join(cells))
if len(sizes) >= 2:
    a, b = sizes[-2], sizes[-1]
    print(f"growth from {a} to {b} instances, per added instance:")
    for name in names:
        ra, rb = rows[(name, a)], rows[(name, b)]
        ta, tb = statistics.median(r[0] for r in ra), statistics.median(r[0] for r in rb)
        ca, cb = ra[0][1], rb[0][1]
        ma, mb = max(r[2] for r in ra), max(r[2] for r in rb)
        print(f"  {name:<20} {(tb - ta) / (b - a) * 1000:7.3f} ms, {(cb - ca) / (b - a):6.3f} calls, "
              f"{(mb - ma) / (b - a):6.2f} KiB;  calls at {b}: {json.dumps(rb[0][3], sort_keys=True)}")
PYEOF
