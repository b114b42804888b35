#!/usr/bin/env bash
# Builds gitops-verdicts (main.go: the verdicts of kstatus and of Argo CD's health check on
# objects, for tests/gitops_health.rs) from this Go module into a cache outside the repo; a
# binary of the same sources is not built again. Prints the binary's path (the only stdout line;
# everything else goes to stderr, like hack/helm/build.sh).
#
# go.mod/go.sum are committed, so only the pinned modules are downloaded (kstatus from
# sigs.k8s.io/cli-utils v0.37.2, gopher-lua v1.1.2 and gopher-json as Argo CD v3.6.0 pins them).
set -euo pipefail
CACHE=${VPN_PBR_CACHE:-$HOME/.cache/vpn-pbr-operator}
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
cd "$(dirname "$0")"
# The sources name the binary: an edited main.go is built again, never taken for the old one.
SUM=$(cat go.mod go.sum ./*.go | sha256sum | cut -c1-16)
DIR=$CACHE/gitops-verdicts
OUT=$DIR/$SUM
# One build at a time per cache (concurrent runs wait, then find the binary present).
mkdir -p "$DIR"
exec 8>"$CACHE/gitops-verdicts.lock"
flock 8
if [ ! -x "$OUT/gitops-verdicts" ]; then
  start=$(date +%s)
  mkdir -p "$OUT"
  go build -trimpath -ldflags "-s -w" -o "$OUT/gitops-verdicts.tmp" .
  mv "$OUT/gitops-verdicts.tmp" "$OUT/gitops-verdicts"
  echo "built gitops-verdicts in $(( $(date +%s) - start ))s" >&2
  # Builds of older sources are of no use any more.
  find "$DIR" -mindepth 1 -maxdepth 1 ! -name "$SUM" -exec rm -rf {} +
fi
echo "$OUT/gitops-verdicts"
