#!/usr/bin/env bash
# Measures the local cloud's figures for the README:
#   warm set-up (cached rootfs: `setup` + moto + `up` until ready), instance-to-SSH-ready for a
#   lazily booted box (RunInstances -> first successful `ssh true`), and teardown per box.
# usage: tests/localcloud/measure.sh [BOXES]     (default 3; needs root and a built
#        cgcloud-localcloud: CGCLOUD_LOCALCLOUD_BIN or the target folder)
# Cold set-up is `rm -rf /var/cache/cgcloud-localcloud && time cgcloud-localcloud setup`.
set -euo pipefail
N=${1:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LC=${CGCLOUD_LOCALCLOUD_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/cgcloud-localcloud}
WORK=$(mktemp -d /tmp/cgcloud-measure.XXXXXX)
now() { date +%s%N; }
ms() { echo $(( ($(now) - $1) / 1000000 )); }
[ "$(id -u)" = 0 ] || { echo "ERROR: run as root" >&2; exit 255; }
[ -x "$LC" ] || { echo "ERROR: \`$LC\` is not built; run \`cargo build -p cgcloud-localcloud\`" >&2; exit 255; }
CID= MOTO_PID=
cleanup() { [ -n "$CID" ] && "$LC" down "$CID" >/dev/null 2>&1; [ -n "$MOTO_PID" ] && kill -- "-$MOTO_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

t0=$(now)
"$LC" setup 2>/dev/null
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(MOTO_AMIS_PATH=$HERE/amis.json MOTO_ENABLE_AMI_VALIDATION=true MOTO_ENABLE_KEYPAIR_VALIDATION=true \
  setsid moto_server -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 & echo $! >"$WORK/moto.pid")
MOTO_PID=$(cat "$WORK/moto.pid")
for _ in $(seq 200); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/moto-api/" && break; sleep 0.05; done
export AWS_ENDPOINT_URL=http://127.0.0.1:$PORT AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-west-2
"$LC" up --endpoint "$AWS_ENDPOINT_URL" --exit-with-parent >"$WORK/up.out" 2>"$WORK/up.log" &
for _ in $(seq 600); do grep -q '^READY' "$WORK/up.out" 2>/dev/null && break; sleep 0.02; done
read -r _ CID CFG <"$WORK/up.out"
echo "warm set-up (setup + moto + up): $(ms "$t0") ms"

ssh-keygen -q -t ed25519 -N '' -f "$WORK/k"
python3 - "$WORK" "$N" <<'EOF'
import boto3, sys, subprocess
work, n = sys.argv[1], int(sys.argv[2])
ec2 = boto3.client("ec2")
ec2.describe_regions()  # moto loads lazily: keep that out of the figures
ec2.import_key_pair(KeyName="m", PublicKeyMaterial=open(f"{work}/k.pub", "rb").read())
for i in range(n):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{work}/h{i}"], check=True)
    priv = open(f"{work}/h{i}").read(); pub = open(f"{work}/h{i}.pub").read().strip()
    ud = "#cloud-config\nssh_keys:\n  ed25519_private: |\n" + "".join("    " + l + "\n" for l in priv.splitlines()) + f"  ed25519_public: {pub}\n"
    open(f"{work}/ud{i}", "w").write(ud)
EOF
for i in $(seq 0 $((N - 1))); do
  t0=$(now)
  read -r IID IP < <(python3 - "$WORK/ud$i" <<'EOF'
import boto3, sys
ec2 = boto3.client("ec2")
r = ec2.run_instances(ImageId="ami-0de12a0000000b121", MinCount=1, MaxCount=1, KeyName="m", UserData=open(sys.argv[1]).read())
iid = r["Instances"][0]["InstanceId"]
ip = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["PublicIpAddress"]
print(iid, ip)
EOF
)
  api=$(ms "$t0")
  echo "$IID $(cut -d' ' -f1,2 "$WORK/h$i.pub")" >"$WORK/kh$i"
  t1=$(now)
  ssh -F "$CFG" -i "$WORK/k" -o "UserKnownHostsFile=$WORK/kh$i" -o StrictHostKeyChecking=yes -o BatchMode=yes \
    -o ControlPath=none -o "HostKeyAlias=$IID" "admin@$IP" true
  echo "instance $i: RunInstances+Describe $api ms (boto3 start-up included); first ssh (lazy boot + login) $(ms "$t1") ms"
done
grep 'booted as box' "$WORK/up.log" | sed 's/^/  daemon: /'
t0=$(now)
"$LC" down "$CID" 2>/dev/null; CID=
total=$(ms "$t0")
echo "teardown of $N boxes (whole cloud): $total ms, $(( total / N )) ms per box"
