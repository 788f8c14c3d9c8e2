#!/usr/bin/env bash
# The local cloud demo: cgcloud's main job on an emulated EC2 whose instances are real boxes.
#
#   tests/localcloud/demo.sh          install what is needed, build, start the local cloud, run
#                                     register-key -> create -> ssh -> rsync -> stop -> image ->
#                                     terminate -> recreate -> ssh -> terminate -> delete-image,
#                                     then a role plugin: build it, `cgcloud --plugin ./lib….so
#                                     create example-web-box`, and fetch the page it serves;
#                                     printing each step's time, then tear everything down
#   tests/localcloud/demo.sh shell    the same set-up, then an interactive shell whose environment
#                                     points cgcloud (and aws/boto3) at the local cloud
#
# Needs root (network namespaces, overlay mounts, containers). It builds everything it uses:
# cgcloud, the local cloud, the agent that `create` installs on boxes (a release build), and the
# example plugin. DEMO_NO_BUILD=1 uses already-built programs instead (CGCLOUD_BIN,
# CGCLOUD_LOCALCLOUD_BIN, CGCLOUD_AGENT_BIN, DEMO_PLUGIN or the target folder).
set -euo pipefail

MODE=${1:-run}
case $MODE in run|shell) ;; *) sed -n '2,13p' "$0"; exit 2 ;; esac
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
LC=${CGCLOUD_LOCALCLOUD_BIN:-$TARGET/debug/cgcloud-localcloud}
CG=${CGCLOUD_BIN:-$TARGET/debug/cgcloud}
AGENT=${CGCLOUD_AGENT_BIN:-$TARGET/agent/cgcloud-agent}
PLUGIN=${DEMO_PLUGIN:-$TARGET/debug/libexample_roles.so}
unset CGCLOUD_AGENT_BIN
ROLE=generic-debian-bookworm-box
WORK=$(mktemp -d /tmp/cgcloud-demo.XXXXXX)
REGION=us-west-2

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
command -v curl >/dev/null || need+=(curl)
command -v ip >/dev/null || need+=(iproute2)
command -v nft >/dev/null || need+=(nftables)
python3 -m pip --version >/dev/null 2>&1 || need+=(python3 python3-pip)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if ! command -v moto_server >/dev/null; then
  say "installing moto_server"
  python3 -m pip install -q 'moto[server]==5.2.1' 2>/dev/null \
    || python3 -m pip install -q --break-system-packages 'moto[server]==5.2.1'
  hash -r
fi
if [ -z "${DEMO_NO_BUILD:-}" ]; then
  say "building cgcloud, the local cloud, the agent and the example plugin (minutes the first time)"
  (cd "$ROOT" && cargo build -q --locked -p cgcloud-localcloud -p cgcloud -p example-roles \
     && cargo build -q --locked --profile agent -p cgcloud-agent) || die "the build failed"
fi
[ -x "$LC" ] || die "\`$LC\` is not built; run \`cargo build -p cgcloud-localcloud\`"
[ -x "$CG" ] || die "\`$CG\` is not built; run \`cargo build -p cgcloud\`"
[ -x "$AGENT" ] || die "\`$AGENT\` is not built; run \`cargo build --profile agent -p cgcloud-agent\`"
[ -f "$PLUGIN" ] || die "\`$PLUGIN\` is not built; run \`cargo build -p example-roles\`"
"$LC" setup
echo "install+build+setup: $(( ($(now) - t0) / 1000000 )) ms"

# --- start moto and the local cloud ------------------------------------------------------------
t0=$(now)
. "$HERE/up.sh"
localcloud_up demo
echo "local cloud \`$CID\` up in $(( ($(now) - t0) / 1000000 )) ms (moto at $AWS_ENDPOINT_URL)"

if [ "$MODE" = shell ]; then
  cat <<EOF

This shell uses the local cloud: cgcloud, aws and boto3 talk to moto at $AWS_ENDPOINT_URL, and ssh
(with -F "\$CGCLOUD_SSH_CONFIG") reaches the box that plays each instance. Debian 12/13 AMIs boot:
  aws ec2 describe-images --owners 136693071363 --query 'Images[].[ImageId,Name]' --output text
Exit the shell to tear everything down.

EOF
  export CGCLOUD_AGENT_BIN=$AGENT
  PATH=$TARGET/debug:$PATH PS1="(localcloud $CID) \\w# " bash --norc -i || true
  exit 0
fi

# --- the main job ------------------------------------------------------------------------------
ssh-keygen -q -t ed25519 -N '' -C demo -f "$WORK/id_ed25519"
export CGCLOUD_SSH_KEY=$WORK/id_ed25519 CGCLOUD_DATA_DIR=$WORK/cgcloud-data
# The agent for boxes of this machine's architecture, where cgcloud looks for it.
case $(uname -m) in aarch64|arm64) ARCH=arm64 ;; *) ARCH=x86_64 ;; esac
install -D -m 755 "$AGENT" "$CGCLOUD_DATA_DIR/agents/$ARCH/cgcloud-agent"
# The plugin, as a team would ship it: a file next to the work.
cp "$PLUGIN" "$WORK/libexample_roles.so"
declare -A TIMES
ORDER=()

# step NAME CMD…: runs and times one step; a failing step ends the demo (and tears down).
step() {
  local name=$1; shift
  local t0; t0=$(now)
  say "$name"
  "$@" || die "step \`$name\` failed"
  TIMES[$name]=$(( ($(now) - t0) / 1000000 ))
  ORDER+=("$name")
  echo "   ${TIMES[$name]} ms"
}
cg() { "$CG" "$@"; }

head -c 100000 /dev/urandom >"$WORK/payload"
SUM=$(sha256sum <"$WORK/payload" | cut -d' ' -f1)
mkdir -p "$WORK/back"
do_check() {
  local remote; remote=$(cg ssh "$ROLE" sha256sum payload | cut -d' ' -f1)
  [ "$remote" = "$SUM" ] && echo "   the file survived stop, image, terminate and recreate"
}
do_rsync() {
  cg rsync "$ROLE" -a "$WORK/payload" :payload && cg rsync "$ROLE" -a :payload "$WORK/back/" \
    && cmp "$WORK/payload" "$WORK/back/payload" && echo "   the file went in and came back intact"
}

step register-key cg register-key "$CGCLOUD_SSH_KEY.pub"
step create cg create "$ROLE"
step "ssh uname -a" cg ssh "$ROLE" uname -a
step "rsync in and back" do_rsync
step stop cg stop "$ROLE"
step image cg image "$ROLE"
step terminate cg terminate "$ROLE"
step recreate cg recreate "$ROLE"
step "ssh: file survived" do_check
step "terminate again" cg terminate "$ROLE"
step delete-image cg delete-image "$ROLE"

# The headline: a role from a plugin, loaded with --plugin.
web() { (cd "$WORK" && cg --plugin ./libexample_roles.so "$@"); }
do_page() {
  local page; page=$(web ssh example-web-box curl -sf http://localhost/) || return 1
  echo "   the plugin's box serves: $(printf '%s' "$page" | grep -o '<h1>.*</h1>')"
  printf '%s' "$page" | grep -q '<h1>Hello from a plugin</h1>'
}
step "plugin: list-roles" web list-roles
step "plugin: create" web create example-web-box -O "site_title=Hello from a plugin"
step "plugin: ssh curl" do_page
step "plugin: terminate" web terminate example-web-box

say "step times"
for s in "${ORDER[@]}"; do printf '  %-22s %6s ms\n' "$s" "${TIMES[$s]}"; done
