#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine (as root, no AWS account): installs what
# the tests need (Debian packages, moto from PyPI), checks format and lints, runs the README's
# demo, builds the workspace, runs every test.
# Nothing here talks to AWS: the tests start their own AWS emulator (moto_server) on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*" >&2; }

# Debian packages the tests use: ssh-keygen and openssl (key fingerprints are checked
# independently of cgcloud); for the local cloud: systemd-nspawn, debootstrap, iproute2, nftables
# (security groups between boxes), rsync, curl; man-db to render the generated manual pages;
# binutils to read the agent's symbol versions independently of cgcloud; and a python3 with pip
# for moto unless one is there already.
packages=(openssh-client openssl ca-certificates systemd-container debootstrap iproute2 nftables rsync curl man-db binutils)
python3 -m pip --version >/dev/null 2>&1 || packages+=(python3 python3-pip)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# moto_server, pinned: the AWS emulator the tests run against.
if ! python3 -c 'import moto, sys; sys.exit(moto.__version__ != "5.2.1")' 2>/dev/null \
   || ! command -v moto_server >/dev/null; then
  say "installing moto[server]==5.2.1"
  python3 -m pip install -q 'moto[server]==5.2.1' 2>/dev/null \
    || python3 -m pip install -q --break-system-packages 'moto[server]==5.2.1'
fi
hash -r

# Never let an SDK probe instance metadata (a non-loopback address) for credentials or region.
export AWS_EC2_METADATA_DISABLED=true

# Format and lints first: they fail fast and need no box.
say "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# What plugin authors depend on must package as published (its own build from the packaged
# sources included); cargo reaches only the package registry for this.
# The check builds in a target folder of its own, emptied first, and drops cargo's unpacked
# copies of these crates from earlier checks: cargo takes a registry crate of the same name and
# version for unchanged and would build the old sources.
say "packaging the plugin API"
package_target="${CARGO_TARGET_DIR:-target}/package-check"
rm -rf "$package_target" "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/cgcloud-plugin-api-* \
  "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/cgcloud-builtin-roles-*
cargo package --locked -p cgcloud-plugin-api -p cgcloud-builtin-roles --target-dir "$package_target"

# The README's first command, before anything else is built: on CI this is a clean clone with
# an empty cargo target, so the demo must build everything it uses, as it must for a new user.
# It builds cgcloud, the local cloud, the release agent and the example plugin, and sets up the
# local cloud; the steps below reuse all of that.
say "the README's demo (tests/localcloud/demo.sh)"
bash tests/localcloud/demo.sh

say "building"
cargo build --workspace --locked
# The agent the end-to-end tests install on boxes: the release build users ship.
cargo build --locked --profile agent -p cgcloud-agent
# The local cloud's Debian root file systems: built once (about 2 minutes), then cached outside
# the checkout, keyed by how they are built.
say "setting up the local cloud"
"${CARGO_TARGET_DIR:-target}/debug/cgcloud-localcloud" setup
say "testing"
cargo test --workspace --locked
