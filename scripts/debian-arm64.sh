#!/usr/bin/env bash
# Debian's packages for building and trying Linux aarch64 wheels on x86_64, unpacked into DIR (nothing installed).
#
#     scripts/debian-arm64.sh rust DIR         # DIR/root/usr/bin/rustc; LD_LIBRARY_PATH=$(cat DIR/ld-library-path)
#     scripts/debian-arm64.sh smoke DIR WHEEL  # the wheel's extension, loaded by aarch64 CPython under qemu
#
# NOTE: rustup would download the aarch64 standard library from its own servers, which the development machines
# cannot reach. Debian ships the standard library of each of its architectures (libstd-rust-web-dev:arm64) for its
# own compiler (rustc-web, the same version): both are unpacked with `dpkg -x` into DIR, beside the x86_64 standard
# library (for build scripts and proc macros) and LLVM; zig (maturin --zig) links and compiles C for aarch64. apt
# reads its package lists into DIR too, with arm64 added, so the machine's apt and dpkg configuration stay as they
# are. The smoke unpacks qemu-user-static and Debian's aarch64 python3.11 the same way.
set -euo pipefail
mode=$1
dir=$(realpath -m "$2")
mkdir -p "$dir/apt/lists/partial" "$dir/apt/cache/archives/partial" "$dir/debs" "$dir/root"
apt_opts=(-o "APT::Architectures::=amd64" -o "APT::Architectures::=arm64" -o "Dir::State::Lists=$dir/apt/lists"
    -o "Dir::Cache=$dir/apt/cache" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")

unpack() {
    (cd "$dir/debs" && apt-get "${apt_opts[@]}" download -qq "$@")
    for deb in "$dir"/debs/*.deb; do dpkg -x "$deb" "$dir/root"; done
}

ls "$dir"/apt/lists/*_Packages* >/dev/null 2>&1 || apt-get "${apt_opts[@]}" update -qq
case $mode in
rust)
    version=$(apt-cache "${apt_opts[@]}" policy rustc-web | awk '/Candidate:/ {print $2}')
    # libstd-rust-web-<major.minor> holds the compiler's shared libraries; libllvm<N> the LLVM it was built with.
    std_lib=$(apt-cache "${apt_opts[@]}" depends "libstd-rust-web-dev=$version" |
        awk '/Depends: libstd-rust-web-[0-9]/ {print $2; exit}')
    llvm=$(apt-cache "${apt_opts[@]}" depends "$std_lib=$version" | awk '/Depends: libllvm[0-9]/ {print $2; exit}')
    unpack "rustc-web=$version" "libstd-rust-web-dev=$version" "$std_lib=$version" \
        "libstd-rust-web-dev:arm64=$version" "$std_lib:arm64=$version" "$llvm"
    echo "$dir/root/usr/lib/x86_64-linux-gnu" >"$dir/ld-library-path" # librustc_driver and libLLVM
    LD_LIBRARY_PATH=$(cat "$dir/ld-library-path") "$dir/root/usr/bin/rustc" --version
    ;;
smoke)
    wheel=$(realpath "$3")
    [ -x "$dir/root/usr/bin/qemu-aarch64-static" ] || unpack qemu-user-static python3.11-minimal:arm64 \
        libpython3.11-minimal:arm64 libpython3.11-stdlib:arm64 libc6:arm64 zlib1g:arm64 libexpat1:arm64 \
        libffi8:arm64 libgcc-s1:arm64
    rm -rf "$dir/wheel" && mkdir -p "$dir/wheel"
    python3 -m zipfile -e "$wheel" "$dir/wheel"
    # NOTE: -S: Debian's site module is not needed; the check loads the extension alone (stdlib only).
    "$dir/root/usr/bin/qemu-aarch64-static" -L "$dir/root" "$dir/root/usr/bin/python3.11" -S \
        "$(dirname "$0")/../tests/wheel/extension_check.py" "$dir/wheel/wakaq"/_wakaq.*.so
    ;;
*)
    echo "usage: $0 rust DIR | smoke DIR WHEEL" >&2
    exit 2
    ;;
esac
