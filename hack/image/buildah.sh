#!/usr/bin/env bash
# buildah with every file it writes kept under the cache, off the host.
#
#   hack/image/buildah.sh STATE_DIR BUILDAH_ARGS...
#
# Besides its image store (--root/--runroot, given here under STATE_DIR), buildah writes host
# paths of its own: the CNI network configuration and its lock (/etc/cni/net.d/cni.lock, made
# at start even for builds without RUN steps), the short-name alias cache (/var/cache/containers)
# and the blob info cache (/var/lib/containers/cache). It therefore runs in a private mount
# namespace where /etc, /var/lib and /var/cache are overlays whose writable layers live in
# STATE_DIR/host: the host's files stay readable, nothing buildah writes reaches them.
# Temporary files go to STATE_DIR/tmp. Needs root (buildah does too, with --storage-driver vfs).
set -euo pipefail
STATE=${1:?usage: hack/image/buildah.sh STATE_DIR BUILDAH_ARGS...}
shift
mkdir -p "$STATE/host" "$STATE/tmp"
# shellcheck disable=SC2016
exec unshare --mount --propagation private -- bash -euo pipefail -c '
  state=$1; shift
  for p in /etc /var/lib /var/cache; do
    n=${p//\//_}
    mkdir -p "$state/host/$n/upper" "$state/host/$n/work"
    mount -t overlay overlay -o "lowerdir=$p,upperdir=$state/host/$n/upper,workdir=$state/host/$n/work" "$p"
  done
  export TMPDIR=$state/tmp
  exec buildah --root "$state/storage" --runroot "$state/run" --storage-driver vfs "$@"
' buildah-under-cache "$STATE" "$@"
