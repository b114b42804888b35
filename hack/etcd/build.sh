#!/usr/bin/env bash
# Builds the etcd server from its Go module into a cache outside the repo; skips when present,
# and links an etcd of the tested version the machine has ($KUBEBUILDER_ASSETS or PATH) instead
# of building one (hack/reuse-binary.sh).
set -euo pipefail
# shellcheck source=hack/reuse-binary.sh
. "$(dirname "$0")/../reuse-binary.sh"
# shellcheck source=hack/go-tool.sh
. "$(dirname "$0")/../go-tool.sh"
ETCD=${ETCD_VERSION:-3.7.3}
go_tool_cache etcd
OUT=${OUT:-$CACHE/etcd/v$ETCD}
if [ -x "$OUT/etcd" ] || reuse_binary etcd "etcd Version: $ETCD" "$OUT"; then echo "$OUT"; exit 0; fi
go_tool_module etcd-bin "go.etcd.io/etcd/server/v3@v$ETCD"
mkdir -p "$OUT"
go build -trimpath -ldflags "-s -w" -o "$OUT/etcd.tmp" go.etcd.io/etcd/server/v3
mv "$OUT/etcd.tmp" "$OUT/etcd"
"$OUT/etcd" --version >&2
echo "$OUT"
