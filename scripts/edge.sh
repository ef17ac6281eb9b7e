#!/usr/bin/env bash
# The runtime for devices: `kiln` built without the compiler, MLflow's API and the
# marketplace (`--no-default-features`), in the size-optimised `edge` profile, for this
# machine or cross-compiled for aarch64-unknown-linux-gnu with Debian's
# gcc-aarch64-linux-gnu (qemu-user's qemu-aarch64 runs it here). Installs what the target
# needs first (idempotent), builds, and prints the binary's path.
#
#   scripts/edge.sh                              # this machine's target
#   scripts/edge.sh aarch64-unknown-linux-gnu    # a 64-bit ARM Linux device
#   scripts/edge.sh --packages-only TARGET       # only Debian's packages for TARGET (no
#                                                # rustup, no cargo: CI runs it beside its build)
set -euo pipefail
cd "$(dirname "$0")/.."

packages_only=false
if [ "${1:-}" = --packages-only ]; then
  packages_only=true
  shift
fi
host=$(rustc -vV | sed -n 's/^host: //p')
target=${1:-$host}
say() { echo "edge: $*" >&2; }

if [ "$target" != "$host" ]; then
  case $target in
    aarch64-unknown-linux-gnu)
      debs="gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user"
      export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
      ;;
    *)
      say "no cross toolchain is set up for $target (aarch64-unknown-linux-gnu is)"
      exit 2
      ;;
  esac
  n=$(echo "$debs" | wc -w)
  # shellcheck disable=SC2086
  if [ "$(dpkg-query -W -f '${db:Status-Abbrev}\n' $debs 2>/dev/null | grep -c '^ii')" -ne "$n" ]; then
    say "installing $debs (Debian)"
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq >&2
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq -o Dpkg::Use-Pty=0 $debs >&2
  fi
  $packages_only && exit 0
  if ! rustup target list --installed | grep -qx "$target"; then
    say "adding the Rust target $target (rustup)"
    rustup target add "$target" >&2
  fi
fi

$packages_only && exit 0

# A target dir of its own: the full build in target/release is left alone, and the tests
# can run this while cargo holds target/.
cargo build --quiet --profile edge --locked -p kiln --no-default-features \
  --target "$target" --target-dir target/edge-build >&2
echo "$PWD/target/edge-build/$target/edge/kiln"
