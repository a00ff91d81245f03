#!/bin/sh
# Builds wordcount.wasm (the skill's entry) from src/lib.rs for WASI preview 1.
#
# 1. A rustup toolchain with the wasm32-wasip1 target: cargo build (Cargo.toml's release profile).
# 2. Otherwise a distribution rustc with a WASI standard library in /usr/lib/rustlib
#    (Debian bookworm: apt-get install rustc libstd-rust-dev-wasm32 lld-14; rustc 1.63 names
#    the target wasm32-wasi, the old name of wasm32-wasip1): rustc directly, with the same
#    settings as the release profile.
# 3. Otherwise: say how to get a toolchain and exit 1.
set -eu
cd "$(dirname "$0")"
OUT=wordcount.wasm

if command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
    echo "build.sh: cargo build --release --target wasm32-wasip1" >&2
    cargo build --release --target wasm32-wasip1
    cp target/wasm32-wasip1/release/wasm_wordcount.wasm "$OUT"
    echo "build.sh: wrote $OUT ($(wc -c <"$OUT") bytes)" >&2
    exit 0
fi

RUSTC=/usr/bin/rustc
TARGET=
if [ -x "$RUSTC" ]; then
    for t in wasm32-wasip1 wasm32-wasi; do
        if [ -d "/usr/lib/rustlib/$t" ]; then
            TARGET=$t
            break
        fi
    done
fi

if [ -n "$TARGET" ]; then
    # The target's default linker is rust-lld, which distribution packages may not ship;
    # fall back to LLVM's wasm-ld (Debian: lld-14 installs wasm-ld-14).
    LINKER=
    for l in rust-lld wasm-ld wasm-ld-19 wasm-ld-18 wasm-ld-17 wasm-ld-16 wasm-ld-15 wasm-ld-14; do
        if command -v "$l" >/dev/null 2>&1; then
            LINKER=$(command -v "$l")
            break
        fi
    done
    if [ -z "$LINKER" ]; then
        for l in /usr/lib/llvm-*/bin/wasm-ld; do
            if [ -x "$l" ]; then LINKER=$l; fi
        done
    fi
    if [ -z "$LINKER" ]; then
        echo "build.sh: $RUSTC has the $TARGET target but no WebAssembly linker was found;" >&2
        echo "  install LLVM's lld (Debian: apt-get install lld-14) and run build.sh again" >&2
        exit 1
    fi
    echo "build.sh: $RUSTC ($($RUSTC --version)) --target $TARGET, linker $LINKER" >&2
    "$RUSTC" --edition 2021 --crate-type cdylib --crate-name wasm_wordcount \
        --target "$TARGET" -C opt-level=s -C panic=abort -C lto -C strip=symbols \
        -C codegen-units=1 -C linker="$LINKER" \
        src/lib.rs -o "$OUT"
    echo "build.sh: wrote $OUT ($(wc -c <"$OUT") bytes)" >&2
    exit 0
fi

cat >&2 <<'MSG'
build.sh: no Rust toolchain for WASI preview 1 was found. Either
  - with rustup:  rustup target add wasm32-wasip1   (then run build.sh again), or
  - on Debian 12: apt-get install rustc libstd-rust-dev-wasm32 lld-14
                  (rustc 1.63, target wasm32-wasi; build.sh uses it directly).
MSG
exit 1
