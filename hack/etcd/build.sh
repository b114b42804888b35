#!/usr/bin/env bash
# Builds the etcd server from its Go module into a cache outside the repo; skips when present.
set -euo pipefail
ETCD=${ETCD_VERSION:-3.7.3}
CACHE=${VPN_PBR_CACHE:-$HOME/.cache/vpn-pbr-operator}
OUT=${OUT:-$CACHE/etcd/v$ETCD}
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
cd "$(dirname "$0")"
if [ -x "$OUT/etcd" ]; then echo "$OUT"; exit 0; fi
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
