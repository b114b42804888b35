#!/usr/bin/env bash
# Measures a command as on a machine that never built anything: a fresh clone of this
# repository's HEAD, run in a private mount namespace where every build cache is an empty
# directory, so the real caches stay as they are.
#
#   hack/cold.sh <command...>        e.g. hack/cold.sh make demo
#                                         hack/cold.sh bash .ci/run
#   COLD_DIR=<dir>                   where the clone and the empty caches live (default
#                                    /var/tmp/vpn-pbr-cold; removed before and after the run)
#
# Emptied: $HOME/.cache (the tool cache, the Cargo target dir that .ci/run uses, Go's build
# cache, pip's), the Go module cache, Go's installed binaries, Cargo's registry and git
# checkouts, npm's cache. Kept: the toolchains themselves (Go, Rust, Python, Node) and the
# Debian packages, as on the fresh machine the README's times are for. Needs root (mounts).
# Prints the command's wall time at the end; exits with the command's status.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
COLD=${COLD_DIR:-/var/tmp/vpn-pbr-cold}
[ $# -gt 0 ] || { echo "usage: $0 <command...>" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "cold: needs root (private mounts)" >&2; exit 1; }

rm -rf "$COLD"
mkdir -p "$COLD/empty"
git clone -q "$ROOT" "$COLD/clone"
caches=("$HOME/.cache" "$(go env GOMODCACHE)" "$(go env GOPATH)/bin" "${CARGO_HOME:-$HOME/.cargo}/registry"
  "${CARGO_HOME:-$HOME/.cargo}/git" "$HOME/.npm")

rc=0
# shellcheck disable=SC2016
unshare --mount --propagation private -- bash -euo pipefail -c '
  cold=$1; shift
  n=0
  while [ "$1" != -- ]; do
    n=$((n + 1)); mkdir -p "$cold/empty/$n" "$1"
    mount --bind "$cold/empty/$n" "$1"
    echo "cold: $1 is empty" >&2
    shift
  done
  shift
  cd "$cold/clone"
  unset CARGO_TARGET_DIR KUBEBUILDER_ASSETS DEMO_BIN_DIR VPN_PBR_CACHE
  start=$(date +%s)
  rc=0; "$@" || rc=$?
  echo "cold: \"$*\" exited $rc after $(( $(date +%s) - start )) s on $(nproc) cores" >&2
  exit "$rc"
' cold "$COLD" "${caches[@]}" -- "$@" || rc=$?
# The emptied caches were fresh directories under $COLD: nothing of the run stays.
rm -rf "$COLD" 2>/dev/null || true
exit "$rc"
