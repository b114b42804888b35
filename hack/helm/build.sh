#!/usr/bin/env bash
# Builds the helm CLI from its Go module helm.sh/helm/v4 into a cache outside the repo; a second
# run with the binary present does nothing. Prints the directory holding `helm` on stdout (the
# only stdout line), everything else goes to stderr, like hack/k8s-bins/build.sh.
#
# go.mod/go.sum in this directory are committed, so CI only downloads the pinned modules from
# the Go module proxy and builds. Helm v4 derives the default Kubernetes version that
# `helm template`/`helm lint` assume from the client-go version in its build info, so no
# ldflags are needed for that; the -X flags below only stamp `helm version`.
set -euo pipefail
HELM=${HELM_VERSION:-4.3.1}
CACHE=${VPN_PBR_CACHE:-$HOME/.cache/vpn-pbr-operator}
OUT=${OUT:-$CACHE/helm/v$HELM}
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
# One build at a time per cache (concurrent runs wait, then find the binary present).
mkdir -p "$CACHE"
exec 8>"$CACHE/helm.lock"
flock 8
cd "$(dirname "$0")"
if [ -x "$OUT/helm" ]; then echo "$OUT"; exit 0; fi
if [ ! -f go.mod ]; then
  # One-time generation (committed afterwards).
  go mod init vpn-pbr-operator.invalid/helm-bin >&2
  go get -tool "helm.sh/helm/v4/cmd/helm@v$HELM" >&2
  go mod tidy >&2
fi
LD="-s -w -X helm.sh/helm/v4/internal/version.version=v$HELM -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
mkdir -p "$OUT"
start=$(date +%s)
go build -trimpath -ldflags "$LD" -o "$OUT/helm.tmp" helm.sh/helm/v4/cmd/helm
mv "$OUT/helm.tmp" "$OUT/helm"
echo "built helm v$HELM in $(( $(date +%s) - start ))s" >&2
"$OUT/helm" version >&2
echo "$OUT"
