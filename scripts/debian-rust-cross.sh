#!/usr/bin/env bash
# A Rust compiler that can build for Linux aarch64, from Debian's packages, unpacked into DIR (nothing installed).
#
#     scripts/debian-rust-cross.sh DIR    # then RUSTC=DIR/root/usr/bin/rustc LD_LIBRARY_PATH=$(cat DIR/ld-library-path)
#
# NOTE: rustup would download the aarch64 standard library from its own servers, which the development machines
# cannot reach. Debian ships the standard library of each of its architectures (libstd-rust-web-dev:arm64) for its
# own compiler (rustc-web, the same version): both are unpacked with `dpkg -x` into DIR, beside the x86_64 standard
# library (for build scripts and proc macros) and LLVM. apt reads the package lists into DIR too, with arm64 added,
# so the machine's apt and dpkg configuration stay as they are. zig (maturin --zig) links and compiles C for aarch64.
set -euo pipefail
dir=$(realpath -m "$1")
mkdir -p "$dir/apt/lists/partial" "$dir/apt/cache/archives/partial" "$dir/debs" "$dir/root"
apt_opts=(-o "APT::Architectures::=amd64" -o "APT::Architectures::=arm64" -o "Dir::State::Lists=$dir/apt/lists"
    -o "Dir::Cache=$dir/apt/cache" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
apt-get "${apt_opts[@]}" update -qq
version=$(apt-cache "${apt_opts[@]}" policy rustc-web | awk '/Candidate:/ {print $2}')
# libstd-rust-web-<major.minor> holds the compiler's shared libraries; libllvm<N> the LLVM it was built with.
std_lib=$(apt-cache "${apt_opts[@]}" depends "libstd-rust-web-dev=$version" | awk '/Depends: libstd-rust-web-[0-9]/ {print $2; exit}')
llvm=$(apt-cache "${apt_opts[@]}" depends "$std_lib=$version" | awk '/Depends: libllvm[0-9]/ {print $2; exit}')
cd "$dir/debs"
apt-get "${apt_opts[@]}" download -qq "rustc-web=$version" "libstd-rust-web-dev=$version" "$std_lib=$version" \
    "libstd-rust-web-dev:arm64=$version" "$std_lib:arm64=$version" "$llvm"
for deb in *.deb; do dpkg -x "$deb" "$dir/root"; done
echo "$dir/root/usr/lib/x86_64-linux-gnu" >"$dir/ld-library-path"  # librustc_driver and libLLVM
LD_LIBRARY_PATH=$(cat "$dir/ld-library-path") "$dir/root/usr/bin/rustc" --version
