#!/usr/bin/env bash
# Installs what the build needs on a fresh Debian machine; a no-op when it is all there.
set -euo pipefail

missing=()
command -v cargo >/dev/null || { echo "setup: cargo is required (install Rust with rustup)" >&2; exit 1; }
cargo fmt --version >/dev/null 2>&1 || missing+=(rustfmt)
cargo clippy --version >/dev/null 2>&1 || missing+=(clippy)
if ((${#missing[@]})); then
    rustup component add "${missing[@]}"
fi
