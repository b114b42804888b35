#!/usr/bin/env bash
# Builds the etcd server from its Go module into a cache outside the repo; skips when present,
# and links an etcd of the tested version the machine has ($KUBEBUILDER_ASSETS or PATH) instead
# of building one (hack/reuse-binary.sh).
set -euo pipefail
# shellcheck source=hack/reuse-binary.sh
. "$(dirname "$0")/../reuse-binary.sh"
ETCD=${ETCD_VERSION:-3.7.3}
CACHE=${VPN_PBR_CACHE:-$HOME/.cache/vpn-pbr-operator}
OUT=${OUT:-$CACHE/etcd/v$ETCD}
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
# One build at a time per cache (concurrent runs wait, then find the binary present).
mkdir -p "$CACHE"
exec 8>"$CACHE/etcd.lock"
flock 8
cd "$(dirname "$0")"
if [ -x "$OUT/etcd" ] || reuse_binary etcd "etcd Version: $ETCD" "$OUT"; then echo "$OUT"; exit 0; fi
if [ ! -f go.mod ]; then
  go mod init vpn-pbr-operator.invalid/etcd-bin >&2
  go get -tool "go.etcd.io/etcd/server/v3@v$ETCD" >&2
  go mod tidy >&2
fi
mkdir -p "$OUT"
go build -trimpath -ldflags "-s -w" -o "$OUT/etcd.tmp" go.etcd.io/etcd/server/v3
mv "$OUT/etcd.tmp" "$OUT/etcd"
"$OUT/etcd" --version >&2
echo "$OUT"
