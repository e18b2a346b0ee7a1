#!/usr/bin/env bash
# Builds the runtime-only worker (host/worker/, the mpwasm crate without its
# `compiler` feature) to target/release/mpwasm-worker, beside
# target/release/mpwasm, where pools find it (see docs/zygote.md).
#
# It is a workspace of its own, built in a Cargo invocation of its own:
# built together with the top workspace, Cargo would unify the compiler back
# into it. The same target directory keeps both builds' dependencies side by
# side (different features, different hashes).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo build --release --manifest-path host/worker/Cargo.toml --target-dir target "$@"
