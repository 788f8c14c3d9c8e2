#!/usr/bin/env bash
# The local cloud demo: cgcloud's main job on an emulated EC2 whose instances are real boxes.
#
#   tests/localcloud/demo.sh          install what is needed, build, start the local cloud, run
#                                     register-key -> create -> ssh -> rsync -> stop -> image ->
#                                     terminate -> recreate -> ssh -> terminate -> delete-image,
#                                     printing each step's time, then tear everything down
#   tests/localcloud/demo.sh shell    the same set-up, then an interactive shell whose environment
#                                     points cgcloud (and aws/boto3) at the local cloud
#
# Needs root (network namespaces, overlay mounts, containers). Steps cgcloud cannot run yet are
# named as such and done through the EC2 API and ssh directly, so the local cloud still shows its
# part. DEMO_NO_BUILD=1 uses already-built binaries (CGCLOUD_BIN, CGCLOUD_LOCALCLOUD_BIN or the
# target folder).
set -euo pipefail

MODE=${1:-run}
case $MODE in run|shell) ;; *) sed -n '2,13p' "$0"; exit 2 ;; esac
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
LC=${CGCLOUD_LOCALCLOUD_BIN:-$TARGET/debug/cgcloud-localcloud}
CG=${CGCLOUD_BIN:-$TARGET/debug/cgcloud}
ROLE=generic-debian-bookworm-box
WORK=$(mktemp -d /tmp/cgcloud-demo.XXXXXX)
REGION=us-west-2
DEBIAN12=ami-0de12a0000000b121   # debian-12-amd64-… from Debian's account, in amis.json

die() { echo "ERROR: $*" >&2; exit 255; }
now() { date +%s%N; }
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
[ "$(id -u)" = 0 ] || die "the local cloud needs root (network namespaces, overlay mounts, containers); run: sudo $0 $MODE"

MOTO_PID= DAEMON_PID= CID=
teardown() {
  local t0; t0=$(now)
  if [ -n "$CID" ]; then "$LC" down "$CID" >/dev/null 2>&1 || true; fi
  if [ -n "$DAEMON_PID" ]; then kill "$DAEMON_PID" 2>/dev/null || true; wait "$DAEMON_PID" 2>/dev/null || true; fi
  if [ -n "$MOTO_PID" ]; then kill -- "-$MOTO_PID" 2>/dev/null || kill "$MOTO_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
  echo "teardown: $(( ($(now) - t0) / 1000000 )) ms"
}
trap teardown EXIT
trap 'exit 130' INT TERM

# --- install and build -------------------------------------------------------------------------
t0=$(now)
need=()
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v rsync >/dev/null || need+=(rsync)
command -v ssh >/dev/null || need+=(openssh-client)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v moto_server >/dev/null || { say "installing moto_server"; python3 -m pip install -q 'moto[server]==5.2.1'; }
if [ -z "${DEMO_NO_BUILD:-}" ]; then
  say "building cgcloud and the local cloud (a few minutes the first time)"
  (cd "$ROOT" && cargo build -q -p cgcloud-localcloud && cargo build -q -p cgcloud) || die "the build failed"
fi
[ -x "$LC" ] || die "\`$LC\` is not built; run \`cargo build -p cgcloud-localcloud\`"
[ -x "$CG" ] || echo "note: \`$CG\` is not built; every cgcloud step goes through the EC2 API instead"
"$LC" setup
echo "install+build+setup: $(( ($(now) - t0) / 1000000 )) ms"

# --- start moto and the local cloud ------------------------------------------------------------
t0=$(now)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# Not a job of this shell (its own session), so its end is not reported as a killed job.
(MOTO_AMIS_PATH=$HERE/amis.json MOTO_ENABLE_AMI_VALIDATION=true MOTO_ENABLE_KEYPAIR_VALIDATION=true \
  setsid moto_server -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 & echo $! >"$WORK/moto.pid")
