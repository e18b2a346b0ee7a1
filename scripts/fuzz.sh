#!/usr/bin/env bash
# Runs each fuzz target for SECONDS (default 180) with cargo fuzz on the
# stable toolchain (RUSTC_BOOTSTRAP lets it use the -Z flags it needs).
# New corpus entries land in fuzz/corpus/<target>/; crashes in fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-180}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
for target in frame_decoder load window; do
    RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none "$target" -- -max_total_time="$secs" -max_len=65536
done
