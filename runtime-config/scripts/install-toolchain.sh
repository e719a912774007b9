#!/usr/bin/env bash
# Installs what the node build needs on a fresh Debian machine of this kind: Debian's Rust 1.96
# (with its standard-library sources, and rustfmt and clippy for `make lint-rust`) and a
# wasm32v1-none sysroot built from those sources, because rustup cannot download the wasm32
# target here. Idempotent: a second run does nothing.
set -euo pipefail

need_apt=()
for pkg in rustc-web cargo-web rust-web-src rustfmt-web rust-web-clippy lld-22 protobuf-compiler clang libclang-dev make; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "[toolchain] installing Debian packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

RUSTC=/usr/bin/rustc
sysroot=$($RUSTC --print sysroot)
target_lib="$sysroot/lib/rustlib/wasm32v1-none/lib"
if ls "$target_lib"/libcore-*.rlib >/dev/null 2>&1; then
  exit 0
fi

# rust-lld is what rustc calls for wasm targets; Debian names it lld-22.
if ! command -v rust-lld >/dev/null 2>&1 || [ ! -e /usr/bin/rust-lld ]; then
  ln -sf "$(command -v ld.lld-22 || echo /usr/lib/llvm-22/bin/ld.lld)" /usr/bin/rust-lld
fi

echo "[toolchain] building core/alloc for wasm32v1-none from Debian's rust sources (~30 s)"
work=$(mktemp -d)
mkdir -p "$work/src"
cat > "$work/Cargo.toml" <<'TOML'
[package]
name = "wasm-sysroot-seed"
version = "0.0.0"
edition = "2021"
[lib]
path = "src/lib.rs"
[profile.release]
panic = "abort"
TOML
printf '#![no_std]\npub fn seed() -> u32 { 1 }\n' > "$work/src/lib.rs"
(
  cd "$work"
  PATH=/usr/bin:$PATH RUSTC_BOOTSTRAP=1 RUSTFLAGS="-C embed-bitcode=yes" \
    CARGO_TARGET_DIR="$work/target" \
    /usr/bin/cargo build --release -q -Zbuild-std=core,alloc --target wasm32v1-none
)
mkdir -p "$target_lib"
deps="$work/target/wasm32v1-none/release/deps"
cp "$deps"/libcore-*.rlib "$deps"/liballoc-*.rlib "$deps"/libcompiler_builtins-*.rlib "$target_lib"/
# rustc_std_workspace_core is what alloc links against; keep it beside them.
cp "$deps"/librustc_std_workspace_core-*.rlib "$target_lib"/ 2>/dev/null || true
rm -rf "$work"
echo "[toolchain] wasm32v1-none sysroot installed in $target_lib"