MOTO_PID=$(cat "$WORK/moto.pid")
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/moto-api/" && break; sleep 0.1; done
curl -sf -o /dev/null "http://127.0.0.1:$PORT/moto-api/" || die "moto_server did not start: $(tail -5 "$WORK/moto.log")"
export AWS_ENDPOINT_URL=http://127.0.0.1:$PORT AWS_REGION=$REGION AWS_DEFAULT_REGION=$REGION AWS_EC2_METADATA_DISABLED=true
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
# A real IAM user, so `__me__` resolves to `demo` as it would on AWS.
eval "$(python3 - <<'EOF'
import boto3
iam = boto3.client("iam")
iam.create_user(UserName="demo")
k = iam.create_access_key(UserName="demo")["AccessKey"]
print(f"export AWS_ACCESS_KEY_ID={k['AccessKeyId']} AWS_SECRET_ACCESS_KEY={k['SecretAccessKey']}")
EOF
)"
"$LC" up --endpoint "$AWS_ENDPOINT_URL" --exit-with-parent --kill-on-exit "$MOTO_PID" >"$WORK/up.out" 2>"$WORK/up.log" &
DAEMON_PID=$!
for _ in $(seq 300); do grep -q '^READY' "$WORK/up.out" 2>/dev/null && break; kill -0 $DAEMON_PID 2>/dev/null || break; sleep 0.1; done
grep -q '^READY' "$WORK/up.out" || die "the local cloud did not start: $(cat "$WORK/up.log")"
read -r _ CID SSH_CONFIG <"$WORK/up.out"
export CGCLOUD_SSH_CONFIG=$SSH_CONFIG CGCLOUD_ZONE=${REGION}a
echo "local cloud \`$CID\` up in $(( ($(now) - t0) / 1000000 )) ms (moto at $AWS_ENDPOINT_URL)"

if [ "$MODE" = shell ]; then
  cat <<EOF

This shell uses the local cloud: cgcloud, aws and boto3 talk to moto at $AWS_ENDPOINT_URL, and ssh
(with -F "\$CGCLOUD_SSH_CONFIG") reaches the box that plays each instance. Debian 12/13 AMIs boot:
  aws ec2 describe-images --owners 136693071363 --query 'Images[].[ImageId,Name]' --output text
Exit the shell to tear everything down.

EOF
  PATH=$TARGET/debug:$PATH PS1="(localcloud $CID) \\w# " bash --norc -i || true
  exit 0
fi

# --- the main job ------------------------------------------------------------------------------
ssh-keygen -q -t ed25519 -N '' -C demo -f "$WORK/id_ed25519"
KEY=$WORK/id_ed25519
SSH_OPTS=(-F "$CGCLOUD_SSH_CONFIG" -i "$KEY" -o "UserKnownHostsFile=$WORK/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes -o ControlPath=none)
declare -A TIMES
ORDER=()

# ec2 ACTION ARGS…: the few EC2 calls the fallback steps need, through boto3.
ec2() {
  python3 - "$@" <<'EOF'
import boto3, sys, subprocess
ec2 = boto3.client("ec2")
act, args = sys.argv[1], sys.argv[2:]
if act == "run":                      # run AMI KEYNAME HOSTKEY -> instance id
    ami, key, hk = args
    priv = open(hk).read(); pub = open(hk + ".pub").read().strip()
    ud = "#cloud-config\nssh_keys:\n  ed25519_private: |\n" + "".join("    " + l + "\n" for l in priv.splitlines()) + f"  ed25519_public: {pub}\n"
    r = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, KeyName=key, InstanceType="t3.micro", UserData=ud)
    print(r["Instances"][0]["InstanceId"])
elif act == "ip":
    print(ec2.describe_instances(InstanceIds=args)["Reservations"][0]["Instances"][0].get("PublicIpAddress", ""))
elif act == "stop":
    ec2.stop_instances(InstanceIds=args)
elif act == "terminate":
    ec2.terminate_instances(InstanceIds=args)
elif act == "image":                  # image INSTANCE NAME -> image id
    print(ec2.create_image(InstanceId=args[0], Name=args[1])["ImageId"])
elif act == "deregister":
    ec2.deregister_image(ImageId=args[0])
elif act == "import-key":             # import-key NAME PUBFILE
    ec2.import_key_pair(KeyName=args[0], PublicKeyMaterial=open(args[1], "rb").read())
EOF
}

# step NAME CMD…: runs and times one step.
step() {
  local name=$1; shift
  local t0; t0=$(now)
  say "$name"
  "$@"
  TIMES[$name]=$(( ($(now) - t0) / 1000000 ))
  ORDER+=("$name")
  echo "   ${TIMES[$name]} ms"
}

