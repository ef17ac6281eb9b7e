#!/usr/bin/env bash
# The runtime for devices: `kiln` built without the compiler, MLflow's API and the
# marketplace (`--no-default-features`), in the size-optimised `edge` profile, for this
# machine or cross-compiled for aarch64-unknown-linux-gnu with Debian's
# gcc-aarch64-linux-gnu (qemu-user's qemu-aarch64 runs it here). Installs what each target
# needs first (idempotent), builds them all in one cargo invocation, and prints each
# binary's path, one per line, in the order given.
#
#   scripts/edge.sh                              # this machine's target
#   scripts/edge.sh aarch64-unknown-linux-gnu    # a 64-bit ARM Linux device
#   scripts/edge.sh TARGET TARGET...             # several, built side by side
#   scripts/edge.sh --packages-only TARGET...    # only Debian's packages for the targets
#                                                # (no rustup, no cargo)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

packages_only=false
if [ "${1:-}" = --packages-only ]; then
  packages_only=true
  shift
fi
host=$(rustc -vV | sed -n 's/^host: //p')
[ $# -gt 0 ] || set -- "$host"
say() { echo "edge: $*" >&2; }

for target in "$@"; do
  [ "$target" != "$host" ] || continue
  case $target in
    aarch64-unknown-linux-gnu)
      apt_install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
      export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
      ;;
    *)
      say "no cross toolchain is set up for $target (aarch64-unknown-linux-gnu is)"
      exit 2
      ;;
  esac
  $packages_only && continue
  if ! rustup target list --installed | grep -qx "$target"; then
    say "adding the Rust target $target (rustup)"
    rustup target add "$target" >&2
  fi
done
$packages_only && exit 0

# A target dir of its own: the full build in target/release is left alone, and the tests
# can run this while cargo holds target/.
args=()
for target in "$@"; do args+=(--target "$target"); done
cargo build --quiet --profile edge --locked -p kiln --no-default-features \
  "${args[@]}" --target-dir target/edge-build >&2
for target in "$@"; do echo "$PWD/target/edge-build/$target/edge/kiln"; done
