#!/usr/bin/env bash
# Installs what building mpwasm and its guests needs on a fresh Debian 12
# machine with rustup. Idempotent: re-running it is quick and changes nothing.
#
#   scripts/setup.sh                    rustup's wasm32-wasip1 target (default)
#   MPWASM_TOOLCHAIN=debian scripts/setup.sh
#                                       Debian's rustc-web + wasi-libc instead,
#                                       for machines where rustup cannot download
#
# The guest build (scripts/build-guests.sh) reads the same variable.
set -euo pipefail

need_apt() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "setup: installing ${missing[*]}"
        local sudo=""
        [ "$(id -u)" = 0 ] || sudo=sudo
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust with rustup first" >&2; exit 1; }
# A C compiler and make for crates with build scripts, python3 for the benchmarks.
command -v cc >/dev/null && command -v make >/dev/null && command -v python3 >/dev/null \
    || need_apt build-essential python3

use_debian() {
    need_apt rustc-web rust-web-src lld-19 wasi-libc
    echo "setup: guest toolchain: Debian rustc-web + wasi-libc"
}

case "${MPWASM_TOOLCHAIN:-rustup}" in
    debian) use_debian ;;
    rustup)
        if rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
            echo "setup: guest toolchain: rustup target wasm32-wasip1 (already installed)"
        elif rustup target add wasm32-wasip1; then
            echo "setup: guest toolchain: rustup target wasm32-wasip1"
        else
            echo "setup: rustup could not add wasm32-wasip1; falling back to Debian's toolchain" >&2
            use_debian
            # Remember the fallback for the guest build.
            mkdir -p target && echo debian > target/.guest-toolchain
        fi
        ;;
    *) echo "setup: MPWASM_TOOLCHAIN must be 'rustup' or 'debian'" >&2; exit 2 ;;
esac

# The cluster tests (tests/cluster.rs) start their own JetStream servers.
command -v nats-server >/dev/null || need_apt nats-server
# Python guests (`mpwasm run prog.py`): componentize-py, pinned, in a venv
# under target/ where the mpwasm binary finds it (or set
# MPWASM_COMPONENTIZE_PY). A venv needs python3-venv on Debian.
COMPONENTIZE_PY_VERSION=0.25.1
PY_TOOLS="$(cd "$(dirname "$0")/.." && pwd)/target/python-tools"
if [ "$("$PY_TOOLS/bin/componentize-py" --version 2>/dev/null)" != "componentize-py $COMPONENTIZE_PY_VERSION" ]; then
    python3 -m venv "$PY_TOOLS" 2>/dev/null || { need_apt python3-venv; rm -rf "$PY_TOOLS"; python3 -m venv "$PY_TOOLS"; }
    "$PY_TOOLS/bin/pip" install -q --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY_VERSION"
    echo "setup: Python guests: componentize-py $COMPONENTIZE_PY_VERSION in $PY_TOOLS"
else
    echo "setup: Python guests: componentize-py $COMPONENTIZE_PY_VERSION (already installed)"
fi

# JavaScript guests (examples/js): componentize-js from npm, pinned, under
# target/js-tools, when npm is there (`make guests` builds them with it).
COMPONENTIZE_JS_VERSION=0.23.0
JS_TOOLS="$(cd "$(dirname "$0")/.." && pwd)/target/js-tools"
if command -v npm >/dev/null; then
    if [ ! -x "$JS_TOOLS/node_modules/.bin/componentize-js" ] \
        || ! grep -q "\"version\": \"$COMPONENTIZE_JS_VERSION\"" "$JS_TOOLS/node_modules/@bytecodealliance/componentize-js/package.json" 2>/dev/null; then
        mkdir -p "$JS_TOOLS"
        (cd "$JS_TOOLS" && npm install --silent --no-audit --no-fund "@bytecodealliance/componentize-js@$COMPONENTIZE_JS_VERSION" >/dev/null)
        echo "setup: JavaScript guests: componentize-js $COMPONENTIZE_JS_VERSION in $JS_TOOLS"
    else
        echo "setup: JavaScript guests: componentize-js $COMPONENTIZE_JS_VERSION (already installed)"
    fi
else
    echo "setup: npm not found: JavaScript guests (examples/js) will not be built"
fi

# C guests (examples/c): clang and wasi-libc from Debian; the bindings are
# committed (examples/c/gen), so no wit-bindgen is needed.
need_apt clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32
echo "setup: C guests: clang-19 + wasi-libc"
