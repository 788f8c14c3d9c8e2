# Sourced by the demo and the benchmarks: starts moto_server and a local cloud for one script.
#
#   localcloud_up USER   needs LC (the cgcloud-localcloud program), WORK (a scratch folder),
#                        REGION and a `die` function; starts moto (with the AMI fixtures and
#                        validation on) in its own session, creates IAM user USER with an access
#                        key (so `__me__` resolves as on AWS), starts the cloud, and exports the
#                        environment cgcloud needs (AWS_*, CGCLOUD_SSH_CONFIG, CGCLOUD_ZONE).
#                        Sets MOTO_PID, DAEMON_PID and CID for the caller's teardown:
#                        `"$LC" down "$CID"`, then kill DAEMON_PID and the process group MOTO_PID.

localcloud_up() {
  local user=$1 here port
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  # Its own session, so that teardown can end it and everything it started, and so its end is
  # not reported as a killed job of the calling shell.
  (MOTO_AMIS_PATH=$here/amis.json MOTO_ENABLE_AMI_VALIDATION=true MOTO_ENABLE_KEYPAIR_VALIDATION=true \
    setsid moto_server -H 127.0.0.1 -p "$port" >"$WORK/moto.log" 2>&1 & echo $! >"$WORK/moto.pid")
  MOTO_PID=$(cat "$WORK/moto.pid")
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/moto-api/" && break; sleep 0.1; done
  curl -sf -o /dev/null "http://127.0.0.1:$port/moto-api/" || die "moto_server did not start: $(tail -5 "$WORK/moto.log")"
  export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_REGION=$REGION AWS_DEFAULT_REGION=$REGION AWS_EC2_METADATA_DISABLED=true
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
  eval "$(python3 - "$user" <<'EOF'
import boto3, sys
iam = boto3.client("iam")
iam.create_user(UserName=sys.argv[1])
k = iam.create_access_key(UserName=sys.argv[1])["AccessKey"]
print(f"export AWS_ACCESS_KEY_ID={k['AccessKeyId']} AWS_SECRET_ACCESS_KEY={k['SecretAccessKey']}")
EOF
)"
  "$LC" up --endpoint "$AWS_ENDPOINT_URL" --exit-with-parent --kill-on-exit "$MOTO_PID" >"$WORK/up.out" 2>"$WORK/up.log" &
  DAEMON_PID=$!
  for _ in $(seq 300); do grep -q '^READY' "$WORK/up.out" 2>/dev/null && break; kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
  grep -q '^READY' "$WORK/up.out" || die "the local cloud did not start: $(cat "$WORK/up.log")"
  local ssh_config
  read -r _ CID ssh_config <"$WORK/up.out"
  export CGCLOUD_SSH_CONFIG=$ssh_config CGCLOUD_ZONE=${REGION}a
}
