#!/usr/bin/env bash
# Builds every guest (examples/ and tests/guests/) for wasm32-wasip1 and
# copies the modules to target/guests/<name>.wasm.
#
# MPWASM_TOOLCHAIN=debian builds with Debian's rustc-web and wasi-libc (see
# scripts/setup.sh); both paths leave the same files in the same place.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/target/guests
mkdir -p "$out"

toolchain=${MPWASM_TOOLCHAIN:-$(cat target/.guest-toolchain 2>/dev/null || echo rustup)}
args=(build --release --target wasm32-wasip1 --manifest-path examples/Cargo.toml)
if [ "$toolchain" = debian ]; then
    export CARGO_TARGET_DIR=$root/target/wasm-debian RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc
    args+=(-Z build-std=std,panic_abort
        --config 'target.wasm32-wasip1.linker="/usr/bin/wasm-ld-19"'
        --config 'target.wasm32-wasip1.rustflags=["-C","link-self-contained=no","-L","/usr/lib/wasm32-wasi","-C","link-arg=/usr/lib/wasm32-wasi/crt1-reactor.o"]')
else
    export CARGO_TARGET_DIR=$root/target/wasm
fi
cargo "${args[@]}"

built=$CARGO_TARGET_DIR/wasm32-wasip1/release
count=0
for wasm in "$built"/*.wasm; do
    cp -f "$wasm" "$out/"
    count=$((count + 1))
done
echo "guests: $count modules in target/guests/ ($toolchain toolchain)"

# JavaScript guests, when scripts/setup.sh installed componentize-js. The
# component is rebuilt only when its source is newer.
componentize_js=$root/target/js-tools/node_modules/.bin/componentize-js
if [ -x "$componentize_js" ]; then
    for js in examples/js/*.js; do
        name=$(basename "$js" .js)_js
        if [ ! -f "$out/$name.wasm" ] || [ "$js" -nt "$out/$name.wasm" ] || [ wit/mpwasm.wit -nt "$out/$name.wasm" ]; then
            "$componentize_js" "$js" --wit wit --world-name worker -d http fetch-event -o "$out/$name.wasm" >/dev/null
            echo "guests: $name.wasm (componentize-js)"
        fi
    done
fi

# C guests, when clang-19 and wasi-libc are installed (scripts/setup.sh).
if command -v clang-19 >/dev/null && [ -f /usr/lib/wasm32-wasi/libc.a ]; then
    for c in examples/c/*.c; do
        name=$(basename "$c" .c)_c
        clang-19 --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Werror \
            -o "$out/$name.wasm" "$c" examples/c/gen/worker.c examples/c/gen/worker_component_type.o
        echo "guests: $name.wasm (clang-19)"
    done
fi
