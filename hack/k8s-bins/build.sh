#!/usr/bin/env bash
# Builds kube-apiserver and kubectl from the k8s.io/kubernetes Go module into a
# cache outside the repo; a second run with the binaries present does nothing.
set -euo pipefail
K8S=${K8S_VERSION:-1.37.2}
STAGING=v0.${K8S#1.}
CACHE=${VPN_PBR_CACHE:-$HOME/.cache/vpn-pbr-operator}
OUT=${OUT:-$CACHE/k8s/v$K8S}
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
cd "$(dirname "$0")"
if [ -x "$OUT/kube-apiserver" ] && [ -x "$OUT/kubectl" ]; then echo "$OUT"; exit 0; fi
if [ ! -f go.mod ]; then
  # One-time generation (committed afterwards): the replace list comes from the tag itself.
  go mod init vpn-pbr-operator.invalid/k8s-bins >&2
  GOMOD=$(go mod download -json "k8s.io/kubernetes@v$K8S" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
  for m in $(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1}' "$GOMOD"); do
    go mod edit -replace="$m=$m@$STAGING"
  done
  go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@v$K8S" "k8s.io/kubernetes/cmd/kubectl@v$K8S" >&2
  go mod tidy >&2
fi
MINOR=$(echo "$K8S" | cut -d. -f2)
LD="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  LD="$LD -X $p.gitVersion=v$K8S -X $p.gitMajor=1 -X $p.gitMinor=$MINOR -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done
mkdir -p "$OUT"
start=$(date +%s)
if [ ! -x "$OUT/kube-apiserver" ]; then
  go build -trimpath -tags selinux,notest -ldflags "$LD" -o "$OUT/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
  mv "$OUT/kube-apiserver.tmp" "$OUT/kube-apiserver"
fi
if [ ! -x "$OUT/kubectl" ]; then
  go build -trimpath -ldflags "$LD" -o "$OUT/kubectl.tmp" k8s.io/kubernetes/cmd/kubectl
  mv "$OUT/kubectl.tmp" "$OUT/kubectl"
fi
echo "built kube-apiserver and kubectl v$K8S in $(( $(date +%s) - start ))s" >&2
"$OUT/kube-apiserver" --version >&2
echo "$OUT"