# cg CMD…: runs cgcloud; returns 3 if the command is not implemented yet (or cgcloud is not built,
# or the box was made through the EC2 API, so cgcloud does not know it).
VIA_API=
cg() {
  if [ -n "$VIA_API" ] && [ "$1" != register-key ]; then
    echo "   the box was made through the EC2 API, so \`cgcloud $1\` is skipped too"; return 3
  fi
  [ -x "$CG" ] || { echo "   cgcloud is not built: doing this step through the EC2 API"; return 3; }
  local rc=0
  "$CG" "$@" 2>"$WORK/cg.err" || rc=$?
  cat "$WORK/cg.err" >&2
  if [ $rc -ne 0 ] && grep -qi "not implemented" "$WORK/cg.err"; then
    echo "   cgcloud cannot run \`$1\` yet: doing this step through the EC2 API and ssh instead"
    return 3
  fi
  return $rc
}

new_host_key() { rm -f "$WORK/hostkey" "$WORK/hostkey.pub"; ssh-keygen -q -t ed25519 -N '' -C box -f "$WORK/hostkey"; }
pin() { echo "$1 $(cut -d' ' -f1,2 "$WORK/hostkey.pub")" >>"$WORK/known_hosts"; }
box_ssh() { local iid=$1; shift; ssh "${SSH_OPTS[@]}" -o "HostKeyAlias=$iid" "admin@$(ec2 ip "$iid")" "$@"; }

do_register_key() { cg register-key "$KEY.pub" || { [ $? = 3 ] && ec2 import-key demo "$KEY.pub"; }; }
do_create() {
  cg create "$ROLE" || { [ $? = 3 ] || return 1
    VIA_API=1; new_host_key; IID=$(ec2 run "$DEBIAN12" demo "$WORK/hostkey"); pin "$IID"
    box_ssh "$IID" 'sudo cloud-init status --wait >/dev/null'; echo "   instance $IID is ready"; }
}
do_uname() { cg ssh "$ROLE" uname -a || { [ $? = 3 ] && box_ssh "$IID" uname -a; }; }
do_rsync() {
  head -c 100000 /dev/urandom >"$WORK/payload"
  cg rsync "$ROLE" "$WORK/payload" :payload || { [ $? = 3 ] || return 1
    local ip; ip=$(ec2 ip "$IID")
    rsync -a -e "ssh ${SSH_OPTS[*]} -o HostKeyAlias=$IID" "$WORK/payload" "admin@$ip:payload"
    rsync -a -e "ssh ${SSH_OPTS[*]} -o HostKeyAlias=$IID" "admin@$ip:payload" "$WORK/payload.back"
    cmp "$WORK/payload" "$WORK/payload.back" && echo "   the file went in and came back intact"; }
}
do_stop() { cg stop "$ROLE" || { [ $? = 3 ] && ec2 stop "$IID" && "$LC" sync "$CID" >/dev/null; }; }
do_image() { cg image "$ROLE" || { [ $? = 3 ] && AMI=$(ec2 image "$IID" demo-image) && echo "   image $AMI"; }; }
do_terminate() { cg terminate "$ROLE" || { [ $? = 3 ] && ec2 terminate "$IID" && "$LC" sync "$CID" >/dev/null; }; }
do_recreate() {
  cg recreate "$ROLE" || { [ $? = 3 ] || return 1
    new_host_key; IID=$(ec2 run "$AMI" demo "$WORK/hostkey"); pin "$IID"
    box_ssh "$IID" 'sudo cloud-init status --wait >/dev/null'; echo "   instance $IID from $AMI is ready"; }
}
do_check() {
  local sum; sum=$(sha256sum <"$WORK/payload")
  cg ssh "$ROLE" sha256sum payload || { [ $? = 3 ] || return 1
    [ "$(box_ssh "$IID" 'sha256sum <payload')" = "$sum" ] && echo "   the file survived stop, image and recreate"; }
}
do_delete_image() { cg delete-image "$ROLE" || { [ $? = 3 ] && ec2 deregister "$AMI"; }; }

step register-key do_register_key
step create do_create
step "ssh uname -a" do_uname
step "rsync in and back" do_rsync
step stop do_stop
step image do_image
step terminate do_terminate
step recreate do_recreate
step "ssh: file survived" do_check
step "terminate again" do_terminate
step delete-image do_delete_image

say "step times"
for s in "${ORDER[@]}"; do printf '  %-22s %6s ms\n' "$s" "${TIMES[$s]}"; done
