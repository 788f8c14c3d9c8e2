#!/usr/bin/env bash
# Plugin load benchmark (not a timed test): builds 10 distinct plugins (generated copies of
# plugins/example with their own crate names), then prints the median per-plugin load time
# and the whole-process time of a process that loads all 10 (stand-in for
# `cgcloud list-roles` with 10 plugins). Goals: < 0.5 ms per plugin, whole process < 30 ms.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out="$root/target/plugin-bench"
gen="$out/gen"
mkdir -p "$gen"

members=""
for i in $(seq -w 1 10); do
    name="bench-p$i"
    mkdir -p "$gen/$name/src"
    cat > "$gen/$name/Cargo.toml" <<TOML
[package]
name = "$name"
version = "0.1.$((10#$i))"
edition = "2021"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
cgcloud-plugin-api = { path = "$root/plugin-api" }
TOML
    # The example's code minus its tests, with a role name of its own.
    sed -e '/^#\[cfg(test)\]/,$d' -e "s/example-web-box/bench-p$i-box/" \
        "$root/plugins/example/src/lib.rs" > "$gen/$name/src/lib.rs"
    members="$members\"$name\", "
done
printf '[workspace]\nresolver = "2"\nmembers = [%s]\n' "$members" > "$gen/Cargo.toml"

cargo build --release --quiet --manifest-path "$gen/Cargo.toml" --target-dir "$out/plugins"
cargo build --release --quiet -p cgcloud-plugin-host --example load_bench \
    --manifest-path "$root/Cargo.toml" --target-dir "$out/host"

libs=("$out"/plugins/release/libbench_p*.so)
"$out/host/release/examples/load_bench" "${libs[@]}"

runs=11
times=()
for _ in $(seq $runs); do
    start=$(date +%s%N)
    "$out/host/release/examples/load_bench" "${libs[@]}" > /dev/null
    end=$(date +%s%N)
    times+=($(( (end - start) / 1000 )))
done
median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
echo "whole process with ${#libs[@]} plugins: median of $runs runs $(( median / 1000 )).$(( median % 1000 / 100 )) ms (goal < 30 ms)"

# The real thing: `cgcloud list-roles` with the 10 plugins, side by side with `cgcloud list-roles`
# without plugins in the same run (the machine is shared and noisy: compare, do not trust one
# number). Uses a release cgcloud (CGCLOUD_BIN, else target/release/cgcloud, built once here:
# the AWS SDK makes that take several minutes the first time).
cg=${CGCLOUD_BIN:-$root/target/release/cgcloud}
if [ ! -x "$cg" ]; then
    echo "building a release cgcloud for the whole-process measurement (several minutes the first time)" >&2
    cargo build --release --quiet -p cgcloud --manifest-path "$root/Cargo.toml"
fi
plugin_args=()
for l in "${libs[@]}"; do plugin_args+=(--plugin "$l"); done
export CGCLOUD_DATA_DIR="$out/data" CGCLOUD_CONFIG="$out/no-config.toml"
"$cg" "${plugin_args[@]}" list-roles | grep -c -- '-box' | xargs -I{} echo "cgcloud list-roles with ${#libs[@]} plugins lists {} roles"
median_ms() {  # median wall time of a command over $runs runs, in microseconds
    local ts=()
    for _ in $(seq $runs); do
        local s; s=$(date +%s%N); "$@" > /dev/null; ts+=($(( ($(date +%s%N) - s) / 1000 )))
    done
    printf '%s\n' "${ts[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p"
}
base=$(median_ms "$cg" list-roles)
with=$(median_ms "$cg" "${plugin_args[@]}" list-roles)
echo "cgcloud list-roles: without plugins $(( base / 1000 )).$(( base % 1000 / 100 )) ms, with ${#libs[@]} plugins $(( with / 1000 )).$(( with % 1000 / 100 )) ms (goal < 30 ms); ratio $(( with * 100 / base ))%, the plugins add $(( (with - base) / 1000 )).$(( (with - base) % 1000 / 100 )) ms"
