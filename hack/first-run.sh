#!/usr/bin/env bash
# The first-run check (run by `make test`): the end-to-end tests (tests/e2e.rs, then the docs'
# install steps, tests/install_steps.rs) on a host made fresh, as on a machine that never ran it.
#
#   hack/first-run.sh [cargo test args...]      (needs root, like the nodes themselves)
#
# The Debian packages are installed first, on the real host. Then the test runs in a private
# mount namespace, so nothing on the real host moves:
# - every directory of hack/host-dirs that exists is hidden: its parent becomes an overlay whose
#   lower layer is the host's directory and whose upper layer holds a whiteout for it (and
#   takes whatever the run writes there), so the run sees the directory absent;
# - the images and the pause image are built again (buildah state, stamps and tarballs in a
#   fresh directory; the Go and Cargo caches, the static build included, stay);
# - the nodes' directory is fresh (VPN_PBR_NODE_DIR: no baseline of an earlier run).
# The log lists the audited directories and shows each absent at the start. A killed run leaves
# only $CACHE/first-run (removed by the next run); the namespace's mounts end with it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${VPN_PBR_CACHE:-$HOME/.cache/vpn-pbr-operator}
FRESH=$CACHE/first-run
[ "$(id -u)" = 0 ] || { echo "first-run: needs root (the local nodes do)" >&2; exit 1; }

"$ROOT/hack/node.sh" packages
# Nodes a killed run left up: take them down with their files before those go.
left=$(cat /run/vpn-pbr-node/dir 2>/dev/null || true)
case $left in "$FRESH"/*) "$ROOT/hack/node.sh" down --dir "$left" ;; esac
rm -rf "$FRESH"
mkdir -p "$FRESH/node" "$FRESH/image" "$FRESH/node-images" "$FRESH/hide"

# shellcheck disable=SC2016
rc=0
unshare --mount --propagation private -- bash -euo pipefail -c '
  root=$1 cache=$2 fresh=$3; shift 3
  say() { echo "first-run: $*" >&2; }
  dirs=$(grep -v "^#" "$root/hack/host-dirs")
  # Hide the audited directories present: one overlay per parent, a whiteout per child.
  declare -A hide=()
  for d in $dirs; do
    if [ -e "$d" ] || [ -L "$d" ]; then
      parent=$(realpath "$(dirname "$d")")
      hide[$parent]="${hide[$parent]:-} $(basename "$d")"
    fi
  done
  for parent in "${!hide[@]}"; do
    n=${parent//\//_}
    mkdir -p "$fresh/hide/$n/upper" "$fresh/hide/$n/work"
    for child in ${hide[$parent]}; do mknod "$fresh/hide/$n/upper/$child" c 0 0; done
    mount -t overlay overlay \
      -o "lowerdir=$parent,upperdir=$fresh/hide/$n/upper,workdir=$fresh/hide/$n/work" "$parent"
    say "hid${hide[$parent]} under $parent (an overlay in this mount namespace)"
  done
  say "audited host directories (hack/host-dirs), at the start:"
  present=0
  for d in $dirs; do
    if [ -e "$d" ]; then say "  present $d"; present=1; else say "  absent  $d"; fi
  done
  [ "$present" = 0 ] || { say "an audited directory is still present"; exit 1; }
  export IMAGE_DIR=$fresh/image NODE_IMAGES_DIR=$fresh/node-images VPN_PBR_NODE_DIR=$fresh/node
  say "images, pause image and nodes from scratch (IMAGE_DIR=$IMAGE_DIR)"
  cd "$root"
  cargo test --locked --test e2e --test install_steps "$@" -- --ignored --nocapture
' first-run "$ROOT" "$CACHE" "$FRESH" "$@" || rc=$?
# A failed run's nodes are taken down by their watchdog, which still needs its files: wait for
# every process of the run to end before removing them.
for _ in $(seq 120); do pgrep -f "$FRESH" >/dev/null || break; sleep 0.5; done
pgrep -f "$FRESH" >/dev/null || rm -rf "$FRESH"
exit "$rc"
