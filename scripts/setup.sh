#!/usr/bin/env bash
# Installs what the build needs on a fresh Debian machine; a no-op when it is all there.
# - the HDF5 C library and headers (libhdf5-dev, found through pkg-config), and h5dump;
# - oneDNN (libdnnl-dev 2.x, the dense-layer backend of the `kernels` crate's default feature);
# - the rustfmt and clippy components.
set -euo pipefail

command -v cargo >/dev/null || { echo "setup: cargo is required (install Rust with rustup)" >&2; exit 1; }

packages=()
if ! pkg-config --exists hdf5 2>/dev/null || ! command -v h5dump >/dev/null; then
    packages+=(pkg-config libhdf5-dev hdf5-tools)
fi
if [ ! -e /usr/include/oneapi/dnnl/dnnl.h ] || ! ldconfig -p 2>/dev/null | grep -q 'libdnnl\.so\.2 '; then
    packages+=(libdnnl-dev)
fi
if ((${#packages[@]})); then
    echo "setup: installing ${packages[*]}" >&2
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y -q "${packages[@]}" >/dev/null 2>&1 || {
        $SUDO apt-get update -q >/dev/null
        $SUDO apt-get install -y -q "${packages[@]}" >/dev/null
    }
fi

missing=()
cargo fmt --version >/dev/null 2>&1 || missing+=(rustfmt)
cargo clippy --version >/dev/null 2>&1 || missing+=(clippy)
if ((${#missing[@]})); then
    rustup component add "${missing[@]}"
fi
